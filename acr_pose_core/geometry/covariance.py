"""Pose covariance of a similarity fit, from its residuals (first order), for ``PoseWithCovariance``.

Model: ``target_i = s·R·source_i + t + e_i`` for the fit's inliers ``i``, the residuals ``e_i`` zero-mean with
variance ``σ²`` per coordinate, ``σ̂² = Σ_i ‖e_i‖² / (3n − 7)`` (n inliers, 7 fitted numbers). The pose is perturbed
on the left, in the target (camera) frame, about the object's origin::

    R → exp([δθ]×)·R,   t → t + δt,   s → s·(1 + δσ)
    ∂target_i/∂δt = I,   ∂target_i/∂δθ = −[a_i]×,   ∂target_i/∂δσ = a_i,    a_i = s·R·source_i

and the Gauss–Newton covariance of ``(δt, δθ, δσ)`` is ``σ̂² (JᵀJ)⁻¹`` (J the (3n, 7) stack of these rows). The
returned (6, 6) block is that of ``(x, y, z, rot_x, rot_y, rot_z)``, scale marginalised: the order and meaning of
``geometry_msgs/PoseWithCovariance`` (rotations about the parent frame's fixed axes, radians², metres²).

The reconstruction's errors are not independent from point to point (a wrong shape moves whole regions), so the
independent-residual covariance, which shrinks as ``1/n``, would be far too confident. ``effective_points`` states
how many independent points the fit is worth: the covariance is multiplied by ``n / min(n, effective_points)``
(``effective_points ≥ n``: the independent-residual covariance).

Symmetry: for an object symmetric about its own y axis ``u = R[:, 1]`` (bottle, bowl, can), rotation about ``u`` is
not observable: the rotation block is projected off ``u`` and given variance ``π²/3`` along it (that of an angle
uniform on (−π, π]), i.e. ``Σ_θθ ← P Σ_θθ P + (π²/3) u uᵀ``, ``Σ_tθ ← Σ_tθ P`` with ``P = I − u uᵀ``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FREE_ANGLE_VARIANCE", "pose_covariance", "skew"]

FREE_ANGLE_VARIANCE = math.pi**2 / 3
"""rad², the variance of an angle uniform on (−π, π]: what is known of the rotation about a symmetry axis."""


def skew(v: np.ndarray) -> np.ndarray:
    """(..., 3, 3) ``[v]×`` with ``[v]× w = v × w`` for ``v (..., 3)``."""
    v = np.asarray(v, dtype=np.float64)
    zero = np.zeros(v.shape[:-1])
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)


def pose_covariance(
    source: np.ndarray,
    target: np.ndarray,
    sRT: np.ndarray,
    inliers: np.ndarray | None = None,
    effective_points: float = math.inf,
    symmetric_y: bool = False,
) -> np.ndarray:
    """(6, 6) float64 covariance of the pose ``(t, θ)`` of the fit ``target ≈ sRT[:3, :3] @ source + sRT[:3, 3]``.

    Args:
        source: (N, 3) points in the object frame (NOCS units).
        target: (N, 3) the corresponding observed points (metres).
        sRT: (4, 4) the fit, ``sRT[:3, :3] = s·R``.
        inliers: (N,) bool, the points of the fit (None: all); non-finite points are left out whatever it says.
        effective_points: how many independent points the fit is worth (module docstring); positive.
        symmetric_y: the object is symmetric about its own y axis (module docstring).

    Returns the covariance in the module docstring's order and units; all-NaN when fewer than 4 usable points or
    a degenerate source (collinear points) leave it undetermined.
    """
    if not effective_points > 0:
        raise ValueError(f"effective_points must be positive, got {effective_points}")
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    sRT = np.asarray(sRT, dtype=np.float64)
    use = np.isfinite(source).all(1) & np.isfinite(target).all(1)
    if inliers is not None:
        use &= np.asarray(inliers, dtype=bool)
    n = int(use.sum())
    if n < 4:
        return np.full((6, 6), np.nan)
    a = source[use] @ sRT[:3, :3].T  # (n, 3) s·R·source_i, metres, about the object's origin
    residual = target[use] - a - sRT[:3, 3]  # (n, 3) metres
    sigma2 = float(np.square(residual).sum()) / max(3 * n - 7, 1)  # metres² per coordinate
    J = np.concatenate([np.broadcast_to(np.eye(3), (n, 3, 3)), -skew(a), a[:, :, None]], axis=2)  # (n, 3, 7)
    JtJ = np.einsum("nij,nik->jk", J, J)  # (7, 7)
    if np.linalg.cond(JtJ) > 1e12:
        return np.full((6, 6), np.nan)
    cov = sigma2 * np.linalg.inv(JtJ)[:6, :6] * (n / min(n, effective_points))
    if symmetric_y:
        u = sRT[:3, 1] / np.linalg.norm(sRT[:3, 1])  # the object's y axis in the camera frame
        P = np.eye(3) - np.outer(u, u)
        cov[3:, 3:] = P @ cov[3:, 3:] @ P + FREE_ANGLE_VARIANCE * np.outer(u, u)
        cov[:3, 3:] = cov[:3, 3:] @ P
        cov[3:, :3] = cov[:3, 3:].T
    return 0.5 * (cov + cov.T)  # exactly symmetric, as the message's consumers assume
