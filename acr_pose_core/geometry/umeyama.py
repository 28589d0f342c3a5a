"""Umeyama's least-squares similarity transform between corresponding point sets, batched.

Convention (points as column vectors, one transform per batch item ``b``)::

    target[b, i] ≈ scale[b] · rotation[b] @ source[b, i] + translation[b]

minimising ``Σ_i w[b, i] ‖target[b, i] − (s R source[b, i] + t)‖²`` with ``R`` a proper rotation (det +1: the
reflection case of the SVD is corrected, never returned).

Reference: S. Umeyama, "Least-squares estimation of transformation parameters between two point patterns",
IEEE TPAMI 13(4), 1991.

One torch implementation serves both array types: numpy in, numpy out; torch in, torch out on the same device and
dtype, differentiable (but see the note on gradients in :func:`umeyama`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from acr_pose_core.geometry._backend import ArrayLike, answer_like, point_pair

__all__ = ["SimilarityTransform", "umeyama", "umeyama_torch"]


class SimilarityTransform(NamedTuple):
    """A batch of similarity transforms ``x ↦ scale · rotation @ x + translation``.

    Attributes:
        scale: (B,) positive scale.
        rotation: (B, 3, 3) proper rotation matrices.
        translation: (B, 3) translation (metres when the target is in metres).
        valid: (B,) bool; False where the input was degenerate (fewer than 3 usable points, all points equal,
            collinear source or target). Invalid items hold the placeholder ``scale 1, rotation I`` and the
            translation between the two centroids; they are finite, never NaN.
    """

    scale: ArrayLike
    rotation: ArrayLike
    translation: ArrayLike
    valid: ArrayLike


def umeyama_torch(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> SimilarityTransform:
    """Batched weighted Umeyama on tensors. ``source, target: (B, N, 3)``, ``weights: (B, N) ≥ 0`` or bool.

    Points with a non-finite coordinate in source or target get weight 0. See :func:`umeyama`.
    """
    if source.shape != target.shape or source.dim() != 3 or source.shape[-1] != 3:
        raise ValueError(f"source and target must both be (B, N, 3); got {tuple(source.shape)}, {tuple(target.shape)}")
    B, N, _ = source.shape
    dtype, device = source.dtype, source.device
    target = target.to(dtype)
    if weights is None:
        w = torch.ones(B, N, dtype=dtype, device=device)
    else:
        if weights.shape != (B, N):
            raise ValueError(f"weights must be (B, N) = {(B, N)}; got {tuple(weights.shape)}")
        w = weights.to(dtype)
        if not torch.isfinite(w).all():
            raise ValueError("weights must be finite (give a zero weight, not NaN or inf, to ignore a point)")
        if (w < 0).any():
            raise ValueError("weights must be non-negative")
    finite = torch.isfinite(source).all(-1) & torch.isfinite(target).all(-1)  # (B, N)
    w = torch.where(finite, w, torch.zeros_like(w))
    source = torch.where(finite[..., None], source, torch.zeros_like(source))
    target = torch.where(finite[..., None], target, torch.zeros_like(target))

    return _fit(source, target, w)


def _fit(source: torch.Tensor, target: torch.Tensor, w: torch.Tensor) -> SimilarityTransform:
    """Weighted Umeyama without input checks: finite ``source, target (B, N, 3)``, weights ``w (B, N) ≥ 0``."""
    B = source.shape[0]
    dtype, device = source.dtype, source.device
    usable = (w > 0).sum(-1)  # (B,)
    w_sum = w.sum(-1, keepdim=True)  # (B, 1)
    w = w / w_sum.clamp_min(torch.finfo(dtype).tiny)  # normalised: Σ_i w_i = 1
    mu_src = (w[..., None] * source).sum(1)  # (B, 3)
    mu_tgt = (w[..., None] * target).sum(1)  # (B, 3)
    src_c = source - mu_src[:, None]  # (B, N, 3)
    tgt_c = target - mu_tgt[:, None]
    cov = torch.einsum("bn,bni,bnj->bij", w, tgt_c, src_c)  # (B, 3, 3) Σ_i w_i y_i x_iᵀ
    var_src = (w * src_c.pow(2).sum(-1)).sum(-1)  # (B,)
    var_tgt = (w * tgt_c.pow(2).sum(-1)).sum(-1)

    # Degeneracy: the rotation is determined iff the cross-covariance has rank ≥ 2. Its singular values are
    # bounded by sqrt(var_src · var_tgt) (Cauchy–Schwarz), which gives a scale-free test.
    eps = torch.finfo(dtype).eps

    def is_valid(sv: torch.Tensor) -> torch.Tensor:  # sv: (B, 3) singular values, descending
        bound = (var_src * var_tgt).detach().sqrt()
        ok = (usable >= 3) & (var_src > torch.finfo(dtype).tiny) & (sv[:, 0] > eps**0.5 * bound)
        return ok & (sv[:, 1] > eps**0.5 * sv[:, 0])

    if torch.is_grad_enabled() and cov.requires_grad:
        # Invalid items get a well-conditioned stand-in so that neither the SVD nor its backward pass sees them.
        valid = is_valid(torch.linalg.svdvals(cov.detach()))
        stand_in = torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=dtype, device=device)).expand(B, 3, 3)
        U, D, Vh = torch.linalg.svd(torch.where(valid[:, None, None], cov, stand_in))  # cov = U diag(D) Vh
    else:
        U, D, Vh = torch.linalg.svd(cov)
        valid = is_valid(D)
    sign = torch.sign(torch.linalg.det(U) * torch.linalg.det(Vh)).detach()  # −1: reflection to correct
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    S = torch.ones(B, 3, dtype=dtype, device=device)
    S = torch.cat([S[:, :2], sign[:, None]], dim=1)  # diag(1, 1, ±1)
    rotation = U @ (S[..., None] * Vh)  # (B, 3, 3) U S Vᵀ
    scale = (D * S).sum(-1) / torch.where(valid, var_src, torch.ones_like(var_src))  # tr(D S) / σ²_src

    eye = torch.eye(3, dtype=dtype, device=device).expand(B, 3, 3)
    rotation = torch.where(valid[:, None, None], rotation, eye)
    scale = torch.where(valid, scale, torch.ones_like(scale))
    translation = mu_tgt - scale[:, None] * (rotation @ mu_src[..., None]).squeeze(-1)  # (B, 3)
    return SimilarityTransform(scale, rotation, translation, valid)


def umeyama(source: ArrayLike, target: ArrayLike, weights: ArrayLike | None = None) -> SimilarityTransform:
    """Similarity transform (scale, rotation, translation) best mapping ``source`` onto ``target``.

    ``target ≈ scale · rotation @ source + translation`` for every point, in the weighted least-squares sense.

    Args:
        source: (B, N, 3) or (N, 3) points, e.g. NOCS coordinates.
        target: same shape, e.g. camera-frame points in metres.
        weights: optional (B, N) or (N,) non-negative weights, or a bool validity mask. Points with a non-finite
            coordinate are ignored whatever their weight (NaN depth does not poison the fit).

    Returns:
        :class:`SimilarityTransform` with ``scale (B,)``, ``rotation (B, 3, 3)``, ``translation (B, 3)``,
        ``valid (B,)`` — without the batch dimension for unbatched input; numpy arrays for numpy input, tensors on
        the input's device and dtype for tensor input. Integer input is computed in float64.

    Degenerate items (fewer than 3 points of positive weight, all points equal, a collinear source or target) are
    reported by ``valid = False`` and hold finite placeholders; nothing raises, nothing is NaN.

    Gradients flow to source, target and weights through ``torch.linalg.svd``; they are ill-conditioned where two
    singular values of the cross-covariance nearly coincide (an isotropic cloud), as for any SVD-based alignment.
    """
    pair = point_pair(source, target, weights)
    return answer_like(umeyama_torch(pair.source, pair.target, pair.per_point), pair)


def _umeyama_reference(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The textbook single-item Umeyama in numpy, unweighted, for tests: returns ``(scale, R, t)``."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    xs, ys = source - mu_s, target - mu_t
    cov = ys.T @ xs / len(source)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    s = np.trace(np.diag(D) @ S) / xs.var(0).sum()
    return s, R, mu_t - s * R @ mu_s
