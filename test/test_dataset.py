"""The instance dataset: items agree with the ground truth that built them; SPD's crop, sampling and augmentation
rules; deterministic randomness; mixing sources by ratio; clear errors."""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, DataLoader, default_collate

from acr_pose_core.categories import CLASS_IDS
from acr_pose_core.data import nocs_format
from acr_pose_core.data.dataset import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DatasetConfig,
    PoseDataset,
    RatioSampler,
    jitter_colors,
    mixed,
    read_label,
    y_canonicaliser,
)
from acr_pose_core.data.instance import crop_window, resize_bilinear
from acr_pose_core.geometry import CameraIntrinsics, backproject, random_rotations, rotation_error_deg, umeyama
from acr_pose_core.synth.generate import GenerateConfig, generate
from acr_pose_core.synth.scene import SceneConfig

pytest.importorskip("embreex")

SYMMETRIC = {CLASS_IDS["bottle"], CLASS_IDS["bowl"], CLASS_IDS["can"]}
MUG = CLASS_IDS["mug"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """Three frames of one scene: a bowl, a can, a mug (its handle hidden in one frame) and a camera (seed 1)."""
    out = tmp_path_factory.mktemp("nocs")
    scene = SceneConfig(objects=(3, 4), distractors=(0, 1))
    generate(GenerateConfig(out=out, split="val", frames=3, frames_per_scene=3, seed=1, scene=scene), progress=False)
    return out / "val"


@pytest.fixture(scope="module")
def priors() -> np.ndarray:
    return np.random.default_rng(0).uniform(-0.5, 0.5, (6, 1024, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def plain(root, priors) -> PoseDataset:
    return PoseDataset(root, priors)


@pytest.fixture(scope="module")
def plain_items(plain) -> list[dict]:
    return [plain[i] for i in range(len(plain))]


def pixels_of(item: dict, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image row and column of each observed point (projected back with the intrinsics)."""
    p = item["points"].double().numpy()
    u = np.rint(p[:, 0] * K[0, 0] / p[:, 2] + K[0, 2]).astype(np.int64)
    v = np.rint(p[:, 1] * K[1, 1] / p[:, 2] + K[1, 2]).astype(np.int64)
    return v, u


def residual_mm(item: dict) -> np.ndarray:
    """‖sRT·nocs − points‖ per point, millimetres."""
    sRT = item["sRT"].double().numpy()
    pred = item["nocs"].double().numpy() @ sRT[:3, :3].T + sRT[:3, 3]
    return np.linalg.norm(pred - item["points"].double().numpy(), axis=1) * 1000


# ---------------------------------------------------------------------------------------------------------------------
# Items


def test_fields_shapes_dtypes_and_collate(plain, plain_items):
    cfg = plain.config
    N, M, S = cfg.num_points, cfg.model_points, cfg.image_size
    expected = {
        "rgb": ((3, S, S), torch.float32),
        "points": ((N, 3), torch.float32),
        "choose": ((N,), torch.int64),
        "nocs": ((N, 3), torch.float32),
        "model": ((M, 3), torch.float32),
        "prior": ((1024, 3), torch.float32),
        "sRT": ((4, 4), torch.float32),
        "scale": ((), torch.float32),
        "size": ((3,), torch.float32),
        "class_id": ((), torch.int64),
        "category": ((), torch.int64),
        "handle_visible": ((), torch.bool),
        "valid_points": ((), torch.int64),
        "window": ((4,), torch.int64),
    }
    assert len(plain) == 10 and {int(it["class_id"]) for it in plain_items} == {2, 3, 4, 6}
    for item in plain_items:
        assert set(item) == {*expected, "frame", "inst_id"}
        for key, (shape, dtype) in expected.items():
            assert tuple(item[key].shape) == shape and item[key].dtype == dtype, key
        assert isinstance(item["frame"], str) and isinstance(item["inst_id"], int)
        assert int(item["category"]) == int(item["class_id"]) - 1
        assert 0 <= int(item["choose"].min()) and int(item["choose"].max()) < S * S
        assert torch.isfinite(item["rgb"]).all() and torch.isfinite(item["points"]).all()
    batch = default_collate(plain_items[:4])
    assert batch["points"].shape == (4, N, 3) and batch["rgb"].shape == (4, 3, S, S)
    assert batch["sRT"].shape == (4, 4, 4) and batch["class_id"].shape == (4,) and len(batch["frame"]) == 4


def test_items_match_their_labels(root, plain, plain_items):
    for item in plain_items:
        label = read_label(Path(item["frame"]))
        inst = next(i for i in label.instances if i.inst_id == item["inst_id"])
        assert float(item["scale"]) == pytest.approx(inst.scale, rel=1e-6)
        np.testing.assert_allclose(item["size"].numpy(), inst.size, rtol=1e-6)
        np.testing.assert_allclose(item["sRT"][:3, 3].numpy(), inst.sRT[:3, 3], atol=1e-6)  # no shift without augment
        assert bool(item["handle_visible"]) == inst.handle_visible
        # the whole box fits the window here, so every valid depth pixel of the instance is counted
        assert int(item["valid_points"]) == label.info["depth_pixels"][str(inst.inst_id)]
        np.testing.assert_array_equal(item["prior"].numpy(), plain.priors[inst.class_id - 1])
    models = nocs_format.read_models(root.parent / "obj_models" / "val.npz")
    for item in plain_items:
        if int(item["class_id"]) in SYMMETRIC:
            continue  # canonicalised: checked in test_canonicalisation
        model_id = next(
            r.model_id for r in plain.instances if str(r.prefix) == item["frame"] and r.inst_id == item["inst_id"]
        )
        source = models[model_id]
        # a subset of the stored points, the same for every item of the model
        assert np.isin(item["model"].numpy().view("V12").ravel(), source.view("V12").ravel()).all()
        assert len(np.unique(item["model"].numpy(), axis=0)) == plain.config.model_points


def test_ground_truth_pose_is_recovered_from_nocs_and_points(plain_items):
    for item in plain_items:
        assert np.median(residual_mm(item)) < 3.0, item["frame"]
        fit = umeyama(item["nocs"].double().numpy(), item["points"].double().numpy())
        sRT = item["sRT"].double().numpy()
        s = np.cbrt(np.linalg.det(sRT[:3, :3]))
        assert bool(fit.valid)
        assert rotation_error_deg(fit.rotation, sRT[:3, :3] / s) < 1.0, item["frame"]
        assert np.linalg.norm(fit.translation - sRT[:3, 3]) < 0.005
        assert fit.scale == pytest.approx(s, rel=0.02)


def test_choose_indexes_the_resized_crop(root, plain_items):
    """The resized crop's colour at ``choose`` is the image's colour at the points' own pixels."""
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    for item in plain_items:
        frame = nocs_format.read_frame(Path(item["frame"]), with_coord=False)
        v, u = pixels_of(item, frame.label.intrinsics)
        assert np.all(frame.mask[v, u] == item["inst_id"])
        rgb = (item["rgb"].double().numpy().transpose(1, 2, 0) * std + mean) * 255  # (S, S, 3) un-normalised
        at_choose = rgb.reshape(-1, 3)[item["choose"].numpy()]
        original = frame.color[v, u].astype(np.float64)
        error = np.abs(at_choose - original).mean(axis=1)
        assert np.median(error) < 6, item["frame"]
        # and exactly SPD's rule: ratio = S / window, choose = floor(row·ratio)·S + floor(col·ratio)
        rmin, rmax, cmin, _ = item["window"].tolist()
        S = item["rgb"].shape[-1]
        ratio = S / (rmax - rmin)
        expected = np.floor((v - rmin) * ratio) * S + np.floor((u - cmin) * ratio)
        np.testing.assert_array_equal(item["choose"].numpy(), expected.astype(np.int64))


def test_choose_finds_each_points_pixel_in_a_position_coded_image(root, priors, tmp_path):
    """With colours that encode the pixel position, the colour at ``choose`` tells where it came from."""
    shutil.copytree(root.parent, tmp_path / "coded")
    rows, cols = np.mgrid[0:480, 0:640]
    coded = np.stack([np.rint(cols * 255 / 639), np.rint(rows * 255 / 479), np.zeros_like(rows)], -1).astype(np.uint8)
    for prefix in nocs_format.list_frames(tmp_path / "coded" / "val"):
        Image.fromarray(coded).save(f"{prefix}_color.png")
    ds = PoseDataset(tmp_path / "coded" / "val", priors)
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    for i in range(len(ds)):
        item = ds[i]
        K = read_label(Path(item["frame"])).intrinsics
        v, u = pixels_of(item, K)
        rgb = (item["rgb"].double().numpy().transpose(1, 2, 0) * std + mean) * 255
        at_choose = rgb.reshape(-1, 3)[item["choose"].numpy()]
        du, dv = at_choose[:, 0] * 639 / 255 - u, at_choose[:, 1] * 479 / 255 - v  # pixels
        # resampling moves a pixel by less than one source step of the resize, plus 1.25 px of colour quantisation
        step = (item["window"][1] - item["window"][0]).item() / 192
        assert np.abs(du).max() < step + 2.5 and np.abs(dv).max() < step + 2.5, item["frame"]
        assert abs(np.median(du)) < 1 and abs(np.median(dv)) < 1


def reference_window(bbox, height=480, width=640):
    """The reference crop rule, stated directly: a square of side ``(longest box side // 40 + 1) · 40`` (at most
    440 px) centred on the box's floored centre, then slid (not shrunk) to lie inside the image."""
    y1, x1, y2, x2 = bbox
    side = min((max(y2 - y1, x2 - x1) // 40 + 1) * 40, 440, height, width)
    top = min(max((y1 + y2) // 2 - side // 2, 0), height - side)
    left = min(max((x1 + x2) // 2 - side // 2, 0), width - side)
    return top, top + side, left, left + side


@pytest.mark.parametrize(
    "bbox, window",
    [
        ((100, 200, 180, 260), (80, 200, 170, 290)),  # 80 px tall: 3 steps of 40 = 120
        ((200, 300, 240, 340), (180, 260, 280, 360)),  # exactly 40: still one step more, 80
        ((101, 201, 150, 260), (85, 165, 190, 270)),  # odd sums: centre floored
        ((0, 0, 30, 50), (0, 80, 0, 80)),  # top-left corner: shifted down and right
        ((5, 610, 25, 639), (0, 40, 600, 640)),  # top-right
        ((470, 0, 480, 10), (440, 480, 0, 40)),  # bottom-left
        ((460, 600, 480, 640), (400, 480, 560, 640)),  # bottom-right
        ((10, 20, 470, 630), (20, 460, 105, 545)),  # huge: 640 capped at 440
    ],
)
def test_crop_window_hand_worked(bbox, window):
    assert crop_window(bbox, (480, 640)) == window
    assert reference_window(bbox) == window


def test_crop_window_matches_the_rule_on_random_boxes_and_generalises():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        y = np.sort(rng.integers(0, 481, 2))
        x = np.sort(rng.integers(0, 641, 2))
        bbox = (int(y[0]), int(x[0]), int(y[1]), int(x[1]))
        rmin, rmax, cmin, cmax = crop_window(bbox, (480, 640))
        assert (rmin, rmax, cmin, cmax) == reference_window(bbox), bbox
        assert 0 <= rmin < rmax <= 480 and 0 <= cmin < cmax <= 640 and rmax - rmin == cmax - cmin
    # another image size: the window is capped at the smaller side and stays inside
    assert crop_window((0, 0, 100, 120), (100, 120)) == (0, 100, 10, 110)
    assert crop_window((90, 150, 110, 170), (200, 160)) == (80, 120, 120, 160)


def test_padding_by_repetition_and_subsampling_without_replacement(root, priors):
    big = PoseDataset(root, priors, DatasetConfig(num_points=4096))
    items = [big[i] for i in range(len(big))]
    counts = [int(item["valid_points"]) for item in items]
    assert min(counts) < 4096 < max(counts)  # both cases occur
    for item, valid in zip(items, counts, strict=True):
        pts = item["points"].numpy()
        if valid < 4096:  # np.pad(..., "wrap"): point k repeats point k mod V
            np.testing.assert_array_equal(pts, pts[np.arange(4096) % valid])
            np.testing.assert_array_equal(item["choose"].numpy(), item["choose"].numpy()[np.arange(4096) % valid])
            assert len(np.unique(pts[:valid], axis=0)) == valid
        else:  # without replacement: every point a different pixel
            assert len(np.unique(pts, axis=0)) == 4096
    small = PoseDataset(root, priors, DatasetConfig(num_points=64))
    for i in range(len(small)):
        item = small[i]
        assert int(item["valid_points"]) > 64 and len(np.unique(item["points"].numpy(), axis=0)) == 64
        assert np.median(residual_mm(item)) < 3.0


def test_instances_without_depth_come_padded_with_their_count(root, priors, plain, tmp_path):
    """Depth lost after labelling (as in real data): the item still comes, with ``valid_points`` to drop it by."""
    shutil.copytree(root.parent, tmp_path / "d")
    ref, other = plain.instances[0], plain.instances[1]
    prefix = tmp_path / "d" / "val" / ref.prefix.relative_to(root)
    frame = nocs_format.read_frame(prefix, with_coord=False)
    depth = frame.depth.copy()
    depth[frame.mask == ref.inst_id] = 0
    keep = np.flatnonzero((frame.mask == other.inst_id).ravel() & (depth.ravel() > 0))
    depth.ravel()[keep[2:]] = 0  # two valid pixels left
    Image.fromarray(depth).save(f"{prefix}_depth.png")
    ds = PoseDataset(tmp_path / "d" / "val", priors, DatasetConfig(augment=True))
    empty, two = ds[0], ds[1]
    assert int(empty["valid_points"]) == 0 and int(two["valid_points"]) == 2
    for key in ("points", "nocs", "choose"):
        assert not empty[key].any(), key
    assert len(np.unique(two["choose"].numpy())) <= 2 and (two["points"][:, 2] > 0).all()  # repeated (+ jitter)
    default_collate([empty, two])


def test_min_depth_pixels_skips_instances_from_the_label(root, priors, plain):
    counts = [read_label(r.prefix).info["depth_pixels"][str(r.inst_id)] for r in plain.instances]
    threshold = int(np.median(counts))
    strict = PoseDataset(root, priors, DatasetConfig(min_depth_pixels=threshold))
    assert len(strict) == sum(c >= threshold for c in counts) < len(plain)
    assert strict.skipped["few_depth_pixels"] == sum(c < threshold for c in counts)


def test_broken_frames_and_excluded_models_are_skipped(root, priors, plain, tmp_path):
    shutil.copytree(root.parent, tmp_path / "d")
    label_path = tmp_path / "d" / "val" / "00000" / "0001_label.json"
    doc = json.loads(label_path.read_text())
    doc["instances"][0]["bbox"] = [10, 0, 470, 100]  # 460 px tall: the reference's broken-render rule
    label_path.write_text(json.dumps(doc))
    excluded = plain.instances[0].model_id
    ds = PoseDataset(tmp_path / "d" / "val", priors, exclude_models={excluded})
    assert ds.skipped["broken_frame"] == 1
    assert ds.skipped["excluded_model"] >= 1 and all(r.model_id != excluded for r in ds.instances)
    assert all(r.prefix.name != "0001" for r in ds.instances)


def test_spd_pickle_labels_models_and_mug_meta(root, priors, plain, plain_items, tmp_path):
    """SPD's layout: ``_label.pkl`` (no intrinsics: NOCS-CAMERA's, these frames' own), ``.pkl`` models, mug meta."""
    shutil.copytree(root, tmp_path / "spd" / "val")
    for path in sorted((tmp_path / "spd" / "val").rglob("*_label.json")):
        label = read_label(path.with_name(path.name.replace("_label.json", "")))
        sRT = np.stack([i.sRT for i in label.instances])
        scales = np.array([i.scale for i in label.instances])
        spd = {
            "instance_ids": [i.inst_id for i in label.instances],
            "class_ids": [i.class_id for i in label.instances],
            "bboxes": np.stack([i.bbox for i in label.instances]),
            "scales": scales,
            "rotations": sRT[:, :3, :3] / scales[:, None, None],
            "translations": sRT[:, :3, 3],
            "model_list": [i.model_id for i in label.instances],
        }
        path.with_name(path.name.replace(".json", ".pkl")).write_bytes(pickle.dumps(spd))
        path.unlink()
    models = nocs_format.read_models(root.parent / "obj_models" / "val.npz")
    (tmp_path / "spd" / "camera_val.pkl").write_bytes(pickle.dumps({k: v[:1024] for k, v in models.items()}))
    mug_ids = {r.model_id for r in plain.instances if r.class_id == MUG}
    T0, s0 = np.array([0.01, -0.02, 0.03]), 0.9
    mug_meta = {m: [T0, s0] for m in mug_ids}
    (tmp_path / "spd" / "mug_meta.pkl").write_bytes(pickle.dumps(mug_meta))

    ds = PoseDataset(
        tmp_path / "spd" / "val",
        priors,
        DatasetConfig(canonicalise_symmetric=False),  # compare with the stored poses and points as they are
        models=tmp_path / "spd" / "camera_val.pkl",
        mug_meta=tmp_path / "spd" / "mug_meta.pkl",
    )
    raw = PoseDataset(root, priors, DatasetConfig(canonicalise_symmetric=False))
    raw_nocs = [raw[i]["nocs"].double().numpy() for i in range(len(raw))]
    assert len(ds) == len(plain) and ds.skipped["no_label"] == 0  # no depth-pixel counts: every instance kept
    for i, ref in enumerate(ds.instances):
        item = ds[i]
        np.testing.assert_array_equal(item["model"].numpy(), models[ref.model_id][:1024])  # exactly M: file order
        torch.testing.assert_close(item["points"], plain_items[i]["points"])
        original = read_label(root / Path(item["frame"]).relative_to(tmp_path / "spd" / "val"))
        sRT = next(inst.sRT for inst in original.instances if inst.inst_id == ref.inst_id)
        np.testing.assert_allclose(item["sRT"].numpy(), sRT, atol=1e-6)
        assert torch.isnan(item["size"]).all()  # SPD's train labels have no size
        if ref.class_id == MUG:  # moved into SPD's mug frame (here a made-up one, so the pose no longer fits)
            np.testing.assert_allclose(item["nocs"].numpy(), s0 * (raw_nocs[i] + T0), atol=1e-6)
        else:
            np.testing.assert_allclose(item["nocs"].numpy(), raw_nocs[i], atol=1e-6)
            assert np.median(residual_mm(item)) < 3.0
    with pytest.raises(nocs_format.NocsFormatError, match="mug_meta"):
        PoseDataset(tmp_path / "spd" / "val", priors, models=tmp_path / "spd" / "camera_val.pkl", mug_meta={})


# ---------------------------------------------------------------------------------------------------------------------
# Augmentation and randomness


def test_augmentation_shifts_points_and_translation_together(root, priors, plain_items):
    aug = PoseDataset(root, priors, DatasetConfig(augment=True))
    for i, plain_item in enumerate(plain_items):
        item = aug[i]
        shift = (item["sRT"][:3, 3] - plain_item["sRT"][:3, 3]).double().numpy()
        assert np.all(np.abs(shift) <= 0.01) and np.linalg.norm(shift) > 1e-5
        np.testing.assert_array_equal(item["choose"].numpy(), plain_item["choose"].numpy())  # same pixels
        noise = (item["points"] - plain_item["points"]).double().numpy()
        np.testing.assert_allclose(noise.mean(axis=0), shift, atol=3e-4)  # the shift, plus zero-mean jitter
        assert np.abs(noise - shift).max() <= 0.005 + 1e-6  # jitter clipped at 5 mm
        assert np.median(residual_mm(item)) < 4.0  # sRT still maps nocs onto the points, within the jitter
        assert not torch.equal(item["rgb"], plain_item["rgb"])  # colour jitter
        torch.testing.assert_close(item["nocs"], plain_item["nocs"])


def test_point_jitter_is_clipped(root, priors, plain_items):
    cfg = DatasetConfig(augment=True, shift_range=0.0, point_jitter=0.01, point_jitter_clip=0.005)
    item = PoseDataset(root, priors, cfg)[0]
    noise = (item["points"] - plain_items[0]["points"]).double().numpy()
    assert np.abs(noise).max() <= 0.005 + 1e-6
    assert np.mean(np.abs(np.abs(noise) - 0.005) < 1e-6) > 0.3  # half the draws beyond ±0.5σ land on the clip


def test_points_are_backprojected_with_the_labels_intrinsics(root, priors, tmp_path):
    """With other (anisotropic) intrinsics in the labels, the points follow them, as geometry.backproject does."""
    shutil.copytree(root.parent, tmp_path / "other")
    K = np.array([[500.0, 0.0, 300.0], [0.0, 650.0, 250.0], [0.0, 0.0, 1.0]])
    for path in (tmp_path / "other" / "val").rglob("*_label.json"):
        doc = json.loads(path.read_text())
        doc["intrinsics"] = K.tolist()
        path.write_text(json.dumps(doc))
    ds = PoseDataset(tmp_path / "other" / "val", priors, DatasetConfig(num_points=256))
    camera = CameraIntrinsics.from_matrix(K, 640, 480)
    for i in range(len(ds)):
        item = ds[i]
        frame = nocs_format.read_frame(Path(item["frame"]), with_coord=False)
        expected, _ = backproject(frame.depth / 1000.0, camera, frame.mask == item["inst_id"])
        ours = item["points"].double().numpy()
        nearest = np.sqrt(((ours[:, None, :] - expected[None, :, :]) ** 2).sum(-1)).min(axis=1)  # (N,) metres
        assert nearest.max() < 1e-6, item["frame"]  # each point is one of them, to float32 precision


def test_items_are_deterministic_per_seed_epoch_and_index(root, priors):
    aug = PoseDataset(root, priors, DatasetConfig(augment=True, num_points=256), seed=5)
    first = [aug[i] for i in range(3)]
    again = PoseDataset(root, priors, DatasetConfig(augment=True, num_points=256), seed=5)
    for i, item in enumerate(first):
        for key, value in again[i].items():
            assert torch.equal(value, item[key]) if torch.is_tensor(value) else value == item[key], key
    # the same in DataLoader workers
    loaded = list(DataLoader(again, batch_size=None, num_workers=2, sampler=[0, 1, 2]))
    for item, other in zip(first, loaded, strict=True):
        assert torch.equal(item["points"], other["points"]) and torch.equal(item["rgb"], other["rgb"])
    aug.set_epoch(1)
    later = aug[0]
    assert not torch.equal(later["points"], first[0]["points"])
    assert not torch.equal(later["sRT"], first[0]["sRT"])
    other_seed = PoseDataset(root, priors, DatasetConfig(augment=True, num_points=256), seed=6)[0]
    assert not torch.equal(other_seed["points"], first[0]["points"])


def test_resize_bilinear_matches_torch_without_antialiasing():
    rng = np.random.default_rng(0)
    for h in (40, 80, 120, 192, 440, 7):
        image = rng.integers(0, 256, (h, h, 3), dtype=np.uint8)
        ours = resize_bilinear(image, 192).astype(np.int64)
        ref = torch.nn.functional.interpolate(
            torch.from_numpy(image).permute(2, 0, 1)[None].double(),
            size=(192, 192),
            mode="bilinear",
            align_corners=False,
            antialias=False,
        )
        ref = ref[0].permute(1, 2, 0).round().clamp(0, 255).numpy().astype(np.int64)
        assert np.abs(ours - ref).max() <= 1, h


def test_jitter_colors():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(jitter_colors(image, np.random.default_rng(1), (0, 0, 0, 0)), image)
    a = jitter_colors(image, np.random.default_rng(1), (0.2, 0.2, 0.2, 0.05))
    b = jitter_colors(image, np.random.default_rng(1), (0.2, 0.2, 0.2, 0.05))
    c = jitter_colors(image, np.random.default_rng(2), (0.2, 0.2, 0.2, 0.05))
    assert a.shape == image.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, image)
    # brightness alone scales the colours by a factor in [0.8, 1.2]
    grey = np.full((4, 4, 3), 100, dtype=np.uint8)
    bright = jitter_colors(grey, np.random.default_rng(3), (0.2, 0, 0, 0))
    assert 80 <= bright[0, 0, 0] <= 120 and np.all(bright == bright[0, 0, 0])
    # hue alone keeps a grey pixel grey and moves a saturated one
    red = np.zeros((4, 4, 3), dtype=np.uint8)
    red[..., 0] = 200
    shifted = jitter_colors(np.concatenate([red, grey]), np.random.default_rng(4), (0, 0, 0, 0.05))
    assert not np.array_equal(shifted[:4], red)
    np.testing.assert_array_equal(shifted[4:], grey)


# ---------------------------------------------------------------------------------------------------------------------
# Symmetric categories


def test_y_canonicaliser_property():
    rotations = random_rotations(200, np.random.default_rng(0))
    for R in rotations:
        S = y_canonicaliser(R)
        Rc = R @ S
        np.testing.assert_allclose(S @ S.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(S) == pytest.approx(1.0)
        np.testing.assert_array_equal(S[1], [0, 1, 0])  # a rotation about y
        assert abs(Rc[0, 2] - Rc[2, 0]) < 1e-12 and Rc[0, 0] + Rc[2, 2] > 0
        np.testing.assert_allclose(y_canonicaliser(Rc), np.eye(3), atol=1e-9)  # idempotent
    # upside down by a half turn about x: no angle about y is defined
    np.testing.assert_array_equal(y_canonicaliser(np.diag([1.0, -1.0, -1.0])), np.eye(3))


def test_canonicalisation_of_symmetric_instances(root, priors, plain_items):
    raw = PoseDataset(root, priors, DatasetConfig(canonicalise_symmetric=False))
    changed = 0
    for i, item in enumerate(plain_items):
        before = raw[i]
        R0 = before["sRT"][:3, :3].double().numpy()
        R1 = item["sRT"][:3, :3].double().numpy()
        if int(item["class_id"]) not in SYMMETRIC:
            torch.testing.assert_close(item["sRT"], before["sRT"])
            continue
        s = float(item["scale"])
        assert abs(R1[0, 2] - R1[2, 0]) / s < 1e-5 and R1[0, 0] + R1[2, 2] > 0
        changed += abs(R0[0, 2] - R0[2, 0]) / s > 1e-3
        assert np.median(residual_mm(item)) < 3.0  # s·R'·nocs' + t is still the points
        # R' = R·S and nocs' = nocs·S with S a rotation about y: the y coordinates and the axis do not move
        S = R0.T @ R1 / s**2
        np.testing.assert_allclose(S[1], [0, 1, 0], atol=1e-5)
        np.testing.assert_allclose(item["nocs"].numpy(), before["nocs"].numpy() @ S.astype(np.float32), atol=1e-5)
        np.testing.assert_allclose(item["model"].numpy(), before["model"].numpy() @ S.astype(np.float32), atol=1e-5)
        assert rotation_error_deg(R0 / s, R1 / s, y_symmetric=True) < 1e-3
    assert changed >= 2  # the raw rotations were not already canonical


def test_mugs_without_handle_are_canonicalised_only_when_asked(root, priors, plain_items):
    hidden = [i for i, it in enumerate(plain_items) if int(it["class_id"]) == MUG and not bool(it["handle_visible"])]
    visible = [i for i, it in enumerate(plain_items) if int(it["class_id"]) == MUG and bool(it["handle_visible"])]
    assert hidden and visible
    mugs = PoseDataset(root, priors, DatasetConfig(canonicalise_mugs_without_handle=True))
    for i in hidden:
        R = mugs[i]["sRT"][:3, :3].double().numpy()
        assert abs(R[0, 2] - R[2, 0]) < 1e-6 and np.median(residual_mm(mugs[i])) < 3.0
        assert not torch.allclose(mugs[i]["sRT"], plain_items[i]["sRT"])
    for i in visible:
        torch.testing.assert_close(mugs[i]["sRT"], plain_items[i]["sRT"])


# ---------------------------------------------------------------------------------------------------------------------
# Mixing sources


class Stub(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n, self.epoch = n, None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


def test_ratio_sampler_shares_uniformity_and_determinism():
    a, b = Stub(10), Stub(7)
    data = ConcatDataset([a, b])
    sampler = RatioSampler(data, (3, 1), 4000, seed=3)
    first = list(sampler)
    assert len(first) == len(sampler) == 4000 and all(0 <= i < 17 for i in first)
    from_a = np.array(first) < 10
    assert from_a.mean() == pytest.approx(0.75, abs=0.01)
    assert sampler.counts == [3000, 1000]
    np.testing.assert_array_equal(np.bincount(first, minlength=17)[:10], 300)  # whole permutations of a
    assert set(np.bincount(first, minlength=17)[10:].tolist()) <= {142, 143}
    assert from_a[:100].mean() not in (0.0, 1.0)  # shuffled together, not in blocks
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert a.epoch == 1 and b.epoch == 1
    second = list(sampler)
    assert second != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    # replicas split one draw without overlap
    parts = [list(RatioSampler(data, (3, 1), 1001, seed=3, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == 501
    together = np.empty(1002, dtype=np.int64)
    together[0::2], together[1::2] = parts
    np.testing.assert_array_equal(together, RatioSampler(data, (3, 1), 1002, seed=3).epoch_indices())
    with pytest.raises(ValueError, match="ratios"):
        RatioSampler(data, (3,), 10)
    with pytest.raises(ValueError, match="ratios"):
        RatioSampler(data, (1, -1), 10)
    with pytest.raises(ValueError, match="empty"):
        RatioSampler(ConcatDataset([a, Stub(0)]), (1, 1), 10)


class GroupedStub(Stub):
    """Items in frames of sizes ``sizes``, listed frame by frame as PoseDataset lists them."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__(sum(sizes))
        self.sizes = sizes

    def frame_groups(self) -> list[np.ndarray]:
        ends = np.cumsum(self.sizes)
        return [np.arange(e - n, e) for n, e in zip(self.sizes, ends, strict=True)]


def test_ratio_sampler_grouped_by_frame_keeps_frames_whole_counts_and_determinism():
    a, b = GroupedStub([3, 1, 4, 2, 3]), Stub(7)  # 13 items in 5 frames; b has no frames: each item its own
    data = ConcatDataset([a, b])
    sampler = RatioSampler(data, (13, 7), 20, seed=4, group_by_frame=True)
    first = list(sampler)
    assert sorted(first) == list(range(20)) and sampler.counts == [13, 7]  # one epoch: every item once
    for group in a.frame_groups():  # each frame's items in one run, in their order
        at = first.index(int(group[0]))
        assert first[at : at + len(group)] == group.tolist()
    assert first != sorted(first)  # and the frames shuffled, not in index order
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    # a count that is not a whole number of frames: permutations of the frames, the last one cut
    many = RatioSampler(ConcatDataset([a]), (1,), 30, seed=0, group_by_frame=True).epoch_indices()
    assert len(many) == 30 and set(np.bincount(many, minlength=13).tolist()) <= {2, 3}
    # replicas take contiguous shares of one draw, of equal length
    whole = RatioSampler(data, (13, 7), 20, seed=4, group_by_frame=True)
    parts = [list(RatioSampler(data, (13, 7), 20, seed=4, num_replicas=2, rank=r, group_by_frame=True)) for r in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == 10
    assert parts[0] + parts[1] == whole.epoch_indices().tolist()


def test_frame_cache_gives_the_same_items_and_decodes_a_frame_once(root, priors, monkeypatch):
    from acr_pose_core.data import nocs_format

    config = DatasetConfig(augment=True, num_points=256)
    uncached = PoseDataset(root, priors, config, seed=2, frame_cache=0)
    cached = PoseDataset(root, priors, config, seed=2, frame_cache=2)
    groups = cached.frame_groups()
    assert [g.tolist() for g in groups] == [
        [i for i, ref in enumerate(cached.instances) if ref.prefix == prefix]
        for prefix in dict.fromkeys(ref.prefix for ref in cached.instances)
    ]
    reads = []
    real = nocs_format.read_frame
    monkeypatch.setattr(nocs_format, "read_frame", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    order = [*groups[0].tolist(), *groups[1].tolist(), *groups[0].tolist(), *groups[2].tolist(), *groups[0].tolist()]
    for i in order:
        expected, got = uncached[i], cached[i]
        for key, value in expected.items():
            assert torch.equal(value, got[key]) if torch.is_tensor(value) else value == got[key], (i, key)
    p0, p1, p2 = (cached.instances[int(g[0])].prefix for g in groups[:3])
    # uncached: one read per item; cached (2 frames kept, the last used kept longest): each frame once
    n0, n1, n2 = (len(g) for g in groups[:3])
    assert (reads.count(p0), reads.count(p1), reads.count(p2)) == (3 * n0 + 1, n1 + 1, n2 + 1)
    cached[int(groups[1][0])]  # frame 1 was pushed out by frames 0 and 2: read again
    assert reads.count(p1) == n1 + 2
    with pytest.raises(ValueError, match="frame_cache"):
        PoseDataset(root, priors, frame_cache=-1)


def test_mixed_pose_datasets_load_in_batches(root, priors, plain):
    other = PoseDataset(root, priors, DatasetConfig(augment=True))
    data, sampler = mixed([plain, other], (3, 1), 8, seed=0)
    sampler.set_epoch(2)
    assert other.epoch == 2 and plain.epoch == 2
    batch = next(iter(DataLoader(data, batch_size=8, sampler=sampler)))
    assert batch["points"].shape == (8, 1024, 3)
    plain.set_epoch(0)


# ---------------------------------------------------------------------------------------------------------------------
# Errors


def test_errors(root, priors, plain, tmp_path):
    with pytest.raises(nocs_format.NocsFormatError, match="not a folder"):
        PoseDataset(tmp_path / "nowhere", priors)
    (tmp_path / "empty").mkdir()
    with pytest.raises(nocs_format.NocsFormatError, match="no frames"):
        PoseDataset(tmp_path / "empty", priors)
    copy = tmp_path / "copy" / "val"
    shutil.copytree(root, copy)
    with pytest.raises(nocs_format.NocsFormatError, match=r"obj_models.*missing"):
        PoseDataset(copy, priors)
    models = root.parent / "obj_models" / "val.npz"
    with pytest.raises(nocs_format.NocsFormatError, match="missing"):
        PoseDataset(copy, priors, models=tmp_path / "none.npz")
    first_model = plain.instances[0].model_id
    with pytest.raises(nocs_format.NocsFormatError, match=first_model):
        PoseDataset(copy, priors, models={})
    for bad in (priors[:5], priors[..., :2], priors[0]):
        with pytest.raises(ValueError, match="priors"):
            PoseDataset(root, bad)
    nan = priors.copy()
    nan[2, 3, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        PoseDataset(root, nan)

    # a frame without label is skipped; a frame whose files disagree fails at its item, naming the file
    (copy / "00000" / "0002_label.json").unlink()
    ds = PoseDataset(copy, priors, models=models)
    assert ds.skipped["no_label"] == 1 and len(ds) == len(plain) - 4
    mask = copy / "00000" / "0000_mask.png"
    Image.fromarray(np.full((240, 320), 255, dtype=np.uint8)).save(mask)
    with pytest.raises(nocs_format.NocsFormatError, match="0000_mask.png"):
        ds[0]
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_config_validation():
    with pytest.raises(ValueError, match="num_points"):
        DatasetConfig(num_points=0)
    with pytest.raises(ValueError, match="color_jitter"):
        DatasetConfig(color_jitter=(0.2, 0.2, 0.2))
    assert replace(DatasetConfig(), augment=True).augment
