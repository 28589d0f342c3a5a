"""Point-cloud distances (torch, batched, differentiable; numpy in → numpy out)."""

from __future__ import annotations

import torch

from acr_pose_core.geometry._backend import ArrayLike, as_float_tensor, to_numpy

__all__ = ["chamfer_distance"]


def chamfer_distance(points_a: ArrayLike, points_b: ArrayLike, squared: bool = True) -> ArrayLike:
    """Symmetric chamfer distance between point sets, per batch item.

    ``CD(A, B) = mean_{a∈A} min_{b∈B} d(a, b) + mean_{b∈B} min_{a∈A} d(a, b)`` with ``d = ‖a − b‖²`` when
    ``squared`` (the training loss of SPD and ACR-Pose) or ``‖a − b‖`` otherwise.

    Args:
        points_a: (B, N, 3) or (N, 3).
        points_b: (B, M, 3) or (M, 3).

    Returns:
        (B,) distances (a scalar for unbatched input), in the points' units (squared units when ``squared``).
    """
    is_numpy = not isinstance(points_a, torch.Tensor)
    a = as_float_tensor(points_a)
    b = as_float_tensor(points_b).to(device=a.device, dtype=a.dtype)
    unbatched = a.dim() == 2
    if unbatched:
        a, b = a[None], b[None]
    if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[-1] != b.shape[-1]:
        raise ValueError(f"expected (B, N, D) and (B, M, D) point sets; got {tuple(a.shape)} and {tuple(b.shape)}")
    d = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")  # (B, N, M) exact, no ‖a‖²+‖b‖²−2ab
    if squared:
        d = d.pow(2)
    cd = d.min(2).values.mean(1) + d.min(1).values.mean(1)  # (B,)
    cd = cd[0] if unbatched else cd
    return to_numpy(cd) if is_numpy else cd
