"""acr_pose_ros: the ROS 2 side of ACR-Pose (node, message conversions, launch helpers).

This is the only package that imports ROS (rclpy, message types, cv_bridge); it wraps ``acr_pose_core``, which
stays importable without ROS. The node arrives with the ROS issue; until then this package is empty.
"""
