"""Tabletop scenes like NOCS: a table in a room, 1–6 objects of the six categories in stable poses, distractors,
random materials and lights, and cameras looking at the table from random heights and angles.

World frame: z up, metres, the table top at z = 0 centred on the origin. An object's pose maps its canonical (NOCS)
frame to the world: ``p_world = s·R·p_nocs + t``, with ``s`` its box diagonal in metres (NOCS boxes have diagonal 1).
Cameras use OpenCV axes (x right, y down, z forward); ``world_from_camera`` maps camera to world coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from acr_pose_core.categories import CATEGORIES, CLASS_IDS
from acr_pose_core.geometry.rotations import compose_sRT
from acr_pose_core.synth.materials import Material, random_background_material, random_object_material
from acr_pose_core.synth.render import Light, SceneRenderer, Surface
from acr_pose_core.synth.shapes import ObjectModel, make_model, model_from_id, split_model_ids

__all__ = [
    "CATEGORY_DIAGONAL_M",
    "PlacedObject",
    "Scene",
    "SceneConfig",
    "look_at",
    "make_scene",
    "sample_camera",
]

CATEGORY_DIAGONAL_M: dict[str, tuple[float, float]] = {
    "bottle": (0.18, 0.32),
    "bowl": (0.13, 0.24),
    "camera": (0.12, 0.22),
    "can": (0.10, 0.19),
    "laptop": (0.36, 0.55),
    "mug": (0.11, 0.18),
    "distractor": (0.06, 0.25),
}
"""Range of the metric box diagonal ``s`` per category (typical NOCS-REAL objects), metres."""

_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""Canonical → world for an upright object: canonical y (up) becomes world z."""


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn. Counts are inclusive ranges."""

    objects: tuple[int, int] = (1, 6)
    distractors: tuple[int, int] = (0, 3)
    lying_probability: float = 0.25  # bottles and cans lying on their side
    max_tilt_deg: float = 4.0
    table_radius: float = 0.45  # objects are placed within this distance of the table centre
    camera_distance: tuple[float, float] = (0.45, 1.25)
    camera_elevation_deg: tuple[float, float] = (18.0, 75.0)
    look_at_jitter: float = 0.15


@dataclass
class PlacedObject:
    """An object in a scene: a model, its pose in the world and its material."""

    inst_id: int
    class_id: int  # 1..6, 0 for a distractor
    model: ObjectModel
    scale: float  # metres per NOCS unit (the metric box diagonal)
    rotation: np.ndarray  # (3, 3) world from canonical
    translation: np.ndarray  # (3,) world, metres
    material: Material

    @property
    def model_id(self) -> str:
        return self.model.model_id

    @property
    def world_from_object(self) -> np.ndarray:
        """(4, 4) ``sRT`` from the canonical frame to the world."""
        return compose_sRT(self.scale, self.rotation, self.translation)

    def surface(self) -> Surface:
        world = self.scale * self.model.vertices @ self.rotation.T + self.translation
        return Surface(
            vertices=world,
            faces=self.model.faces,
            local=self.model.vertices,
            material=self.material,
            inst_id=self.inst_id,
            face_parts=self.model.face_parts,
            nocs=self.class_id > 0,
        )


@dataclass
class Scene:
    """A table, a room, objects and lights."""

    objects: list[PlacedObject]
    room: list[Surface]
    lights: list[Light]
    ambient: float
    table_half_extent: np.ndarray  # (2,) metres along world x and y
    info: dict = field(default_factory=dict)

    def renderer(self) -> SceneRenderer:
        """A renderer of this scene (builds the ray-tracing structure; reuse it for all views)."""
        return SceneRenderer([*self.room, *(o.surface() for o in self.objects)], self.lights, self.ambient)


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_axis(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def _box(center: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (8, 3) and outward triangles (12, 3) of an axis-aligned box."""
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    vertices = center + signs * half
    faces = np.array(
        [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    )  # fmt: skip
    return vertices, faces


def _quad(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return corners, np.array([[0, 1, 2], [0, 2, 3]])


def _room(rng: np.random.Generator) -> tuple[list[Surface], np.ndarray]:
    """Table (a slab with its top at z = 0), floor and four walls at random distances, random materials."""
    half = np.array([rng.uniform(0.6, 1.1), rng.uniform(0.45, 0.8)])
    thickness = 0.04
    v, f = _box(np.array([0.0, 0.0, -thickness / 2]), np.array([half[0], half[1], thickness / 2]))
    surfaces = [Surface(v, f, v, random_background_material(rng))]
    floor_z = -rng.uniform(0.7, 0.8)
    extent = rng.uniform(1.5, 3.0, 4)  # distances of the walls: +x, −x, +y, −y
    x0, x1, y0, y1 = -extent[1], extent[0], -extent[3], extent[2]
    top = floor_z + 3.0
    floor = np.array([[x0, y0, floor_z], [x1, y0, floor_z], [x1, y1, floor_z], [x0, y1, floor_z]])
    walls = [
        np.array([[x1, y0, floor_z], [x1, y1, floor_z], [x1, y1, top], [x1, y0, top]]),
        np.array([[x0, y1, floor_z], [x0, y0, floor_z], [x0, y0, top], [x0, y1, top]]),
        np.array([[x1, y1, floor_z], [x0, y1, floor_z], [x0, y1, top], [x1, y1, top]]),
        np.array([[x0, y0, floor_z], [x1, y0, floor_z], [x1, y0, top], [x0, y0, top]]),
    ]
    wall_material = random_background_material(rng)
    for corners in [floor, *walls]:
        v, f = _quad(corners)
        material = wall_material if corners is not floor else random_background_material(rng)
        surfaces.append(Surface(v, f, v, material, receives_shadows=False))
    return surfaces, half


def _stable_rotation(rng: np.random.Generator, category: str, config: SceneConfig) -> np.ndarray:
    """World-from-canonical rotation of an object resting on the table: upright (or lying, for bottles and cans),
    a random yaw and a small tilt."""
    rotation = _UP
    if category in ("bottle", "can") and rng.random() < config.lying_probability:
        rotation = _rot_axis(np.array([1.0, 0.0, 0.0]), np.pi / 2) @ rotation  # canonical y now horizontal
    rotation = _rot_z(rng.uniform(0, 2 * np.pi)) @ rotation
    tilt_axis = np.array([*rng.normal(size=2), 0.0])
    return _rot_axis(tilt_axis, np.radians(rng.uniform(0, config.max_tilt_deg))) @ rotation


def make_scene(rng: np.random.Generator, split: str, config: SceneConfig = SceneConfig()) -> Scene:
    """Draw a scene whose objects are instances of ``split`` (train, val or test models: disjoint sets)."""
    room, table_half = _room(rng)
    n_objects = int(rng.integers(config.objects[0], config.objects[1] + 1))
    n_distractors = int(rng.integers(config.distractors[0], config.distractors[1] + 1))
    kinds = [str(c) for c in rng.choice(CATEGORIES, n_objects)] + ["distractor"] * n_distractors
    placed: list[PlacedObject] = []
    footprints: list[tuple[np.ndarray, float]] = []
    for kind in kinds:
        if kind == "distractor":
            model = make_model("distractor", int(rng.integers(2**31)))
        else:
            model = model_from_id(str(rng.choice(split_model_ids(split, kind))))
        scale = rng.uniform(*CATEGORY_DIAGONAL_M[kind])
        rotation = _stable_rotation(rng, kind, config)
        world = scale * model.vertices @ rotation.T  # (V, 3), before translation
        radius = float(np.linalg.norm(world[:, :2] - world[:, :2].mean(0), axis=1).max())
        centre_offset = world[:, :2].mean(0)
        for _ in range(100):  # rejection sampling of a free spot on the table
            r = config.table_radius * np.sqrt(rng.random())
            phi = rng.uniform(0, 2 * np.pi)
            xy = np.array([r * np.cos(phi), r * np.sin(phi)])
            if np.any(np.abs(xy) + radius > table_half + 0.05):
                continue
            if all(np.linalg.norm(xy - c) > radius + rc + 0.01 for c, rc in footprints):
                break
        else:
            continue  # no room left on the table for this one
        footprints.append((xy, radius))
        translation = np.array([*(xy - centre_offset), -world[:, 2].min()])  # resting on z = 0
        material = random_object_material(rng, model.part_names)
        class_id = 0 if kind == "distractor" else CLASS_IDS[kind]
        placed.append(PlacedObject(len(placed) + 1, class_id, model, float(scale), rotation, translation, material))

    key = np.array([*rng.normal(0, 0.6, 2), 1.0])
    key /= np.linalg.norm(key)
    fill = np.array([*rng.normal(0, 1.0, 2), rng.uniform(0.2, 0.8)])
    fill /= np.linalg.norm(fill)
    tint = 1 + rng.normal(0, 0.06, 3)
    lights = [
        Light(key, rng.uniform(0.55, 0.95) * tint),
        Light(fill, rng.uniform(0.1, 0.3) * np.ones(3)),
    ]
    return Scene(placed, room, lights, float(rng.uniform(0.25, 0.45)), table_half)


def look_at(eye: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """(4, 4) ``world_from_camera`` of an OpenCV camera at ``eye`` looking at ``target`` (world z up)."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward], 1)  # columns: camera x, y, z in world coordinates
    R = R @ _rot_axis(np.array([0.0, 0.0, 1.0]), roll)  # roll about the optical axis
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = R, eye
    return out


def sample_camera(rng: np.random.Generator, scene: Scene, config: SceneConfig = SceneConfig()) -> np.ndarray:
    """A random view of the table: distance, elevation and azimuth around a jittered point near its centre."""
    target = np.array([*rng.uniform(-config.look_at_jitter, config.look_at_jitter, 2), rng.uniform(0.0, 0.08)])
    distance = rng.uniform(*config.camera_distance)
    elevation = np.radians(rng.uniform(*config.camera_elevation_deg))
    azimuth = rng.uniform(0, 2 * np.pi)
    eye = target + distance * np.array(
        [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)]
    )
    return look_at(eye, target, roll=np.radians(rng.normal(0, 3.0)))
