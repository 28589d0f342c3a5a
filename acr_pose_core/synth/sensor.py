"""Sensor models: what a depth camera and a colour camera make of an exact render (numpy).

Two profiles, named after the NOCS datasets:

* ``camera`` (NOCS-CAMERA: synthetic): exact depth quantised to millimetres; exact colour.
* ``real`` (NOCS-REAL: a structured-light sensor): axial noise growing with distance,
  ``σ(z) = 1.2 mm + 1.9 mm · (z − 0.4 m)²`` (the Kinect model of Nguyen et al., 3DIMPVT 2012); holes along depth
  discontinuities (the projector's shadow and mixed pixels), at grazing angles and on dark surfaces; random
  speckle dropout; no depth closer than 0.15 m or farther than 5 m; quantised to millimetres; colour noise.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from acr_pose_core.synth.render import RenderedFrame

__all__ = ["PROFILES", "Profile", "sensor_color", "sensor_depth_mm"]

Profile = Literal["camera", "real"]
PROFILES: tuple[str, ...] = ("camera", "real")

_MIN_RANGE_M, _MAX_RANGE_M = 0.15, 5.0


def _to_mm(depth_m: np.ndarray) -> np.ndarray:
    mm = np.rint(np.where(np.isfinite(depth_m), depth_m, 0.0) * 1000.0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def _neighbour_jump(depth: np.ndarray) -> np.ndarray:
    """(H, W) largest |z − z_neighbour| over the 4-neighbourhood (a missing neighbour counts as a jump)."""
    pad = np.pad(depth, 1, mode="edge")
    centre = pad[1:-1, 1:-1]
    jumps = [np.abs(centre - pad[1:-1, :-2]), np.abs(centre - pad[1:-1, 2:]), np.abs(centre - pad[:-2, 1:-1])]
    jumps.append(np.abs(centre - pad[2:, 1:-1]))
    return np.max(jumps, axis=0)


def _dilate(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def sensor_depth_mm(frame: RenderedFrame, profile: Profile, rng: np.random.Generator) -> np.ndarray:
    """(H, W) uint16 depth in millimetres as the profile's sensor would measure it; 0 = no measurement."""
    if profile not in PROFILES:
        raise ValueError(f"unknown sensor profile {profile!r}; expected one of {PROFILES}")
    z = frame.depth.astype(np.float64)
    if profile == "camera":
        return _to_mm(z)
    valid = z > 0
    sigma = 0.0012 + 0.0019 * (z - 0.4) ** 2
    noisy = z + rng.standard_normal(z.shape) * sigma
    holes = ~valid | (z < _MIN_RANGE_M) | (z > _MAX_RANGE_M)
    edge = _neighbour_jump(z) > np.maximum(0.02, 0.03 * z)  # discontinuities, relative to range
    edge = _dilate(edge) & (rng.random(z.shape) < 0.75)
    grazing = frame.cos_incidence < rng.uniform(0.15, 0.3, z.shape)  # beyond roughly 73–81° from the normal
    dark = (frame.albedo_luminance < 0.06) & (rng.random(z.shape) < 0.6)
    speckle = rng.random(z.shape) < 0.003
    holes |= edge | (valid & grazing) | dark | speckle
    return _to_mm(np.where(holes, 0.0, noisy))


def sensor_color(color: np.ndarray, profile: Profile, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 colour as the profile's camera gives it: unchanged for ``camera``, Gaussian noise of σ = 3
    grey levels for ``real``."""
    if profile not in PROFILES:
        raise ValueError(f"unknown sensor profile {profile!r}; expected one of {PROFILES}")
    if profile == "camera":
        return color
    noisy = color.astype(np.float32) + 3.0 * rng.standard_normal(color.shape, dtype=np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
