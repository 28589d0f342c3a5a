"""Synthetic data: rendered frames agree with their labels; generation is deterministic and resumable."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from acr_pose_core.data import nocs_format
from acr_pose_core.geometry import backproject, rotation_error_deg, umeyama
from acr_pose_core.geometry.camera import CameraIntrinsics
from acr_pose_core.synth.generate import GenerateConfig, generate
from acr_pose_core.synth.scene import SceneConfig

pytest.importorskip("embreex")

SMALL = SceneConfig(objects=(3, 4), distractors=(1, 1))


def files_digest(root: Path) -> dict[str, str]:
    """SHA-256 of every frame file under ``root`` (generation.json excluded: it is not per frame)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "generation.json"
    }


@pytest.fixture(scope="module")
def camera_set(tmp_path_factory) -> GenerateConfig:
    out = tmp_path_factory.mktemp("camera")
    config = GenerateConfig(out=out, profile="camera", split="val", frames=3, frames_per_scene=3, seed=11, scene=SMALL)
    summary = generate(config, progress=False)
    assert summary.frames_written == 3
    return config


def test_frames_round_trip_through_the_reader(camera_set):
    prefixes = nocs_format.list_frames(camera_set.out / "val")
    assert len(prefixes) == 3
    for prefix in prefixes:
        assert nocs_format.frame_complete(prefix)
        frame = nocs_format.read_frame(prefix)
        assert frame.color.shape == (480, 640, 3) and frame.depth.dtype == np.uint16
        assert frame.label is not None and len(frame.label.instances) >= 1
        meta_ids = {m.inst_id for m in frame.meta}
        assert {inst.inst_id for inst in frame.label.instances} <= meta_ids
        assert any(m.class_id == 0 for m in frame.meta)  # the distractor is listed, as NOCS lists them


def test_mask_depth_and_coord_agree_pixel_for_pixel(camera_set):
    for prefix in nocs_format.list_frames(camera_set.out / "val"):
        frame = nocs_format.read_frame(prefix)
        K = frame.label.intrinsics
        cam = CameraIntrinsics.from_matrix(K, 640, 480)
        for inst in frame.label.instances:
            pixels = frame.mask == inst.inst_id
            assert (frame.depth[pixels] > 0).all()  # the CAMERA profile has no holes on objects
            nocs = frame.coord[pixels]
            assert np.abs(nocs).max() <= 0.5 + 1e-6 and np.abs(nocs).max() > 0.1
            # carrying each pixel's NOCS coordinate by the label's pose lands on that pixel's back-projected depth
            points, _ = backproject(frame.depth / 1000.0, cam, pixels)
            predicted = nocs @ inst.sRT[:3, :3].T + inst.sRT[:3, 3]
            err = np.linalg.norm(points - predicted, axis=1)
            # 8-bit NOCS (≤ 0.5/255 per axis, times the scale) and millimetre depth
            assert np.median(err) < 0.002, (prefix, inst.inst_id, np.median(err))
        background = frame.mask == nocs_format.BACKGROUND_ID
        assert np.all(frame.coord[background] == 0)


def test_umeyama_on_a_rendered_instance_recovers_the_stored_pose(camera_set):
    checked = 0
    for prefix in nocs_format.list_frames(camera_set.out / "val"):
        frame = nocs_format.read_frame(prefix)
        cam = CameraIntrinsics.from_matrix(frame.label.intrinsics, 640, 480)
        for inst in frame.label.instances:
            pixels = frame.mask == inst.inst_id
            if pixels.sum() < 300:
                continue
            points, idx = backproject(frame.depth / 1000.0, cam, pixels)
            nocs = frame.coord.reshape(-1, 3)[idx]
            fit = umeyama(nocs, points)
            true_R = inst.sRT[:3, :3] / inst.scale
            assert fit.valid
            assert rotation_error_deg(fit.rotation, true_R) < 1.0
            assert np.linalg.norm(fit.translation - inst.sRT[:3, 3]) < 0.005
            assert abs(fit.scale / inst.scale - 1) < 0.02
            checked += 1
    assert checked >= 3


def test_instance_models_are_written_for_the_split(camera_set):
    models = nocs_format.read_models(camera_set.out / "obj_models" / "val.npz")
    assert len(models) >= 6
    for points in models.values():
        assert points.shape == (camera_set.model_points, 3)
        extent = points.max(0) - points.min(0)
        assert abs(np.linalg.norm(extent) - 1) < 0.05  # NOCS: box diagonal 1


def test_same_output_for_any_worker_count_and_after_resume(tmp_path):
    base = GenerateConfig(out=tmp_path / "one", split="test", frames=4, frames_per_scene=2, seed=5, scene=SMALL)
    generate(base, progress=False)
    two = replace(base, out=tmp_path / "two", workers=2)
    generate(two, progress=False)
    reference = files_digest(base.out)
    assert reference == files_digest(two.out)
    # interrupt: lose one frame's label and a half-written image; the rerun restores exactly the same files
    prefix = base.prefix(1, 0)
    Path(f"{prefix}_label.json").unlink()
    Path(f"{prefix}_depth.png").write_bytes(b"half")
    summary = generate(base, progress=False)
    assert summary.frames_written == 1 and summary.frames_skipped == 3
    assert files_digest(base.out) == reference


def test_resuming_with_other_settings_is_refused(tmp_path):
    config = GenerateConfig(out=tmp_path, split="val", frames=1, seed=1, scene=SMALL)
    generate(config, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        generate(replace(config, seed=2), progress=False)


def test_a_folder_not_written_by_generate_is_never_written_into(tmp_path):
    from acr_pose_core.cli.main import main

    theirs = tmp_path / "nocs" / "val" / "00000" / "0000_color.png"  # a real NOCS data set's layout
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"their frame")
    with pytest.raises(FileExistsError, match=r"val holds 00000 but no generation\.json"):
        generate(GenerateConfig(out=tmp_path / "nocs", split="val", frames=1, scene=SMALL), progress=False)
    assert theirs.read_bytes() == b"their frame" and sorted(p.name for p in (tmp_path / "nocs").iterdir()) == ["val"]
    models = tmp_path / "models" / "obj_models" / "val.npz"
    models.parent.mkdir(parents=True)
    models.write_bytes(b"their models")
    assert main(["generate", "--split", "val", "--frames", "1", "--out", str(tmp_path / "models")]) == 2
    assert models.read_bytes() == b"their models"


def test_real_profile_has_sensor_noise_and_holes(tmp_path):
    config = GenerateConfig(out=tmp_path, profile="real", split="val", frames=1, seed=3, scene=SMALL)
    generate(config, progress=False)
    frame = nocs_format.read_frame(config.prefix(0, 0))
    np.testing.assert_allclose(frame.label.intrinsics[0, 0], 591.0125)
    objects = frame.mask != nocs_format.BACKGROUND_ID
    holes = (frame.depth == 0) & objects
    assert 0 < holes.sum() < 0.5 * objects.sum()


# ---------------------------------------------------------------- sensor models


def flat_frame(depth: np.ndarray, luminance: float = 0.5, cos_incidence: float = 1.0):
    """A RenderedFrame of a given exact depth map, facing the camera, of uniform albedo."""
    from acr_pose_core.synth.render import RenderedFrame

    h, w = depth.shape
    return RenderedFrame(
        color=np.full((h, w, 3), 128, np.uint8),
        depth=depth.astype(np.float32),
        mask=np.full((h, w), 255, np.uint8),
        coord=np.zeros((h, w, 3), np.float32),
        surface=np.zeros((h, w), np.int16),
        part=np.full((h, w), -1, np.int16),
        cos_incidence=np.full((h, w), cos_incidence, np.float32),
        albedo_luminance=np.full((h, w), luminance, np.float32),
    )


def test_camera_profile_is_exact_to_the_millimetre():
    from acr_pose_core.synth.sensor import sensor_color, sensor_depth_mm

    depth = np.full((40, 50), 0.7234)
    depth[:, :10] = 0.0  # no surface
    frame = flat_frame(depth)
    mm = sensor_depth_mm(frame, "camera", np.random.default_rng(0))
    assert mm.dtype == np.uint16
    assert (mm[:, 10:] == 723).all() and (mm[:, :10] == 0).all()
    np.testing.assert_array_equal(sensor_color(frame.color, "camera", np.random.default_rng(0)), frame.color)


def test_real_profile_noise_grows_with_distance_and_holes_follow_the_scene():
    from acr_pose_core.synth.sensor import sensor_color, sensor_depth_mm

    rng = np.random.default_rng(0)
    near, far = np.full((100, 100), 0.6), np.full((100, 100), 2.5)
    err_near = sensor_depth_mm(flat_frame(near), "real", rng)[20:80, 20:80].astype(float) - 600
    err_far = sensor_depth_mm(flat_frame(far), "real", rng)[20:80, 20:80].astype(float) - 2500
    valid_near, valid_far = err_near > -600, err_far > -2500
    assert valid_near.mean() > 0.95 and valid_far.mean() > 0.95  # flat, facing, mid-grey: few holes
    assert err_near[valid_near].std() < 3 and err_far[valid_far].std() > 3 * err_near[valid_near].std()
    assert abs(err_far[valid_far].mean()) < 1.5  # unbiased
    step = np.full((100, 100), 0.8)
    step[:, 50:] = 1.4  # a depth discontinuity down the middle
    holes = sensor_depth_mm(flat_frame(step), "real", rng) == 0
    assert holes[:, 48:52].mean() > 0.5 and holes[:, 10:40].mean() < 0.05
    grazing = sensor_depth_mm(flat_frame(near, cos_incidence=0.05), "real", rng)
    dark = sensor_depth_mm(flat_frame(near, luminance=0.01), "real", rng)
    assert (grazing == 0).mean() > 0.95 and 0.3 < (dark == 0).mean() < 0.9
    noisy = sensor_color(np.full((50, 50, 3), 128, np.uint8), "real", rng).astype(float)
    assert 2 < noisy.std() < 4
    with pytest.raises(ValueError, match="profile"):
        sensor_depth_mm(flat_frame(near), "kinect", rng)


def test_generate_command(tmp_path, capsys):
    from acr_pose_core.cli.main import main

    args = ["generate", "--out", str(tmp_path), "--split", "val", "--frames", "2", "--frames-per-scene", "2"]
    assert main(args) == 0
    assert "2 frames written" in capsys.readouterr().out
    assert main(args) == 0  # a second run finds everything there
    assert "0 frames written, 2 already there" in capsys.readouterr().out
    assert len(nocs_format.list_frames(tmp_path / "val")) == 2
    assert main(["generate", "--out", str(tmp_path), "--frames", "0"]) == 2


def test_bad_settings_are_refused_before_anything_is_written(tmp_path):
    from acr_pose_core.cli.main import main

    assert main(["generate", "--out", str(tmp_path / "a"), "--seed", "-1", "--frames", "1"]) == 2
    assert not (tmp_path / "a").exists()  # no generation.json with seed -1 blocking the next run
    with pytest.raises(ValueError, match="model_points"):
        GenerateConfig(out=tmp_path, model_points=0)


@pytest.mark.parametrize("content", ['{"seed": 1, "spl', "[1, 2]"])
def test_a_damaged_generation_record_is_an_error_that_names_it(tmp_path, content):
    record = tmp_path / "val" / "generation.json"
    record.parent.mkdir()
    record.write_text(content)
    with pytest.raises(ValueError, match=r"val/generation\.json: "):
        generate(GenerateConfig(out=tmp_path, split="val", frames=1, scene=SMALL), progress=False)


def _report_threads(args):
    """Stands in for the generation worker: records the math-library threads the worker process runs with."""
    import json
    import os

    from threadpoolctl import threadpool_info

    config, scene_index = args
    threads = {"blas": max(p["num_threads"] for p in threadpool_info()), "omp": os.environ.get("OMP_NUM_THREADS")}
    (config.out / f"threads_{scene_index}.json").write_text(json.dumps(threads))
    return scene_index, 0, config.frames_in_scene(scene_index)


def test_each_worker_process_runs_one_math_library_thread(tmp_path, monkeypatch):
    import json

    import acr_pose_core.synth.generate as generate_module

    monkeypatch.setattr(generate_module, "_worker", _report_threads)  # forked workers run the patched module
    generate(GenerateConfig(out=tmp_path, split="val", frames=2, frames_per_scene=1, workers=2), progress=False)
    reports = [json.loads((tmp_path / f"threads_{k}.json").read_text()) for k in range(2)]
    assert reports == [{"blas": 1, "omp": "1"}] * 2


_HAS_CHILDREN_LIST = Path("/proc/self/task").exists() and any(Path("/proc/self/task").glob("*/children"))


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def _default_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_generating(out: Path):
    """``acr-pose generate --workers 2`` in its own session, once its two workers are writing frames."""
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "acr_pose_core.cli.main", "generate", "--out", str(out), "--split", "val",
               "--frames", "400", "--frames-per-scene", "2", "--workers", "2"]  # fmt: skip
    # Ctrl-C reaches the command as in a terminal even where this test runs with SIGINT ignored (a background job of
    # a non-interactive shell inherits SIG_IGN, and Python then installs no KeyboardInterrupt handler)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=_default_sigint)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("val/*/*_label.json")):
        time.sleep(0.2)
    workers = _children(process.pid)
    assert len(workers) == 2, workers
    return process, workers


@pytest.mark.skipif(not _HAS_CHILDREN_LIST, reason="reads the process tree from /proc/PID/task/PID/children")
def test_ctrl_c_stops_parent_and_workers_with_one_message(tmp_path):
    import os
    import signal

    process, workers = _start_generating(tmp_path)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.count("interrupted") == 1, stderr
    assert not any(_alive(pid) for pid in workers)


@pytest.mark.skipif(not _HAS_CHILDREN_LIST, reason="reads the process tree from /proc/PID/task/PID/children")
def test_workers_stop_when_only_the_parent_is_killed(tmp_path):
    import os
    import signal
    import time

    process, workers = _start_generating(tmp_path)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    deadline = time.monotonic() + 60  # each worker finishes the frame it is on, then stops
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)
    written = len(list(tmp_path.glob("val/*/*_label.json")))
    time.sleep(1.0)
    assert len(list(tmp_path.glob("val/*/*_label.json"))) == written < 400
