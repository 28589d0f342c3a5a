"""Relational Reconstruction Module (ACR-Pose §3.3): three EdgeConv feature graphs over three input modalities.

EdgeConv (DGCNN, Wang et al., ACM TOG 2019): each node i is joined to its K nearest neighbours j *in feature space*;
an MLP h maps every edge to ``h(x_i, x_j − x_i)`` and a max over the K edges gives the node's new feature.

- Relational instance features: point features f_p (from PIM) and image features f_I are concatenated (2C), an
  MLP reduces them to C, EdgeConv relates them, an MLP expands to 2C: ``f_ins (B, N, 2C)``.
- Global vectors: an MLP and an average pool embed f_ins into ``v_ins (B, G)`` and the prior features f_c into
  ``v_c (B, G)``, G = 8C.
- Relational deformation features: ``[f_c, v_ins, v_c]`` on every prior point, reduced to C by an MLP, EdgeConv:
  ``f_d (B, M, C)``.
- Relational assignment features: ``[f_ins, v_ins, v_c]`` on every observed point, the same: ``f_a (B, N, C)``.

Each graph has an ablation switch in :class:`~acr_pose_core.models.config.ReconstructorConfig`; off, a per-point
MLP of the same widths takes the EdgeConv's place (the paper's Table 3 baseline). No normalisation layers: items of
a batch stay independent and training and evaluation compute the same function.

Initialisation (:func:`init_linear`): without normalisation layers the scale of the features at initialisation is set
by the weights alone. PyTorch's default ``nn.Linear`` initialisation (uniform, bound ``1/√fan_in``) shrinks the
root-mean-square of a LeakyReLU MLP's features by about a quarter a layer (×0.75 a layer, measured over ten);
through the dozen layers between the point features and the assignment logits that left the logits with a spread
of 0.04 (paper configuration), so every assignment row started uniform and every reconstructed point at the prior's
centroid. Adam then grew the weights until the logits were saturated (spread ≈ 45 after 1,200 steps overfitting two
objects with the tiny model), and a saturated softmax hardly moves a point assigned to the wrong prior point: the
correspondence loss stalled at 0.047, many points of an object sharing one wrong prediction. Here every layer is
He-initialised, ``W ~ N(0, 2 / ((1 + 0.2²) fan_in))`` when a LeakyReLU(0.2) follows and ``N(0, 1/fan_in)`` for a
final linear layer, zero biases, so the features keep the inputs' scale (root mean square 0.3–0.6 at every
stage); the assignment head scales its output layer up (:class:`~acr_pose_core.models.deformation.AssignmentHead`).
The same overfit then reaches a correspondence loss of 0.016–0.019 in 400 steps.

Ranking neighbours (:func:`knn_indices`): by squared Euclidean distance in feature space, ``|a|² + |b|² − 2 a·b``
from one batched matrix product per graph, on features centred on each item's mean. This is the GPU's fast path
(the PIM's exact direct distances cost 62 % of a 6-object forward on an H200); centring changes no distance and
shrinks ``|a|²``, and with it the cancellation error, which is about ``ε |a|²`` (ε = 1.2e-7 in float32). What this
means for reproducibility: a hard k-NN over learned, continuous features meets near-ties, two candidates for a
node's K-th neighbour whose distances differ by less than the rounding. They rank either way, and which way can
depend on things outside the item: its batch (the layers before reassociate float32 sums differently for a batch of
4 than for one item, about 1e-7), the number of threads, or the kernel a machine's math library picks. A flipped
neighbour moves that node's output by an amount unrelated to the rounding (3e-3 was seen). Exact ranks would not
remove this, since the inputs themselves differ at 1e-7. So claims of sameness (an item alone equals the item in a
batch; a resumed run continues with the same losses) hold exactly in float64, where the differences are near 1e-16
and a tie that close does not occur in practice, and are tested there; in float32 they hold up to such flips.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from acr_pose_core.geometry import pointclouds
from acr_pose_core.models.config import ReconstructorConfig
from acr_pose_core.models.precision import full_precision, full_precision_region

__all__ = ["EdgeConv", "RelationalReconstruction", "init_linear", "knn_indices", "pointwise_mlp"]

NEGATIVE_SLOPE = 0.2  # of every LeakyReLU here


def init_linear(layer: nn.Linear, activation: bool = True, fan_in: int | None = None) -> nn.Linear:
    """He initialisation of ``layer`` in place (see the module docstring); returns it.

    ``W ~ N(0, gain² / fan_in)`` with ``gain² = 2 / (1 + 0.2²)`` when a LeakyReLU(0.2) follows, 1 when nothing does;
    the bias is zeroed. ``fan_in`` defaults to the layer's input width.
    """
    gain = nn.init.calculate_gain("leaky_relu", NEGATIVE_SLOPE) if activation else 1.0
    with torch.no_grad():
        layer.weight.normal_(0.0, gain / math.sqrt(fan_in or layer.in_features))
        if layer.bias is not None:
            layer.bias.zero_()
    return layer


def pointwise_mlp(widths: list[int], final_activation: bool = True) -> nn.Sequential:
    """Shared per-point MLP on ``(B, L, C)`` inputs: Linear layers with LeakyReLU(0.2) between (and after).

    He-initialised (:func:`init_linear`), so the features keep their scale through the layers.
    """
    layers: list[nn.Module] = []
    for k, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        activation = final_activation or k < len(widths) - 2
        layers.append(init_linear(nn.Linear(c_in, c_out), activation))
        if activation:
            layers.append(nn.LeakyReLU(NEGATIVE_SLOPE))
    return nn.Sequential(*layers)


def knn_indices(features: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, L, k)`` indices of each node's k nearest nodes in feature space (itself included, at distance 0).

    ``idx[b, i, r] = j`` means node j is the r-th nearest to node i. How the graphs rank (see "Ranking neighbours" in
    the module docstring): the fast mode of :func:`acr_pose_core.geometry.pointclouds.knn_indices`, distances
    ``|a|² + |b|² − 2 a·b`` from one batched matrix product on features centred on each item's mean (distances
    unchanged, cancellation smaller), in float32 (float64 for float64 features) even under autocast, where bf16's
    8-bit mantissa would tie most ranks.
    """
    with full_precision_region(features):
        return pointclouds.knn_indices(full_precision(features), k, exact=False)


class EdgeConv(nn.Module):
    """``(B, L, C_in) → (B, L, C_out)``: ``max_j h([x_i, x_j − x_i])`` over each node's k-NN graph edges.

    h is a two-layer MLP. Its first layer is linear in the edge, ``W [x_i; x_j − x_i] = (W_a − W_b) x_i + W_b x_j``,
    so it is applied per node and gathered per edge: the (B, L, K, 2C) edge tensor is never built. At initialisation
    W_a and W_b are drawn as one He-initialised layer of fan-in 2·C_in (:func:`init_linear`).
    """

    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.centre = nn.Linear(c_in, c_out)  # W_a − W_b (and the bias)
        self.neighbour = init_linear(nn.Linear(c_in, c_out, bias=False), fan_in=2 * c_in)  # W_b
        w_a = init_linear(nn.Linear(c_in, c_out), fan_in=2 * c_in)
        with torch.no_grad():
            self.centre.weight.copy_(w_a.weight - self.neighbour.weight)
            self.centre.bias.zero_()
        self.second = init_linear(nn.Linear(c_out, c_out))
        self.act = nn.LeakyReLU(NEGATIVE_SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape
        idx = knn_indices(x, self.k)  # (B, L, K)
        a = self.centre(x)  # (B, L, C_out)
        b = self.neighbour(x)  # (B, L, C_out)
        C = b.shape[-1]
        b_j = torch.gather(b, 1, idx.reshape(B, L * self.k, 1).expand(-1, -1, C)).view(B, L, self.k, C)
        edges = self.act(a[:, :, None] + b_j)  # (B, L, K, C_out) first layer on every edge
        return self.act(self.second(edges)).amax(dim=2)  # (B, L, C_out)


class _Relate(nn.Module):
    """EdgeConv, or a per-point MLP of the same widths when the graph is switched off."""

    def __init__(self, c: int, k: int, graph: bool) -> None:
        super().__init__()
        self.graph = graph
        self.op = EdgeConv(c, c, k) if graph else pointwise_mlp([c, c, c])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class RelationalReconstruction(nn.Module):
    """The three relational feature graphs. See the module docstring for the equations."""

    def __init__(self, config: ReconstructorConfig) -> None:
        super().__init__()
        C, G, K = config.channels, 8 * config.channels, config.graph_k
        self.instance_in = pointwise_mlp([2 * C, C])
        self.instance_graph = _Relate(C, K, config.relational_instance)
        self.instance_out = pointwise_mlp([C, 2 * C])
        self.instance_global = pointwise_mlp([2 * C, G])
        self.prior_global = pointwise_mlp([C, G])
        self.deformation_in = pointwise_mlp([C + 2 * G, 2 * C, C])
        self.deformation_graph = _Relate(C, K, config.relational_deformation)
        self.assignment_in = pointwise_mlp([2 * C + 2 * G, 2 * C, C])
        self.assignment_graph = _Relate(C, K, config.relational_assignment)

    def forward(
        self, point_features: torch.Tensor, image_features: torch.Tensor, prior_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Relational deformation and assignment features.

        Args:
            point_features: (B, N, C) f_p from the point encoder (PIM).
            image_features: (B, N, C) f_I at the observed points' pixels.
            prior_features: (B, M, C) f_c from the shape-prior encoder.

        Returns:
            ``f_d (B, M, C)`` and ``f_a (B, N, C)``.
        """
        N, M = point_features.shape[1], prior_features.shape[1]
        f_ins = self.instance_in(torch.cat([point_features, image_features], dim=-1))  # (B, N, C)
        f_ins = self.instance_out(self.instance_graph(f_ins))  # (B, N, 2C)
        v_ins = self.instance_global(f_ins).mean(dim=1)  # (B, G)
        v_c = self.prior_global(prior_features).mean(dim=1)  # (B, G)
        v = torch.cat([v_ins, v_c], dim=-1)  # (B, 2G)
        f_d = self.deformation_in(torch.cat([prior_features, v[:, None].expand(-1, M, -1)], dim=-1))  # (B, M, C)
        f_d = self.deformation_graph(f_d)
        f_a = self.assignment_in(torch.cat([f_ins, v[:, None].expand(-1, N, -1)], dim=-1))  # (B, N, C)
        f_a = self.assignment_graph(f_a)
        return f_d, f_a
