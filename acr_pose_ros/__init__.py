"""acr_pose_ros: the ROS 2 side of ACR-Pose (node, message conversions, offline bags, launch helpers).

This is the only package that knows ROS; it wraps ``acr_pose_core``, which stays importable without ROS. Only
:mod:`acr_pose_ros.node` imports rclpy; the other modules are plain Python over objects with the messages' fields
(rclpy messages, rosbags messages or test stand-ins), so they are tested and reused without a ROS install.
"""
