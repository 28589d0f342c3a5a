"""Packaging of acr-pose: one source tree, a pip project and an ament_python ROS 2 package at once.

It installs two Python packages, ``acr_pose_core`` (the library, no ROS) and ``acr_pose_ros`` (the node), and
registers both as ROS packages in the ament resource index, so that after ``colcon build``:

- ``ros2 run acr_pose_core train`` runs ``lib/acr_pose_core/train`` (from ``scripts/ros/train``);
- ``ros2 launch acr_pose_ros pose.launch.py`` finds ``share/acr_pose_ros/launch/`` and starts
  ``lib/acr_pose_ros/pose_node`` with ``share/acr_pose_ros/config/pose.yaml``;
- the console scripts land in ``lib/acr_pose_ros`` (see ``setup.cfg``), where ``ros2 run acr_pose_ros`` looks.

A plain ``pip install .`` installs the same tree; pip then puts the ``acr-pose`` command on ``bin/`` as usual.
The distribution is named after the ROS package (``acr_pose_ros``) because colcon looks for
``<package name>.egg-info`` when it undoes a ``--symlink-install``.

Run from the directory of this file, as colcon and pip do: the data-file paths below are relative to it.
"""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

NAME = "acr_pose_ros"
CORE = "acr_pose_core"
VERSION = "0.1.0"  # keep equal to package.xml and acr_pose_core.__version__ (test/test_packaging.py checks)

# Kept as module-level literals: test/test_packaging.py reads them with `ast` (without running setup()) to check
# that each one has a rosdep key in package.xml.
INSTALL_REQUIRES = [
    "numpy>=1.23",
    "torch>=2.1",
    "torchvision",
    "matplotlib>=3.5",
    "tqdm",
    "pillow",
    "safetensors",  # checkpoints and the shipped model: tensors without pickle
    "pyyaml",  # training configurations in config/
    "threadpoolctl",  # one math-library thread per worker process (acr_pose_core/threads.py)
    "opencv-python-headless",  # drawing poses over images, colour/depth image files
    "scipy",  # quaternions of the node's messages (scipy.spatial.transform.Rotation)
]
# trimesh (procedural meshes) and embreex (Intel Embree ray casting) make the synthetic data set (acr_pose_core.synth)
# and tensorboard shows training logs; none is needed at run time on a robot, so they are extras (`pip install
# "acr_pose_ros[render,train]"`), which the scripts install; the code says how when one is missing.
EXTRAS_REQUIRE = {
    "render": ["trimesh>=4", "embreex"],
    "train": ["tensorboard"],
    "bag": ["rosbags>=0.10"],  # acr-pose bag: read and write rosbag2 without a ROS install
    "test": ["pytest", "ruff", "trimesh>=4", "embreex", "tensorboard", "rosbags>=0.10"],
}


def data_files() -> list[tuple[str, list[str]]]:
    """Files installed under the prefix, as ``(directory, [source files])``; globs may match nothing yet."""
    entries = [
        # ament resource index markers: these make both names ROS packages for `ros2 run` / `ros2 pkg`.
        ("share/ament_index/resource_index/packages", [f"resource/{NAME}", f"resource/{CORE}"]),
        (f"share/{NAME}", ["package.xml"]),
        (f"share/{NAME}/launch", sorted(glob("launch/*.launch.py"))),
        # Only the node's parameters: the training configurations in config/ are not ROS package data.
        (f"share/{NAME}/config", ["config/pose.yaml"]),
        # `ros2 run acr_pose_core train` runs lib/acr_pose_core/train; the source file keeps its executable bit.
        (f"lib/{CORE}", ["scripts/ros/train"]),
    ]
    return [(directory, files) for directory, files in entries if files]


setup(
    name=NAME,
    version=VERSION,
    description="ACR-Pose: category-level 6D object pose estimation, as a ROS 2 package and a Python library",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=[CORE, f"{CORE}.*", NAME, f"{NAME}.*"]),
    # the shape priors, the default model, and the message definitions the bag tool registers with rosbags
    package_data={CORE: ["assets/*.npz", "assets/default_model/*"], NAME: ["interfaces/*/msg/*.msg"]},
    data_files=data_files(),
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "console_scripts": [
            "acr-pose = acr_pose_core.cli.main:main",
            # `ros2 run acr_pose_ros pose_node`, the plain node (launch/pose.launch.py managed:=false)
            "pose_node = acr_pose_ros.node:main",
            # the managed (lifecycle) node, what launch/pose.launch.py starts unless managed:=false
            "pose_lifecycle_node = acr_pose_ros.node:lifecycle_main",
        ],
    },
    zip_safe=False,
)
