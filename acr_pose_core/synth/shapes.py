"""Procedural category-level object models: six NOCS mesh families with intra-class variation, and distractors.

NOCS-CAMERA/REAL and ShapeNet cannot be downloaded, so the instance models are made here. Each family draws its
proportions from a seeded generator and builds a closed, outward-wound triangle mesh (under 4,000 faces) from
surfaces of revolution, swept tubes and prisms. Overlapping closed parts are glued by concatenation (no booleans):
the meshes are for a ray caster and for surface sampling, not for CSG.

Canonical (NOCS) frame of every model, in NOCS units:

- y up. Bottle, bowl, can and the mug body are surfaces of revolution about the y axis.
- Centred on the tight axis-aligned bounding box (box centre at the origin) and scaled uniformly so that the box
  diagonal is 1; ``size`` is the box extents, ``‖size‖ = 1``.
- Mug: handle towards +x, in the x–y plane and centred on z = 0.
- Laptop: base lying in the x–z plane at the bottom, keyboard on top; the lid is hinged to the base along an axis
  parallel to z on the −x side of the base and opens upward at 70°–135° from the base, its display face looking
  towards +x (towards a user sitting at +x).
- Camera: body box (width along x, height along y, depth along z), lens cylinder pointing along +z (the front).
  A system camera has a hand grip protruding forward on the −x side (the right hand of a user looking through the
  camera along +z), a shutter button on the grip, a viewfinder hump above the lens and a mode dial on top; a compact
  camera has a shallow body, a telescoping lens, a small finger ridge on the front at −x, a flash window at the front
  top +x and buttons on top. Both have a display on the back (−z).

Part labels (``face_parts`` indexes ``part_names``; the names are what materials look for):

- bottle: 0 body, 1 cap, 2 label (the label band of the body wall)
- bowl: 0 body (outer wall, foot, rim), 1 inside
- camera: 0 body (with hump), 1 lens (barrel and glass), 2 grip, 3 screen (back display), 4 buttons (and flash)
- can: 0 body (side wall), 1 lid (ends and rims)
- laptop: 0 base (with hinge), 1 keyboard (keys and touchpad), 2 lid (the lid shell), 3 screen (the display panel)
- mug: 0 body (outer wall, bottom, rim), 1 inside, 2 handle
- distractor: one label per glued primitive, ``part0``, ``part1``, ...

Ids and splits: ``model_id_for("mug", "train", 7) == "mug-train-0007"``; each instance's seed is derived from its id
through ``np.random.SeedSequence`` with crc32 entropy, so ``model_from_id`` rebuilds the same arrays anywhere and the
train, val and test instance sets are disjoint by construction. ``make_model(category, seed)`` builds an instance
from a plain integer seed (its id ``<category>-seed<seed>`` also round-trips through ``model_from_id``).
"""

from __future__ import annotations

import functools
import re
import zlib
from dataclasses import dataclass

import numpy as np

try:
    import trimesh
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("the synthetic world needs trimesh: pip install trimesh (or pip install -e '.[render]')") from exc

from acr_pose_core.categories import CATEGORIES, CLASS_IDS, Y_SYMMETRIC

__all__ = [
    "DISTRACTOR",
    "MAX_FACES",
    "PART_NAMES",
    "SPLITS",
    "SPLIT_SIZES",
    "ObjectModel",
    "make_model",
    "model_from_id",
    "model_id_for",
    "split_model_ids",
]

DISTRACTOR = "distractor"
"""Category name of distractor objects (class id 0)."""

MAX_FACES = 4000
"""Face budget of one model, to keep ray casting cheap."""

PART_NAMES: dict[str, tuple[str, ...]] = {
    "bottle": ("body", "cap", "label"),
    "bowl": ("body", "inside"),
    "camera": ("body", "lens", "grip", "screen", "buttons"),
    "can": ("body", "lid"),
    "laptop": ("base", "keyboard", "lid", "screen"),
    "mug": ("body", "inside", "handle"),
}
"""Part names per category; a face's part label indexes this tuple. Distractors name theirs ``part<i>``."""

SPLITS = ("train", "val", "test")
SPLIT_SIZES: dict[str, int] = {"train": 60, "val": 15, "test": 15}
"""Instances per category (and of distractors) in each split."""

_SALT = 0x4ACE_9053  # keeps our seeds apart from other uses of the same small integers
_KINDS = (*CATEGORIES, DISTRACTOR)
_ID_PATTERN = re.compile(r"^(?P<kind>[a-z]+)-(?:(?P<split>train|val|test)-(?P<index>\d+)|seed(?P<seed>\d+))$")


# ---------------------------------------------------------------------------------------------------- the model


@dataclass(frozen=True, eq=False)
class ObjectModel:
    """A closed triangle mesh in the canonical (NOCS) frame, with a part label per face.

    Attributes:
        model_id: e.g. ``"mug-train-0007"``, ``"distractor-val-0003"`` or ``"can-seed42"``.
        class_id: NOCS class id, 1..6, or 0 for a distractor.
        vertices: (V, 3) float64 in NOCS units: centred on the tight box, box diagonal 1 (read-only).
        faces: (F, 3) int64 vertex indices, counter-clockwise seen from outside (read-only).
        face_parts: (F,) int64 part label per face, indexing ``part_names`` (read-only).
        part_names: name of each part label (see the module docstring).
    """

    model_id: str
    class_id: int
    vertices: np.ndarray
    faces: np.ndarray
    face_parts: np.ndarray
    part_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"vertices must be (V, 3), got {self.vertices.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3), got {self.faces.shape}")
        if self.face_parts.shape != (len(self.faces),):
            raise ValueError(f"face_parts must be ({len(self.faces)},), got {self.face_parts.shape}")
        for array in (self.vertices, self.faces, self.face_parts):
            array.setflags(write=False)  # models are cached and shared: no caller may change them

    @property
    def category(self) -> str:
        """Category name, or ``"distractor"``."""
        return DISTRACTOR if self.class_id == 0 else CATEGORIES[self.class_id - 1]

    @property
    def size(self) -> np.ndarray:
        """(3,) tight box extents in NOCS units (norm 1)."""
        return self.vertices.max(axis=0) - self.vertices.min(axis=0)

    @property
    def y_symmetric(self) -> bool:
        """Whether the shape is a surface of revolution about y (bottle, bowl, can; not the mug, with its handle)."""
        return self.class_id != 0 and self.category in Y_SYMMETRIC

    @functools.cached_property
    def _face_areas(self) -> np.ndarray:
        a, b, c = (self.vertices[self.faces[:, k]] for k in range(3))
        return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)

    def sample_surface_faces(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Area-weighted surface points and the face each lies on.

        Returns:
            points: (n, 3) float64 in the canonical frame.
            face_index: (n,) int64 index into ``faces`` (its part is ``face_parts[face_index]``).
        """
        areas = self._face_areas
        face_index = rng.choice(len(areas), size=int(n), p=areas / areas.sum())
        r1, r2 = rng.random((2, int(n)))
        s = np.sqrt(r1)
        w = np.stack([1.0 - s, s * (1.0 - r2), s * r2], axis=1)  # (n, 3) uniform barycentric weights
        corners = self.vertices[self.faces[face_index]]  # (n, 3 corners, 3)
        return np.einsum("nk,nkd->nd", w, corners), face_index.astype(np.int64)

    def sample_surface(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 3) float64 area-weighted random points on the surface, canonical frame."""
        return self.sample_surface_faces(n, rng)[0]

    def to_trimesh(self) -> trimesh.Trimesh:
        """A ``trimesh.Trimesh`` copy (not processed, so vertex and face order are kept)."""
        return trimesh.Trimesh(vertices=self.vertices.copy(), faces=self.faces.copy(), process=False)


# ---------------------------------------------------------------------------------------------------- building blocks


def _signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->", a, np.cross(b, c)) / 6.0)


class _Parts:
    """Collects closed meshes, each wound outward (by the sign of its volume), with a part label per face."""

    def __init__(self) -> None:
        self._vertices: list[np.ndarray] = []
        self._faces: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._count = 0

    def add(self, vertices: np.ndarray, faces: np.ndarray, part: int | np.ndarray) -> None:
        """Add one closed, consistently wound mesh (or a batch of equally wound ones); ``part`` int or (F,)."""
        vertices = np.asarray(vertices, dtype=np.float64)
        faces = np.asarray(faces, dtype=np.int64)
        volume = _signed_volume(vertices, faces)
        assert abs(volume) > 1e-12, "a part has no volume: not closed, or degenerate"
        if volume < 0:
            faces = faces[:, ::-1]
        self._vertices.append(vertices)
        self._faces.append(faces + self._count)
        self._labels.append(np.broadcast_to(np.asarray(part, dtype=np.int64), (len(faces),)))
        self._count += len(vertices)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.concatenate(self._vertices), np.concatenate(self._faces), np.concatenate(self._labels)


def _fillet_corner(a: np.ndarray, p: np.ndarray, b: np.ndarray, radius: float, per_quarter: int = 3) -> np.ndarray:
    """(K, 2) points of a circular arc of ``radius`` replacing the corner ``p`` of the 2-D polyline a → p → b."""
    u1, u2 = a - p, b - p
    l1, l2 = np.linalg.norm(u1), np.linalg.norm(u2)
    if radius <= 0 or min(l1, l2) < 1e-12:
        return p[None]
    u1, u2 = u1 / l1, u2 / l2
    full = float(np.arccos(np.clip(u1 @ u2, -1.0, 1.0)))  # angle at the corner
    if full > np.pi - 1e-3 or full < 1e-3:
        return p[None]
    half = full / 2
    t = min(radius / np.tan(half), 0.5 * min(l1, l2))  # never past half an edge: neighbouring arcs cannot overlap
    radius = t * np.tan(half)
    bisector = (u1 + u2) / np.linalg.norm(u1 + u2)
    centre = p + bisector * radius / np.sin(half)
    t1, t2 = p + t * u1, p + t * u2
    start = np.arctan2(*(t1 - centre)[::-1])
    sweep = (np.arctan2(*(t2 - centre)[::-1]) - start + np.pi) % (2 * np.pi) - np.pi
    n = max(1, int(np.ceil(abs(sweep) / (np.pi / 2) * per_quarter)))
    angles = start + sweep * np.linspace(0.0, 1.0, n + 1)
    return centre + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _profile(rows: list[tuple[float, float, float, int]], per_quarter: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Fillet a 2-D polyline given as rows ``(r, h, corner radius, label of the segment leaving this point)``.

    Returns:
        points: (P, 2) polyline; labels: (P - 1,) label of each segment (an arc takes its incoming segment's label).
    """
    pts = np.array([row[:2] for row in rows], dtype=np.float64)
    radii = [row[2] for row in rows]
    labels = [row[3] for row in rows]
    out, out_labels = [pts[0]], []
    for i in range(1, len(pts) - 1):
        for q in _fillet_corner(pts[i - 1], pts[i], pts[i + 1], radii[i], per_quarter):
            out_labels.append(labels[i - 1])
            out.append(q)
    out_labels.append(labels[-2])
    out.append(pts[-1])
    points, seg_labels = np.array(out), np.array(out_labels, dtype=np.int64)
    keep = np.r_[True, np.linalg.norm(np.diff(points, axis=0), axis=1) > 1e-9]  # drop repeated points
    return points[keep], seg_labels[keep[1:]]


def _revolve(profile: np.ndarray, labels: np.ndarray | int, sections: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Revolve a 2-D profile ``(P, 2)`` of ``(r, h)`` about the y axis.

    A point with r = 0 (allowed only at the ends) becomes one pole vertex. ``labels`` is an int or ``(P - 1,)`` per
    segment. Returns vertices (V, 3), faces (F, 3) consistently wound (orientation fixed later by ``_Parts``), and
    face labels (F,).
    """
    r, h = profile[:, 0], profile[:, 1]
    pole = r <= 1e-9
    assert not pole[1:-1].any(), "only the ends of a profile may lie on the axis"
    labels = np.broadcast_to(np.asarray(labels, dtype=np.int64), (len(profile) - 1,))
    theta = 2 * np.pi * np.arange(sections) / sections
    vertices, rings, count = [], [], 0
    for ri, hi, is_pole in zip(r, h, pole, strict=True):
        if is_pole:
            vertices.append(np.array([[0.0, hi, 0.0]]))
            rings.append(np.full(sections, count))
            count += 1
        else:
            vertices.append(np.stack([ri * np.cos(theta), np.full(sections, hi), ri * np.sin(theta)], axis=1))
            rings.append(np.arange(count, count + sections))
            count += sections
    faces, face_labels = [], []
    for i in range(len(profile) - 1):
        a, b = rings[i], rings[i + 1]
        a1, b1 = np.roll(a, -1), np.roll(b, -1)
        tris = []
        if not pole[i + 1]:
            tris.append(np.stack([a, b, b1], axis=1))
        if not pole[i]:
            tris.append(np.stack([a, b1, a1], axis=1))
        faces.extend(tris)
        face_labels.append(np.full(sections * len(tris), labels[i]))
    return np.concatenate(vertices), np.concatenate(faces), np.concatenate(face_labels)


def _tube(path: np.ndarray, normals: np.ndarray, binormals: np.ndarray, section: np.ndarray) -> tuple:
    """Sweep a closed convex 2-D ``section (S, 2)`` around (0, 0) along ``path (P, 3)``, with flat caps at both ends.

    Ring i is ``path[i] + section[:, 0] · normals[i] + section[:, 1] · binormals[i]``. Returns vertices, faces.
    """
    P, S = len(path), len(section)
    rings = (
        path[:, None, :]
        + section[None, :, 0, None] * normals[:, None, :]
        + section[None, :, 1, None] * binormals[:, None, :]
    )  # (P, S, 3)
    vertices = np.concatenate([rings.reshape(-1, 3), path[[0, -1]]])
    k = np.arange(S)
    k1 = np.roll(k, -1)
    faces = []
    for i in range(P - 1):
        a, b = i * S + k, (i + 1) * S + k
        a1, b1 = i * S + k1, (i + 1) * S + k1
        faces += [np.stack([a, b, b1], axis=1), np.stack([a, b1, a1], axis=1)]
    start, end = P * S, P * S + 1
    faces.append(np.stack([np.full(S, start), k, k1], axis=1))
    faces.append(np.stack([np.full(S, end), (P - 1) * S + k1, (P - 1) * S + k], axis=1))
    return vertices, np.concatenate(faces)


def _prism(polygon: np.ndarray, c0: float, c1: float, axes: str = "xyz") -> tuple[np.ndarray, np.ndarray]:
    """Extrude a convex 2-D ``polygon (S, 2)`` in local (a, b) from c = c0 to c1; ``axes`` names the world axes of
    local a, b, c (e.g. ``"xzy"``: a → x, b → z, c → y). Returns vertices, faces."""
    centre = polygon.mean(axis=0)  # inside a convex polygon: the caps are fans around it
    path = np.array([[centre[0], centre[1], c0], [centre[0], centre[1], c1]])
    axes_ab = np.tile(np.eye(3)[:2], (2, 1, 1))  # (2 rings, a/b, 3)
    vertices, faces = _tube(path, axes_ab[:, 0], axes_ab[:, 1], polygon - centre)
    world = np.empty_like(vertices)
    for i, axis in enumerate(axes):
        world[:, "xyz".index(axis)] = vertices[:, i]
    return world, faces


def _rounded_rect(a0: float, a1: float, b0: float, b1: float, radius: float, per_quarter: int = 3) -> np.ndarray:
    """(S, 2) counter-clockwise rectangle [a0, a1] × [b0, b1] with corners rounded by ``radius``."""
    return _round_polygon(np.array([[a0, b0], [a1, b0], [a1, b1], [a0, b1]]), radius, per_quarter)


def _round_polygon(polygon: np.ndarray, radius: float | list[float], per_quarter: int = 3) -> np.ndarray:
    """(S', 2) closed polygon with its corners rounded (``radius`` per corner or one for all)."""
    n = len(polygon)
    radii = np.broadcast_to(np.asarray(radius, dtype=np.float64), (n,))
    arcs = [_fillet_corner(polygon[i - 1], polygon[i], polygon[(i + 1) % n], radii[i], per_quarter) for i in range(n)]
    return np.concatenate(arcs)


def _superellipse(n_points: int, exponent: float, ra: float, rb: float) -> np.ndarray:
    """(n_points, 2) closed superellipse |a/ra|^e + |b/rb|^e = 1, counter-clockwise (e = 2: ellipse)."""
    t = 2 * np.pi * np.arange(n_points) / n_points
    c, s = np.cos(t), np.sin(t)
    return np.stack([ra * np.sign(c) * np.abs(c) ** (2 / exponent), rb * np.sign(s) * np.abs(s) ** (2 / exponent)], 1)


@functools.cache
def _unit_box() -> tuple[np.ndarray, np.ndarray]:
    box = trimesh.creation.box(bounds=[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    return np.asarray(box.vertices, dtype=np.float64), np.asarray(box.faces, dtype=np.int64)


def _boxes(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """K axis-aligned boxes ``lo (K, 3)`` to ``hi (K, 3)``: vertices (8K, 3), faces (12K, 3), all wound alike."""
    unit_v, unit_f = _unit_box()
    lo, hi = np.atleast_2d(lo), np.atleast_2d(hi)
    vertices = lo[:, None, :] + unit_v[None] * (hi - lo)[:, None, :]  # (K, 8, 3)
    faces = unit_f[None] + 8 * np.arange(len(lo))[:, None, None]  # (K, 12, 3)
    return vertices.reshape(-1, 3), faces.reshape(-1, 3)


def _place(vertices: np.ndarray, origin: np.ndarray, ex: np.ndarray, ey: np.ndarray, ez: np.ndarray) -> np.ndarray:
    """Map local coordinates (x, y, z) to ``origin + x·ex + y·ey + z·ez``."""
    return origin + vertices @ np.stack([ex, ey, ez])


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """(3, 3) uniformly random rotation (from a normalised Gaussian quaternion)."""
    w, x, y, z = (q := rng.normal(size=4)) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


# ---------------------------------------------------------------------------------------------------- families
# Each family builds its mesh in its own units (a body radius or width of about 1) in the canonical orientation;
# make_model centres and scales it afterwards. Part labels follow PART_NAMES.


def _bottle(rng: np.random.Generator) -> _Parts:
    BODY, CAP, LABEL = 0, 1, 2
    rb = 1.0  # body radius
    body_h = rng.uniform(1.3, 3.6)
    waist = rng.choice([0.0, rng.uniform(0.03, 0.1), -rng.uniform(0.02, 0.05)], p=[0.5, 0.3, 0.2])
    taper = rng.choice([0.0, rng.uniform(-0.12, 0.06)], p=[0.6, 0.4])
    rn = rng.uniform(0.25, 0.5)  # neck radius
    shoulder = rng.choice(["round", "conical", "smooth"])
    neck_h = rng.uniform(0.15, 1.4)
    cap_r = rn * rng.uniform(1.04, 1.25)
    cap_h = rng.uniform(0.2, 0.75) * (1.0 + 0.6 * rng.random())
    label_lo, label_hi = rng.uniform(0.12, 0.4), rng.uniform(0.6, 0.95)

    rows: list[tuple[float, float, float, int]] = [(0.0, 0.0, 0.0, BODY)]
    wall_s = np.unique(np.r_[np.linspace(0.0, 1.0, 6), label_lo, label_hi])
    for s in wall_s:
        r = rb * (1.0 + taper * s - waist * np.sin(np.pi * s))
        label = LABEL if label_lo <= s < label_hi else BODY
        rows.append((r, s * body_h, rng.uniform(0.08, 0.2) if s == 0 else 0.0, label))
    r_top = rows[-1][0]
    if shoulder == "conical":
        sh_h = rng.uniform(0.3, 1.0)
        rows[-1] = (r_top, body_h, rng.uniform(0.1, 0.4), BODY)
        rows.append((rn, body_h + sh_h, rng.uniform(0.05, 0.3) * rn, BODY))
    else:
        sh_h = rng.uniform(0.35, 0.9) if shoulder == "round" else rng.uniform(0.7, 1.6)
        power = rng.uniform(2.0, 3.0)
        for t in np.linspace(0.0, 1.0, 8)[1:]:
            if shoulder == "round":  # quarter superellipse: vertical at the body, flat where it meets the neck
                phi = t * np.pi / 2
                r = rn + (r_top - rn) * np.cos(phi) ** (2 / power)
                h = body_h + sh_h * np.sin(phi) ** (2 / power)
            else:  # smooth S-curve, vertical at both ends (wine bottle)
                r = rn + (r_top - rn) * 0.5 * (1.0 + np.cos(np.pi * t))
                h = body_h + sh_h * t
            rows.append((r, h, 0.0, BODY))
    neck_top = body_h + sh_h + neck_h
    if rng.random() < 0.5 and neck_h > 0.45:  # a finish ring just below the cap
        ring_h = rng.uniform(0.06, 0.14)
        ring_r = rn * rng.uniform(1.08, 1.2)
        y = neck_top - ring_h - rng.uniform(0.0, 0.1)
        rows += [(rn, y - ring_h, 0.0, BODY), (ring_r, y - 0.5 * ring_h, 0.0, BODY), (ring_r, y, 0.0, BODY)]
        rows.append((rn, y + 0.3 * ring_h, 0.0, BODY))
    rows.append((rn, neck_top, 0.0, CAP))
    rows.append((cap_r, neck_top, 0.0, CAP))
    rows.append((cap_r, neck_top + cap_h, rng.uniform(0.1, 0.4) * cap_r, CAP))
    rows.append((0.0, neck_top + cap_h, 0.0, CAP))
    parts = _Parts()
    parts.add(*_revolve(*_profile(rows), sections=40))
    return parts


def _bowl(rng: np.random.Generator) -> _Parts:
    BODY, INSIDE = 0, 1
    R = 1.0  # rim radius (outer)
    depth = rng.uniform(0.3, 0.85)
    r_bottom = rng.uniform(0.3, 0.6)
    power = rng.uniform(1.1, 2.2)  # 1: straight flared cone, 2: round (vertical at the rim)
    t = rng.uniform(0.025, 0.07)  # wall thickness
    foot_h = rng.uniform(0.04, 0.1) if rng.random() < 0.6 else 0.0

    phi = np.linspace(0.0, np.pi / 2, 10)
    outer = np.stack(
        [
            r_bottom + (R - r_bottom) * np.sin(phi) ** (2 / power),
            foot_h + (depth - foot_h) * (1.0 - np.cos(phi) ** (2 / power)),
        ],
        axis=1,
    )
    tangent = np.gradient(outer, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    inward = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)  # towards the inside of the bowl
    inner = outer + t * inward
    rows: list[tuple[float, float, float, int]]
    if foot_h > 0:
        foot_w = rng.uniform(0.04, 0.1)
        rows = [
            (0.0, foot_h, 0.0, BODY),
            (r_bottom - foot_w, foot_h, 0.0, BODY),
            (r_bottom - foot_w + 0.3 * foot_h, 0.0, 0.0, BODY),
            (r_bottom, 0.0, 0.3 * foot_h, BODY),
        ]
        bottom_corner = 0.0  # concave, where the foot meets the wall
    else:
        rows = [(0.0, 0.0, 0.0, BODY)]
        bottom_corner = 0.1
    rows += [(r, h, bottom_corner if i == 0 else 0.0, BODY) for i, (r, h) in enumerate(outer)]
    centre = 0.5 * (outer[-1] + inner[-1])  # rounded rim: half circle from the outer to the inner wall
    for psi in np.linspace(0.0, np.pi, 6)[1:-1]:
        c, s = np.cos(psi), np.sin(psi)
        v = outer[-1] - centre
        rows.append((centre[0] + c * v[0] - s * v[1], centre[1] + s * v[0] + c * v[1], 0.0, BODY))
    rows += [(r, h, 0.0, INSIDE) for r, h in inner[::-1]]
    rows.append((0.0, inner[0, 1], 0.0, INSIDE))
    parts = _Parts()
    parts.add(*_revolve(*_profile(rows), sections=48))
    return parts


def _can(rng: np.random.Generator) -> _Parts:
    BODY, LID = 0, 1
    R = 1.0
    soda = rng.random() < 0.5
    H = 2 * R * (rng.uniform(1.5, 2.6) if soda else rng.uniform(0.45, 1.4))
    rho = rng.uniform(0.03, 0.055)  # rim bead size
    rows: list[tuple[float, float, float, int]]
    if soda:
        dome = rng.uniform(0.08, 0.16)
        stand = rng.uniform(0.7, 0.8)
        base_h = rng.uniform(0.12, 0.25)
        neck_h = rng.uniform(0.1, 0.25)
        r_top = R * rng.uniform(0.8, 0.9)
        recess = rng.uniform(0.04, 0.08)
        rows = [
            (0.0, dome, 0.0, LID),
            (stand - 0.06, 0.03, 0.03, LID),
            (stand, 0.0, 0.03, LID),
            (stand + 0.06, 0.0, 0.05, LID),
            (R, base_h, 0.15, BODY),
            (R, H - neck_h - 2 * rho, 0.1, BODY),
            (r_top, H - 2 * rho, 0.0, LID),
            (r_top + 0.6 * rho, H - rho, 0.3 * rho, LID),
            (r_top + 0.6 * rho, H, 0.4 * rho, LID),
            (r_top - rho, H, 0.3 * rho, LID),
            (r_top - rho, H - recess, 0.2 * rho, LID),
            (0.0, H - recess, 0.0, LID),
        ]
    else:
        recess = rng.uniform(0.02, 0.06)
        rim_r = R + rng.uniform(0.3, 0.7) * rho
        rows = [
            (0.0, recess, 0.0, LID),
            (R - 2 * rho, recess, 0.3 * rho, LID),
            (R - 2 * rho, 0.0, 0.5 * rho, LID),
            (rim_r, 0.0, 0.6 * rho, LID),
            (rim_r, 2 * rho, 0.6 * rho, LID),
            (R, 2.6 * rho, 0.0, BODY),
        ]
        n_ribs = int(rng.integers(0, 6))
        if n_ribs:  # circumferential stiffening beads, evenly spread over the middle of the wall
            depth = rng.uniform(0.01, 0.025)
            y0, y1 = 0.25 * H, 0.75 * H
            for y in np.linspace(y0, y1, n_ribs):
                w = min(0.04, 0.4 * (y1 - y0) / max(n_ribs, 2))
                rows += [(R, y - w, 0.0, BODY), (R - depth, y - 0.4 * w, 0.0, BODY)]
                rows += [(R - depth, y + 0.4 * w, 0.0, BODY), (R, y + w, 0.0, BODY)]
        rows += [
            (R, H - 2.6 * rho, 0.0, LID),
            (rim_r, H - 2 * rho, 0.6 * rho, LID),
            (rim_r, H, 0.6 * rho, LID),
            (R - 2 * rho, H, 0.5 * rho, LID),
            (R - 2 * rho, H - recess, 0.3 * rho, LID),
            (0.0, H - recess, 0.0, LID),
        ]
    parts = _Parts()
    parts.add(*_revolve(*_profile(rows, per_quarter=2), sections=40))
    return parts


def _mug(rng: np.random.Generator) -> _Parts:
    BODY, INSIDE, HANDLE = 0, 1, 2
    r_bottom = 1.0
    taper = rng.uniform(-0.12, 0.15)  # > 0: wider at the top
    H = 2 * r_bottom * rng.uniform(0.7, 1.4)
    bulge = rng.choice([0.0, rng.uniform(-0.06, 0.08)], p=[0.6, 0.4])
    t = rng.uniform(0.05, 0.1)  # wall thickness
    t_bottom = rng.uniform(0.06, 0.15)

    def outer_radius(y: np.ndarray | float) -> np.ndarray | float:
        s = np.asarray(y) / H
        return r_bottom * (1.0 + taper * s + bulge * np.sin(np.pi * s))

    wall = np.linspace(0.0, H, 6)
    rows: list[tuple[float, float, float, int]] = [(0.0, 0.0, 0.0, BODY)]
    rows += [(outer_radius(y), y, rng.uniform(0.06, 0.15) if y == 0 else 0.0, BODY) for y in wall]
    top = np.array([outer_radius(H), H])
    for psi in np.linspace(0.0, np.pi, 6)[1:-1]:  # rounded rim
        rows.append((top[0] - 0.5 * t * (1 - np.cos(psi)), H + 0.5 * t * np.sin(psi), 0.0, BODY))
    inner = [y for y in wall[::-1] if y > t_bottom + 0.05] + [t_bottom]
    rows += [(outer_radius(y) - t, y, 0.1 if y == t_bottom else 0.0, INSIDE) for y in inner]
    rows.append((0.0, t_bottom, 0.0, INSIDE))
    parts = _Parts()
    parts.add(*_revolve(*_profile(rows), sections=48))

    # Handle: a tube swept along a half superellipse in the x–y plane (exponent 2: a C, larger: a D), from the upper
    # attachment round to the lower one; both ends sit inside the wall.
    y_top = H * rng.uniform(0.7, 0.88)
    y_bottom = H * rng.uniform(0.12, 0.32)
    thick = rng.uniform(0.07, 0.13)  # half-thickness in the x–y plane
    width = thick * rng.uniform(1.0, 2.0)  # half-width along z
    reach = max(rng.uniform(0.35, 0.75), thick + t + 0.15)
    exponent = rng.uniform(2.0, 5.0)
    phi = np.linspace(0.0, np.pi, 200)
    s, c = np.sin(phi), np.cos(phi)
    half = 0.5 * (y_top - y_bottom)
    y = 0.5 * (y_top + y_bottom) + half * np.sign(c) * np.abs(c) ** (2 / exponent)
    x = outer_radius(y) - 0.5 * t + reach * s ** (2 / exponent)
    dense = np.stack([x, y], axis=1)
    arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))]
    u = np.linspace(0.0, arc[-1], 26)
    path2 = np.stack([np.interp(u, arc, dense[:, 0]), np.interp(u, arc, dense[:, 1])], axis=1)
    tangent = np.gradient(path2, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    zeros = np.zeros(len(path2))
    path = np.stack([path2[:, 0], path2[:, 1], zeros], axis=1)
    normals = np.stack([tangent[:, 1], -tangent[:, 0], zeros], axis=1)
    binormals = np.tile([0.0, 0.0, 1.0], (len(path2), 1))
    section = _superellipse(12, rng.uniform(2.0, 3.5), thick, width)
    parts.add(*_tube(path, normals, binormals, section), HANDLE)
    return parts


def _laptop(rng: np.random.Generator) -> _Parts:
    BASE, KEYBOARD, LID, SCREEN = 0, 1, 2, 3
    d = 1.0  # base depth along x
    w = d * rng.uniform(1.25, 1.75)  # base width along z (the hinge axis)
    tb = rng.uniform(0.03, 0.07)  # base thickness
    ts = rng.uniform(0.015, 0.035)  # lid thickness
    L = d * rng.uniform(0.88, 0.98)  # lid length, hinge to top edge
    angle = np.deg2rad(rng.uniform(70.0, 135.0))  # between base and lid
    corner = rng.uniform(0.02, 0.07)
    parts = _Parts()
    parts.add(*_prism(_rounded_rect(-d / 2, d / 2, -w / 2, w / 2, corner), 0.0, tb, axes="xzy"), BASE)

    # Keys: rows along x (row 0 at the hinge), a space bar in the last row; a touchpad in front of them.
    n_rows, n_cols = int(rng.integers(5, 7)), int(rng.integers(12, 16))
    x0 = -d / 2 + ts + rng.uniform(0.04, 0.08)
    x1 = x0 + rng.uniform(0.38, 0.46) * d
    z_half = rng.uniform(0.38, 0.45) * w
    key_h = rng.uniform(0.003, 0.008)
    pitch_x, pitch_z = (x1 - x0) / n_rows, 2 * z_half / n_cols
    gap = rng.uniform(0.12, 0.25)
    lo, hi = [], []
    for i in range(n_rows):
        cols = [(j, j + 1) for j in range(n_cols)]
        if i == n_rows - 1:
            a, b = n_cols // 2 - 3, n_cols // 2 + 3
            cols = [(j, j + 1) for j in range(a)] + [(a, b)] + [(j, j + 1) for j in range(b, n_cols)]
        for j0, j1 in cols:
            lo.append([x0 + (i + gap / 2) * pitch_x, tb - 0.002, -z_half + (j0 + gap / 2) * pitch_z])
            hi.append([x0 + (i + 1 - gap / 2) * pitch_x, tb + key_h, -z_half + (j1 - gap / 2) * pitch_z])
    pad_half = rng.uniform(0.14, 0.22) * w
    pad_x0 = x1 + rng.uniform(0.03, 0.06)
    pad_x1 = min(d / 2 - 0.05, pad_x0 + rng.uniform(0.2, 0.3))
    lo.append([pad_x0, tb - 0.002, -pad_half])
    hi.append([pad_x1, tb + 0.0015, pad_half])
    parts.add(*_boxes(np.array(lo), np.array(hi)), KEYBOARD)

    # Lid: local u from the hinge to the top edge, v along the display normal (display face at v = 0), z as world z.
    pivot = np.array([-d / 2 + ts, tb, 0.0])
    e_u = np.array([np.cos(angle), np.sin(angle), 0.0])
    e_n = np.array([np.sin(angle), -np.cos(angle), 0.0])
    e_z = np.array([0.0, 0.0, 1.0])
    lid_v, lid_f = _prism(_rounded_rect(0.0, L, -w / 2, w / 2, corner), -ts, 0.0, axes="xzy")
    parts.add(_place(lid_v, pivot, e_u, e_n, e_z), lid_f, LID)
    bezel_side = rng.uniform(0.02, 0.07)
    bezel_top = rng.uniform(0.03, 0.08)
    bezel_bottom = rng.uniform(0.04, 0.1)
    panel = _rounded_rect(bezel_bottom, L - bezel_top, -w / 2 + bezel_side, w / 2 - bezel_side, 0.005)
    panel_v, panel_f = _prism(panel, -0.5 * ts, 0.0015, axes="xzy")
    parts.add(_place(panel_v, pivot, e_u, e_n, e_z), panel_f, SCREEN)
    hinge_r = 0.6 * ts
    hinge_v, hinge_f, _ = _revolve(
        np.array([[0.0, -0.4 * w], [hinge_r, -0.4 * w], [hinge_r, 0.4 * w], [0, 0.4 * w]]), 0, 16
    )
    parts.add(
        _place(hinge_v, pivot - 0.5 * ts * e_n, np.array([1.0, 0, 0]), e_z, np.array([0, -1.0, 0])), hinge_f, BASE
    )
    return parts


def _camera(rng: np.random.Generator) -> _Parts:
    BODY, LENS, GRIP, SCREEN, BUTTONS = 0, 1, 2, 3, 4
    system = rng.random() < 0.55  # system camera (grip, hump) or compact
    w = 1.0
    h = w * (rng.uniform(0.62, 0.8) if system else rng.uniform(0.5, 0.68))
    d = w * (rng.uniform(0.26, 0.4) if system else rng.uniform(0.16, 0.3))
    parts = _Parts()
    corner = rng.uniform(0.04, 0.14) * h
    parts.add(*_prism(_rounded_rect(-w / 2, w / 2, -h / 2, h / 2, corner), -d / 2, d / 2, axes="xyz"), BODY)

    # Lens: a profile (r, a) revolved about local y, then local y → world +z from the front face.
    if system:
        x_lens = rng.uniform(0.0, 0.1) * w
        y_lens = -rng.uniform(0.0, 0.08) * h
        r_lens = min(rng.uniform(0.3, 0.4) * h, h / 2 + y_lens - 0.01)
        length = rng.uniform(0.3, 1.0) * w
        r_front = r_lens * rng.uniform(0.95, 1.15)
        ring = rng.uniform(0.3, 0.6) * length
        rows = [
            (0.0, -0.02, 0.0, LENS),
            (1.08 * r_lens, -0.02, 0.0, LENS),
            (1.08 * r_lens, 0.04, 0.0, LENS),
            (r_lens, 0.05, 0.0, LENS),
            (r_lens, ring, 0.0, LENS),
            (1.04 * r_lens, ring + 0.01, 0.0, LENS),
            (1.04 * r_lens, ring + 0.15 * length, 0.0, LENS),
            (r_lens, ring + 0.15 * length + 0.01, 0.0, LENS),
            (r_front, length, 0.02, LENS),
        ]
    else:
        x_lens = rng.uniform(0.0, 0.18) * w
        y_lens = rng.uniform(-0.06, 0.04) * h
        r_lens = min(rng.uniform(0.28, 0.4) * h, h / 2 - abs(y_lens) - 0.02)
        stages = int(rng.integers(1, 4))
        stage_len = rng.uniform(0.03, 0.12) * w
        rows = [(0.0, -0.02, 0.0, LENS), (1.15 * r_lens, -0.02, 0.0, LENS), (1.15 * r_lens, 0.02, 0.01, LENS)]
        a, r = 0.02, r_lens
        for _ in range(stages):
            rows += [(r, a, 0.0, LENS), (r, a + stage_len, 0.0, LENS)]
            a += stage_len
            r *= rng.uniform(0.82, 0.92)
        length, r_front = a, rows[-1][0]
        rows[-1] = (r_front, length, 0.01, LENS)
    glass = r_front * rng.uniform(0.6, 0.82)
    recess = rng.uniform(0.01, 0.04)
    rows += [(glass, length, 0.0, LENS), (glass, length - recess, 0.0, LENS)]
    rows.append((0.0, length - recess, 0.0, LENS))
    lens_v, lens_f, lens_l = _revolve(*_profile(rows), sections=40)
    origin = np.array([x_lens, y_lens, d / 2])
    parts.add(
        _place(lens_v, origin, np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), np.array([0, -1.0, 0])), lens_f, lens_l
    )

    # Back display.
    sw, sh = rng.uniform(0.45, 0.62) * w, rng.uniform(0.55, 0.75) * h
    sx = rng.uniform(0.0, 0.12) * w
    parts.add(
        *_boxes(
            np.array([sx - sw / 2, -sh / 2 - 0.05 * h, -d / 2 - 0.006]),
            np.array([sx + sw / 2, sh / 2 - 0.05 * h, -d / 2 + 0.01]),
        ),
        SCREEN,
    )

    def button(x: float, z: float, radius: float, height: float, y: float = h / 2) -> None:
        prof = np.array([[0.0, y - 0.01], [radius, y - 0.01], [radius, y + height], [0.0, y + height]])
        v, f, _ = _revolve(prof, 0, 16)
        parts.add(v + [x, 0.0, z], f, BUTTONS)

    if system:
        grip_w = rng.uniform(0.18, 0.26) * w
        grip_d = min(rng.uniform(0.12, 0.3) * w, 0.8 * length)  # the lens stays the most forward part
        grip = _rounded_rect(
            -w / 2 - 0.01, -w / 2 + grip_w, -d / 2 + 0.02, d / 2 + grip_d, 0.45 * min(grip_w, grip_d + d / 2)
        )
        grip_top = h / 2 - rng.uniform(0.0, 0.08) * h
        parts.add(*_prism(grip, -h / 2, grip_top, axes="xzy"), GRIP)
        button(
            -w / 2 + 0.5 * grip_w, d / 2 + 0.4 * grip_d, rng.uniform(0.03, 0.045), rng.uniform(0.015, 0.03), grip_top
        )
        hump_w = rng.uniform(0.3, 0.45) * w
        hump_h = rng.uniform(0.12, 0.25) * h
        top_w = hump_w * rng.uniform(0.35, 0.7)
        hump = np.array(
            [
                [-hump_w / 2, h / 2 - 0.02],
                [hump_w / 2, h / 2 - 0.02],
                [top_w / 2, h / 2 + hump_h],
                [-top_w / 2, h / 2 + hump_h],
            ]
        )
        hump = _round_polygon(hump + [x_lens, 0.0], [0.0, 0.0, 0.35 * hump_h, 0.35 * hump_h])
        parts.add(*_prism(hump, -d / 2 - 0.02, d / 2 - rng.uniform(0.0, 0.05), axes="xyz"), BODY)
        dial_x = x_lens + hump_w / 2 + rng.uniform(0.08, 0.12)
        button(min(dial_x, w / 2 - 0.1), 0.0, rng.uniform(0.06, 0.09), rng.uniform(0.03, 0.06))
    else:
        ridge_w = rng.uniform(0.05, 0.1) * w
        ridge_x = -w / 2 + rng.uniform(0.03, 0.08)
        ridge = _rounded_rect(
            ridge_x,
            ridge_x + ridge_w,
            d / 2 - 0.02,
            d / 2 + min(rng.uniform(0.02, 0.05) * w, 0.6 * length),
            0.3 * ridge_w,
        )
        parts.add(*_prism(ridge, -0.35 * h, 0.35 * h, axes="xzy"), GRIP)
        fw, fh = rng.uniform(0.1, 0.18) * w, rng.uniform(0.06, 0.1) * h
        fx = w / 2 - rng.uniform(0.08, 0.15) - fw / 2
        parts.add(
            *_boxes(
                np.array([fx - fw / 2, h / 2 - 0.08 * h - fh, d / 2 - 0.01]),
                np.array([fx + fw / 2, h / 2 - 0.08 * h, d / 2 + 0.006]),
            ),
            BUTTONS,
        )
        button(-w / 2 + rng.uniform(0.12, 0.2), 0.0, rng.uniform(0.035, 0.05), rng.uniform(0.015, 0.03))
        button(-w / 2 + rng.uniform(0.3, 0.4), 0.0, rng.uniform(0.025, 0.035), rng.uniform(0.01, 0.02))
    return parts


def _distractor(rng: np.random.Generator) -> tuple[_Parts, int]:
    """1–3 random primitives glued together, each randomly proportioned, rotated and labelled ``part<i>``."""
    n = int(rng.choice([1, 1, 2, 2, 3]))
    parts = _Parts()
    placed: list[np.ndarray] = []
    for i in range(n):
        kind = rng.choice(["box", "sphere", "cylinder", "cone", "torus", "capsule"])
        a, b, c = rng.uniform(0.3, 1.0, 3)
        if kind == "box":
            mesh = trimesh.creation.box(extents=[a, b, c])
        elif kind == "sphere":
            mesh = trimesh.creation.icosphere(subdivisions=2)
            mesh.vertices = mesh.vertices * np.array([a, b, c]) / 2
        elif kind == "cylinder":
            mesh = trimesh.creation.cylinder(radius=a / 2, height=b, sections=28)
        elif kind == "cone":
            mesh = trimesh.creation.cone(radius=a / 2, height=b, sections=28)
        elif kind == "torus":
            mesh = trimesh.creation.torus(
                major_radius=a / 2, minor_radius=a / 2 * rng.uniform(0.15, 0.45), major_sections=24, minor_sections=12
            )
        else:
            mesh = trimesh.creation.capsule(height=b, radius=a / 3, count=[16, 8])
        vertices = np.asarray(mesh.vertices, dtype=np.float64)
        vertices = (vertices - vertices.mean(axis=0)) @ _random_rotation(rng).T
        if placed:  # glue it on: touch an earlier part at its extreme point along a random direction, then sink in
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            other = placed[int(rng.integers(len(placed)))]
            contact = other[np.argmax(other @ direction)]
            heights = vertices @ direction
            sink = rng.uniform(0.15, 0.4) * (heights.max() - heights.min())
            vertices = vertices + contact - vertices[np.argmin(heights)] - sink * direction
        placed.append(vertices)
        parts.add(vertices, mesh.faces, i)
    return parts, n


# ---------------------------------------------------------------------------------------------------- public API

_FAMILIES = {"bottle": _bottle, "bowl": _bowl, "camera": _camera, "can": _can, "laptop": _laptop, "mug": _mug}


def make_model(category: str, seed: int, model_id: str | None = None) -> ObjectModel:
    """Build one instance of ``category`` (a NOCS category name or ``"distractor"``) from an integer ``seed``.

    The same (category, seed) gives the same arrays. ``model_id`` defaults to ``"<category>-seed<seed>"``.
    Vertices are in the canonical frame (see the module docstring): centred on the tight box, box diagonal 1.
    """
    if category not in _KINDS:
        raise ValueError(f"unknown category {category!r}; expected one of {_KINDS}")
    if int(seed) < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    rng = np.random.default_rng(int(seed))
    if category == DISTRACTOR:
        parts, n = _distractor(rng)
        names = tuple(f"part{i}" for i in range(n))
    else:
        parts, names = _FAMILIES[category](rng), PART_NAMES[category]
    vertices, faces, labels = parts.arrays()
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    vertices = (vertices - 0.5 * (lo + hi)) / np.linalg.norm(hi - lo)
    # Rounding absorbs last-bit differences of libm trigonometry between machines, so ids rebuild identically.
    vertices = np.round(vertices, 12) + 0.0  # + 0.0 turns -0.0 into 0.0
    assert len(faces) <= MAX_FACES, f"{category} seed {seed}: {len(faces)} faces, budget {MAX_FACES}"
    return ObjectModel(
        model_id=model_id if model_id is not None else f"{category}-seed{int(seed)}",
        class_id=0 if category == DISTRACTOR else CLASS_IDS[category],
        vertices=vertices,
        faces=np.ascontiguousarray(faces, dtype=np.int64),
        face_parts=np.ascontiguousarray(labels, dtype=np.int64),
        part_names=names,
    )


def _check_kind_split(category: str, split: str) -> None:
    if category not in _KINDS:
        raise ValueError(f"unknown category {category!r}; expected one of {_KINDS}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def model_id_for(category: str, split: str, index: int) -> str:
    """Id of instance ``index`` of ``category`` (or ``"distractor"``) in ``split``, e.g. ``"mug-train-0007"``."""
    _check_kind_split(category, split)
    if not 0 <= int(index) < SPLIT_SIZES[split]:
        raise ValueError(f"index {index} out of range for split {split!r} (size {SPLIT_SIZES[split]})")
    return f"{category}-{split}-{int(index):04d}"


def _instance_seed(category: str, split: str, index: int) -> int:
    """64-bit seed of one split instance, from a stable hash of its id (never Python's salted ``hash``)."""
    name = f"{category}-{split}-{int(index):04d}"
    entropy = [_SALT, zlib.crc32(name.encode()), _KINDS.index(category), SPLITS.index(split), int(index)]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


@functools.lru_cache(maxsize=512)
def model_from_id(model_id: str) -> ObjectModel:
    """Build the model named ``model_id`` (``<category>-<split>-<index>`` or ``<category>-seed<seed>``).

    Deterministic: the same id gives identical arrays. Cached; the returned arrays are read-only.
    """
    match = _ID_PATTERN.match(model_id)
    if match is None or match["kind"] not in _KINDS:
        raise ValueError(f"malformed model id {model_id!r}")
    category = match["kind"]
    if match["seed"] is not None:
        return make_model(category, int(match["seed"]), model_id)
    split, index = match["split"], int(match["index"])
    if model_id != model_id_for(category, split, index):
        raise ValueError(f"malformed model id {model_id!r}; expected {model_id_for(category, split, index)!r}")
    return make_model(category, _instance_seed(category, split, index), model_id)


def split_model_ids(split: str, category: str | None = None) -> list[str]:
    """Ids of the instances of ``split``: of one ``category`` (or ``"distractor"``), or of all six NOCS categories
    when ``category`` is None (distractors not included)."""
    kinds = CATEGORIES if category is None else (category,)
    for kind in kinds:
        _check_kind_split(kind, split)
    return [model_id_for(kind, split, i) for kind in kinds for i in range(SPLIT_SIZES[split])]
