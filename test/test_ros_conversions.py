"""The node's plain functions, without ROS: image and camera-info conversion, external masks, parameters, the
synchroniser and the newest-wins hand-off. Messages are stand-ins with the messages' fields."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace as Msg

import numpy as np
import pytest

from acr_pose_core.detection import Detections
from acr_pose_ros.conversions import (
    MessageError,
    color_from_image,
    depth_from_image,
    detections_from_labels,
    image_array,
    image_fields,
    intrinsics_from_camera_info,
)
from acr_pose_ros.frame import frame_inputs, select_detections
from acr_pose_ros.params import RUNTIME, NodeParameters, ParameterError, load_parameter_file
from acr_pose_ros.sync import ApproximateSync, LatestSlot

REPO = Path(__file__).resolve().parents[1]


def image(pixels: np.ndarray, encoding: str, pad: int = 0, big_endian: bool = False) -> Msg:
    """An Image stand-in, rows padded with ``pad`` junk bytes, 16/32-bit data in the byte order asked for."""
    pixels = np.asarray(pixels)
    if big_endian:
        pixels = pixels.astype(pixels.dtype.newbyteorder(">"))
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(pixels.shape[0], -1)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    return Msg(
        height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, step=padded.shape[1],
        is_bigendian=int(big_endian), data=padded.tobytes(),
    )  # fmt: skip


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize("pad", [0, 3])
def test_colour_encodings_give_rgb(rgb, pad):
    assert np.array_equal(color_from_image(image(rgb, "rgb8", pad)), rgb)
    assert np.array_equal(color_from_image(image(rgb[..., ::-1], "bgr8", pad)), rgb)
    alpha = np.full((5, 7, 1), 9, np.uint8)
    assert np.array_equal(color_from_image(image(np.concatenate([rgb, alpha], 2), "rgba8", pad)), rgb)
    assert np.array_equal(color_from_image(image(np.concatenate([rgb[..., ::-1], alpha], 2), "bgra8", pad)), rgb)
    grey = color_from_image(image(rgb[..., 0], "mono8", pad))
    assert grey.shape == (5, 7, 3) and np.array_equal(grey[..., 2], rgb[..., 0])


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("pad", [0, 2])
def test_depth_encodings_honour_step_and_byte_order(big_endian, pad):
    mm = np.array([[0, 1, 258], [1000, 65535, 4097]], dtype=np.uint16)
    depth, scale = depth_from_image(image(mm, "16UC1", pad, big_endian))
    assert depth.dtype == np.uint16 and np.array_equal(depth, mm) and scale == 0.001
    metres = np.array([[np.nan, 0.5, 1.25], [np.inf, -1.0, 3.0]], dtype=np.float32)
    depth, scale = depth_from_image(image(metres, "32FC1", pad, big_endian))
    assert depth.dtype == np.float32 and np.array_equal(depth, metres, equal_nan=True) and scale == 1.0
    assert depth_from_image(image(mm, "16UC1"), depth_scale=0.0001)[1] == 0.0001


def test_image_fields_round_trip():
    for pixels, encoding in [
        (np.arange(24, dtype=np.uint8).reshape(2, 4, 3), "rgb8"),
        (np.arange(8, dtype=np.uint16).reshape(2, 4) * 300, "16UC1"),
        (np.linspace(0, 2, 8, dtype=np.float32).reshape(2, 4), "32FC1"),
    ]:
        assert np.array_equal(image_array(Msg(**image_fields(pixels, encoding))), pixels)
    with pytest.raises(MessageError, match="16UC1 needs"):
        image_fields(np.zeros((2, 2), np.float32), "16UC1")


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (
            Msg(height=2, width=2, encoding="yuv422", step=4, is_bigendian=0, data=bytes(8)),
            "unsupported image encoding",
        ),
        (Msg(height=2, width=2, encoding="rgb8", step=6, is_bigendian=0, data=bytes(7)), "data has 7 bytes"),
        (Msg(height=2, width=2, encoding="rgb8", step=5, is_bigendian=0, data=bytes(12)), "step 5 is shorter"),
        (Msg(height=0, width=2, encoding="rgb8", step=6, is_bigendian=0, data=b""), "0x2 pixels"),
    ],
)
def test_bad_images_are_refused_with_a_reason(msg, match):
    with pytest.raises(MessageError, match=match):
        color_from_image(msg)


def test_depth_encoding_rules():
    with pytest.raises(MessageError, match="unsupported image encoding 'rgb8'"):
        depth_from_image(image(np.zeros((2, 2, 3), np.uint8), "rgb8"))
    with pytest.raises(MessageError, match="no valid pixel"):
        depth_from_image(image(np.zeros((2, 2), np.uint16), "16UC1"))
    with pytest.raises(MessageError, match="no valid pixel"):
        depth_from_image(image(np.full((2, 2), np.nan, np.float32), "32FC1"))


def info(k, height=4, width=6) -> Msg:
    return Msg(k=k, height=height, width=width)


def test_camera_info():
    K = [500.0, 0.0, 3.0, 0.0, 510.0, 2.0, 0.0, 0.0, 1.0]
    camera = intrinsics_from_camera_info(info(K), 4, 6)
    assert (camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height) == (500, 510, 3, 2, 6, 4)
    assert intrinsics_from_camera_info(info(K, 0, 0), 4, 6).width == 6  # size not filled in: the image's
    with pytest.raises(MessageError, match="is the camera calibrated"):
        intrinsics_from_camera_info(info([0.0] * 9), 4, 6)
    with pytest.raises(MessageError, match="for 4x6 images, the image is 8x6"):
        intrinsics_from_camera_info(info(K), 8, 6)
    with pytest.raises(MessageError, match="9 entries"):
        intrinsics_from_camera_info(info([]), 4, 6)
    with pytest.raises(MessageError, match="NaN"):
        intrinsics_from_camera_info(info([np.nan] + K[1:]), 4, 6)


def det2d(label: str, class_id: str | None, score: float = 0.9) -> Msg:
    results = [] if class_id is None else [Msg(hypothesis=Msg(class_id=class_id, score=score))]
    return Msg(id=label, results=results)


def test_external_label_masks():
    labels = np.array([[0, 4, 4], [7, 7, 2], [0, 0, 2]])
    found = detections_from_labels(
        labels, Msg(detections=[det2d("7", "mug", 0.8), det2d("", "2"), det2d("2", "person"), det2d("", None)])
    )
    # "7" names label 7; the second detection has no id so it is label 2 (index 1 + 1) with class id "2" (bowl);
    # the third names label 2 too but is not a NOCS category; the fourth (label 4) has no results: not posed.
    assert found.class_ids.tolist() == [6, 2] and found.scores.tolist() == [0.8, 0.9]
    assert np.array_equal(found.masks[0], labels == 7) and np.array_equal(found.masks[1], labels == 2)
    with pytest.raises(MessageError, match=r"labels \[4\] of the label image have no Detection2D"):
        detections_from_labels(labels, Msg(detections=[det2d("7", "mug"), det2d("2", "bowl")]))
    with pytest.raises(MessageError, match="names label 9, which has no pixel"):
        detections_from_labels(labels, Msg(detections=[det2d("9", "mug")]))


def test_frame_inputs_check_sizes_units_and_range(rgb):
    params = NodeParameters(min_depth=0.5, max_depth=2.0)
    K = [5.0, 0, 3, 0, 5, 2, 0, 0, 1]
    depth = np.full((5, 7), 1000, np.uint16)
    depth[0, 0], depth[0, 1], depth[0, 2] = 100, 2500, 0
    inputs = frame_inputs(image(rgb, "bgr8"), image(depth, "16UC1"), info(K, 5, 7), params)
    assert np.array_equal(inputs.rgb, rgb[..., ::-1]) and inputs.depth_scale == 0.001
    assert inputs.depth[0, :3].tolist() == [0, 0, 0] and (inputs.depth[1:] == 1000).all()  # out of range: missing
    assert inputs.detections is None
    with pytest.raises(MessageError, match="colour is 5x7 but depth is 4x7"):
        frame_inputs(image(rgb, "rgb8"), image(depth[:4], "16UC1"), info(K, 5, 7), params)
    with pytest.raises(MessageError, match="no depth pixel within"):
        frame_inputs(image(rgb, "rgb8"), image(depth * 0 + 3000, "16UC1"), info(K, 5, 7), params)
    with pytest.raises(MessageError, match="label image or its Detection2DArray is missing"):
        frame_inputs(image(rgb, "rgb8"), image(depth, "16UC1"), info(K, 5, 7), NodeParameters(mask_source="labels"))


def test_select_detections():
    masks = np.zeros((4, 3, 3), bool)
    for k in range(4):
        masks[k, k % 3, k % 3] = True
    found = Detections.from_masks(masks, ["mug", "bowl", "mug", "laptop"], [0.9, 0.2, 0.5, 0.95])
    chosen = select_detections(found, NodeParameters(score_threshold=0.3, categories=("mug", "laptop"), max_objects=2))
    assert chosen.class_ids.tolist() == [6, 5] and chosen.scores.tolist() == [0.9, 0.95]  # detection order kept
    assert len(select_detections(found, NodeParameters(score_threshold=0.0))) == 4


def test_parameter_file_is_the_defaults_and_rules_name_the_parameter(tmp_path):
    assert load_parameter_file(REPO / "config/pose.yaml") == NodeParameters()
    # and the README's table names each with its default
    table = [
        [cell.strip() for cell in line.split("|")[1:4]]
        for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("  | `")
    ]
    rows = {name.strip("`"): shown for name, shown, _ in table}
    assert set(rows) == set(NodeParameters.names())
    for name, _, meaning in table:  # the description the node declares (one owner: NodeParameters' metadata)
        name = name.strip("`")
        expected = NodeParameters.description(name) + (" (runtime)" if name in RUNTIME else "")
        assert meaning.replace("`", "") == expected, name
    defaults = NodeParameters().to_mapping()
    for name, shown in rows.items():
        value = defaults[name]
        expected = (
            "all six" if name == "categories" else f"`{str(value).lower() if isinstance(value, bool) else value}`"
        )
        assert shown == (expected if value != "" else '`""`'), name
    assert NodeParameters.from_mapping({"score_threshold": 1, "categories": ["mug"]}).score_threshold == 1.0
    for values, match in [
        ({"score_threshold": 1.5}, "'score_threshold' = 1.5"),
        ({"categories": ["mug", "cup"]}, "'categories'"),
        ({"mask_source": "sam"}, "'mask_source'"),
        ({"max_depth": 0.05}, "'max_depth'"),
        ({"publish_tf": "yes"}, "'publish_tf' = 'yes': must be bool"),
        ({"max_objects": 2.5}, "'max_objects' = 2.5: must be int"),
        ({"colour_topic": "x"}, "unknown parameters"),
    ]:
        with pytest.raises(ParameterError, match=match):
            NodeParameters.from_mapping(values)
    bad = tmp_path / "p.yaml"
    bad.write_text("other_node:\n  ros__parameters: {}\n")
    with pytest.raises(ParameterError, match="no 'acr_pose: ros__parameters:' section"):
        load_parameter_file(bad)


def stamped(sec: float, tag: str = "") -> Msg:
    ns = round(sec * 1e9)
    return Msg(header=Msg(stamp=Msg(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)), tag=tag)


def test_approximate_sync_pairs_within_slop_and_drops_older():
    out = []
    sync = ApproximateSync(3, queue_size=5, slop=0.02, callback=lambda *m: out.append([x.tag for x in m]))
    sync.add(0, stamped(1.000, "c1"))
    sync.add(1, stamped(1.010, "d1"))
    assert out == []  # camera info still missing
    sync.add(2, stamped(1.030, "i-far"))  # 30 ms from c1: outside the slop
    assert out == []
    sync.add(0, stamped(2.000, "c2"))
    sync.add(1, stamped(2.005, "d2"))
    sync.add(2, stamped(2.015, "i2"))
    assert out == [["c2", "d2", "i2"]]
    # Everything at or before the delivered set is gone: c1/d1 can no longer complete with a late info.
    sync.add(2, stamped(1.005, "i1-late"))
    assert out == [["c2", "d2", "i2"]]
    # The spread of the whole set counts, not only each message's distance to the newest one.
    sync.add(0, stamped(3.000, "c3"))
    sync.add(1, stamped(3.019, "d3"))
    sync.add(2, stamped(2.990, "i3"))  # within 20 ms of c3 but 29 ms from d3
    assert len(out) == 1
    sync.add(1, stamped(3.001, "d3b"))
    assert out[-1] == ["c3", "d3b", "i3"]


def test_approximate_sync_queue_size_evicts_the_oldest():
    out = []
    sync = ApproximateSync(2, queue_size=2, slop=0.001, callback=lambda *m: out.append([x.tag for x in m]))
    for t in (1.0, 2.0, 3.0):
        sync.add(0, stamped(t, f"c{t:.0f}"))
    sync.add(1, stamped(1.0, "d1"))  # c1 was evicted
    assert out == []
    sync.add(1, stamped(2.0, "d2"))
    assert out == [["c2", "d2"]]


def test_latest_slot_keeps_the_newest_and_counts_drops():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.take(timeout=0.01) is None
    assert slot.put(1) is False and slot.put(2) is True and slot.put(3) is True
    assert slot.take(timeout=0.01) == 3 and slot.dropped == 2
    got = []
    waiter = threading.Thread(target=lambda: got.append(slot.take(timeout=5.0)))
    waiter.start()
    slot.put(4)
    waiter.join(5.0)
    assert got == [4] and slot.dropped == 2
    slot.close()
    assert slot.take(timeout=5.0) is None
