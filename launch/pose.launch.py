"""Start the acr-pose node on a camera's RGB-D topics: ``ros2 launch acr_pose_ros pose.launch.py``.

Arguments (``ros2 launch acr_pose_ros pose.launch.py --show-args``):

- ``camera``: the camera's topic namespace; the defaults follow realsense2_camera 4.x
  (``/camera/camera/color/image_raw``, ``.../aligned_depth_to_color/image_raw``, ``.../color/camera_info``).
- ``color_topic``, ``depth_topic``, ``camera_info_topic``: override one topic each (empty: under ``camera``).
- ``params_file``: the node's parameters (default: the installed ``config/pose.yaml``).
- ``device``, ``mask_source``: override the parameter file's values (empty: keep them).
- ``labels_topic``, ``labels_detections_topic``: the external segmenter's topics for ``mask_source:=labels``.
- ``use_sim_time``: follow ``/clock`` (bag replay, simulation).
- ``managed``: start the managed (lifecycle) node ``pose_lifecycle_node`` (default ``true``); ``false``: the plain
  ``pose_node``, active from its start.
- ``autostart``: with ``managed``, drive the node to active (configure, then activate once it is inactive; default
  ``true``); ``false`` leaves it unconfigured for a lifecycle manager (``ros2 lifecycle set /acr_pose configure``).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

PACKAGE = "acr_pose_ros"
EXECUTABLE = "pose_node"
MANAGED_EXECUTABLE = "pose_lifecycle_node"


def _true(text):
    return text.lower() in ("true", "1")


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
    overrides = {"use_sim_time": _true(value("use_sim_time"))}
    for name in ("device", "mask_source"):
        if value(name):
            overrides[name] = value(name)
    common = dict(
        package=PACKAGE,
        name="acr_pose",
        output="screen",
        emulate_tty=True,
        parameters=[value("params_file"), overrides],
        remappings=list(topics.items()),
    )
    if not _true(value("managed")):
        return [Node(executable=EXECUTABLE, **common)]
    node = LifecycleNode(executable=MANAGED_EXECUTABLE, namespace="", **common)
    if not _true(value("autostart")):
        return [node]

    def change(transition_id):
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition_id))

    activate_when_inactive = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node,
            start_state="configuring",  # the end of a configure only: a manual deactivate stays inactive
            goal_state="inactive",
            entities=[change(Transition.TRANSITION_ACTIVATE)],
        )
    )
    return [node, activate_when_inactive, change(Transition.TRANSITION_CONFIGURE)]


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
        ("managed", "true", "start the managed (lifecycle) node; false: the plain node"),
        ("autostart", "true", "with managed: configure and activate the node at start"),
    ]
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in arguments]
        + [OpaqueFunction(function=_node)]
    )
