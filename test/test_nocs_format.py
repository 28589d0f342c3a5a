"""Tests of acr_pose_core.data.nocs_format: round trips, hand-made files in the real datasets' encodings, the
reference pipeline's instance rules, atomic writing, SPD pickles, and one error per kind of bad file."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from acr_pose_core.data import nocs_format as nf
from acr_pose_core.data.nocs_format import (
    Frame,
    FrameLabel,
    FrameRejected,
    InstanceLabel,
    InstanceMeta,
    NocsFormatError,
    decode_coord,
    decode_depth,
    encode_coord,
    encode_depth_camera3,
    frame_complete,
    frame_instances,
    list_frames,
    mask_bbox,
    read_coord_at,
    read_frame,
    read_models,
    write_frame,
    write_models,
)

H, W = 48, 64
COORD_TOL = 0.5 / 255 + 1e-6


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _sRT(rng: np.random.Generator, scale: float) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = scale * _rotation(rng)
    out[:3, 3] = rng.uniform(-0.3, 0.3, 3) + [0, 0, 1.0]
    return out


def synthetic_frame(seed: int = 0, synset: bool = False) -> Frame:
    """A consistent frame: mug 1 and bottle 2 (labelled), distractor 3, random NOCS coords on the instances."""
    rng = np.random.default_rng(seed)
    mask = np.full((H, W), 255, dtype=np.uint8)
    mask[5:20, 4:30] = 1
    mask[25:45, 10:22] = 2
    mask[30:40, 40:60] = 3
    coord = np.zeros((H, W, 3), dtype=np.float32)
    fg = mask != 255
    coord[fg] = rng.uniform(-0.5, 0.5, (int(fg.sum()), 3))
    depth = rng.integers(300, 3000, (H, W)).astype(np.uint16)
    depth[0, :] = 0  # some pixels without depth
    depth[7, 7] = 32000  # next to the CAMERA no-depth value
    meta = [
        InstanceMeta(1, 6, "mug_0001", "03797390" if synset else None),
        InstanceMeta(2, 1, "bottle_0002", "02876657" if synset else None),
        InstanceMeta(3, 0, "distractor_7", "02942699" if synset else None),
    ]
    instances = []
    for inst_id, class_id, model_id, scale in ((1, 6, "mug_0001", 0.21), (2, 1, "bottle_0002", 0.3)):
        instances.append(
            InstanceLabel(
                inst_id=inst_id,
                class_id=class_id,
                model_id=model_id,
                sRT=_sRT(rng, scale),
                scale=scale,
                size=rng.uniform(0.3, 0.7, 3),
                handle_visible=inst_id != 1,
                bbox=mask_bbox(mask == inst_id),
            )
        )
    label = FrameLabel(
        instances=instances,
        intrinsics=nf.NOCS_CAMERA_INTRINSICS,
        image_size=(H, W),
        info={"seed": seed, "profile": "camera", "nested": {"a": [1, 2.5]}, "np": np.float32(0.5)},
    )
    color = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return Frame(color=color, depth=depth, mask=mask, coord=coord, meta=meta, label=label)


def _png_mode(path) -> str:
    with Image.open(path) as im:
        return im.mode


def _save(path, array, mode=None) -> None:
    """Write ``array`` as a PNG with Pillow, channels in the order given (RGB for 3 channels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    im.save(path, format="PNG")


def _assert_label_equal(a: FrameLabel, b: FrameLabel) -> None:
    assert a.image_size == b.image_size
    np.testing.assert_array_equal(a.intrinsics, b.intrinsics)
    assert len(a.instances) == len(b.instances)
    for x, y in zip(a.instances, b.instances, strict=True):
        assert (x.inst_id, x.class_id, x.model_id, x.scale, x.handle_visible) == (
            y.inst_id,
            y.class_id,
            y.model_id,
            y.scale,
            y.handle_visible,
        )
        np.testing.assert_array_equal(x.sRT, y.sRT)  # exact: JSON floats round-trip
        np.testing.assert_array_equal(x.size, y.size)
        np.testing.assert_array_equal(x.bbox, y.bbox)
        assert x.sRT.dtype == np.float64 and x.bbox.dtype == np.int64


# ---------------------------------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("depth_encoding", ["uint16", "camera3"])
def test_write_read_round_trip(tmp_path, depth_encoding):
    frame = synthetic_frame(synset=depth_encoding == "camera3")
    prefix = tmp_path / "train" / "00003" / "0007"
    write_frame(prefix, frame, depth_encoding=depth_encoding)
    assert _png_mode(tmp_path / "train/00003/0007_depth.png") == ("I;16" if depth_encoding == "uint16" else "RGB")

    back = read_frame(prefix)
    assert back.prefix == prefix
    np.testing.assert_array_equal(back.color, frame.color)
    np.testing.assert_array_equal(back.depth, frame.depth)
    np.testing.assert_array_equal(back.mask, frame.mask)
    assert back.color.dtype == np.uint8 and back.depth.dtype == np.uint16 and back.mask.dtype == np.uint8
    assert back.coord.dtype == np.float32 and back.coord.shape == (H, W, 3)
    fg = frame.mask != 255
    assert np.abs(back.coord[fg] - frame.coord[fg]).max() <= COORD_TOL
    assert np.all(back.coord[~fg] == 0)
    assert back.meta == frame.meta
    _assert_label_equal(back.label, frame.label)
    assert back.label.info == {"seed": 0, "profile": "camera", "nested": {"a": [1, 2.5]}, "np": 0.5}

    no_coord = read_frame(prefix, with_coord=False)
    assert no_coord.coord is None

    rows, cols = np.nonzero(fg)
    picked = read_coord_at(prefix, rows[::3], cols[::3], (H, W))  # only these pixels decoded
    assert picked.dtype == np.float32
    np.testing.assert_array_equal(picked, back.coord[rows[::3], cols[::3]])  # bit for bit
    with pytest.raises(NocsFormatError, match="_coord.png: image is"):
        read_coord_at(prefix, rows, cols, (H + 1, W))


def test_coord_encoding_round_trip_and_corners():
    rng = np.random.default_rng(1)
    nocs = rng.uniform(-0.5, 0.5, (16, 16, 3))
    valid = rng.random((16, 16)) < 0.7
    rgb = encode_coord(nocs, valid)
    assert rgb.dtype == np.uint8 and np.all(rgb[~valid] == 0)
    assert np.abs(decode_coord(rgb)[valid] - nocs[valid]).max() <= COORD_TOL
    corners = np.array([[[-0.5, -0.5, 0.5], [0.5, 0.5, -0.5], [0.0, 0.0, 0.0]]])
    np.testing.assert_array_equal(
        encode_coord(corners, np.ones((1, 3), bool))[0], [[0, 0, 0], [255, 255, 255]] + [[128] * 3]
    )


def test_depth_encoding_camera3():
    depth = np.array([[0, 1, 256, 1000, 65535]], dtype=np.uint16)
    rgb = encode_depth_camera3(depth)
    # R = low byte, G = high byte (OpenCV channels 2 and 1); no depth is stored as 32001 = 125·256 + 1
    np.testing.assert_array_equal(rgb[0], [[1, 125, 0], [1, 0, 0], [0, 1, 0], [232, 3, 0], [255, 255, 0]])
    np.testing.assert_array_equal(decode_depth(rgb), depth)
    with pytest.raises(ValueError, match="32001"):
        encode_depth_camera3(np.array([[32001]], dtype=np.uint16))
    with pytest.raises(ValueError):
        decode_depth(np.zeros((2, 2), np.uint8))  # 8-bit single channel is neither encoding


# ---------------------------------------------------------------------------------------------------------------------
# Hand-made files, stored as the real datasets store them


def _opencv_bgr_to_rgb(bgr: np.ndarray) -> np.ndarray:
    return bgr[..., ::-1].copy()


def test_hand_made_camera_frame(tmp_path):
    prefix = tmp_path / "CAMERA" / "val" / "00000" / "0000"
    # CAMERA depth as OpenCV sees it (B, G, R): channel 1 = high byte, channel 2 = low byte, channel 0 unused (junk).
    bgr = np.array(
        [
            [[99, 3, 232], [0, 125, 1], [0, 255, 255]],  # 3·256+232 = 1000 mm; 32001 = no depth; 65535
            [[7, 1, 0], [0, 0, 1], [0, 0, 0]],  # 256 mm; 1 mm; 0
        ],
        dtype=np.uint8,
    )
    _save(tmp_path / "CAMERA/val/00000/0000_depth.png", _opencv_bgr_to_rgb(bgr))  # Pillow writes RGB order
    color = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)  # RGBA: alpha dropped
    _save(tmp_path / "CAMERA/val/00000/0000_color.png", color)
    mask_rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    mask_rgb[..., 0] = [[1, 2, 255], [255, 1, 7]]  # R = OpenCV channel 2 holds the ids
    mask_rgb[..., 1] = 9  # other channels hold something else
    mask_rgb[..., 2] = 200
    _save(tmp_path / "CAMERA/val/00000/0000_mask.png", mask_rgb)
    coord_rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    coord_rgb[0, 0] = [255, 0, 0]
    coord_rgb[0, 1] = [128, 64, 255]
    coord_rgb[1, 1] = [0, 255, 51]
    coord_rgb[1, 2] = [10, 20, 30]
    coord_rgb[0, 2] = [77, 77, 77]  # background pixel: decoded as 0 whatever is stored
    _save(tmp_path / "CAMERA/val/00000/0000_coord.png", coord_rgb)
    (tmp_path / "CAMERA/val/00000/0000_meta.txt").write_text(
        "1 6 03797390 1a97f3c83016abca21d0de04f408950f\n2 0 02876657 d851cbc873de1c4d3b6eb309177a6753\n"
        "7 1 02876657 ab6792cddc7c4c83afbf338b16b43f53\n"
    )

    frame = read_frame(prefix)
    np.testing.assert_array_equal(frame.depth, [[1000, 0, 65535], [256, 1, 0]])
    np.testing.assert_array_equal(frame.color, color[..., :3])
    np.testing.assert_array_equal(frame.mask, [[1, 2, 255], [255, 1, 7]])
    expected = np.zeros((2, 3, 3))
    expected[0, 0] = [0.5, -0.5, 0.5]  # (255/255 − 0.5, 0/255 − 0.5, 1 − 0/255 − 0.5)
    expected[0, 1] = [128 / 255 - 0.5, 64 / 255 - 0.5, -0.5]
    expected[1, 1] = [-0.5, 0.5, 0.5 - 0.2]  # 51/255 = 0.2
    expected[1, 2] = [10 / 255 - 0.5, 20 / 255 - 0.5, 0.5 - 30 / 255]
    np.testing.assert_allclose(frame.coord, expected, atol=1e-6)
    assert frame.meta == [
        InstanceMeta(1, 6, "1a97f3c83016abca21d0de04f408950f", "03797390"),
        InstanceMeta(2, 0, "d851cbc873de1c4d3b6eb309177a6753", "02876657"),
        InstanceMeta(7, 1, "ab6792cddc7c4c83afbf338b16b43f53", "02876657"),
    ]
    assert frame.label is None and not frame_complete(prefix)


def test_hand_made_real_frame(tmp_path):
    prefix = tmp_path / "Real" / "test" / "scene_1" / "0000"
    depth = np.array([[0, 523, 1234], [65535, 32001, 7]], dtype=np.uint16)  # 32001 is a depth here, not "none"
    _save(tmp_path / "Real/test/scene_1/0000_depth.png", depth)
    assert _png_mode(tmp_path / "Real/test/scene_1/0000_depth.png") == "I;16"
    _save(tmp_path / "Real/test/scene_1/0000_color.png", np.full((2, 3, 3), 17, np.uint8))
    _save(tmp_path / "Real/test/scene_1/0000_mask.png", np.array([[1, 255, 255], [2, 2, 255]], np.uint8))
    _save(tmp_path / "Real/test/scene_1/0000_coord.png", np.full((2, 3, 3), 51, np.uint8))
    (tmp_path / "Real/test/scene_1/0000_meta.txt").write_text("1 1 bottle_red_stanford_norm\n2 6 mug2_scene3_norm\n")
    frame = read_frame(prefix)
    np.testing.assert_array_equal(frame.depth, depth)
    np.testing.assert_array_equal(frame.mask, [[1, 255, 255], [2, 2, 255]])
    fg = frame.mask != 255
    np.testing.assert_allclose(frame.coord[fg], np.tile([0.2 - 0.5, 0.2 - 0.5, 0.5 - 0.2], (3, 1)), atol=1e-6)
    assert frame.meta == [InstanceMeta(1, 1, "bottle_red_stanford_norm"), InstanceMeta(2, 6, "mug2_scene3_norm")]


def test_reference_reader_agrees(tmp_path):
    """The reference readers' own lines (NOCS / SPD, with OpenCV) on our written files give what we read."""
    cv2 = pytest.importorskip("cv2")
    frame = synthetic_frame(synset=True)
    prefix = tmp_path / "CAMERA" / "train" / "00000" / "0000"
    write_frame(prefix, frame, depth_encoding="camera3")
    ours = read_frame(prefix)
    p = str(prefix)
    depth = cv2.imread(p + "_depth.png", -1)
    depth = depth.astype(np.int32)  # numpy 1's value-based casting did this inside `depth[:, :, 1] * 256`
    depth16 = depth[:, :, 1] * 256 + depth[:, :, 2]
    depth16 = np.where(depth16 == 32001, 0, depth16).astype(np.uint16)
    np.testing.assert_array_equal(depth16, ours.depth)
    mask = cv2.imread(p + "_mask.png")[:, :, 2]
    np.testing.assert_array_equal(mask, ours.mask)
    coord = cv2.imread(p + "_coord.png")[:, :, :3][:, :, (2, 1, 0)]
    coord = np.array(coord, dtype=np.float32) / 255
    coord[:, :, 2] = 1 - coord[:, :, 2]
    coord = coord - 0.5
    fg = mask != 255
    np.testing.assert_array_equal(coord[fg], ours.coord[fg])  # bit for bit
    np.testing.assert_array_equal(cv2.imread(p + "_color.png")[:, :, ::-1], ours.color)


# ---------------------------------------------------------------------------------------------------------------------
# Composed depth


def test_composed_depth_replaces_rendered_depth(tmp_path):
    frame = synthetic_frame()
    prefix = tmp_path / "CAMERA" / "train" / "00012" / "0003"
    write_frame(prefix, frame, depth_encoding="camera3")
    composed = np.full((H, W), 777, dtype=np.uint16)
    composed[3, 4] = 0
    composed_file = tmp_path / "camera_full_depths" / "train" / "00012" / "0003_composed.png"
    _save(composed_file, composed)
    assert nf.composed_depth_path(tmp_path / "camera_full_depths", prefix) == composed_file
    for source in (tmp_path / "camera_full_depths", composed_file):
        np.testing.assert_array_equal(read_frame(prefix, composed_depth=source).depth, composed)
    np.testing.assert_array_equal(read_frame(prefix).depth, frame.depth)
    with pytest.raises(NocsFormatError, match="0003_composed.png"):
        read_frame(tmp_path / "CAMERA" / "train" / "00012" / "0003", composed_depth=tmp_path / "elsewhere")


# ---------------------------------------------------------------------------------------------------------------------
# The reference pipeline's instance rules


def test_frame_instances_rules():
    frame = synthetic_frame()
    frame.mask[2:4, 50:54] = 9  # an id in the mask without a meta line
    frame.depth[frame.mask == 9] = 1000
    kept = frame_instances(frame)
    assert [o.inst_id for o in kept] == [1, 2]  # distractor 3 and unlisted 9 skipped
    mug = kept[0]
    assert (mug.class_id, mug.model_id) == (6, "mug_0001")
    np.testing.assert_array_equal(mug.bbox, [5, 4, 20, 30])
    assert mug.mask.dtype == bool and mug.mask.sum() == 15 * 26
    assert mug.num_valid_depth == 15 * 26
    assert mug.label is frame.label.instances[0]

    # bottle: 20×12 = 240 pixels; leave 63 with depth -> skipped at the default 64, kept at 63
    ys, xs = np.nonzero(frame.mask == 2)
    frame.depth[ys[63:], xs[63:]] = 0
    assert [o.inst_id for o in frame_instances(frame)] == [1]
    assert [o.num_valid_depth for o in frame_instances(frame, min_depth_pixels=63)] == [15 * 26, 63]
    assert [o.inst_id for o in frame_instances(frame, exclude_models={"mug_0001"}, min_depth_pixels=63)] == [2]
    # a meta line whose id is not in the mask is skipped
    frame.meta.append(InstanceMeta(42, 4, "can_0001"))
    assert [o.inst_id for o in frame_instances(frame, min_depth_pixels=63)] == [1, 2]


def _big_frame(box_h: int, box_w: int, class_id: int = 4) -> Frame:
    h, w = 480, 640
    mask = np.full((h, w), 255, dtype=np.uint8)
    mask[10 : 10 + box_h, 5 : 5 + box_w] = 1
    mask[0:10, 0:10] = 2
    depth = np.full((h, w), 900, dtype=np.uint16)
    meta = [InstanceMeta(2, 1, "b"), InstanceMeta(1, class_id, "big")]
    return Frame(
        np.zeros((h, w, 3), np.uint8), depth, mask, None, meta, prefix=nf.Path("/data/CAMERA/train/00001/0002")
    )


@pytest.mark.parametrize(("box_h", "box_w"), [(100, 601), (441, 100)])
def test_broken_render_rejects_the_frame(box_h, box_w):
    with pytest.raises(FrameRejected, match="0002_mask.png"):
        frame_instances(_big_frame(box_h, box_w))
    assert issubclass(FrameRejected, NocsFormatError)


def test_big_but_legal_boxes_and_big_distractors_pass():
    assert [o.inst_id for o in frame_instances(_big_frame(440, 600))] == [2, 1]
    assert [o.inst_id for o in frame_instances(_big_frame(470, 630, class_id=0))] == [2]  # reference: class 0 first


# ---------------------------------------------------------------------------------------------------------------------
# Atomic writing and completeness


def test_complete_only_after_write_frame(tmp_path):
    frame = synthetic_frame()
    prefix = tmp_path / "val" / "00000" / "0000"
    label = frame.label
    frame.label = None
    write_frame(prefix, frame)  # every file but the label
    assert (tmp_path / "val/00000/0000_coord.png").exists() and not frame_complete(prefix)
    frame.label = label
    write_frame(prefix, frame)
    assert frame_complete(prefix)
    names = sorted(os.listdir(tmp_path / "val/00000"))
    assert names == [f"0000_{s}" for s in ("color.png", "coord.png", "depth.png", "label.json", "mask.png", "meta.txt")]


def test_interrupted_rewrite_is_not_complete(tmp_path, monkeypatch):
    frame = synthetic_frame()
    prefix = tmp_path / "00000" / "0000"
    write_frame(prefix, frame)
    assert frame_complete(prefix)
    calls = []

    def failing_png(array):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while writing the depth
        return real_png(array)

    real_png = nf._png_bytes
    monkeypatch.setattr(nf, "_png_bytes", failing_png)
    with pytest.raises(KeyboardInterrupt):
        write_frame(prefix, frame)
    assert not frame_complete(prefix)
    assert not [n for n in os.listdir(tmp_path / "00000") if n.endswith(".tmp")]


def test_list_frames(tmp_path):
    frame = synthetic_frame()
    for p in ("train/00001/0001", "train/00000/0002", "train/00000/0000", "val/00000/0000"):
        write_frame(tmp_path / p, frame)
    (tmp_path / "train" / "notes_color.txt").write_text("not a frame")
    expected = [tmp_path / p for p in ("train/00000/0000", "train/00000/0002", "train/00001/0001", "val/00000/0000")]
    assert list_frames(tmp_path) == expected
    assert list_frames(tmp_path / "train" / "00001") == [tmp_path / "train/00001/0001"]
    with pytest.raises(NocsFormatError, match="missing_root"):
        list_frames(tmp_path / "missing_root")


# ---------------------------------------------------------------------------------------------------------------------
# Bad files: each raises NocsFormatError naming the file


def _rewrite_label(prefix, edit):
    path = prefix.parent / f"{prefix.name}_label.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _write_meta(prefix, text):
    (prefix.parent / f"{prefix.name}_meta.txt").write_text(text)


BAD_CASES = {
    "missing mask": ("_mask.png", lambda p: (p.parent / f"{p.name}_mask.png").unlink()),
    "missing meta": ("_meta.txt", lambda p: (p.parent / f"{p.name}_meta.txt").unlink()),
    "missing depth": ("_depth.png", lambda p: (p.parent / f"{p.name}_depth.png").unlink()),
    "not a png": ("_coord.png", lambda p: (p.parent / f"{p.name}_coord.png").write_text("hello")),
    "8-bit grey depth": ("_depth.png", lambda p: _save(p.parent / f"{p.name}_depth.png", np.zeros((H, W), np.uint8))),
    "16-bit mask": ("_mask.png", lambda p: _save(p.parent / f"{p.name}_mask.png", np.zeros((H, W), np.uint16))),
    "grey colour": ("_color.png", lambda p: _save(p.parent / f"{p.name}_color.png", np.zeros((H, W), np.uint8))),
    "16-bit coord": ("_coord.png", lambda p: _save(p.parent / f"{p.name}_coord.png", np.zeros((H, W), np.uint16))),
    "small coord": ("_coord.png", lambda p: _save(p.parent / f"{p.name}_coord.png", np.zeros((H, W - 1, 3), np.uint8))),
    "tall depth": ("_depth.png", lambda p: _save(p.parent / f"{p.name}_depth.png", np.zeros((H + 1, W), np.uint16))),
    "meta field count": ("_meta.txt", lambda p: _write_meta(p, "1 6\n")),
    "meta five fields": ("_meta.txt", lambda p: _write_meta(p, "1 6 a b c\n")),
    "meta non-integer id": ("_meta.txt", lambda p: _write_meta(p, "one 6 mug\n")),
    "meta non-integer class": ("_meta.txt", lambda p: _write_meta(p, "1 6.0 mug\n")),
    "meta class 7": ("_meta.txt", lambda p: _write_meta(p, "1 7 mug\n")),
    "meta class -1": ("_meta.txt", lambda p: _write_meta(p, "1 -1 mug\n")),
    "meta id 255": ("_meta.txt", lambda p: _write_meta(p, "255 1 mug\n")),
    "meta duplicate id": ("_meta.txt", lambda p: _write_meta(p, "1 6 mug\n2 1 bottle\n1 6 mug\n")),
    "label sRT 3x4": ("_label.json", lambda p: _rewrite_label(p, lambda d: d["instances"][0]["sRT"].pop())),
    "label size 2": ("_label.json", lambda p: _rewrite_label(p, lambda d: d["instances"][1]["size"].pop())),
    "label bbox 3": ("_label.json", lambda p: _rewrite_label(p, lambda d: d["instances"][1]["bbox"].pop())),
    "label intrinsics": ("_label.json", lambda p: _rewrite_label(p, lambda d: d["intrinsics"].pop())),
    "label image size": ("_label.json", lambda p: _rewrite_label(p, lambda d: d.update(image_size=[W, H]))),
    "label missing key": ("_label.json", lambda p: _rewrite_label(p, lambda d: d["instances"][0].pop("scale"))),
    "label class vs meta": ("_label.json", lambda p: _rewrite_label(p, lambda d: d["instances"][0].update(class_id=5))),
    "label scale vs sRT": ("_label.json", lambda p: _rewrite_label(p, lambda d: d["instances"][0].update(scale=0.5))),
    "label bool id": ("_label.json", lambda p: _rewrite_label(p, lambda d: d["instances"][0].update(inst_id=True))),
    "label not json": ("_label.json", lambda p: (p.parent / f"{p.name}_label.json").write_text("{")),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_file_names_the_file(tmp_path, case):
    suffix, damage = BAD_CASES[case]
    prefix = tmp_path / "train" / "00000" / "0005"
    write_frame(prefix, synthetic_frame())
    damage(prefix)
    with pytest.raises(NocsFormatError) as info:
        read_frame(prefix)
    assert f"0005{suffix}" in str(info.value), str(info.value)


def test_write_frame_refuses_inconsistent_frames(tmp_path):
    frame = synthetic_frame()
    frame.depth = frame.depth.astype(np.int32)
    with pytest.raises(ValueError, match="depth"):
        write_frame(tmp_path / "0000", frame)
    frame = synthetic_frame()
    frame.meta = frame.meta[1:]  # the mug's label has no meta line
    with pytest.raises(ValueError, match="meta"):
        write_frame(tmp_path / "0000", frame)
    with pytest.raises(ValueError, match="depth_encoding"):
        write_frame(tmp_path / "0000", synthetic_frame(), depth_encoding="uint8")
    assert not list(tmp_path.iterdir())


def test_record_shapes_are_checked():
    with pytest.raises(ValueError, match="sRT"):
        InstanceLabel(1, 6, "m", np.eye(3), 1.0, np.ones(3), True, np.zeros(4))
    with pytest.raises(ValueError, match="bbox"):
        InstanceLabel(1, 6, "m", np.eye(4), 1.0, np.ones(3), True, np.array([0.5, 0, 1, 1]))
    with pytest.raises(ValueError, match="intrinsics"):
        FrameLabel([], np.eye(4), (H, W))


# ---------------------------------------------------------------------------------------------------------------------
# SPD pickles and model point clouds


def _spd_label(rng, with_test_keys: bool) -> dict:
    rotations = np.stack([_rotation(rng) for _ in range(2)]).astype(np.float32)
    d = {
        "class_ids": [1, 6],
        "bboxes": np.array([[25, 10, 45, 22], [5, 4, 20, 30]], dtype=np.int32),
        "scales": np.array([0.3, 0.21], dtype=np.float32),
        "rotations": rotations,
        "translations": np.array([[0.1, 0.0, 0.8], [-0.1, 0.05, 0.9]], dtype=np.float32),
        "instance_ids": [2, 1],
        "model_list": ["bottle_0002", "mug_0001"],
    }
    if with_test_keys:
        d["size"] = np.array([[0.3, 0.9, 0.3], [0.7, 0.5, 0.5]])
        d["handle_visibility"] = np.array([1, 0])
    return d


@pytest.mark.parametrize("real", [True, False])
def test_spd_label_pickle(tmp_path, real):
    rng = np.random.default_rng(3)
    frame = synthetic_frame()
    frame.label = None
    prefix = tmp_path / ("Real/test/scene_1/0000" if real else "CAMERA/train/00000/0000")
    write_frame(prefix, frame)
    d = _spd_label(rng, with_test_keys=real)
    (prefix.parent / "0000_label.pkl").write_bytes(pickle.dumps(d))
    label = read_frame(prefix).label
    assert [i.inst_id for i in label.instances] == [2, 1]
    assert label.image_size == (H, W)
    bottle = label.instances[0]
    assert (bottle.class_id, bottle.model_id) == (1, "bottle_0002")
    assert bottle.scale == pytest.approx(0.3)
    np.testing.assert_allclose(bottle.sRT[:3, :3], np.float32(0.3) * d["rotations"][0].astype(np.float64))
    np.testing.assert_allclose(bottle.sRT[:3, 3], d["translations"][0])
    np.testing.assert_array_equal(bottle.sRT[3], [0, 0, 0, 1])
    np.testing.assert_array_equal(bottle.bbox, [25, 10, 45, 22])
    if real:
        np.testing.assert_array_equal(label.intrinsics, nf.NOCS_REAL_INTRINSICS)
        np.testing.assert_array_equal(label.instances[1].size, [0.7, 0.5, 0.5])
        assert [i.handle_visible for i in label.instances] == [True, False]
    else:
        np.testing.assert_array_equal(label.intrinsics, nf.NOCS_CAMERA_INTRINSICS)
        assert np.isnan(bottle.size).all() and all(i.handle_visible for i in label.instances)
    assert label.info["source"] == "spd_label_pkl"


def test_spd_label_pickle_refuses_code(tmp_path):
    frame = synthetic_frame()
    frame.label = None
    prefix = tmp_path / "Real/test/scene_1/0000"
    write_frame(prefix, frame)
    (prefix.parent / "0000_label.pkl").write_bytes(pickle.dumps({"instance_ids": os.getcwd}))
    with pytest.raises(NocsFormatError, match="0000_label.pkl"):
        read_frame(prefix)


def test_models_npz_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    models = {"mug_0001": rng.normal(size=(50, 3)), "file": rng.normal(size=(3, 3)), "allow_pickle": np.zeros((0, 3))}
    path = tmp_path / "obj_models" / "train.npz"
    write_models(path, models)
    back = read_models(path)
    assert list(back) == list(models)
    for k, v in models.items():
        assert back[k].dtype == np.float32
        np.testing.assert_array_equal(back[k], v.astype(np.float32))
    with np.load(path, allow_pickle=False) as npz:  # a plain npz
        assert sorted(npz.files) == sorted(models)
    assert not [n for n in os.listdir(path.parent) if n.endswith(".tmp")]


def test_models_spd_pickle(tmp_path):
    rng = np.random.default_rng(5)
    models = {
        "1a97f3c83016abca21d0de04f408950f": rng.normal(size=(1024, 3)),
        "bottle_red_stanford_norm": np.ones((8, 3)),
    }
    path = tmp_path / "obj_models" / "real_test.pkl"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps(models))
    back = read_models(path)
    assert list(back) == list(models)
    np.testing.assert_allclose(
        back["1a97f3c83016abca21d0de04f408950f"], models["1a97f3c83016abca21d0de04f408950f"], 1e-6
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("camera_val.pkl", pickle.dumps({"m": np.zeros((4, 2))}), "shape"),
        ("camera_val.pkl", pickle.dumps([np.zeros((4, 3))]), "dict"),
        ("camera_val.pkl", pickle.dumps({"m": os.getcwd}), "refusing"),
        ("train.npz", b"not a zip", "npz"),
        ("train.txt", b"", r"are \.npz or \.pkl"),
    ],
)
def test_bad_models_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(NocsFormatError, match=message) as info:
        read_models(path)
    assert name in str(info.value)
    with pytest.raises(NocsFormatError, match="missing"):
        read_models(tmp_path / "absent.npz")


def test_write_models_refuses_bad_points(tmp_path):
    with pytest.raises(NocsFormatError, match="shape"):
        write_models(tmp_path / "m.npz", {"m": np.zeros((4, 4))})
    with pytest.raises(NocsFormatError, match="non-finite"):
        write_models(tmp_path / "m.npz", {"m": np.full((4, 3), np.nan)})
    with pytest.raises(NocsFormatError, match="model id"):
        write_models(tmp_path / "m.npz", {"a b": np.zeros((4, 3))})
    assert not (tmp_path / "m.npz").exists()
