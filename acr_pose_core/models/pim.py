"""The Pose-Irrelevant Module (PIM) of ACR-Pose (§3.2, Figure 3), and the plain MLP that replaces it in the ablation.

The PIM turns the observed object points ``(B, N, 3)`` (metres, camera frame) into per-point features ``(B, N, C)``
that do not change when the cloud is rotated by any rotation in SO(3) and translated (up to float rounding, for
clouds in general position; see "Ties" below). It is a translation filter followed by ``config.pim_layers``
Rotation-Invariant Convolutions. The paper leaves most details open; every choice made here is written down below.
Contents, parts before the whole: :func:`normalise_cloud`, :func:`rotation_invariant_features`,
:class:`RotationInvariantConv`, :class:`PoseIrrelevantModule`, :class:`PointMLP` (the ablation baseline) and
:func:`make_point_encoder`.

Shapes: B objects, N observed points, K points of a local group, F = 12 geometric inputs, C channels,
``C_w`` kernel weights per neighbour.

**1. Translation (and scale) filter.** ``P̃ = P − P̄`` with ``P̄`` the mean of the N points (the paper's filter). Our
addition: ``P̂ = P̃ / r`` with ``r = sqrt(mean_n |P̃_n|²)`` the RMS radius of the object (``r = 0``, a cloud of one
repeated point, divides by 1). ``r`` is invariant to rotation and translation, so this keeps the invariance, makes
every distance below dimensionless and O(1) whatever the object's metric size, and makes the features
scale-invariant as well, like the NOCS target. The ablation baseline :class:`PointMLP` gets the same filter, so the
ablation isolates rotation invariance.

**2. Local groups.** For each point ``x_i`` the group ``G_i`` is the K = ``config.pim_k`` nearest points (Euclidean
in 3D, on ``P̂``) *counting x_i itself*: ``x_i`` and its K − 1 nearest other points, sorted by distance,
``x_i1 = x_i``. (So ``pim_k ≤ N`` as the config checks, and ``pim_k ≥ 2`` is required.) The k-NN is the exact mode
of :func:`acr_pose_core.geometry.pointclouds.knn_indices`, without gradient (indices): a matrix-product search for
K + 8 candidates, re-ranked by direct distances ``|x_j − x_i|``, so the ranks are those of the full matrix of direct
distances (which the PIM computed before, at several times the cost on a GPU) and do not depend on the batch; ``x_i``
is rank 1 of its own group even beside an exact duplicate of itself. Then

- ``m_i = (1/K) Σ_j x_ij``, the group's mean geometric centre (yellow in Figure 3);
- ``n_i = x_i2``, the nearest point other than ``x_i`` itself (green; an exact duplicate of ``x_i`` may be it);
- ``f_i = x_iK``, the farthest point of the group from ``x_i`` (purple).

The groups depend on geometry only, so they and the geometric inputs below are computed once and shared by all
layers.

**3. The 12 geometric inputs of neighbour j of point i.** With ``u = x_ij − x_i`` and
``∠(a, b) = atan2(|a × b|, a · b) ∈ [0, π]`` (``∠(a, b) := π/2`` with zero gradient where ``a × b = 0`` and
``a · b = 0``, i.e. where ``a`` or ``b`` is the zero vector):

- distances ``d1 = |x_ij − x_i|``, ``d2 = |x_ij − m_i|``, ``d3 = |x_ij − n_i|``, ``d4 = |x_ij − f_i|``,
  ``d5 = |x_i − m_i|`` (d5 is the same for all j of a group);
- angles ``a1 = ∠(u, m_i − x_i)``, ``a2 = ∠(u, n_i − x_i)``, ``a3 = ∠(u, f_i − x_i)``,
  ``a4 = ∠(x_ij − m_i, x_i − m_i)``;
- two spherical signals, the polar angle ``θ`` (from ``e3``) and the azimuth ``φ`` (from ``e1``, in the ``e1 e2``
  plane) of ``u`` in a local reference frame (LRF) at ``x_i``, fed as the point on the unit sphere
  ``(s1, s2, s3) = (sin θ cos φ, sin θ sin φ, cos θ) = (u·e1, u·e2, u·e3) / |u|`` (``(0, 0, 0)`` where ``u = 0``):
  two degrees of freedom in three numbers, but without the pole of (θ, φ) or the 2π jump of φ, so rounding is never
  amplified by the encoding itself.
- The LRF, by a soft Gram–Schmidt: with the group radius ``r_i = |f_i − x_i|``, ``τ = 0.01`` and
  ``ν(v) = v / max(|v|, τ r_i)`` (``0/0 := 0``),
  ``e1 = ν(m_i − x_i)``, ``e2 = ν((f_i − x_i) − ((f_i − x_i)·e1) e1)``, ``e3 = e1 × e2``. This is the orthonormal
  Gram–Schmidt frame, except where it is near-degenerate: the centre within ``τ r_i`` of ``x_i``, or ``f_i − x_i``
  within about τ rad of the ``e1`` axis (each up to about 0.4 % of the points in our 1024-point test objects). There
  the hard frame would be rebuilt from rounding noise (we measured 0.3 rad changes of the polar angle under rotation
  in float32); the soft one instead shrinks the affected axes continuously towards 0, so rounding is amplified at
  most 1/τ times and the gradients stay bounded by about ``1/(τ r_i)``. (``u / |u|`` itself is hard-normalised:
  it is ill-conditioned only for near-duplicate points, as any direction between them is.)

That is the paper's 9 + 2 signals, the 2 encoded as 3: F = 12 inputs, ordered
``(a1, a2, a3, a4, d1, d2, d3, d4, d5, s1, s2, s3)``. Every input is a function of dot products, norms and the
cross product of vectors that rotate with the cloud (``r_i`` and ``τ r_i`` included), so it is invariant under
proper rotations (not reflections: ``e3`` and ``s3`` change sign). Degenerate frames need no branch: ``ν`` maps the
zero vector to itself and the projections onto a zero axis are 0, still invariant (e.g. ``m_i = x_i`` gives
``e1 = e3 = 0``). The self-member ``j = 1`` has ``u = 0`` exactly and gets the constant inputs ``d1 = 0``,
``a1 = a2 = a3 = π/2``, ``s = 0``. Norms use ``torch.linalg.vector_norm``, whose gradient at the zero vector is 0,
divisions by a zero norm divide by 1 instead, and ``atan2`` is evaluated at ``(1, 0)`` in its degenerate case, so
coincident points and a point at its group centre give finite values and finite gradients. The angles a1..a4 are
the paper's hard ones: ``a1`` and ``a4`` are as ill-conditioned as ``m_i − x_i`` is short (``d5`` tells the network
how short).

**Precision.** The groups and geometric inputs are computed in float32 (float64 for float64 points) even under
bf16 autocast: a bf16 matmul would round the spherical signals to about 3 significant digits, and ranks of bf16
distances tie. The convolutions then run in the autocast dtype.

**Ties.** Ranks decide the group boundary, ``n_i`` and ``f_i``. Where distances tie (exactly, or within rounding after a
rotation) ``topk`` breaks the tie and the invariance holds only up to that choice; clouds in general position (random
samples of a surface) have no such ties, a lattice of back-projected pixels on a plane nearly does. Exact duplicates
of ``x_i`` are harmless (they all sit at the same place).

**4. Rotation-Invariant Convolution** (one layer, ``C_in → C_out``):

- kernel MLP over the F inputs: ``w_ij = Linear(C_w, C_w)(ReLU(Linear(F, C_w)(g_ij)))`` per (i, j), no final ReLU
  so that kernel weights can be negative;
- squeeze-and-excitation over the group: ``s_i = σ(W_b SiLU(W_a mean_j w_ij))`` with ``W_a: C_w → max(C_w/4, 1)``
  (SiLU rather than ReLU: see :class:`_SqueezeExcitation`), and ``w_ij ← w_ij ⊙ s_i``;
- PointConv in its efficient form: ``out_i = Linear(flatten(Σ_j f_ij ⊗ w_ij))``, ``C_in·C_w → C_out``, where
  ``f_ij`` is the neighbour's feature;
- GroupNorm (``gcd(C_out, 8)`` groups, statistics over the channels of a group and all N points of one object: a
  per-object norm, so objects of a batch stay independent and train and eval behave the same) and ReLU.

The first layer's neighbour features are an embedding ``ReLU(Linear(F, C/2))`` of the geometric inputs of the pair
(never raw coordinates, which would break invariance); later layers take the previous layer's output at ``x_ij``.

**5. Widths.** ``C_w = max(C/4, 1)`` (16 for C = 64, PointConv's width), layer outputs ``C/2`` for the first
``⌊L/2⌋`` of the ``L = config.pim_layers`` layers and ``C`` for the rest: 32, 32, 64, 64 for the paper's C = 64,
L = 4 (8, 16 for :meth:`ReconstructorConfig.tiny`). K = ``config.pim_k`` = 20 by default (the paper does not say).

**6. Context** (``config.pim_context``; our addition, the paper's PIM is local only). Every input above is relative
to a point's own group, so the features say little about where on the object a point lies, which is what NOCS
regression needs (a linear probe of the local PIM's random features explains 8 % of the NOCS variance, the
PointMLP's 95 %). With context the PIM also gets, per point, G = 4 global rotation-invariant inputs of the
normalised cloud (:func:`global_context`): ``ρ_i = |x_i|`` (distance to the centroid), ``p_i = x_i · a`` and
``h_i = |x_i − p_i a|`` (height along and distance from an axis ``a``), and ``d_i = |x_i − f|`` (distance to the
farthest point ``f`` from the centroid, the first by index among equals). The axis ``a`` is the cloud's major
principal axis by 8 steps of power iteration on the covariance, started at ``f`` (so it is a rotation-equivariant
function of the cloud whatever the spectrum, with no eigen-solver), its sign chosen so that the third moment
``Σ_i (x_i · a)³`` is ≥ 0. The first layer's neighbour features then embed ``(g_ij, context of x_ij)``, and after the
last layer a max-pooled global feature is concatenated onto every point and a per-point layer maps back to C, as in
the PointMLP. All of it is invariant like the rest (up to ties: equal radii for ``f``, a zero third moment for the
sign of ``a``).

**Baseline.** :class:`PointMLP` (``config.pose_irrelevant = False``, the first row of the paper's Table 3) is a
PointNet on the same normalised points ``P̂``: per-point layers (Linear, GroupNorm, ReLU) with the first L − 1 widths
above, a max-pooled global feature concatenated back onto every point, and a last per-point layer to C. It sees raw
(centred, scaled) coordinates, so its features change with rotation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from acr_pose_core.geometry.pointclouds import knn_indices
from acr_pose_core.models.config import ReconstructorConfig
from acr_pose_core.models.precision import full_precision, full_precision_region

__all__ = [
    "NUM_GEOMETRIC_FEATURES",
    "PointMLP",
    "PoseIrrelevantModule",
    "RotationInvariantConv",
    "global_context",
    "make_point_encoder",
    "normalise_cloud",
    "rotation_invariant_features",
]

NUM_GEOMETRIC_FEATURES = 12  # F: a1..a4, d1..d5, s1..s3
NUM_CONTEXT_FEATURES = 5  # G: q1, q2, q3, ρ, d (section 6.)
_POWER_STEPS = 8  # power iterations for the context's principal axis
_FRAME_FLOOR = 1e-2  # τ: LRF axes shorter than τ·(group radius) are shrunk, not normalised
_NORM_GROUPS = 8  # GroupNorm uses gcd(channels, _NORM_GROUPS) groups
_SE_REDUCTION = 4  # squeeze-and-excitation hidden width = C_w / _SE_REDUCTION


# ---------------------------------------------------------------- geometry


def _check_points(points: torch.Tensor, min_points: int = 1) -> None:
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be (B, N, 3), got {tuple(points.shape)}")
    if not points.is_floating_point():
        raise ValueError(f"points must be a floating-point tensor, got {points.dtype}")
    if points.shape[1] < min_points:
        raise ValueError(f"need at least {min_points} points per object, got N = {points.shape[1]}")


def normalise_cloud(points: torch.Tensor) -> torch.Tensor:
    """``P̂ = (P − P̄) / r`` of ``points (B, N, 3)``: centred on the mean, divided by the RMS radius ``r`` (1 if 0)."""
    _check_points(points)
    centred = points - points.mean(dim=1, keepdim=True)  # (B, N, 3)
    radius = torch.linalg.vector_norm(centred.flatten(1), dim=1) / math.sqrt(points.shape[1])  # (B,)
    radius = torch.where(radius > 0, radius, torch.ones_like(radius))
    return centred / radius.view(-1, 1, 1)


def _normalise(v: torch.Tensor, floor: torch.Tensor | float = 0.0) -> torch.Tensor:
    """``v / max(|v|, floor)`` over the last dimension, the zero vector mapped to itself (finite gradient there).

    ``floor`` (broadcast against ``|v|`` with the last dimension kept) makes it a soft normalisation: vectors
    shorter than ``floor`` shrink towards 0 instead of being blown up to unit length.
    """
    norm = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    norm = torch.clamp_min(norm, floor) if isinstance(floor, float) else torch.maximum(norm, floor)
    return v / torch.where(norm > 0, norm, torch.ones_like(norm))


def _atan2(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``atan2(y, x)`` with ``atan2(0, 0) := π/2`` and a zero (not NaN) gradient there."""
    degenerate = (y == 0) & (x == 0)
    return torch.atan2(torch.where(degenerate, torch.ones_like(y), y), torch.where(degenerate, torch.zeros_like(x), x))


def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``∠(a, b) = atan2(|a × b|, a · b)`` over the last dimension (3); π/2 if ``a`` or ``b`` is zero."""
    return _atan2(torch.linalg.vector_norm(torch.linalg.cross(a, b, dim=-1), dim=-1), (a * b).sum(dim=-1))


def rotation_invariant_features(points: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The F = 12 geometric inputs of every (point, neighbour) pair, and the groups (module docstring, 2. and 3.).

    Args:
        points: ``(B, N, 3)`` normalised points ``P̂`` (any frame: the result is invariant to rotation).
        k: K, the group size counting the point itself; ``2 ≤ K ≤ N``.

    Returns:
        ``features (B, N, K, F)`` in the order ``(a1, a2, a3, a4, d1, d2, d3, d4, d5, s1, s2, s3)``, and
        ``index (B, N, K)`` (int64): ``index[b, i, j]`` is the j-th nearest point of point i (``index[b, i, 0] = i``),
        so ``points[b, index[b, i, j]]`` is ``x_ij``.
    """
    _check_points(points, min_points=k)
    if k < 2:
        raise ValueError(f"a group needs K >= 2 points (the point and its nearest neighbour), got K = {k}")
    B, N, _ = points.shape
    index = knn_indices(points, k, exact=True)  # (B, N, K), x_i first
    batch = torch.arange(B, device=points.device).view(B, 1, 1)
    group = points[batch, index]  # (B, N, K, 3): x_ij
    x = points.unsqueeze(2)  # (B, N, 1, 3): x_i
    m = group.mean(dim=2, keepdim=True)  # (B, N, 1, 3): m_i
    n = group[:, :, 1:2]  # (B, N, 1, 3): n_i
    f = group[:, :, -1:]  # (B, N, 1, 3): f_i
    u = group - x  # (B, N, K, 3)
    to_m, to_n, to_f = m - x, n - x, f - x  # (B, N, 1, 3) each
    from_m = group - m  # (B, N, K, 3)

    def dist(v: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(v, dim=-1)

    d1, d2, d3, d4 = dist(u), dist(from_m), dist(group - n), dist(group - f)  # (B, N, K) each
    d5 = dist(to_m).expand(B, N, k)  # (B, N, K)
    a1, a2, a3 = _angle(u, to_m), _angle(u, to_n), _angle(u, to_f)  # (B, N, K) each
    a4 = _angle(from_m, -to_m)  # (B, N, K)

    floor = _FRAME_FLOOR * dist(to_f).unsqueeze(-1)  # (B, N, 1, 1): τ r_i
    e1 = _normalise(to_m, floor)  # (B, N, 1, 3)
    e2 = _normalise(to_f - (to_f * e1).sum(dim=-1, keepdim=True) * e1, floor)  # (B, N, 1, 3)
    e3 = torch.linalg.cross(e1, e2, dim=-1)  # (B, N, 1, 3)
    frame = torch.cat([e1, e2, e3], dim=2)  # (B, N, 3, 3): rows e1, e2, e3
    sphere = _normalise(u) @ frame.transpose(-1, -2)  # (B, N, K, 3): (u·e1, u·e2, u·e3) / |u|

    features = torch.stack([a1, a2, a3, a4, d1, d2, d3, d4, d5], dim=-1)  # (B, N, K, 9)
    return torch.cat([features, sphere], dim=-1), index  # (B, N, K, F), (B, N, K)


def _principal_axis(covariance: torch.Tensor, start: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``(B, 3)`` unit axis: power iteration on ``covariance (B, 3, 3)`` from ``start (B, 3)``, the sign chosen so that
    the third moment of ``points (B, N, 3)`` along it is ≥ 0 (a rotation-equivariant function of its inputs)."""
    axis = start
    for _ in range(_POWER_STEPS):
        axis = _normalise((covariance @ axis.unsqueeze(-1)).squeeze(-1))  # (B, 3)
    third = (points @ axis.unsqueeze(-1)).squeeze(-1).pow(3).sum(dim=1, keepdim=True)  # (B, 1)
    return axis * torch.where(third < 0, -1.0, 1.0).to(points.dtype)


def global_context(points: torch.Tensor) -> torch.Tensor:
    """``(B, N, G)`` global rotation-invariant inputs ``(q1, q2, q3, ρ, d)`` of every point of the normalised cloud
    ``points (B, N, 3)`` (centred; module docstring, 6.)."""
    B, N, _ = points.shape
    batch = torch.arange(B, device=points.device)
    radius = torch.linalg.vector_norm(points, dim=-1)  # (B, N) ρ
    far = points[batch, radius.argmax(dim=1)]  # (B, 3) f
    covariance = points.transpose(1, 2) @ points / N  # (B, 3, 3)
    e1 = _principal_axis(covariance, far, points)  # (B, 3)
    off_axis = points - (points @ e1.unsqueeze(-1)) * e1.unsqueeze(1)  # (B, N, 3) components across e1
    widest = off_axis[batch, torch.linalg.vector_norm(off_axis, dim=-1).argmax(dim=1)]  # (B, 3)
    across = torch.eye(3, dtype=points.dtype, device=points.device) - e1.unsqueeze(-1) * e1.unsqueeze(1)  # (B, 3, 3)
    e2 = _principal_axis(across @ covariance @ across, widest, points)  # (B, 3), ⟂ e1
    e3 = torch.linalg.cross(e1, e2, dim=-1)  # (B, 3): a proper frame
    frame = torch.stack([e1, e2, e3], dim=1)  # (B, 3, 3) rows e1, e2, e3
    coordinates = points @ frame.transpose(1, 2)  # (B, N, 3) q
    to_far = torch.linalg.vector_norm(points - far.unsqueeze(1), dim=-1)  # (B, N) d
    return torch.cat([coordinates, radius.unsqueeze(-1), to_far.unsqueeze(-1)], dim=-1)


# ---------------------------------------------------------------- layers


def _layer_widths(config: ReconstructorConfig) -> list[int]:
    """Output widths of the L layers: C/2 for the first ⌊L/2⌋, C for the rest."""
    half = max(config.channels // 2, 1)
    return [half if layer < config.pim_layers // 2 else config.channels for layer in range(config.pim_layers)]


class _PointLayer(nn.Module):
    """Per-point ``Linear → GroupNorm (per object, over channels and points) → ReLU`` on ``(B, N, C_in)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, out_channels)
        self.norm = nn.GroupNorm(math.gcd(out_channels, _NORM_GROUPS), out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)  # (B, N, C_out)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)  # GroupNorm wants (B, C_out, N)
        return torch.relu(x)


class _SqueezeExcitation(nn.Module):
    """Rescales the kernel weights ``(B, N, K, C_w)`` of a group by gates from their mean over the group.

    SiLU, not SE's usual ReLU, in the hidden layer: the group means vary little from point to point (at
    initialisation by a few per cent of their size), so a ReLU unit tends to be off for every point of every object at
    once; its input weights then never get a gradient and the gate is stuck (we saw all 4 units of a layer's SE dead
    at initialisation).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(channels // _SE_REDUCTION, 1)
        self.gate = nn.Sequential(nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        return weights * self.gate(weights.mean(dim=2, keepdim=True))  # (B, N, 1, C_w) gates on (B, N, K, C_w)


class RotationInvariantConv(nn.Module):
    """One Rotation-Invariant Convolution: kernels from the geometric inputs (MLP + SE), applied PointConv-style.

    ``out_i = ReLU(GroupNorm(Linear(flatten(Σ_j f_ij ⊗ w_ij))))`` with ``w_ij = SE(MLP(g_ij))`` (module docstring, 4.).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_width: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_width = in_channels, out_channels, kernel_width
        self.kernel = nn.Sequential(
            nn.Linear(NUM_GEOMETRIC_FEATURES, kernel_width),
            nn.ReLU(),
            nn.Linear(kernel_width, kernel_width),
        )
        self.excitation = _SqueezeExcitation(kernel_width)
        self.output = _PointLayer(in_channels * kernel_width, out_channels)

    def forward(self, neighbour_features: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
        """``(B, N, C_out)`` from ``neighbour_features (B, N, K, C_in)`` (``f_ij``) and ``geometry (B, N, K, F)``."""
        weights = self.excitation(self.kernel(geometry))  # (B, N, K, C_w)
        conv = torch.einsum("bnkc,bnkw->bncw", neighbour_features, weights)  # (B, N, C_in, C_w): Σ_j f_ij ⊗ w_ij
        return self.output(conv.flatten(2))  # (B, N, C_in·C_w) -> (B, N, C_out)


class PoseIrrelevantModule(nn.Module):
    """The PIM: ``points (B, N, 3)`` in metres to rotation- and translation-invariant features ``(B, N, C)``."""

    def __init__(self, config: ReconstructorConfig) -> None:
        super().__init__()
        if config.pim_k < 2:
            raise ValueError(f"pim_k must be >= 2 (the point and its nearest neighbour), got {config.pim_k}")
        self.config = config
        self.k = config.pim_k
        self.out_channels = config.channels
        widths = _layer_widths(config)
        kernel_width = max(config.channels // 4, 1)  # C_w
        embedding_width = max(config.channels // 2, 1)
        self.context = config.pim_context
        inputs = NUM_GEOMETRIC_FEATURES + (NUM_CONTEXT_FEATURES if self.context else 0)
        self.embedding = nn.Sequential(nn.Linear(inputs, embedding_width), nn.ReLU())
        in_widths = [embedding_width, *widths[:-1]]
        self.layers = nn.ModuleList(
            RotationInvariantConv(c_in, c_out, kernel_width) for c_in, c_out in zip(in_widths, widths, strict=True)
        )
        if self.context:  # a point's own context and the pooled global feature on every point, mapped back to C
            self.own_context = _PointLayer(NUM_CONTEXT_FEATURES, embedding_width)
            self.head = _PointLayer(2 * widths[-1] + embedding_width, config.channels)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Canonical-related features ``(B, N, C)`` of ``points (B, N, 3)``, ``N ≥ pim_k``."""
        _check_points(points, min_points=self.k)
        B = points.shape[0]
        with full_precision_region(points):  # geometry in full precision, also under autocast
            cloud = normalise_cloud(full_precision(points))
            geometry, index = rotation_invariant_features(cloud, self.k)  # (B, N, K, F), (B, N, K)
            context = global_context(cloud) if self.context else None  # (B, N, G)
        batch = torch.arange(B, device=points.device).view(B, 1, 1)
        first = geometry if context is None else torch.cat([geometry, context[batch, index]], dim=-1)  # (B, N, K, ·)
        features = self.layers[0](self.embedding(first), geometry)  # (B, N, K, C/2) embedded -> (B, N, C_1)
        for layer in self.layers[1:]:
            features = layer(features[batch, index], geometry)  # (B, N, K, C_in): output at x_ij -> (B, N, C_out)
        if self.context:
            pooled = features.amax(dim=1, keepdim=True).expand_as(features)  # (B, N, C): the object's feature
            own = self.own_context(context.to(features.dtype))  # (B, N, C/2)
            features = self.head(torch.cat([features, pooled, own], dim=-1))  # (B, N, 2C + C/2) -> (B, N, C)
        return features  # (B, N, C)


# ---------------------------------------------------------------- ablation baseline


class PointMLP(nn.Module):
    """The baseline in the PIM's place: a PointNet on the centred, scaled points; NOT rotation invariant.

    Per-point layers with the PIM's first L − 1 widths, a max-pooled global feature concatenated onto every point,
    and a last per-point layer to C. ``points (B, N, 3)`` to ``(B, N, C)``, like :class:`PoseIrrelevantModule`.
    """

    def __init__(self, config: ReconstructorConfig) -> None:
        super().__init__()
        self.config = config
        self.out_channels = config.channels
        widths = [3, *_layer_widths(config)[:-1]]
        self.local = nn.ModuleList(
            _PointLayer(c_in, c_out) for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.head = _PointLayer(2 * widths[-1], config.channels)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Features ``(B, N, C)`` of ``points (B, N, 3)``."""
        _check_points(points)
        x = normalise_cloud(points)  # (B, N, 3)
        for layer in self.local:
            x = layer(x)  # (B, N, C_l)
        pooled = x.amax(dim=1, keepdim=True).expand_as(x)  # (B, N, C_l): the global feature on every point
        return self.head(torch.cat([x, pooled], dim=-1))  # (B, N, 2·C_l) -> (B, N, C)


def make_point_encoder(config: ReconstructorConfig) -> nn.Module:
    """The observed-point encoder the config asks for: the PIM, or :class:`PointMLP` if ``pose_irrelevant`` is off."""
    return PoseIrrelevantModule(config) if config.pose_irrelevant else PointMLP(config)
