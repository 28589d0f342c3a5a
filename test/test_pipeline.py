"""The PoseEstimator: frame in, poses out (acr_pose_core/pipeline.py), its mask sources and model folders."""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from acr_pose_core.categories import CATEGORIES, Y_SYMMETRIC
from acr_pose_core.data import nocs_format
from acr_pose_core.data.dataset import DatasetConfig, PoseDataset
from acr_pose_core.data.instance import normalise_crop
from acr_pose_core.data.priors import load_priors, save_priors
from acr_pose_core.detection import Detections, InputError, as_mask_source, detections_from_frame, read_mask_results
from acr_pose_core.geometry.boxes import box_corners, transform_points
from acr_pose_core.geometry.camera import CameraIntrinsics
from acr_pose_core.geometry.covariance import FREE_ANGLE_VARIANCE
from acr_pose_core.geometry.rotations import pose_errors
from acr_pose_core.model_folder import (
    LoadedModel,
    ModelFolderError,
    _config_sha256,
    load_model_folder,
    save_model_folder,
    write_size_calibration,
)
from acr_pose_core.models.config import ReconstructorConfig
from acr_pose_core.models.reconstructor import Reconstructor, ReconstructorOutput
from acr_pose_core.pipeline import PoseEstimator, check_frame
from acr_pose_core.synth.generate import GenerateConfig, generate, scene_frame
from acr_pose_core.synth.scene import SceneConfig

TINY = ReconstructorConfig(
    channels=16, num_points=128, prior_points=128, graph_k=8, pim_k=8, pim_layers=2, image_size=64
)


@pytest.fixture(scope="module")
def frame() -> nocs_format.Frame:
    """A generated frame (camera profile, test-split instances) with 3 or 4 labelled objects."""
    return scene_frame(GenerateConfig(out=Path("."), split="test", seed=5, scene=SceneConfig(objects=(3, 4))))


@pytest.fixture(scope="module")
def camera(frame) -> CameraIntrinsics:
    return CameraIntrinsics.from_matrix(frame.label.intrinsics, frame.image_size[1], frame.image_size[0])


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("model")
    return save_model_folder(out, Reconstructor(TINY), load_priors().resampled(TINY.prior_points), {"note": "random"})


@pytest.fixture(scope="module")
def tiny(tiny_folder) -> PoseEstimator:
    return PoseEstimator(tiny_folder, device="cpu")


class Oracle(nn.Module):
    """A Reconstructor that knows the true poses and sizes of a frame's objects: each item is the object whose true
    box holds most of its observed points; its NOCS points are those points taken back through the true pose, its
    deformed prior the true box's corners. Item by item, so it answers the same whatever the batch and its order."""

    def __init__(self, config: ReconstructorConfig, sRT: np.ndarray, size: np.ndarray, noise: float = 0.0) -> None:
        super().__init__()
        self.config, self.noise = config, noise  # noise: NOCS units, a fixed pattern over each item's points
        self.sRT, self.size = torch.from_numpy(sRT), torch.from_numpy(size)  # (J, 4, 4), (J, 3): every object

    def forward(self, points, rgb, choose, category, prior, check_inputs=True):
        sRT, size = self.sRT.to(points), self.size.to(points)
        scale = torch.linalg.det(sRT[:, :3, :3]).abs() ** (1 / 3)  # (J,)
        rotation = sRT[:, :3, :3] / scale[:, None, None]
        # R^T (p - t) / s of every item's points in every object's frame: (B, J, N, 3)
        local = (points[:, None] - sRT[None, :, None, :3, 3]) @ rotation[None] / scale[None, :, None, None]
        inside = (local.abs() <= size[None, :, None] / 2 + 0.02).all(-1).sum(-1)  # (B, J) points in each box
        which = inside.argmax(1)  # (B,)
        nocs = local[torch.arange(len(points)), which]  # (B, N, 3)
        if self.noise:  # the same for an item alone or in any batch; makes RANSAC's samples matter
            pattern = torch.sin(torch.arange(nocs[0].numel(), dtype=torch.float64) * 2.399).view(nocs.shape[1:])
            nocs = nocs + self.noise * pattern.to(nocs)
        corners = torch.from_numpy(box_corners(self.size[which].numpy())).to(points)  # (B, 8, 3)
        deformed = torch.cat([corners, corners[:, :1].expand(-1, prior.shape[1] - 8, -1)], 1)  # (B, M, 3)
        B, N, M = points.shape[0], points.shape[1], prior.shape[1]
        assignment = torch.full((B, N, M), 1.0 / M).to(points)
        return ReconstructorOutput(nocs, assignment, assignment.log(), deformed - prior, deformed)


def oracle_estimator(frame, noise: float = 0.0, **options) -> PoseEstimator:
    sRT = np.stack([i.sRT for i in frame.label.instances])
    size = np.stack([i.size for i in frame.label.instances])
    oracle = Oracle(TINY, sRT, size, noise)
    model = LoadedModel(oracle, load_priors().resampled(TINY.prior_points), {}, Path("."))
    return PoseEstimator(model, "cpu", **options)


def test_known_poses_are_recovered_through_the_whole_pipeline(frame, camera):
    detections = detections_from_frame(frame)
    assert len(detections) >= 3
    result = oracle_estimator(frame).estimate(frame.color, frame.depth, camera, masks=detections)
    assert not result.dropped and [o.detection for o in result.objects] == list(range(len(detections)))
    for obj, inst in zip(
        result.objects, [i for i in frame.label.instances if (frame.mask == i.inst_id).any()], strict=True
    ):
        assert obj.class_id == inst.class_id
        deg, cm = pose_errors(obj.sRT, inst.sRT)
        assert deg < 0.05 and cm < 0.01, (obj.category, deg, cm)
        assert obj.scale == pytest.approx(inst.scale, rel=1e-4)
        np.testing.assert_allclose(obj.rotation @ obj.rotation.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(obj.rotation) == pytest.approx(1.0, abs=1e-9)
        np.testing.assert_allclose(obj.size, inst.scale * inst.size, rtol=1e-4)
        np.testing.assert_allclose(obj.corners, transform_points(inst.sRT, box_corners(inst.size)), atol=1e-4)
        np.testing.assert_allclose(obj.sRT[:3, :3], obj.scale * obj.rotation, atol=1e-12)
        assert obj.inlier_ratio == 1.0


def test_each_pose_carries_a_covariance_that_grows_with_the_reconstruction_error(frame, camera):
    """The oracle's exact NOCS points fit with residuals at rounding level; a fixed error pattern of 0.06 NOCS units
    gives a covariance of the pattern's size; the y-symmetric categories are free about their own y axis."""
    detections = detections_from_frame(frame)
    exact = oracle_estimator(frame).estimate(frame.color, frame.depth, camera, masks=detections)
    noisy = oracle_estimator(frame, 0.06).estimate(frame.color, frame.depth, camera, masks=detections)
    assert any(o.category in Y_SYMMETRIC for o in exact.objects)
    assert any(o.category not in Y_SYMMETRIC for o in exact.objects)
    for a, b in zip(exact.objects, noisy.objects, strict=True):
        for obj in (a, b):
            assert obj.covariance.shape == (6, 6) and np.isfinite(obj.covariance).all()
            np.testing.assert_array_equal(obj.covariance, obj.covariance.T)
            assert np.linalg.eigvalsh(obj.covariance).min() > -1e-15
        t_exact, t_noisy = np.trace(a.covariance[:3, :3]), np.trace(b.covariance[:3, :3])  # metres²
        assert t_exact < 1e-12 < 1e-7 < t_noisy, (a.category, t_exact, t_noisy)
        u = b.rotation[:, 1]  # the object's own y axis, camera frame
        about_y = u @ b.covariance[3:, 3:] @ u  # rad²
        if b.category in Y_SYMMETRIC:
            assert about_y == pytest.approx(FREE_ANGLE_VARIANCE, rel=1e-9)
        else:
            assert about_y < 0.1, (b.category, about_y)
        assert b.to_dict()["covariance"] == b.covariance.tolist()


def test_the_estimate_times_its_stages(frame, camera, tiny):
    given = oracle_estimator(frame).estimate(frame.color, frame.depth, camera, masks=detections_from_frame(frame))
    assert list(given.timings_ms) == ["checks", "inputs", "model", "poses"]  # masks given: no segmenter stage
    assert all(ms >= 0 for ms in given.timings_ms.values())
    calls = []

    def source(rgb, depth, intrinsics):
        calls.append(1)
        return detections_from_frame(frame)

    sourced = oracle_estimator(frame, mask_source=source).estimate(frame.color, frame.depth, camera)
    assert calls == [1] and list(sourced.timings_ms) == ["checks", "segmenter", "inputs", "model", "poses"]
    empty = tiny.estimate(frame.color, frame.depth, camera, masks=Detections.empty(*frame.image_size))
    assert list(empty.timings_ms) == ["checks", "inputs"]


def test_the_sync_free_device_step_reads_nothing_on_the_host_and_gives_the_same_poses(frame, camera, tiny_folder):
    """The GPU settings (no input checks, one RANSAC chunk, quaternion fits) run on the CPU here: the guard sees the
    same operators a GPU would, and the poses equal the CPU settings' to rounding."""
    from acr_pose_core.host_sync import HostSyncError, forbid_host_sync

    detections = detections_from_frame(frame)
    fast = PoseEstimator(tiny_folder, "cpu", sync_free=True)
    slow = PoseEstimator(tiny_folder, "cpu")
    assert fast.sync_free and not slow.sync_free
    checked = check_frame(frame.color, frame.depth, camera)
    tensors = fast.batch(fast.inputs(checked, detections), detections.class_ids)
    uniforms = fast.ransac_numbers(0, len(detections))  # on the device: the step copies nothing from the host
    with torch.no_grad():
        with forbid_host_sync():
            out, fit = fast.device_step(*tensors, uniforms)
        with pytest.raises(HostSyncError):  # the CPU settings do read on the host: the guard is not vacuous
            with forbid_host_sync():
                slow.device_step(*tensors)
        out_slow, fit_slow = slow.device_step(*tensors)
    torch.testing.assert_close(out.nocs, out_slow.nocs, atol=0, rtol=0)
    torch.testing.assert_close(fit.valid, fit_slow.valid)
    torch.testing.assert_close(fit.sRT, fit_slow.sRT, atol=1e-9, rtol=0)
    # and through the whole frame, on poses that mean something (the oracle knows the truth)
    oracle = oracle_estimator(frame)
    oracle.sync_free = True
    result = oracle.estimate(frame.color, frame.depth, camera, masks=detections)
    reference = oracle_estimator(frame).estimate(frame.color, frame.depth, camera, masks=detections)
    assert len(result.objects) == len(reference.objects) == len(detections)
    for a, b in zip(result.objects, reference.objects, strict=True):
        np.testing.assert_allclose(a.sRT, b.sRT, atol=1e-9)


def test_padding_to_object_buckets_gives_every_object_its_unpadded_pose(frame, camera):
    """Objects padded to a bucket, or split into batches of the largest bucket with the last one padded: the poses
    are the unpadded ones (each object keeps its RANSAC numbers), and the buffers of a bucket are reused for the next
    frame without leaking the previous frame's objects into it."""
    detections = detections_from_frame(frame)
    n = len(detections)
    assert n in (3, 4)
    reference = oracle_estimator(frame, 0.06).estimate(frame.color, frame.depth, camera, masks=detections)
    assert len(reference.objects) == n
    other_numbers = oracle_estimator(frame, 0.06, seed=1).estimate(frame.color, frame.depth, camera, masks=detections)
    assert all(  # the noise makes each pose depend on its RANSAC numbers: the comparisons below can fail
        np.abs(a.sRT - b.sRT).max() > 1e-6 for a, b in zip(reference.objects, other_numbers.objects, strict=True)
    )
    for buckets, sizes in (((1, 2, 4, 8), {4}), ((2,), {2}), ((1, 3), {3} if n == 3 else {1, 3})):
        padded = oracle_estimator(frame, 0.06, object_buckets=buckets)
        for round in range(2):  # the second frame reuses the first one's buffers
            result = padded.estimate(frame.color, frame.depth, camera, masks=detections)
            assert [o.detection for o in result.objects] == list(range(n)) and not result.dropped, (buckets, round)
            for a, b in zip(result.objects, reference.objects, strict=True):
                np.testing.assert_allclose(a.sRT, b.sRT, rtol=0, atol=1e-12)
                np.testing.assert_array_equal(a.nocs, b.nocs)
                assert a.inlier_ratio == b.inlier_ratio
        assert set(padded._static_steps) == sizes, buckets
    # a frame of fewer objects after a larger one: the padding copies are not taken for objects
    second = slice(1, 2)  # not the first object, which the padding copies
    fewer = Detections(
        detections.masks[second], detections.class_ids[second], detections.scores[second], detections.boxes[second]
    )
    alone = oracle_estimator(frame, 0.06).estimate(frame.color, frame.depth, camera, masks=fewer)
    padded = oracle_estimator(frame, 0.06, object_buckets=(4,))
    padded.estimate(frame.color, frame.depth, camera, masks=detections)
    one = padded.estimate(frame.color, frame.depth, camera, masks=fewer)
    assert len(one.objects) == 1 and not one.dropped
    np.testing.assert_allclose(one.objects[0].sRT, alone.objects[0].sRT, rtol=0, atol=1e-12)


def test_static_shape_options_are_checked(tiny_folder):
    with pytest.raises(ValueError, match="needs a CUDA device"):
        PoseEstimator(tiny_folder, "cpu", cuda_graphs=True)
    for bad in ((), (2, 1), (0, 4), (2, 2), (1.5,)):
        with pytest.raises(ValueError, match="object_buckets"):
            PoseEstimator(tiny_folder, "cpu", object_buckets=bad)
    assert PoseEstimator(tiny_folder, "cpu", object_buckets=[1, 8]).object_buckets == (1, 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cuda_graph_replay_equals_the_eager_step(frame, camera, tiny_folder):  # pragma: no cover (GPU machines)
    detections = detections_from_frame(frame)
    eager = PoseEstimator(tiny_folder, "cuda", object_buckets=(4,))
    graphed = PoseEstimator(tiny_folder, "cuda", cuda_graphs=True, object_buckets=(4,))
    for _ in range(3):  # capture, then replays
        a = eager.estimate(frame.color, frame.depth, camera, masks=detections)
        b = graphed.estimate(frame.color, frame.depth, camera, masks=detections)
        assert [o.detection for o in a.objects] == [o.detection for o in b.objects]
        for x, y in zip(a.objects, b.objects, strict=True):
            np.testing.assert_allclose(x.nocs, y.nocs, rtol=0, atol=1e-5)
            np.testing.assert_allclose(x.sRT, y.sRT, rtol=0, atol=1e-5)
    assert graphed._static_steps[4].cuda_graph is not None


def test_inputs_are_the_datasets_for_the_same_object(frame, tmp_path):
    # N above every object's pixel count: no random draw, so the Dataset and the estimator must agree exactly
    config = ReconstructorConfig(**{**TINY.__dict__, "num_points": 20000})
    nocs_format.write_frame(tmp_path / "scene" / "0000", frame)
    priors = load_priors().resampled(TINY.prior_points)
    dataset = PoseDataset(
        tmp_path,
        priors.points,
        DatasetConfig(num_points=20000, model_points=128, image_size=64),
        models={m.model_id: np.zeros((128, 3)) for m in frame.meta},
    )
    estimator = PoseEstimator(LoadedModel(Reconstructor(TINY), priors, {}, Path(".")), "cpu")
    estimator.config = config
    detections = detections_from_frame(nocs_format.read_frame(tmp_path / "scene" / "0000"))
    checked = check_frame(frame.color, frame.depth, frame.label.intrinsics)
    inputs = estimator.inputs(checked, detections)
    assert len(dataset) == len(inputs) >= 3
    for index, obj in enumerate(inputs):
        item = dataset[index]
        assert obj.num_valid < 20000 and int(item["valid_points"]) == obj.num_valid
        assert torch.equal(item["points"], torch.from_numpy(obj.points.astype(np.float32)))
        assert torch.equal(item["rgb"], torch.from_numpy(normalise_crop(obj.rgb)))
        assert torch.equal(item["choose"], torch.from_numpy(obj.choose))


def test_depth_units_colour_order_and_invalid_depth(frame, camera, tiny):
    detections = detections_from_frame(frame)
    oracle = oracle_estimator(frame)
    depth_mm = frame.depth.copy()
    depth_mm[:2] = 0
    metres = depth_mm.astype(np.float32) / 1000
    metres[depth_mm == 0] = np.nan  # float depth: NaN, infinities and negatives mean "no measurement", like 0
    metres[:1] = np.inf
    metres[1:2] = -1.0
    mm = oracle.estimate(frame.color, depth_mm, camera, masks=detections)
    m = oracle.estimate(frame.color, metres, camera, masks=detections)
    mm64 = oracle.estimate(frame.color, depth_mm.astype(np.float64), camera.K, detections, depth_scale=0.001)
    assert len(mm.objects) == len(m.objects) == len(mm64.objects) == len(detections)
    for a, b, c in zip(mm.objects, m.objects, mm64.objects, strict=True):
        assert a.num_points == b.num_points == c.num_points
        np.testing.assert_allclose(a.points, b.points, atol=1e-6)  # metres in float32: within a micrometre
        np.testing.assert_allclose(a.sRT, b.sRT, atol=1e-5)
        np.testing.assert_array_equal(a.sRT, c.sRT)  # the same numbers in other units: the same answer
    # the network sees the colours: a BGR frame said to be BGR gives exactly the RGB frame's answer, and not if unsaid
    rgb = tiny.estimate(frame.color, depth_mm, camera, masks=detections)
    bgr = tiny.estimate(np.ascontiguousarray(frame.color[..., ::-1]), depth_mm, camera, detections, None, "bgr")
    unsaid = tiny.estimate(np.ascontiguousarray(frame.color[..., ::-1]), depth_mm, camera, detections)
    for a, b, c in zip(rgb.objects, bgr.objects, unsaid.objects, strict=True):
        np.testing.assert_array_equal(a.nocs, b.nocs)
        assert not np.array_equal(a.nocs, c.nocs)


def test_objects_without_depth_are_dropped_with_their_reason(frame, camera, tiny):
    detections = detections_from_frame(frame)
    depth = frame.depth.copy()
    depth[detections.masks[0]] = 0  # the first object has no depth at all
    masks = detections.masks.copy()
    masks[1] = False  # the second an empty mask
    changed = Detections.from_masks(masks, detections.class_ids, detections.scores, detections.boxes)
    result = tiny.estimate(frame.color, depth, camera, masks=changed)
    reasons = {d.detection: d.reason for d in result.dropped}
    assert set(reasons) == {0, 1}
    assert "0 of its" in reasons[0] and "have depth" in reasons[0] and "empty mask" == reasons[1]
    assert [o.detection for o in result.objects] == list(range(2, len(detections)))


def test_a_frame_without_objects_gives_an_empty_result(frame, camera, tiny):
    result = tiny.estimate(frame.color, frame.depth, camera, masks=Detections.empty(*frame.image_size))
    assert result.objects == [] and result.dropped == [] and result.image_size == frame.image_size
    nothing = PoseEstimator(tiny.model, "cpu", mask_source=lambda rgb, depth, k: (np.zeros((0, 480, 640)), []))
    assert nothing.estimate(frame.color, frame.depth, camera).to_dict()["objects"] == []


def test_a_mask_source_is_called_with_rgb_metres_and_the_camera(frame, camera, tiny):
    seen = {}

    def source(rgb, depth, intrinsics):
        seen.update(rgb=rgb, depth=depth, intrinsics=intrinsics)
        d = detections_from_frame(frame)
        return {
            "masks": d.masks,
            "class_ids": [["bottle", "bowl", "camera", "can", "laptop", "mug"][c - 1] for c in d.class_ids],
            "scores": np.full(len(d), 0.5),
        }

    result = PoseEstimator(tiny.model, "cpu", mask_source=source).estimate(
        frame.color[..., ::-1], frame.depth, camera, color_order="bgr"
    )
    np.testing.assert_array_equal(seen["rgb"], frame.color)
    assert seen["depth"].dtype == np.float32 and seen["depth"].max() == pytest.approx(frame.depth.max() / 1000)
    assert seen["intrinsics"] == camera
    assert [o.score for o in result.objects] == [0.5] * len(result.objects)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c, d, k: (c.astype(np.float32), d, k), "rgb must be uint8"),
        (lambda c, d, k: (c[..., 0], d, k), "rgb must be (H, W, 3)"),
        (lambda c, d, k: (np.dstack([c, c[..., :1]]), d, k), "drop the alpha channel"),
        (lambda c, d, k: (c, d.astype(np.int32), k), "depth must be uint16"),
        (lambda c, d, k: (c, d[:, :-1], k), "align the depth"),
        (lambda c, d, k: (c, d, np.eye(3) * np.nan), "NaN"),
        (lambda c, d, k: (c, d, np.diag([0.0, 500.0, 1.0])), "focal lengths must be positive"),
        (lambda c, d, k: (c, d, np.eye(4)), "3x3"),
        (lambda c, d, k: (c, d, CameraIntrinsics(500, 500, 320, 240, 320, 240)), "intrinsics are for 240x320"),
        (lambda c, d, k: (c, d, "K"), "3x3"),
        (lambda c, d, k: (list(c), d, k), "numpy arrays"),
    ],
)
def test_bad_frames_raise_one_clear_error(frame, camera, tiny, change, message):
    rgb, depth, intrinsics = change(frame.color, frame.depth, camera)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tiny.estimate(rgb, depth, intrinsics, masks=Detections.empty(*frame.image_size))


def test_a_plain_mapping_of_masks_gives_the_same_poses_as_detections(frame, camera):
    detections = detections_from_frame(frame)
    estimator = oracle_estimator(frame)
    names = [CATEGORIES[int(c) - 1] for c in detections.class_ids]  # category names, as a user's segmenter says
    plain = {"masks": detections.masks.astype(np.uint8), "class_ids": names, "scores": detections.scores * 0.5}
    from_mapping = estimator.estimate(frame.color, frame.depth, camera, masks=plain)
    reference = estimator.estimate(frame.color, frame.depth, camera, masks=detections)
    assert len(from_mapping.objects) == len(reference.objects) == len(detections)
    for a, b in zip(from_mapping.objects, reference.objects, strict=True):
        assert (a.class_id, a.category) == (b.class_id, b.category)
        np.testing.assert_array_equal(a.sRT, b.sRT)
        assert a.score == pytest.approx(0.5 * b.score)
    with pytest.raises(InputError, match=r"missing \['class_ids'\], unknown \['labels'\]"):
        estimator.estimate(frame.color, frame.depth, camera, masks={"masks": plain["masks"], "labels": names})
    with pytest.raises(InputError, match="class 'cup'"):
        estimator.estimate(frame.color, frame.depth, camera, masks={**plain, "class_ids": ["cup"] * len(names)})
    with pytest.raises(InputError, match="or a mapping"):
        estimator.estimate(frame.color, frame.depth, camera, masks=[plain["masks"]])


def test_bad_detections_and_settings_raise_clear_errors(frame, camera, tiny):
    with pytest.raises(InputError, match="no masks given"):
        tiny.estimate(frame.color, frame.depth, camera)
    with pytest.raises(InputError, match="depth_scale"):
        tiny.estimate(frame.color, frame.depth, camera, Detections.empty(480, 640), depth_scale=-1.0)
    small = Detections.from_masks(np.ones((1, 240, 320), bool), [1])
    with pytest.raises(InputError, match="masks are 240x320"):
        tiny.estimate(frame.color, frame.depth, camera, masks=small)
    with pytest.raises(InputError, match="class 'cup'"):
        Detections.from_masks(np.ones((1, 4, 4), bool), ["cup"])
    with pytest.raises(InputError, match="class id 7"):
        Detections.from_masks(np.ones((1, 4, 4), bool), [7])
    with pytest.raises(InputError, match="scores"):
        Detections.from_masks(np.ones((1, 4, 4), bool), [1], [1.5])
    with pytest.raises(InputError, match="2 masks but 1 class ids"):
        Detections.from_masks(np.ones((2, 4, 4), bool), [1])
    wrong = PoseEstimator(tiny.model, "cpu", mask_source=lambda rgb, depth, k: (np.ones((1, 4, 4)), [1]))
    with pytest.raises(InputError, match="returned 4x4 masks for a 480x640 frame"):
        wrong.estimate(frame.color, frame.depth, camera)
    with pytest.raises(InputError, match="returned str"):
        as_mask_source(lambda *a: "masks")(frame.color, frame.depth.astype(np.float32), camera)
    with pytest.raises(ValueError, match="min_points"):
        PoseEstimator(tiny.model, "cpu", min_points=2)


def test_mask_results_pickles_are_read(frame, tmp_path):
    detections = detections_from_frame(frame)
    path = tmp_path / "results_test_scene_1_0000.pkl"
    with open(path, "wb") as f:  # SPD's mrcnn_results layout: masks (H, W, K)
        pickle.dump(
            {
                "rois": detections.boxes.astype(np.int32),
                "class_ids": detections.class_ids.astype(np.int32),
                "scores": np.linspace(0.9, 0.5, len(detections)).astype(np.float32),
                "masks": np.moveaxis(detections.masks, 0, -1),
            },
            f,
        )
    read = read_mask_results(path)
    np.testing.assert_array_equal(read.masks, detections.masks)
    np.testing.assert_array_equal(read.class_ids, detections.class_ids)
    np.testing.assert_array_equal(read.boxes, detections.boxes)
    np.testing.assert_allclose(read.scores, np.linspace(0.9, 0.5, len(detections)), rtol=1e-6)
    with open(tmp_path / "bad.pkl", "wb") as f:
        pickle.dump({"rois": detections.boxes}, f)
    with pytest.raises(InputError, match="missing"):
        read_mask_results(tmp_path / "bad.pkl")
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump(Path("x"), f)  # an arbitrary class: the restricted unpickler refuses it
    with pytest.raises(InputError):
        read_mask_results(tmp_path / "evil.pkl")
    with pytest.raises(FileNotFoundError):
        read_mask_results(tmp_path / "missing.pkl")


def test_model_folders_round_trip_and_refuse_damage(tiny_folder, tmp_path):
    torch.manual_seed(1)
    model = Reconstructor(TINY).eval()
    priors = load_priors().resampled(TINY.prior_points)
    full = save_model_folder(tmp_path / "f32", model, priors, weights_dtype="float32")
    half = save_model_folder(tmp_path / "f16", model, priors)
    assert (half / "reconstructor.safetensors").stat().st_size < 0.6 * (
        full / "reconstructor.safetensors"
    ).stat().st_size
    B, N, S = 3, TINY.num_points, TINY.image_size
    g = torch.Generator().manual_seed(0)
    args = (
        torch.randn(B, N, 3, generator=g) * 0.05 + torch.tensor([0, 0, 0.8]),
        torch.randn(B, 3, S, S, generator=g),
        torch.randint(0, S * S, (B, N), generator=g),
        torch.tensor([0, 3, 5]),
        torch.from_numpy(priors.points[[0, 3, 5]]),
    )
    with torch.no_grad():
        want = model(*args).nocs
        got32 = load_model_folder(full).reconstructor(*args).nocs
        got16 = load_model_folder(half).reconstructor(*args).nocs
    assert torch.equal(want, got32)
    assert (want - got16).abs().max() < 5e-3  # float16 weights: NOCS within a few thousandths
    np.testing.assert_array_equal(load_model_folder(half).priors.points, priors.points)
    data = bytearray((half / "reconstructor.safetensors").read_bytes())
    data[-1] ^= 1
    (half / "reconstructor.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match="sha256"):
        load_model_folder(half)
    with pytest.raises(FileNotFoundError):
        load_model_folder(tmp_path / "nowhere")
    with pytest.raises(ModelFolderError, match="not a model folder"):
        load_model_folder(tmp_path)


def test_model_folders_refuse_replaced_priors_edited_configurations_and_paths_outside(tmp_path):
    torch.manual_seed(1)
    priors = load_priors().resampled(TINY.prior_points)

    def fresh(name):
        return save_model_folder(tmp_path / name, Reconstructor(TINY).eval(), priors)

    def edit(folder, change):
        info = json.loads((folder / "model.json").read_text())
        change(info)
        (folder / "model.json").write_text(json.dumps(info))

    folder = fresh("priors")
    other = load_priors().resampled(TINY.prior_points)
    other.points[0] *= 1.01  # a 1 % larger bottle prior: every bottle's pose would change
    save_priors(folder / "priors.npz", other)
    with pytest.raises(ModelFolderError, match="priors.npz: sha256 differs"):
        load_model_folder(folder)
    folder = fresh("graph_k")
    edit(folder, lambda info: info["reconstructor"].update(graph_k=4))  # the same weight shapes, another model
    with pytest.raises(ModelFolderError, match="configuration was changed after export"):
        load_model_folder(folder)
    for key, name in (("weights", "../f32/reconstructor.safetensors"), ("priors", "/etc/passwd"), ("priors", "..")):
        folder = fresh(f"outside_{key}")
        edit(folder, lambda info, key=key, name=name: info[key].update(file=name))
        with pytest.raises(ModelFolderError, match="must be a file name inside the folder"):
            load_model_folder(folder)
    folder = fresh("v1")  # an older folder: no hashes of the priors and configuration, read with a warning
    edit(folder, lambda info: (info.update(version=1), info.pop("config_sha256"), info["priors"].pop("sha256")))
    with pytest.warns(RuntimeWarning, match="version-1 model folder"):
        assert load_model_folder(folder).priors.points.shape == priors.points.shape
    edit(folder, lambda info: info.update(version=3))
    with pytest.raises(ModelFolderError, match="version 3"):
        load_model_folder(folder)
    folder = fresh("garbage")  # a weights file whose recorded hash matches but whose content is not safetensors
    (folder / "reconstructor.safetensors").write_bytes(b"not tensors at all")
    edit(folder, lambda info: info["weights"].update(sha256=hashlib.sha256(b"not tensors at all").hexdigest()))
    with pytest.raises(ModelFolderError, match="not a readable safetensors file"):
        load_model_folder(folder)
    folder = fresh("channels")  # another width, its configuration hash recomputed: one line naming the mismatch

    def narrower(info):
        info["reconstructor"].update(channels=2 * TINY.channels)
        info.update(config_sha256=_config_sha256(info))

    edit(folder, narrower)
    with pytest.raises(ModelFolderError, match=r"does not fit the configuration in model.json \(\d+ missing") as caught:
        load_model_folder(folder)
    assert "\n" not in str(caught.value) and "of another shape" in str(caught.value)
    write_size_calibration(fresh("calibrated"), np.full(6, 0.9))  # size calibration is not a configuration edit
    assert load_model_folder(tmp_path / "calibrated").size_factors.tolist() == [0.9] * 6


class ShrinkingOracle(Oracle):
    """The oracle with its NOCS points pulled towards the centre by a known factor per category (the bias the
    size calibration corrects), the deformed prior (hence size_nocs) left true."""

    def __init__(self, *args, shrink: np.ndarray, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.shrink = torch.from_numpy(shrink)  # (6,)

    def forward(self, points, rgb, choose, category, prior, check_inputs=True):
        out = super().forward(points, rgb, choose, category, prior, check_inputs)
        factor = self.shrink.to(points)[category][:, None, None]  # (B, 1, 1)
        return out._replace(nocs=out.nocs * factor)


def test_size_calibration_recovers_a_known_shrinkage_and_round_trips(tmp_path):
    from acr_pose_core.calibration import fit_size_factors

    generate(GenerateConfig(out=tmp_path / "data", split="train", frames=1, seed=5, scene=SceneConfig(objects=(4, 5))),
             progress=False)  # fmt: skip
    (prefix,) = nocs_format.list_frames(tmp_path / "data" / "train")
    frame = nocs_format.read_frame(prefix)
    shrink = np.array([0.9, 0.8, 0.7, 0.95, 0.85, 0.6])
    sRT = np.stack([i.sRT for i in frame.label.instances])
    size = np.stack([i.size for i in frame.label.instances])
    oracle = ShrinkingOracle(TINY, sRT, size, shrink=shrink)
    model = LoadedModel(oracle, load_priors().resampled(TINY.prior_points), {}, Path("."))
    raw = PoseEstimator(model, "cpu")
    fit = fit_size_factors(raw, [prefix], min_objects=1, progress=False)
    present = sorted({i.class_id - 1 for i in frame.label.instances if (frame.mask == i.inst_id).any()})
    assert len(present) >= 3 and fit.objects[present].min() >= 1
    np.testing.assert_allclose(fit.factors[present], shrink[present], rtol=1e-4)  # the shrinkage, recovered
    absent = [c for c in range(6) if c not in present]
    assert (fit.factors[absent] == 1).all()  # too few objects: left alone
    calibrated = PoseEstimator(replace(model, size_factors=fit.factors), "cpu")
    masks = detections_from_frame(frame)
    before = raw.estimate(frame.color, frame.depth, frame.label.intrinsics, masks)
    after = calibrated.estimate(frame.color, frame.depth, frame.label.intrinsics, masks)
    by_class = {i.class_id: i for i in frame.label.instances}
    for a, b in zip(after.objects, before.objects, strict=True):
        np.testing.assert_allclose(a.rotation, b.rotation, atol=1e-12)
        np.testing.assert_array_equal(a.translation, b.translation)
        assert a.scale == pytest.approx(b.scale * fit.factors[a.class_id - 1], rel=1e-12)
        np.testing.assert_allclose(a.sRT[:3, :3], a.scale * a.rotation, atol=1e-12)
        if sum(i.class_id == a.class_id for i in frame.label.instances) == 1:  # its true size is known
            inst = by_class[a.class_id]
            np.testing.assert_allclose(a.size, inst.scale * inst.size, rtol=1e-3)
            assert not np.allclose(b.size, inst.scale * inst.size, rtol=1e-2)  # and was wrong before
    with pytest.raises(ValueError, match="calibration is off"):
        fit_size_factors(calibrated, [prefix])

    torch.manual_seed(0)
    folder = save_model_folder(tmp_path / "m", Reconstructor(TINY), load_priors().resampled(TINY.prior_points))
    assert load_model_folder(folder).size_factors is None
    write_size_calibration(folder, fit.factors, {"data": "train"})
    np.testing.assert_array_equal(load_model_folder(folder).size_factors, fit.factors)
    assert PoseEstimator(folder, "cpu").size_factors.tolist() == fit.factors.tolist()
    assert (PoseEstimator(folder, "cpu", calibrate_size=False).size_factors == 1).all()
    with pytest.raises(ModelFolderError, match="positive numbers"):
        write_size_calibration(folder, [1, 1, 1, 1, 1, -2.0])
    info = json.loads((folder / "model.json").read_text())
    info["size_calibration"]["factors"].pop("mug")
    (folder / "model.json").write_text(json.dumps(info))
    with pytest.raises(ModelFolderError, match="must name each of"):
        load_model_folder(folder)
    write_size_calibration(folder, None)
    assert load_model_folder(folder).size_factors is None


def test_draw_boxes_draws_the_projected_edges_and_skips_what_is_behind(camera):
    from acr_pose_core.evaluation.draw import BoxDrawing, draw_boxes
    from acr_pose_core.geometry.camera import project

    black = np.zeros((camera.height, camera.width, 3), np.uint8)
    sRT = np.eye(4)
    sRT[:3, 3] = [0.0, 0.0, 1.0]  # a 0.2 m cube 1 m in front of the camera
    size = np.full(3, 0.2)
    drawn = draw_boxes(black, [BoxDrawing(sRT, size, colour=(0, 255, 0), thickness=1, axes=False)], camera)
    assert not black.any()  # the input is left alone
    corners = project(transform_points(sRT, box_corners(size)), camera)  # (8, 2)
    edge_mid = np.round((corners[0] + corners[1]) / 2).astype(int)  # corners 0 and 1 differ in z only: an edge
    assert drawn[edge_mid[1], edge_mid[0], 1] > 0
    centre = np.round(project(sRT[:3, 3], camera)).astype(int)
    assert not drawn[centre[1], centre[0]].any()  # no axes asked for: the centre stays dark
    with_axes = draw_boxes(black, [BoxDrawing(sRT, size, thickness=1)], camera)
    assert with_axes[centre[1], centre[0]].any()
    behind = sRT.copy()
    behind[2, 3] = -1.0
    assert not draw_boxes(black, [BoxDrawing(behind, size, "behind")], camera).any()


def test_demo_writes_its_picture_and_json(tiny_folder, tmp_path, capsys):
    import json

    from acr_pose_core.cli.main import main

    assert main(["demo", "--model", str(tiny_folder), "--out", str(tmp_path / "demo"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "masks: ground truth" in out and "objects within 10°/5 cm" in out
    document = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert document["num_truth"] >= 1 and len(document["objects"]) + len(document["dropped"]) == document["num_truth"]
    for row in document["objects"]:  # ground-truth masks: every estimate has its true object
        assert {"error_deg", "error_cm", "iou_3d", "sRT", "size_m"} <= set(row) and row["truth"] is not None
    import cv2

    picture = cv2.imread(str(tmp_path / "demo" / "demo.png"))
    color = cv2.imread(str(tmp_path / "demo" / "input_color.png"))
    assert picture.shape == color.shape == (480, 640, 3) and (picture != color).any()
    assert main(["demo", "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "d2")]) == 2
    # your own frame goes the way of acr-pose infer: the tiny model has no segmenter, which infer says
    cv2.imwrite(str(tmp_path / "mine_color.png"), picture)
    cv2.imwrite(str(tmp_path / "mine_depth.png"), np.full((480, 640), 800, np.uint16))
    (tmp_path / "K.txt").write_text("577.5 577.5 319.5 239.5\n")
    own = ["demo", "--rgb", str(tmp_path / "mine_color.png"), "--depth", str(tmp_path / "mine_depth.png")]
    capsys.readouterr()
    assert main([*own, "--model", str(tiny_folder), "--out", str(tmp_path / "d3")]) == 2
    assert "together" in capsys.readouterr().err
    assert main([*own, "--intrinsics", str(tmp_path / "K.txt"), "--model", str(tiny_folder), "--out", "x"]) == 2
    assert "has no segmenter" in capsys.readouterr().err


def test_evaluate_model_and_infer_commands(frame, tiny_folder, tmp_path, capsys):
    import json

    import cv2

    from acr_pose_core.cli.main import main
    from acr_pose_core.evaluation.results_io import load_results

    data = tmp_path / "data"
    nocs_format.write_frame(data / "scene_1" / "0000", frame)
    nocs_format.write_frame(data / "scene_1" / "0001", frame)
    out = tmp_path / "eval"
    base = ["--model", str(tiny_folder), "--device", "cpu"]
    assert main(["evaluate-model", "--data", str(data), "--masks", "gt", "--out", str(out), *base]) == 0
    assert "IoU corrected" in capsys.readouterr().out
    ours, spd = load_results(out / "predictions", "acr"), load_results(out / "predictions_spd", "spd")
    assert [f.name for f in ours] == ["scene_1_0000.npz", "scene_1_0001.npz"]
    for a, b in zip(ours, spd, strict=True):
        np.testing.assert_array_equal(a.pred_sRT, b.pred_sRT)
        assert a.num_gt == len(frame.label.instances) and a.num_pred >= 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 2 and summary["masks"] == "gt"
    assert {"metrics_corrected.json", "metrics_legacy.json", "table.txt"} <= {p.name for p in out.iterdir()}
    # the model has no segmenter: asking for its masks is a clear error (exit 2), not a crash
    assert main(["evaluate-model", "--data", str(data), "--out", str(tmp_path / "e2"), *base]) == 2
    assert "has no segmenter" in capsys.readouterr().err

    # a user's frame: colour and 16-bit depth files and an intrinsics file; masks from result pickles
    user = tmp_path / "user"
    user.mkdir()
    cv2.imwrite(str(user / "shot_color.png"), frame.color[..., ::-1])
    cv2.imwrite(str(user / "shot_depth.png"), frame.depth)
    K = frame.label.intrinsics
    (user / "camera.json").write_text(json.dumps({"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2]}))
    detections = detections_from_frame(frame)
    masks = tmp_path / "masks"
    masks.mkdir()
    with open(masks / "results_shot.pkl", "wb") as f:
        pickle.dump({"rois": detections.boxes, "class_ids": detections.class_ids, "scores": detections.scores,
                     "masks": np.moveaxis(detections.masks, 0, -1)}, f)  # fmt: skip
    run = ["infer", "--rgb", str(user / "shot_color.png"), "--depth", str(user / "shot_depth.png"), *base]
    assert (
        main([*run, "--intrinsics", str(user / "camera.json"), "--masks", str(masks), "--out", str(tmp_path / "i")])
        == 0
    )
    result = json.loads((tmp_path / "i" / "shot.json").read_text())
    direct = PoseEstimator(tiny_folder, "cpu").estimate(frame.color, frame.depth, K, masks=detections)
    assert [o["sRT"] for o in result["objects"]] == [o.sRT.tolist() for o in direct.objects]
    assert cv2.imread(str(tmp_path / "i" / "shot.png")).shape == (480, 640, 3)
    assert main([*run, "--masks", str(masks), "--out", str(tmp_path / "j")]) == 2  # no intrinsics
    assert "give --intrinsics" in capsys.readouterr().err
    assert main(["infer", "--folder", str(data), "--masks", "gt", "--out", str(tmp_path / "k"), *base]) == 0
    assert sorted(p.name for p in (tmp_path / "k").glob("*.json")) == ["scene_1_0000.json", "scene_1_0001.json"]


def test_train_default_makes_a_model_folder_with_its_card(tmp_path):
    """The whole retraining command at toy sizes: data, both trainers timed and sized, export, evaluation, card."""
    import json

    from acr_pose_core.cli.main import main

    det = tmp_path / "det.yaml"
    det.write_text("segmenter: {fpn_channels: 8, box_head_width: 16, mask_channels: 8, min_size: 160, max_size: 214}\n"
                   "batch_size: 1\nwarmup_steps: 1\nnum_workers: 0\n")  # fmt: skip
    recon = tmp_path / "recon.yaml"
    tiny = Path(__file__).resolve().parents[1] / "config" / "train_tiny.yaml"
    recon.write_text(
        tiny.read_text().split("model:", 1)[1].join(["model:", ""]).replace("batch_size: 8", "batch_size: 4")
    )
    out = tmp_path / "model"
    args = ["train-default", "--minutes", "0.05", "--out", str(out), "--work", str(tmp_path / "work"), "--frames", "3",
            "--val-frames", "1", "--test-frames", "1", "--device", "cpu", "--reconstructor-config", str(recon),
            "--detector-config", str(det)]  # fmt: skip
    assert main(args) == 0
    loaded = load_model_folder(out)
    assert loaded.segmenter is not None and loaded.reconstructor.config.channels == 16
    card = (out / "MODEL_CARD.md").read_text()
    assert "REAL-like test split, detected masks" in card and "CAMERA-like val split, ground-truth masks" in card
    document = json.loads((out / "training.json").read_text())
    assert document["training"]["reconstructor"]["steps"] >= 2 and document["training"]["segmenter"]["steps"] >= 2
    assert [d["frames"] for d in document["data"]] == [3, 1, 1]


def test_a_device_that_is_not_here_is_a_clear_error(tmp_path, capsys):
    from acr_pose_core.cli.main import main
    from acr_pose_core.device import choose_device

    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'bogus'"):
        choose_device("bogus")
    with pytest.raises(ValueError, match=r"device 'cuda:99': (no CUDA GPU|this machine has)"):
        choose_device("cuda:99")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is available here"):
            choose_device("cuda")
    assert main(["demo", "--device", "bogus", "--out", str(tmp_path / "demo")]) == 2
    assert "error: unknown device 'bogus'" in capsys.readouterr().err
