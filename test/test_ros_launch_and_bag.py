"""The launch file, checked statically (no ``launch`` library here: it is imported with stand-ins), and the offline
bag tool end to end: a rosbag2 of generated RGB-D frames in, a bag of detections, /tf and markers out."""

from __future__ import annotations

import ast
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from acr_pose_ros.params import INPUT_TOPICS, LABEL_TOPICS

REPO = Path(__file__).resolve().parents[1]


class _Recorder:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def load_launch_file(monkeypatch, share: Path):
    """Import launch/pose.launch.py with stand-in launch, launch_ros and ament_index_python modules."""
    configurations: dict[str, str] = {}

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    class LifecycleNode(_Recorder):
        pass

    class EmitEvent(_Recorder):
        pass

    stand_ins = {
        "launch": {"LaunchDescription": _Recorder},
        "launch.actions": {
            "DeclareLaunchArgument": _Recorder,
            "OpaqueFunction": _Recorder,
            "EmitEvent": EmitEvent,
            "RegisterEventHandler": _Recorder,
        },
        "launch.events": {"matches_action": lambda action: ("matches", action)},
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration},
        "launch_ros": {},
        "launch_ros.actions": {"Node": _Recorder, "LifecycleNode": LifecycleNode},
        "launch_ros.event_handlers": {"OnStateTransition": _Recorder},
        "launch_ros.events": {},
        "launch_ros.events.lifecycle": {"ChangeState": _Recorder},
        "lifecycle_msgs": {},
        "lifecycle_msgs.msg": {"Transition": types.SimpleNamespace(TRANSITION_CONFIGURE=1, TRANSITION_ACTIVATE=3)},
        "ament_index_python": {},
        "ament_index_python.packages": {"get_package_share_directory": lambda package: str(share / package)},
    }
    for name, attributes in stand_ins.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attributes))
    spec = importlib.util.spec_from_file_location("pose_launch", REPO / "launch/pose.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, configurations


def console_scripts() -> dict[str, str]:
    """``name -> target`` of setup.py's console_scripts, read with ast."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and any(getattr(k, "value", None) == "console_scripts" for k in node.keys):
            entries = ast.literal_eval(node.values[0])
            return dict(e.replace(" ", "").split("=", 1) for e in entries)
    raise AssertionError("no console_scripts in setup.py")


def test_launch_file_starts_the_installed_node_with_its_parameter_file(monkeypatch, tmp_path):
    module, _ = load_launch_file(monkeypatch, tmp_path)
    description = module.generate_launch_description()
    [actions] = description.args
    declared = {a.args[0]: a.kwargs["default_value"] for a in actions if a.args}
    opaque = [a for a in actions if "function" in a.kwargs]
    assert len(opaque) == 1 and declared["params_file"] == str(tmp_path / "acr_pose_ros/config/pose.yaml")
    # managed (the default): the lifecycle node, configured at start and activated once configured
    node, handler, configure = opaque[0].kwargs["function"](dict(declared, device="cuda", use_sim_time="true"))
    assert type(node).__name__ == "LifecycleNode" and node.kwargs["namespace"] == ""
    assert console_scripts()[node.kwargs["executable"]] == "acr_pose_ros.node:lifecycle_main"
    event = configure.kwargs["event"].kwargs
    assert event == {"lifecycle_node_matcher": ("matches", node), "transition_id": 1}
    [on_configured] = handler.args
    assert on_configured.kwargs["target_lifecycle_node"] is node
    assert (on_configured.kwargs["start_state"], on_configured.kwargs["goal_state"]) == ("configuring", "inactive")
    [activate] = on_configured.kwargs["entities"]
    assert activate.kwargs["event"].kwargs == {"lifecycle_node_matcher": ("matches", node), "transition_id": 3}
    [unstarted] = opaque[0].kwargs["function"](dict(declared, autostart="false"))
    assert type(unstarted).__name__ == "LifecycleNode"
    [plain] = opaque[0].kwargs["function"](dict(declared, managed="false", device="cuda", use_sim_time="true"))
    assert console_scripts()[plain.kwargs["executable"]] == "acr_pose_ros.node:main"
    assert {k: v for k, v in plain.kwargs.items() if k != "executable"} == {
        k: v for k, v in node.kwargs.items() if k not in ("executable", "namespace")
    }  # the same name, parameters and remappings
    kwargs = node.kwargs
    assert kwargs["package"] == "acr_pose_ros" and kwargs["name"] == "acr_pose"
    params_file, overrides = kwargs["parameters"]
    assert params_file == declared["params_file"] and overrides == {"use_sim_time": True, "device": "cuda"}
    remaps = dict(kwargs["remappings"])
    assert set(remaps) == set(INPUT_TOPICS + LABEL_TOPICS)  # every input of the node, and nothing else
    assert remaps["color/image_raw"] == "/camera/camera/color/image_raw"
    assert remaps["aligned_depth_to_color/image_raw"] == "/camera/camera/aligned_depth_to_color/image_raw"
    node, *_ = opaque[0].kwargs["function"](dict(declared, camera="/cam/", depth_topic="/d"))
    remaps = dict(node.kwargs["remappings"])
    assert (
        remaps["color/camera_info"] == "/cam/color/camera_info" and remaps["aligned_depth_to_color/image_raw"] == "/d"
    )


@pytest.fixture(scope="module")
def rgbd_bag(tmp_path_factory):
    """A rosbag2 (mcap, Jazzy definitions) of 3 generated 640×480 frames, their depth and camera info."""
    pytest.importorskip("rosbags")
    pytest.importorskip("embreex")
    from rosbags.rosbag2 import StoragePlugin, Writer

    from acr_pose_core.synth.generate import GenerateConfig, scene_frame
    from acr_pose_ros.bag import rosbags_types, typestore
    from acr_pose_ros.conversions import image_fields

    store = typestore("jazzy")
    make = rosbags_types(store)
    frame = scene_frame(GenerateConfig(out=Path("."), split="test", seed=5))
    path = tmp_path_factory.mktemp("bag") / "rgbd"
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        topics = {
            "/camera/color/image_raw": "sensor_msgs/msg/Image",
            "/camera/aligned_depth_to_color/image_raw": "sensor_msgs/msg/Image",
            "/camera/color/camera_info": "sensor_msgs/msg/CameraInfo",
        }
        connections = {t: writer.add_connection(t, m, typestore=store) for t, m in topics.items()}
        for i in range(3):
            stamp = make("builtin_interfaces/msg/Time")(sec=50 + i, nanosec=1000 * i)
            header = make("std_msgs/msg/Header")(stamp=stamp, frame_id="camera_color_optical_frame")
            msgs = {
                "/camera/color/image_raw": make("sensor_msgs/msg/Image")(
                    header=header, **image_fields(frame.color[..., ::-1], "bgr8")
                ),
                "/camera/aligned_depth_to_color/image_raw": make("sensor_msgs/msg/Image")(
                    header=header, **image_fields(frame.depth, "16UC1")
                ),
                "/camera/color/camera_info": make("sensor_msgs/msg/CameraInfo")(
                    header=header, height=480, width=640, k=np.asarray(frame.label.intrinsics, np.float64).reshape(-1)
                ),
            }
            for offset, (topic, msg) in enumerate(msgs.items()):
                when = (50 + i) * 10**9 + offset * 1000
                writer.write(connections[topic], when, store.serialize_cdr(msg, topics[topic]))
    return path, frame


def test_bag_tool_writes_detections_tf_and_markers(rgbd_bag, tmp_path, capsys):
    from rosbags.rosbag2 import Reader

    from acr_pose_core.cli.main import main
    from acr_pose_ros.bag import typestore

    path, frame = rgbd_bag
    out = tmp_path / "out"
    assert main(["bag", str(path), str(out), "--device", "cpu", "--distro", "jazzy"]) == 0
    assert "3 frames posed" in capsys.readouterr().out
    store = typestore("jazzy")
    with Reader(out) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert topics == {
            "/acr_pose/detections": "vision_msgs/msg/Detection3DArray",
            "/tf": "tf2_msgs/msg/TFMessage",
            "/acr_pose/markers": "visualization_msgs/msg/MarkerArray",
        }
        decoded = [(c.topic, t, store.deserialize_cdr(raw, c.msgtype)) for c, t, raw in reader.messages()]
    arrays = [(t, m) for topic, t, m in decoded if topic == "/acr_pose/detections"]
    assert [m.header.stamp.sec for _, m in arrays] == [50, 51, 52]
    assert [t for t, _ in arrays] == [50 * 10**9, 51 * 10**9, 52 * 10**9]  # written at the colour's log time
    assert all(m.header.frame_id == "camera_color_optical_frame" for _, m in arrays)
    # The shipped segmenter runs here (a weak CPU-trained one, MODEL_CARD.md): it must find some of the 6 objects.
    assert max(len(m.detections) for _, m in arrays) >= 1


def test_bag_tool_lists_the_topics_it_has_when_one_is_missing(rgbd_bag, tmp_path, capsys):
    from acr_pose_ros.bag import main

    path, _ = rgbd_bag
    assert main([str(path), str(tmp_path / "o"), "--color-topic", "/nope"]) == 2
    err = capsys.readouterr().err
    assert "acr-pose bag: error: no sensor_msgs/msg/Image topic '/nope'" in err and "\n  /camera/aligned_depth" in err
    assert not (tmp_path / "o").exists()


def test_a_damaged_bag_is_one_error_and_leaves_no_output(rgbd_bag, tmp_path, capsys):
    import shutil

    from rosbags.rosbag2 import Reader, StoragePlugin, Writer

    from acr_pose_ros.bag import main, typestore

    path, _ = rgbd_bag
    truncated = tmp_path / "truncated"
    shutil.copytree(path, truncated)
    [mcap] = truncated.glob("*.mcap")
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    garbage = tmp_path / "garbage"  # the same messages, the second depth image's payload replaced by noise
    store = typestore("jazzy")
    with Reader(path) as reader, Writer(garbage, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        made = {c.topic: writer.add_connection(c.topic, c.msgtype, typestore=store) for c in reader.connections}
        depth_seen = 0
        for connection, when, raw in reader.messages():
            if "depth" in connection.topic:
                depth_seen += 1
                raw = raw if depth_seen != 2 else bytes([0, 1, 0, 0]) + bytes(range(256)) * 3
            writer.write(made[connection.topic], when, raw)
    for damaged in (truncated, garbage):
        out = tmp_path / f"out_{damaged.name}"
        assert main([str(damaged), str(out)]) == 2, damaged.name
        err = capsys.readouterr().err
        assert f"{damaged}: not a readable rosbag2" in err and "Traceback" not in err, err
        assert not out.exists()  # no half-written output to block the rerun


def test_bag_tool_says_when_the_bag_has_no_depth(tmp_path, capsys):
    pytest.importorskip("rosbags")
    from rosbags.rosbag2 import StoragePlugin, Writer

    from acr_pose_ros.bag import main, rosbags_types, typestore
    from acr_pose_ros.conversions import image_fields

    store = typestore("jazzy")
    make = rosbags_types(store)
    path = tmp_path / "colour_only"
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        topics = {
            "/camera/color/image_raw": "sensor_msgs/msg/Image",
            "/camera/color/camera_info": "sensor_msgs/msg/CameraInfo",
        }
        connections = {t: writer.add_connection(t, m, typestore=store) for t, m in topics.items()}
        header = make("std_msgs/msg/Header")(stamp=make("builtin_interfaces/msg/Time")(sec=1, nanosec=0), frame_id="c")
        image = make("sensor_msgs/msg/Image")(header=header, **image_fields(np.zeros((4, 4, 3), np.uint8), "rgb8"))
        info = make("sensor_msgs/msg/CameraInfo")(header=header, height=4, width=4, k=np.eye(3).reshape(-1))
        writer.write(
            connections["/camera/color/image_raw"], 10**9, store.serialize_cdr(image, topics["/camera/color/image_raw"])
        )
        writer.write(
            connections["/camera/color/camera_info"],
            10**9,
            store.serialize_cdr(info, topics["/camera/color/camera_info"]),
        )
    assert main([str(path), str(tmp_path / "o")]) == 2
    assert "the bag has no depth image topic (its only Image topic is /camera/color" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
