"""Start the acr-pose node on a camera's RGB-D topics: ``ros2 launch acr_pose_ros pose.launch.py``.

Arguments (``ros2 launch acr_pose_ros pose.launch.py --show-args``):

- ``camera``: the camera's topic namespace; the defaults follow realsense2_camera 4.x
  (``/camera/camera/color/image_raw``, ``.../aligned_depth_to_color/image_raw``, ``.../color/camera_info``).
- ``color_topic``, ``depth_topic``, ``camera_info_topic``: override one topic each (empty: under ``camera``).
- ``params_file``: the node's parameters (default: the installed ``config/pose.yaml``).
- ``device``, ``mask_source``: override the parameter file's values (empty: keep them).
- ``labels_topic``, ``labels_detections_topic``: the external segmenter's topics for ``mask_source:=labels``.
- ``use_sim_time``: follow ``/clock`` (bag replay, simulation).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "acr_pose_ros"
EXECUTABLE = "pose_node"


def _node(context, *args, **kwargs):
    def value(name):
        return LaunchConfiguration(name).perform(context)

    camera = value("camera").rstrip("/")
    topics = {
        "color/image_raw": value("color_topic") or f"{camera}/color/image_raw",
        "aligned_depth_to_color/image_raw": value("depth_topic") or f"{camera}/aligned_depth_to_color/image_raw",
        "color/camera_info": value("camera_info_topic") or f"{camera}/color/camera_info",
        "labels/image": value("labels_topic"),
        "labels/detections": value("labels_detections_topic"),
    }
    overrides = {"use_sim_time": value("use_sim_time").lower() in ("true", "1")}
    for name in ("device", "mask_source"):
        if value(name):
            overrides[name] = value(name)
    return [
        Node(
            package=PACKAGE,
            executable=EXECUTABLE,
            name="acr_pose",
            output="screen",
            emulate_tty=True,
            parameters=[value("params_file"), overrides],
            remappings=list(topics.items()),
        )
    ]


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory(PACKAGE), "config", "pose.yaml")
    arguments = [
        ("camera", "/camera/camera", "camera topic namespace (realsense2_camera 4.x: /camera/camera)"),
        ("color_topic", "", "colour image topic (empty: <camera>/color/image_raw)"),
        ("depth_topic", "", "depth aligned to colour (empty: <camera>/aligned_depth_to_color/image_raw)"),
        ("camera_info_topic", "", "colour camera info (empty: <camera>/color/camera_info)"),
        ("labels_topic", "/segmentation/labels", "instance-label image, for mask_source:=labels"),
        ("labels_detections_topic", "/segmentation/detections", "Detection2DArray naming the labels"),
        ("params_file", default_params, "the node's parameter file"),
        ("device", "", "auto, cpu, cuda, cuda:<index> (empty: the parameter file's)"),
        ("mask_source", "", "segmenter or labels (empty: the parameter file's)"),
        ("use_sim_time", "false", "use /clock"),
    ]
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in arguments]
        + [OpaqueFunction(function=_node)]
    )
