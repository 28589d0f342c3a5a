"""Point-cloud distances (torch, batched, differentiable; numpy in → numpy out)."""

from __future__ import annotations

import torch

from acr_pose_core.geometry._backend import ArrayLike, as_float_tensor, to_numpy

__all__ = ["chamfer_distance"]

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
