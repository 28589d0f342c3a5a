"""Ray-cast RGB-D rendering with instance masks and NOCS maps (Intel Embree through embreex; numpy shading).

One camera ray per pixel centre is cast into the scene's triangles; at each hit the renderer interpolates, with the
hit's barycentric coordinates, the surface's own coordinates (canonical NOCS coordinates for objects, which *are* the
NOCS map) and its normal, then shades the surface's procedural albedo (:mod:`acr_pose_core.synth.materials`) with
ambient light, Lambertian and Blinn–Phong terms of a few directional lights, and a shadow ray towards the key light.

Depth is the hit's camera-frame z (rays are scaled to unit depth, so Embree's parametric distance *is* z). The
outputs are exact and noise-free; the sensor models live in :mod:`acr_pose_core.synth.sensor`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from acr_pose_core.geometry.camera import CameraIntrinsics, pixel_rays
from acr_pose_core.synth.materials import Material

__all__ = ["BACKGROUND_ID", "Light", "RenderedFrame", "SceneRenderer", "Surface"]

BACKGROUND_ID = 255
"""Mask value of pixels that show no object instance (the NOCS convention)."""

_SMOOTH_COS = np.cos(np.radians(35.0))  # corners whose vertex normal turns further than this from the face: flat
_GAMMA = (255 * np.linspace(0.0, 1.0, 4096) ** (1 / 2.2) + 0.5).astype(np.uint8)  # linear → 8-bit, gamma 2.2


@dataclass
class Surface:
    """A triangle mesh placed in the world.

    Attributes:
        vertices: (V, 3) world coordinates, metres.
        faces: (F, 3) vertex indices, counter-clockwise seen from outside.
        local: (V, 3) the vertices in the surface's own frame (canonical NOCS frame for objects; world for the room),
            where the material is evaluated.
        material: its albedo.
        inst_id: value in the instance mask (``BACKGROUND_ID`` for table and walls).
        face_parts: optional (F,) part label per face (materials may colour parts).
        nocs: whether ``local`` goes into the NOCS map (objects of the six categories only).
        receives_shadows: whether shadow rays are cast from it (off for walls and floor, to save rays).
    """

    vertices: np.ndarray
    faces: np.ndarray
    local: np.ndarray
    material: Material
    inst_id: int = BACKGROUND_ID
    face_parts: np.ndarray | None = None
    nocs: bool = False
    receives_shadows: bool = True


@dataclass(frozen=True)
class Light:
    """A directional light: ``direction`` (3,) unit vector from the scene towards the light, ``colour`` (3,)."""

    direction: np.ndarray
    colour: np.ndarray


@dataclass
class RenderedFrame:
    """Exact render of one view. H×W pixels.

    Attributes:
        color: (H, W, 3) uint8 RGB (gamma-encoded).
        depth: (H, W) float32 camera-frame z in metres; 0 where no surface was hit.
        mask: (H, W) uint8 instance id, ``BACKGROUND_ID`` elsewhere.
        coord: (H, W, 3) float32 NOCS coordinates where an object of a category was hit, 0 elsewhere.
        surface: (H, W) int16 index of the surface hit, −1 for none.
        part: (H, W) int16 part label of the face hit, −1 for none.
        cos_incidence: (H, W) float32 |cos| of the angle between the ray and the surface normal (0 where no hit).
        albedo_luminance: (H, W) float32 luminance of the surface's albedo (0 where no hit).
    """

    color: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    coord: np.ndarray
    surface: np.ndarray
    part: np.ndarray
    cos_incidence: np.ndarray
    albedo_luminance: np.ndarray


def _require_embree():
    try:
        from embreex import rtcore_scene
        from embreex.mesh_construction import TriangleMesh
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "rendering needs the embreex ray caster: pip install embreex (or pip install -e '.[render]')"
        ) from exc
    return rtcore_scene, TriangleMesh


def _normalise(v: np.ndarray) -> np.ndarray:
    """Rows of ``v (M, 3)`` scaled to unit length (zero rows stay zero)."""
    return v / np.maximum(np.sqrt(np.einsum("md,md->m", v, v)), 1e-12)[:, None]


def _corner_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F, 3, 3) unit normal at each face corner: the area-weighted vertex normal where the surface is smooth, the
    face normal across sharp edges."""
    tri = vertices[faces]  # (F, 3, 3)
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (F, 3), length = 2·area
    vertex_n = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(vertex_n, faces[:, k], face_n)
    face_n, vertex_n = _normalise(face_n), _normalise(vertex_n)
    corners = vertex_n[faces]  # (F, 3, 3)
    sharp = np.einsum("fkd,fd->fk", corners, face_n) < _SMOOTH_COS
    return np.where(sharp[..., None], face_n[:, None, :], corners)


class SceneRenderer:
    """Renders a fixed set of surfaces from any camera. Builds the ray-tracing structure once."""

    def __init__(
        self,
        surfaces: list[Surface],
        lights: list[Light],
        ambient: float = 0.35,
        background: np.ndarray | None = None,
    ) -> None:
        if not surfaces:
            raise ValueError("a scene needs at least one surface")
        if not lights:
            raise ValueError("a scene needs at least one light")
        rtcore_scene, TriangleMesh = _require_embree()
        self.surfaces = surfaces
        self.lights = lights
        self.ambient = float(ambient)
        self.background = np.zeros(3) if background is None else np.asarray(background, dtype=np.float64)
        counts = np.array([len(s.faces) for s in surfaces])
        self._face_start = np.concatenate([[0], np.cumsum(counts)])
        self._face_surface = np.repeat(np.arange(len(surfaces)), counts).astype(np.int16)  # (F_total,)
        offsets = np.concatenate([[0], np.cumsum([len(s.vertices) for s in surfaces])])
        self._vertices = np.concatenate([s.vertices for s in surfaces]).astype(np.float64)
        self._faces = np.concatenate([s.faces + o for s, o in zip(surfaces, offsets[:-1], strict=True)])
        local = np.concatenate([s.local for s in surfaces])
        normals = np.concatenate([_corner_normals(s.vertices, s.faces) for s in surfaces])  # (F, 3, 3)
        # Per face corner: local coordinates and normal, (F, 3 corners, 6), gathered once per hit.
        self._corner_attributes = np.concatenate([local[self._faces], normals], axis=2).astype(np.float32)
        self._parts = np.concatenate(
            [np.full(len(s.faces), -1) if s.face_parts is None else s.face_parts for s in surfaces]
        ).astype(np.int16)
        self._inst = np.array([s.inst_id for s in surfaces], dtype=np.uint8)
        self._nocs = np.array([s.nocs for s in surfaces])
        self._receives_shadows = np.array([s.receives_shadows for s in surfaces])
        self._rays: tuple[CameraIntrinsics, np.ndarray] | None = None  # pixel rays of the last camera
        # Embree works in float32: shift the origin to the scene so that precision is spent where the scene is.
        self._origin = self._vertices.mean(0)
        self._scene = rtcore_scene.EmbreeScene()
        TriangleMesh(
            scene=self._scene,
            vertices=(self._vertices - self._origin).astype(np.float32),
            indices=self._faces.astype(np.int32),
        )

    def render(
        self, world_from_camera: np.ndarray, intrinsics: CameraIntrinsics, shadows: bool = True
    ) -> RenderedFrame:
        """Render the view of a camera at pose ``world_from_camera`` (4, 4) (OpenCV camera axes)."""
        H, W = intrinsics.height, intrinsics.width
        R, t = world_from_camera[:3, :3], world_from_camera[:3, 3]
        if self._rays is None or self._rays[0] != intrinsics:
            self._rays = (intrinsics, pixel_rays(intrinsics).reshape(-1, 3).astype(np.float32))  # (HW, 3) unit depth
        dirs = self._rays[1] @ R.T.astype(np.float32)  # world directions, camera-z component 1
        origins = np.broadcast_to((t - self._origin).astype(np.float32), dirs.shape)
        hit = self._scene.run(origins, dirs, output=1)
        # Work on every pixel (rays that miss borrow face 0) and blank the misses at the end: cheaper than
        # gathering and scattering the hits, which are nearly all pixels in a closed room.
        miss = hit["primID"] < 0
        f = np.where(miss, 0, hit["primID"])
        u, v = hit["u"], hit["v"]
        bary = np.stack([1 - u - v, u, v], 1)  # (HW, 3) float32; hit = Σ_k b_k · corner_k
        attributes = np.einsum("mk,mkc->mc", bary, self._corner_attributes[f])  # (HW, 6)
        local, normal = attributes[:, :3], _normalise(attributes[:, 3:])
        d = _normalise(dirs)
        facing = np.einsum("md,md->m", normal, d)
        normal[facing > 0] *= -1  # shade the side the camera sees
        cos_inc = np.abs(facing)

        surf = self._face_surface[f]
        depth = np.where(miss, 0.0, hit["tfar"]).astype(np.float32)
        part = self._parts[f]
        mask = self._inst[surf]
        coord = np.zeros_like(local)
        on_object = np.flatnonzero(self._nocs[surf])
        coord[on_object] = local[on_object]

        albedo = np.empty((len(f), 3), dtype=np.float32)
        for s in np.unique(surf):
            sel = surf == s
            albedo[sel] = self.surfaces[s].material.albedo(local[sel], part[sel])
        specular = np.array([surface.material.specular for surface in self.surfaces], dtype=np.float32)[surf]
        lum = albedo @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)

        points = origins + dirs * depth[:, None]  # hit points, relative to the scene origin
        light_sum = np.full((len(f), 3), self.ambient, dtype=np.float32)
        highlight = np.zeros(len(f), dtype=np.float32)
        for k, light in enumerate(self.lights):
            ldir = np.asarray(light.direction, dtype=np.float32)
            ndotl = np.clip(normal @ ldir, 0.0, None)
            if k == 0:  # the key light casts shadows and highlights
                lit = np.flatnonzero((ndotl > 0) & ~miss)
                if shadows:  # any-hit rays towards the light, from the surfaces that show shadows
                    test = lit[self._receives_shadows[surf[lit]]]
                    start = points[test] + 1e-4 * normal[test]
                    blocked = test[self._scene.run(start, np.broadcast_to(ldir, start.shape), query="OCCLUDED") >= 0]
                    ndotl[blocked] = 0.0
                    lit = np.flatnonzero(ndotl > 0)
                half = _normalise(ldir - d[lit])
                highlight[lit] = np.clip(np.einsum("md,md->m", normal[lit], half), 0, None) ** 40
            light_sum += ndotl[:, None] * np.asarray(light.colour, dtype=np.float32)
        color = albedo * light_sum + (specular * highlight)[:, None]
        color[miss] = self.background
        surface = surf.copy()
        for array, empty in ((surface, -1), (part, -1), (mask, BACKGROUND_ID), (cos_inc, 0), (lum, 0), (coord, 0)):
            array[miss] = empty
        return RenderedFrame(
            color=_GAMMA[(np.clip(color, 0.0, 1.0) * (len(_GAMMA) - 1)).astype(np.int32)].reshape(H, W, 3),
            depth=depth.reshape(H, W),
            mask=mask.reshape(H, W),
            coord=coord.reshape(H, W, 3),
            surface=surface.reshape(H, W),
            part=part.reshape(H, W),
            cos_incidence=cos_inc.reshape(H, W),
            albedo_luminance=lum.reshape(H, W),
        )
