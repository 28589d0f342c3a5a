"""Point-cloud distances and nearest neighbours (torch, batched; numpy in → numpy out for the chamfer distance).

k-NN (:func:`knn_indices`), two ways, both one batched matrix product for the search:

- fast: ranks by ``|a|² + |b|² − 2 a·b`` on points (or features) centred on each item's mean. One GEMM, the GPU's
  fast path; a rank is then only as good as the rounding, about ``ε |a|²`` (ε = 1.2e-7 in float32), so two
  candidates whose distances differ by less than that rank either way.
- exact: the fast search proposes ``k + margin`` candidates per point, and the candidates are re-ranked by direct
  distances ``|a − b|²``, summed coordinate by coordinate so that a pair's value never depends on anything else (the
  slow obvious version, the full matrix of the same values, is kept for tests as :func:`_knn_direct`). The result
  equals the direct version's whenever the true k nearest are among the candidates, which fails only if more than
  ``margin`` points lie within the search's rounding of the k-th distance (duplicated points, not a sampled
  surface); then the nearest points among the candidates are returned. A pair's direct distance does not depend on
  the rest of the batch or on the thread count, and changes under a rotation of the cloud only by its own rounding,
  which is what the PIM's rotation invariance needs. On 2 CPU threads it costs about what ``cdist``'s direct matrix
  does (``benchmarks/knn.py``); on a GPU the direct matrix was most of the Reconstructor's time (not measured here).

In both, each point is its own first neighbour, also beside an exact duplicate of itself. In the exact mode, points at
exactly the same distance rank by index, so even exact ties are broken the same way alone and in a batch.
"""

from __future__ import annotations

import torch

from acr_pose_core.geometry._backend import ArrayLike, as_float_tensor, to_numpy

__all__ = ["chamfer_distance", "knn_indices"]

_SEARCH_BATCH = 8  # clouds per nearest-neighbour search, to bound the (b, N, M) distance matrix


def chamfer_distance(points_a: ArrayLike, points_b: ArrayLike, squared: bool = True) -> ArrayLike:
    """Symmetric chamfer distance between point sets, per batch item.

    ``CD(A, B) = mean_{a∈A} min_{b∈B} d(a, b) + mean_{b∈B} min_{a∈A} d(a, b)`` with ``d = ‖a − b‖²`` when
    ``squared`` (the training loss of SPD and ACR-Pose) or ``‖a − b‖`` otherwise.

    Args:
        points_a: (B, N, 3) or (N, 3).
        points_b: (B, M, 3) or (M, 3).

    Returns:
        (B,) distances (a scalar for unbatched input), in the points' units (squared units when ``squared``).

    Differentiable with respect to both sets (through the matched pairs; the non-squared distance has no gradient
    where a point coincides with its neighbour).
    """
    is_numpy = not isinstance(points_a, torch.Tensor)
    a = as_float_tensor(points_a)
    b = as_float_tensor(points_b).to(device=a.device, dtype=a.dtype)
    unbatched = a.dim() == 2
    if unbatched:
        a, b = a[None], b[None]
    if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[-1] != b.shape[-1]:
        raise ValueError(f"expected (B, N, D) and (B, M, D) point sets; got {tuple(a.shape)} and {tuple(b.shape)}")
    # Nearest neighbours without autograd (the (B, N, M) matrix is never kept for backward), then exact distances
    # of the matched pairs with autograd: the same value and gradient as differentiating through the minimum.
    with torch.no_grad():
        nn_ab = torch.empty(a.shape[:2], dtype=torch.long, device=a.device)
        nn_ba = torch.empty(b.shape[:2], dtype=torch.long, device=a.device)
        for i in range(0, a.shape[0], _SEARCH_BATCH):
            d = torch.cdist(a[i : i + _SEARCH_BATCH].detach(), b[i : i + _SEARCH_BATCH].detach())  # (b, N, M)
            nn_ab[i : i + _SEARCH_BATCH] = d.argmin(2)
            nn_ba[i : i + _SEARCH_BATCH] = d.argmin(1)
    to_b = a - torch.gather(b, 1, nn_ab[..., None].expand(-1, -1, a.shape[-1]))  # (B, N, D)
    to_a = b - torch.gather(a, 1, nn_ba[..., None].expand(-1, -1, b.shape[-1]))  # (B, M, D)
    d_ab, d_ba = to_b.pow(2).sum(-1), to_a.pow(2).sum(-1)
    if not squared:
        d_ab, d_ba = d_ab.sqrt(), d_ba.sqrt()
    cd = d_ab.mean(1) + d_ba.mean(1)  # (B,)
    cd = cd[0] if unbatched else cd
    return to_numpy(cd) if is_numpy else cd


KNN_MARGIN = 8  # extra candidates of the exact k-NN's matrix-product search


def _search_distances(x: torch.Tensor) -> torch.Tensor:
    """``(B, L, L)`` distances of ``x (B, L, D)`` from ``|a|² + |b|² − 2 a·b`` (torch's matrix-product ``cdist``),
    centred per item first (this changes no distance and shrinks ``|a|²``, and with it the cancellation error); each
    point's distance to itself set to −1, so that it ranks first even beside a duplicate."""
    x = x - x.mean(dim=1, keepdim=True)  # (B, L, D)
    distance = torch.cdist(x, x, compute_mode="use_mm_for_euclid_dist")  # (B, L, L)
    distance.diagonal(dim1=1, dim2=2).fill_(-1.0)
    return distance


def knn_indices(x: torch.Tensor, k: int, exact: bool = True, margin: int = KNN_MARGIN) -> torch.Tensor:
    """``(B, L, k)`` indices of each point's k nearest points of ``x (B, L, D)``, nearest first, the point itself at
    rank 1: ``idx[b, i, r] = j`` means point j is the (r+1)-th nearest to point i. See the module docstring for the
    two modes; ``exact`` re-ranks ``k + margin`` candidates by direct distances. No gradient (indices)."""
    if x.dim() != 3:
        raise ValueError(f"expected (B, L, D) points or features, got {tuple(x.shape)}")
    B, L, _ = x.shape
    if not 1 <= k <= L:
        raise ValueError(f"k = {k} neighbours need 1 <= k <= L = {L} points")
    with torch.no_grad():
        search = _search_distances(x)  # (B, L, L)
        if not exact:
            return search.topk(k, dim=-1, largest=False, sorted=True).indices
        c = min(L, k + margin)
        candidates = search.topk(c, dim=-1, largest=False, sorted=False).indices.sort(dim=-1).values  # (B, L, c)
        batch = torch.arange(B, device=x.device).view(B, 1, 1)
        direct = _direct_distances(x[batch, candidates], x.unsqueeze(2))  # (B, L, c) |x_j − x_i|²
        own = candidates == torch.arange(L, device=x.device).view(1, L, 1)
        direct = torch.where(own, torch.full_like(direct, -1.0), direct)  # self first, as in the search
        rank = direct.sort(dim=-1, stable=True).indices[..., :k]  # (B, L, k): equal distances by index
        return candidates.gather(2, rank)


def _direct_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``|a − b|²`` over the last dimension D, broadcast, summed coordinate by coordinate in order: only elementwise
    operations, each rounded exactly once whatever the tensors' shapes, the batch or the thread count (a reduction
    such as ``vector_norm`` may group its terms differently for different shapes), so a pair's value is always the
    same bits."""
    diff = a - b  # (..., D)
    out = diff[..., 0] * diff[..., 0]
    for j in range(1, diff.shape[-1]):
        out = out + diff[..., j] * diff[..., j]
    return out


def _knn_direct(x: torch.Tensor, k: int) -> torch.Tensor:
    """The slow obvious k-NN: the full matrix of direct distances (the same per-pair formula as the exact mode),
    self first, ``topk``. For tests and benchmarks; (B, L, L, D) memory."""
    distance = _direct_distances(x.unsqueeze(2), x.unsqueeze(1))  # (B, L, L): |x_i − x_j|²
    distance.diagonal(dim1=1, dim2=2).fill_(-1.0)
    return distance.sort(dim=-1, stable=True).indices[..., :k]
