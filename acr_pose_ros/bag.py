"""Offline: a rosbag2 of RGB-D in, a rosbag2 of detections, ``/tf`` and markers out (``acr-pose bag IN OUT``).

Built on ``rosbags`` (pure Python, no ROS install): reads mcap or sqlite3 bags, writes one that ``ros2 bag play``
reads (play it beside the input bag). vision_msgs is not in rosbags' type stores, so :func:`typestore` registers
it from the definitions shipped in ``acr_pose_ros/interfaces/`` (the same ones the tests build for rclpy).

Every synchronised colour/depth/camera-info set is processed (offline nothing is dropped), with the node's
synchroniser, frame conversion and message builders; a frame the node would skip is skipped here too, counted and
reported at the end. Output messages are written at the colour message's log time and carry its header.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

HELP = "estimate the poses in a rosbag2 of RGB-D (mcap/sqlite3): a bag of Detection3DArray, /tf and markers"

__all__ = ["add_arguments", "interface_definitions", "main", "rosbags_types", "run", "typestore"]

INTERFACES = Path(__file__).resolve().parent / "interfaces"


def interface_definitions() -> dict[str, str]:
    """``{"vision_msgs/msg/Detection3D": text, ...}``: the .msg files in ``acr_pose_ros/interfaces/``."""
    return {
        f"{path.parents[1].name}/msg/{path.stem}": path.read_text(encoding="utf-8")
        for path in sorted(INTERFACES.glob("*/msg/*.msg"))
    }


@cache
def typestore(distro: str = "jazzy") -> Any:
    """rosbags' type store of ROS 2 ``distro`` (humble or jazzy) with vision_msgs registered."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    stores = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}
    if distro not in stores:
        raise ValueError(f"distro must be one of {', '.join(stores)}, got {distro!r}")
    store = get_typestore(stores[distro])
    types: dict[str, Any] = {}
    for name, text in interface_definitions().items():
        if name not in store.types:
            types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


_NUMPY = {
    "bool": np.bool_, "byte": np.uint8, "char": np.uint8, "octet": np.uint8,
    "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16, "int32": np.int32,
    "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64, "float32": np.float32, "float64": np.float64,
}  # fmt: skip


def rosbags_types(store: Any) -> Callable[[str], Callable[..., Any]]:
    """A ``types`` function for :mod:`acr_pose_ros.messages` over a rosbags type store: its constructors take any
    subset of fields as keywords, the rest get ROS defaults (0, "", empty sequences, nested defaults)."""
    from rosbags.typesys.base import Nodetype

    def default(node: tuple[Any, Any]) -> Any:
        kind, detail = node
        if kind == Nodetype.BASE:
            base = detail[0]
            return "" if base == "string" else (False if base == "bool" else (0.0 if "float" in base else 0))
        if kind == Nodetype.NAME:
            return construct(detail)()
        element, length = detail
        if element[0] == Nodetype.BASE and element[1][0] != "string":
            return np.zeros(length if kind == Nodetype.ARRAY else 0, dtype=_NUMPY[element[1][0]])
        return [default(element) for _ in range(length)] if kind == Nodetype.ARRAY else []

    def construct(name: str) -> Callable[..., Any]:
        cls = store.types[name]
        fields = store.fielddefs[name][1]

        def make(**values: Any) -> Any:
            unknown = set(values) - {f for f, _ in fields}
            if unknown:
                raise TypeError(f"{name} has no fields {sorted(unknown)}")
            return cls(**{f: values[f] if f in values else default(node) for f, node in fields})

        return make

    return construct


class BagError(ValueError):
    """A user error of ``acr-pose bag`` (a missing or damaged bag, an ambiguous topic): one line, exit status 2."""


def _pick(topics: dict[str, str], kind: str, want: str, given: str | None, hint: Sequence[str], avoid: str = "") -> str:
    """The topic of type ``kind`` for ``want``: ``given`` if set, else the only candidate whose name mentions one
    of ``hint`` (and not ``avoid``), else the only one of that type."""
    listing = "\n  ".join(f"{t} [{m}]" for t, m in sorted(topics.items())) or "(none)"
    if given:
        if topics.get(given) != kind:
            raise BagError(f"no {kind} topic {given!r}; the bag has:\n  {listing}")
        return given
    candidates = [t for t, m in topics.items() if m == kind]
    named = [t for t in candidates if any(h in t for h in hint) and not (avoid and avoid in t)]
    if len(named) == 1:
        return named[0]
    if len(candidates) == 1:
        return candidates[0]
    raise BagError(
        f"cannot tell the {want} topic ({len(candidates)} {kind} topics); name it with "
        f"--{want}-topic. The bag has:\n  {listing}"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="rosbag2 folder (mcap or sqlite3) with colour, depth, camera info")
    parser.add_argument("output", type=Path, help="rosbag2 folder to write (must not exist)")
    parser.add_argument("--color-topic", help="colour image topic (default: the Image topic naming color/rgb)")
    parser.add_argument("--depth-topic", help="depth image topic, aligned to colour (default: the one naming depth)")
    parser.add_argument("--info-topic", help="colour CameraInfo topic (default: the one naming color/rgb)")
    parser.add_argument("--model", help="model folder (default: the shipped default)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:<index>")
    parser.add_argument("--params", type=Path, help="a node parameter file (config/pose.yaml) for thresholds etc.")
    parser.add_argument("--distro", default="jazzy", choices=("humble", "jazzy"), help="message definitions")
    parser.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"), help="output storage")


def run(args: argparse.Namespace) -> int:
    try:
        from rosbags.rosbag2 import Reader, StoragePlugin, Writer
    except ImportError:
        raise BagError('acr-pose bag needs rosbags: pip install "acr_pose_ros[bag]" (or pip install rosbags)') from None
    from acr_pose_core.pipeline import PoseEstimator
    from acr_pose_ros.params import NodeParameters, load_parameter_file

    params = load_parameter_file(args.params) if args.params else NodeParameters()
    if params.mask_source != "segmenter":
        raise BagError("only mask_source 'segmenter' is supported offline")
    if not args.input.exists():
        raise BagError(f"no bag {args.input}")
    if args.output.exists():
        raise BagError(f"{args.output} exists; choose a new output folder")
    store = typestore(args.distro)
    types = rosbags_types(store)
    estimator = PoseEstimator(args.model or params.model or None, device=args.device)
    counts: Counter[str] = Counter()
    try:
        _convert(args, params, store, types, estimator, counts, Reader, StoragePlugin, Writer)
    except (BagError, KeyboardInterrupt):
        _remove_partial(args.output)
        raise
    except Exception as error:  # rosbags' reader and deserialiser raise many types for a damaged bag
        _remove_partial(args.output)
        raise BagError(f"{args.input}: not a readable rosbag2 ({type(error).__name__}: {error})") from None
    print(
        f"[bag] {counts['frames']} frames posed ({counts['objects']} objects), {counts['skipped']} skipped; "
        f"wrote {args.output} (/acr_pose/detections, /tf, /acr_pose/markers)"
    )
    if counts["frames"] == 0:
        print("[bag] no synchronised colour/depth/camera-info set was found: check the topics and their stamps")
        return 1
    return 0


def _remove_partial(output: Path) -> None:
    """A refused or failed conversion leaves no output folder (a rerun would be refused by it)."""
    if output.exists():
        shutil.rmtree(output)


def _convert(args, params, store, types, estimator, counts, Reader, StoragePlugin, Writer) -> None:  # noqa: N803
    """Read ``args.input``, pose every synchronised set, write ``args.output`` (see :func:`run`)."""
    from tqdm import tqdm

    from acr_pose_core.detection import InputError
    from acr_pose_ros.conversions import MessageError
    from acr_pose_ros.frame import estimate_frame, frame_inputs
    from acr_pose_ros.messages import detection_array, marker_array, transform_message
    from acr_pose_ros.sync import ApproximateSync, stamp_ns

    with Reader(args.input) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        image, info = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"
        color = _pick(topics, image, "color", args.color_topic, ("color", "rgb"), avoid="depth")
        depth = _pick(topics, image, "depth", args.depth_topic, ("depth",))
        camera = _pick(topics, info, "info", args.info_topic, ("color", "rgb"), avoid="depth")
        if color == depth:
            images = sorted(t for t, m in topics.items() if m == image)
            if len(images) == 1:  # the only Image topic was taken for both: the bag has no depth
                raise BagError(
                    f"the bag has no depth image topic (its only Image topic is {color}); record the "
                    "aligned depth too (realsense2_camera: align_depth.enable:=true, "
                    ".../aligned_depth_to_color/image_raw)"
                )
            raise BagError(f"colour and depth are both {color}; name them with --color-topic/--depth-topic")
        order = {color: 0, depth: 1, camera: 2}
        connections = [c for c in reader.connections if c.topic in order]
        plugin = StoragePlugin.MCAP if args.storage == "mcap" else StoragePlugin.SQLITE3
        with Writer(args.output, version=8, storage_plugin=plugin) as writer:
            out = {
                "detections": writer.add_connection(
                    "/acr_pose/detections", "vision_msgs/msg/Detection3DArray", typestore=store
                ),
                "tf": writer.add_connection("/tf", "tf2_msgs/msg/TFMessage", typestore=store),
                "markers": writer.add_connection(
                    "/acr_pose/markers", "visualization_msgs/msg/MarkerArray", typestore=store
                ),
            }
            log_time: dict[int, int] = {}  # colour stamp (ns) -> its log time in the input bag

            def process(color_msg: Any, depth_msg: Any, info_msg: Any) -> None:
                try:
                    inputs = frame_inputs(color_msg, depth_msg, info_msg, params)
                    estimate = estimate_frame(estimator, inputs, params)
                except (MessageError, InputError) as error:
                    counts["skipped"] += 1
                    tqdm.write(f"[bag] frame skipped: {error}", file=sys.stderr)
                    return
                header = color_msg.header
                stamp = stamp_ns(color_msg)
                when = log_time.get(stamp, stamp)
                for old in [t for t in log_time if t <= stamp]:
                    del log_time[old]
                writer.write(
                    out["detections"],
                    when,
                    store.serialize_cdr(detection_array(types, header, estimate), "vision_msgs/msg/Detection3DArray"),
                )
                if estimate.objects:
                    tf = transform_message(types, header, estimate, params.frame_prefix)
                    writer.write(out["tf"], when, store.serialize_cdr(tf, "tf2_msgs/msg/TFMessage"))
                markers = marker_array(types, header, estimate)
                writer.write(out["markers"], when, store.serialize_cdr(markers, "visualization_msgs/msg/MarkerArray"))
                counts["frames"] += 1
                counts["objects"] += len(estimate.objects)

            # Offline the queue holds every message of the bag's slop window: nothing needs dropping.
            sync = ApproximateSync(3, max(params.sync_queue_size, 30), params.sync_slop, process)
            total = sum(c.msgcount for c in connections)
            for connection, timestamp, raw in tqdm(
                reader.messages(connections=connections), total=total, desc="acr-pose bag", unit="msg"
            ):
                msg = store.deserialize_cdr(raw, connection.msgtype)
                if connection.topic == color:
                    log_time[stamp_ns(msg)] = timestamp
                sync.add(order[connection.topic], msg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="acr-pose bag", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except BagError as error:
        print(f"acr-pose bag: error: {error}", file=sys.stderr)
        return 2
