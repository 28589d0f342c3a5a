"""Procedural materials: albedo as a function of a surface point's own coordinates and part label (numpy).

A material is evaluated where camera rays hit a surface, at the hit point expressed in the surface's own frame: the
canonical (NOCS) frame for objects, so that a texture moves with the object and RGB carries its orientation; world
metres for the table and walls. Patterns: plain, stripes along an axis, checker, a label band around y (with its own
stripes), and value noise. Parts can override the colour (a bottle's cap, a camera's lens, a laptop's screen).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np

__all__ = ["PATTERNS", "Material", "random_background_material", "random_object_material"]

PATTERNS = ("plain", "stripes", "checker", "band", "noise")

_DARK_PARTS = {"lens": (0.05, 0.05, 0.06), "screen": (0.06, 0.07, 0.09), "keyboard": (0.12, 0.12, 0.13)}
"""Parts that are dark on nearly every real object of their category."""


@dataclass(frozen=True)
class Material:
    """Albedo of a surface: ``base`` with a ``pattern`` in ``secondary``, per-part colour overrides, and a gloss.

    Attributes:
        base, secondary: (3,) linear RGB in [0, 1].
        pattern: one of :data:`PATTERNS`.
        frequency: pattern cycles per unit of the surface coordinates (per NOCS unit, or per metre).
        axis: the coordinate axis of stripes (0 x, 1 y, 2 z).
        band: (y_low, y_high) of a label band, in surface coordinates.
        part_colours: part label → (3,) colour replacing the pattern on that part.
        specular: strength of a Blinn–Phong highlight in [0, 1].
        seed: seed of the value-noise lattice.
    """

    base: np.ndarray
    secondary: np.ndarray
    pattern: str = "plain"
    frequency: float = 4.0
    axis: int = 1
    band: tuple[float, float] = (-0.1, 0.1)
    part_colours: dict[int, np.ndarray] = field(default_factory=dict)
    specular: float = 0.2
    seed: int = 0

    def albedo(self, coords: np.ndarray, parts: np.ndarray | None = None) -> np.ndarray:
        """(M, 3) albedo at points ``coords (M, 3)`` in the surface's frame, with part labels ``parts (M,)``."""
        coords = np.asarray(coords, dtype=np.float32)
        weight = self._pattern_weight(coords)[:, None]  # (M, 1) in [0, 1]: 0 base, 1 secondary
        out = (1 - weight) * self.base + weight * self.secondary
        if parts is not None and self.part_colours:
            for part, colour in self.part_colours.items():
                out[parts == part] = colour
        return out

    def _pattern_weight(self, c: np.ndarray) -> np.ndarray:
        f = self.frequency
        if self.pattern == "plain":
            return np.zeros(len(c))
        if self.pattern == "stripes":
            return (np.sin(2 * np.pi * f * c[:, self.axis]) > 0).astype(np.float64)
        if self.pattern == "checker":
            return (np.floor(f * c).astype(np.int64).sum(1) % 2).astype(np.float64)
        if self.pattern == "band":
            lo, hi = self.band
            inside = (c[:, 1] > lo) & (c[:, 1] < hi)
            # the label itself carries a finer stripe around the object, so that rotation about y shows in RGB
            angle = np.arctan2(c[:, 2], c[:, 0])
            label = 0.65 + 0.35 * (np.sin(3 * angle + 2 * np.pi * f * c[:, 1]) > 0.3)
            return np.where(inside, label, 0.0)
        if self.pattern == "noise":
            return _value_noise(c * f, self.seed)
        raise ValueError(f"unknown pattern {self.pattern!r}; expected one of {PATTERNS}")


def _value_noise(p: np.ndarray, seed: int, waves: int = 4) -> np.ndarray:
    """Smooth pseudo-noise in [0, 1] at points ``p (M, 3)``: a sum of ``waves`` plane waves with seeded directions,
    frequencies (within an octave of 1) and phases. Cheap enough for every pixel of a wall."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((3, waves)) * rng.uniform(0.7, 1.4, waves)
    phases = rng.uniform(0, 2 * np.pi, waves)
    total = np.sin(2 * np.pi * (p @ directions) + phases).sum(1)  # (M,)
    return 0.5 + 0.5 * total / waves


def _random_colour(rng: np.random.Generator, saturation: tuple[float, float] = (0.2, 0.9)) -> np.ndarray:
    h = rng.random()
    s = rng.uniform(*saturation)
    v = rng.uniform(0.25, 0.95)
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def random_object_material(rng: np.random.Generator, part_names: tuple[str, ...]) -> Material:
    """A random material for an object whose parts are named ``part_names`` (dark lens, screen and keyboard)."""
    base = _random_colour(rng)
    secondary = _random_colour(rng)
    if np.abs(base - secondary).sum() < 0.4:  # keep patterns visible
        secondary = 1.0 - base
    pattern = str(rng.choice(PATTERNS, p=[0.25, 0.2, 0.1, 0.3, 0.15]))
    low = rng.uniform(-0.3, 0.05)
    part_colours: dict[int, np.ndarray] = {}
    for i, name in enumerate(part_names):
        if name in _DARK_PARTS:
            part_colours[i] = np.array(_DARK_PARTS[name]) * rng.uniform(0.7, 1.3)
        elif name in ("cap", "lid", "handle", "grip", "rim") and rng.random() < 0.5:
            part_colours[i] = _random_colour(rng)
    return Material(
        base=base,
        secondary=secondary,
        pattern=pattern,
        frequency=float(rng.uniform(3.0, 12.0)),
        axis=int(rng.integers(0, 3)),
        band=(low, low + rng.uniform(0.1, 0.35)),
        part_colours=part_colours,
        specular=float(rng.uniform(0.0, 0.6)),
        seed=int(rng.integers(2**31)),
    )


def random_background_material(rng: np.random.Generator) -> Material:
    """A random table or wall material in world metres: wood-like stripes, tiles, fabric-like noise or plain."""
    base = _random_colour(rng, saturation=(0.0, 0.6))
    secondary = np.clip(base * rng.uniform(0.5, 0.9) + rng.normal(0, 0.05, 3), 0, 1)
    pattern = str(rng.choice(("plain", "stripes", "checker", "noise"), p=[0.2, 0.3, 0.2, 0.3]))
    return Material(
        base=base,
        secondary=secondary,
        pattern=pattern,
        frequency=float(rng.uniform(2.0, 15.0)),
        axis=int(rng.integers(0, 2)),
        specular=float(rng.uniform(0.0, 0.3)),
        seed=int(rng.integers(2**31)),
    )
