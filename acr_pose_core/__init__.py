"""acr_pose_core: category-level 6D object pose estimation (ACR-Pose), without ROS.

Layers, each importing only from the ones before it:
``geometry`` ← ``evaluation`` ← ``data`` ← ``models`` ← ``training`` ← ``pipeline`` ← ``cli``.
Nothing heavy happens at import time.
"""

__version__ = "0.1.0"
