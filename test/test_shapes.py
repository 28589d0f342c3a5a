"""Procedural shapes: canonical frame, determinism, variation, symmetry, part placement, mesh validity, ids."""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import pytest

from acr_pose_core.categories import CATEGORIES, CLASS_IDS
from acr_pose_core.geometry import rotation_about_y
from acr_pose_core.synth.shapes import (
    DISTRACTOR,
    MAX_FACES,
    PART_NAMES,
    SPLIT_SIZES,
    SPLITS,
    ObjectModel,
    _instance_seed,
    make_model,
    model_from_id,
    model_id_for,
    split_model_ids,
)

KINDS = (*CATEGORIES, DISTRACTOR)
SEEDS = (0, 1, 7)


@functools.cache
def model(kind: str, seed: int) -> ObjectModel:
    return make_model(kind, seed)


def part_mask(m: ObjectModel, name: str) -> np.ndarray:
    """(F,) bool: the faces of part ``name``."""
    return m.face_parts == m.part_names.index(name)


def part_vertices(m: ObjectModel, name: str) -> np.ndarray:
    """(K, 3) the vertices used by part ``name``."""
    return m.vertices[np.unique(m.faces[part_mask(m, name)])]


def face_centroids(m: ObjectModel, mask: np.ndarray) -> np.ndarray:
    return m.vertices[m.faces[mask]].mean(axis=1)


def nearest_distance(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(N,) distance from each of ``points (N, 3)`` to its nearest neighbour in ``reference (M, 3)`` (brute force)."""
    d2 = (points**2).sum(1)[:, None] + (reference**2).sum(1)[None] - 2 * points @ reference.T
    return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


def rotation_about_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


# ---------------------------------------------------------------------------------------------------- frame and arrays


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_canonical_box_and_arrays(kind, seed):
    m = model(kind, seed)
    lo, hi = m.vertices.min(axis=0), m.vertices.max(axis=0)
    assert np.abs(0.5 * (lo + hi)).max() < 1e-9, f"{kind}/{seed}: box centre {(lo + hi) / 2}"
    assert abs(np.linalg.norm(hi - lo) - 1.0) < 1e-9, f"{kind}/{seed}: box diagonal {np.linalg.norm(hi - lo)}"
    np.testing.assert_allclose(m.size, hi - lo, atol=1e-12)
    assert abs(np.linalg.norm(m.size) - 1.0) < 1e-9
    assert m.vertices.dtype == np.float64 and m.vertices.shape[1] == 3
    assert m.faces.dtype == np.int64 and m.faces.shape[1] == 3
    assert m.face_parts.dtype == np.int64 and m.face_parts.shape == (len(m.faces),)
    assert m.faces.min() == 0 and m.faces.max() == len(m.vertices) - 1
    assert m.class_id == (0 if kind == DISTRACTOR else CLASS_IDS[kind])
    assert m.category == kind
    if kind != DISTRACTOR:
        assert m.part_names == PART_NAMES[kind]
    counts = np.bincount(m.face_parts, minlength=len(m.part_names))
    assert len(counts) == len(m.part_names) and (counts > 0).all(), f"{kind}/{seed}: faces per part {counts}"


def test_arrays_are_read_only():
    m = model("mug", 0)
    for array in (m.vertices, m.faces, m.face_parts):
        with pytest.raises(ValueError):
            array[0] = 0


def test_object_model_checks_shapes():
    v, f = np.zeros((4, 3)), np.array([[0, 1, 2]])
    with pytest.raises(ValueError):
        ObjectModel("x", 0, np.zeros((4, 2)), f, np.zeros(1, np.int64), ("body",))
    with pytest.raises(ValueError):
        ObjectModel("x", 0, v, np.array([0, 1, 2]), np.zeros(1, np.int64), ("body",))
    with pytest.raises(ValueError):
        ObjectModel("x", 0, v, f, np.zeros(2, np.int64), ("body",))


def test_make_model_rejects_bad_input():
    with pytest.raises(ValueError):
        make_model("cup", 0)
    with pytest.raises(ValueError):
        make_model("mug", -1)


# ---------------------------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_arrays_and_id_round_trip(kind):
    a, b = make_model(kind, 11), make_model(kind, 11)
    for name in ("vertices", "faces", "face_parts"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.model_id == f"{kind}-seed11" and a.part_names == b.part_names
    c = model_from_id(a.model_id)
    np.testing.assert_array_equal(c.vertices, a.vertices)

    model_id = model_id_for(kind, "val", 3)
    cached = model_from_id(model_id)
    assert cached.model_id == model_id and model_from_id(model_id) is cached
    fresh = model_from_id.__wrapped__(model_id)  # rebuilt, bypassing the cache
    for name in ("vertices", "faces", "face_parts"):
        np.testing.assert_array_equal(getattr(fresh, name), getattr(cached, name))
    other = model_from_id(model_id_for(kind, "test", 3))
    assert other.vertices.shape != cached.vertices.shape or not np.array_equal(other.vertices, cached.vertices)


def test_ids_rebuild_the_recorded_meshes():
    """Ids name data sets: a change of these digests means every generated data set changes too. If the generator
    was changed on purpose, update the digests here (and regenerate the data)."""
    expected = {
        "bottle-train-0003": "c86ef26e78d5607f",
        "camera-val-0001": "86a94084ca547734",
        "mug-train-0000": "2e9a92a5690cc92b",
        "laptop-test-0004": "c2abc4325b106ae6",
        "distractor-val-0002": "419f53536d8ba3f2",
    }
    for model_id, digest in expected.items():
        m = model_from_id(model_id)
        h = hashlib.sha256()
        h.update(np.round(m.vertices * 1e9).astype(np.int64).tobytes())
        h.update(m.faces.tobytes())
        h.update(m.face_parts.tobytes())
        assert h.hexdigest()[:16] == digest, f"{model_id}: digest {h.hexdigest()[:16]}"


# ---------------------------------------------------------------------------------------------------- variation


@pytest.mark.parametrize("kind", CATEGORIES)
def test_instances_vary(kind):
    sizes = np.array([model(kind, s).size for s in range(8)])  # (8, 3)
    ratios = np.stack([sizes[:, 1] / sizes[:, 0], sizes[:, 2] / sizes[:, 0]], axis=1)  # height/width, depth/width
    spread = ratios.max(axis=0) / ratios.min(axis=0)
    assert spread.max() > 1.2, f"{kind}: aspect ratios barely vary: {ratios.round(3).tolist()}"
    face_counts = {len(model(kind, s).faces) for s in range(8)}
    a, b = model(kind, 0), model(kind, 1)
    assert len(face_counts) > 1 or not np.allclose(a.vertices, b.vertices)


# ---------------------------------------------------------------------------------------------------- symmetry


def rotation_chamfers(m: ObjectModel, seed: int = 0) -> tuple[float, float, float]:
    """Mean one-sided nearest distance from 2,000 fresh surface points to 4,000 reference points, after no rotation
    (the sampling floor), 37° about y, and 37° about x."""
    rng = np.random.default_rng(seed)
    reference = m.sample_surface(4000, rng)
    points = m.sample_surface(2000, rng)
    angle = np.deg2rad(37.0)
    floor = nearest_distance(points, reference).mean()
    about_y = nearest_distance(points @ rotation_about_y(angle).T, reference).mean()
    about_x = nearest_distance(points @ rotation_about_x(angle).T, reference).mean()
    return floor, about_y, about_x


@pytest.mark.parametrize("kind", ["bottle", "bowl", "can"])
def test_y_symmetric_categories_are_invariant_about_y(kind):
    m = model(kind, 1)
    assert m.y_symmetric
    floor, about_y, about_x = rotation_chamfers(m)
    assert about_y < 1.3 * floor, f"{kind}: chamfer after y rotation {about_y:.4f}, floor {floor:.4f}"
    assert about_x > 3 * floor, f"{kind}: chamfer after x rotation {about_x:.4f}, floor {floor:.4f}"


@pytest.mark.parametrize("kind", ["camera", "laptop", "mug", DISTRACTOR])
def test_other_models_are_not_y_symmetric(kind):
    assert not model(kind, 1).y_symmetric


def test_mug_handle_breaks_the_y_symmetry():
    m = model("mug", 1)
    handle = part_vertices(m, "handle")
    reference = m.sample_surface(6000, np.random.default_rng(0))
    moved = handle @ rotation_about_y(np.deg2rad(37.0)).T
    assert nearest_distance(moved, reference).max() > 0.1


# ---------------------------------------------------------------------------------------------------- parts in place


@pytest.mark.parametrize("seed", SEEDS)
def test_mug_handle_towards_plus_x(seed):
    m = model("mug", seed)
    handle = part_vertices(m, "handle")
    centroids = face_centroids(m, part_mask(m, "handle"))
    assert centroids[:, 0].mean() > 0.2 and handle[:, 0].min() > 0.0
    assert handle[:, 0].max() == m.vertices[:, 0].max(), "the handle is the part furthest towards +x"
    assert abs(handle[:, 2].max() + handle[:, 2].min()) < 1e-9, "handle not centred on z = 0"
    body = part_vertices(m, "body")
    assert body[:, 1].min() <= handle[:, 1].min() and handle[:, 1].max() <= body[:, 1].max()


@pytest.mark.parametrize("seed", SEEDS)
def test_bottle_cap_on_top(seed):
    m = model("bottle", seed)
    cap, body = face_centroids(m, part_mask(m, "cap")), face_centroids(m, part_mask(m, "body"))
    assert cap[:, 1].mean() > body[:, 1].mean()
    assert part_vertices(m, "cap")[:, 1].max() == m.vertices[:, 1].max()
    cap_radius = np.linalg.norm(part_vertices(m, "cap")[:, [0, 2]], axis=1).max()
    assert cap_radius < 0.8 * np.linalg.norm(part_vertices(m, "body")[:, [0, 2]], axis=1).max()
    label = face_centroids(m, part_mask(m, "label"))
    assert body[:, 1].min() < label[:, 1].min() and label[:, 1].max() < cap[:, 1].min()


@pytest.mark.parametrize("seed", SEEDS)
def test_laptop_hinge_on_minus_x_and_display_towards_plus_x(seed):
    m = model("laptop", seed)
    base, lid = part_vertices(m, "base"), part_vertices(m, "lid")
    base_top = base[base[:, 0] > base[:, 0].mean(), 1].max()  # front half: away from the hinge barrel
    assert base[:, 1].min() == m.vertices[:, 1].min(), "the base lies at the bottom"
    lowest = lid[lid[:, 1] < lid[:, 1].min() + 0.02]
    assert lowest[:, 0].max() < 0.0, "the lid is hinged on the -x side"
    assert abs(lid[:, 1].min() - base_top) < 0.05, "the lid's lower edge is at the top of the base"
    assert lid[:, 1].max() > base_top + 0.2, "the lid is open"
    keys = part_vertices(m, "keyboard")
    assert keys[:, 1].min() > base_top - 0.01 and keys[:, 1].max() < base_top + 0.02, "keys on top of the base"
    # A ray from +x towards the display centre meets the display (screen) before the back of the lid.
    mesh = m.to_trimesh()
    centre = part_vertices(m, "screen").mean(axis=0)
    tri = mesh.ray.intersects_first(np.array([[2.0, centre[1], centre[2]]]), np.array([[-1.0, 0.0, 0.0]]))
    assert tri[0] >= 0 and m.part_names[m.face_parts[tri[0]]] == "screen"


@pytest.mark.parametrize("seed", SEEDS)
def test_camera_lens_towards_plus_z(seed):
    m = model("camera", seed)
    body, lens = part_vertices(m, "body"), part_vertices(m, "lens")
    assert lens[:, 2].mean() > body[:, 2].max() - 0.05, "lens in front of the body"
    assert lens[:, 2].max() == m.vertices[:, 2].max(), "the lens is the part furthest towards +z"
    axis_xy = 0.5 * (lens.min(axis=0) + lens.max(axis=0))[:2]
    assert (body.min(axis=0)[:2] < axis_xy).all() and (axis_xy < body.max(axis=0)[:2]).all()
    body_centre, body_depth = 0.5 * (body.min(axis=0) + body.max(axis=0)), np.ptp(body, axis=0)
    assert part_vertices(m, "screen")[:, 2].mean() < body_centre[2] - 0.25 * body_depth[2], "display on the back"
    assert part_vertices(m, "grip")[:, 0].mean() < body[:, 0].mean(), "grip on the -x side"


# ---------------------------------------------------------------------------------------------------- mesh validity


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_closed_outward_meshes(kind, seed):
    mesh = model(kind, seed).to_trimesh()
    assert mesh.is_winding_consistent and mesh.is_watertight
    assert mesh.volume > 0
    volumes = [part.volume for part in mesh.split(only_watertight=False)]
    assert min(volumes) > 0, f"{kind}/{seed}: an inward-wound component (volumes {volumes})"


@pytest.mark.parametrize("kind", KINDS)
def test_face_budget(kind):
    counts = [len(model(kind, s).faces) if s in SEEDS else len(make_model(kind, s).faces) for s in range(20)]
    assert max(counts) <= MAX_FACES, f"{kind}: face counts {counts}"
    assert min(counts) >= 12


# ---------------------------------------------------------------------------------------------------- sampling


def distance_to_triangles(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(N,) distance from each point to the nearest triangle whose plane projection contains it (inf if none)."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]  # (F, 3)
    n = np.cross(b - a, c - a)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    rel = points[:, None, :] - a[None]  # (N, F, 3)
    height = np.einsum("nfd,fd->nf", rel, n)
    foot = rel - height[..., None] * n[None]
    e0, e1 = b - a, c - a  # barycentric coordinates of the foot
    d00, d01, d11 = (e0 * e0).sum(1), (e0 * e1).sum(1), (e1 * e1).sum(1)
    d20, d21 = np.einsum("nfd,fd->nf", foot, e0), np.einsum("nfd,fd->nf", foot, e1)
    denom = d00 * d11 - d01 * d01
    v = (d11 * d20 - d01 * d21) / denom
    w = (d00 * d21 - d01 * d20) / denom
    inside = (v >= -1e-9) & (w >= -1e-9) & (v + w <= 1 + 1e-9)
    return np.where(inside, np.abs(height), np.inf).min(axis=1)


@pytest.mark.parametrize("kind", KINDS)
def test_sample_surface_on_mesh_covers_parts_by_area(kind):
    m = model(kind, 1)
    points = m.sample_surface(300, np.random.default_rng(0))
    assert points.shape == (300, 3) and points.dtype == np.float64
    np.testing.assert_array_equal(points, m.sample_surface(300, np.random.default_rng(0)))
    assert distance_to_triangles(points, m.vertices[m.faces]).max() < 1e-9

    points, faces = m.sample_surface_faces(4000, np.random.default_rng(1))
    tri = m.vertices[m.faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    expected = np.bincount(m.face_parts, weights=area, minlength=len(m.part_names)) / area.sum()
    observed = np.bincount(m.face_parts[faces], minlength=len(m.part_names)) / len(faces)
    assert (observed > 0).all(), f"{kind}: parts without samples: {observed}"
    np.testing.assert_allclose(observed, expected, atol=0.03)


# ---------------------------------------------------------------------------------------------------- ids and splits


def test_split_ids_disjoint_and_complete():
    all_ids = []
    for split in SPLITS:
        ids = split_model_ids(split)
        assert len(ids) == len(CATEGORIES) * SPLIT_SIZES[split] and len(set(ids)) == len(ids)
        assert not any(i.startswith(DISTRACTOR) for i in ids)
        assert split_model_ids(split, "mug") == [f"mug-{split}-{k:04d}" for k in range(SPLIT_SIZES[split])]
        all_ids += ids + split_model_ids(split, DISTRACTOR)
    assert len(set(all_ids)) == len(all_ids)
    seeds = [_instance_seed(*i.rsplit("-", 2)[:2], int(i.rsplit("-", 1)[1])) for i in all_ids]
    assert len(set(seeds)) == len(seeds), "two instances share a seed"
    assert model_id_for("mug", "train", 7) == "mug-train-0007"
    assert model_id_for(DISTRACTOR, "val", 2) == "distractor-val-0002"


@pytest.mark.parametrize(
    "args", [("cup", "train", 0), ("mug", "dev", 0), ("mug", "train", -1), ("mug", "val", SPLIT_SIZES["val"])]
)
def test_model_id_for_rejects_bad_input(args):
    with pytest.raises(ValueError):
        model_id_for(*args)


@pytest.mark.parametrize("bad", ["cup-train-0001", "mug-train-7", "mug-train-9999", "mug-dev-0001", "mug", "mug-seed"])
def test_model_from_id_rejects_malformed_ids(bad):
    with pytest.raises(ValueError):
        model_from_id(bad)
