"""Packaging: the colcon (ament_python) install layout, package.xml against setup.py, the scripts, and the CLI.

CPU only, no network, a few seconds: the colcon build is simulated by the same `setup.py` command line that colcon's
Python build task runs, into a temporary prefix.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import acr_pose_core
from acr_pose_core.cli import main as cli_main
from acr_pose_core.cli import train as cli_train

REPO = Path(__file__).resolve().parents[1]

PIP_TO_ROSDEP = {
    "numpy": "python3-numpy",
    "torch": "python3-torch",
    "torchvision": "python3-torchvision",
    "matplotlib": "python3-matplotlib",
    "tqdm": "python3-tqdm",
    "pillow": "python3-pil",
    "safetensors": "python3-safetensors",
    "pyyaml": "python3-yaml",
    "threadpoolctl": "python3-threadpoolctl",
    "opencv-python-headless": "python3-opencv",
    "scipy": "python3-scipy",
}
"""pip requirement name -> the rosdep key that package.xml must list as exec_depend."""

# Element order of package format 3 (REP 149 schema); every dependency kind shares one slot, in any order.
_DEPENDS = (
    "build_depend build_export_depend buildtool_depend buildtool_export_depend exec_depend depend doc_depend "
    "test_depend conflict replace"
).split()
_FORMAT3_ORDER = ["name", "version", "description", "maintainer", "license", "url", "author", "depends"]
_FORMAT3_ORDER += ["group_depend", "member_of_group", "export"]


def setup_constants() -> dict[str, object]:
    """The module-level literal assignments of setup.py (NAME, VERSION, INSTALL_REQUIRES, ...), without running it."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    constants: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass  # not a literal
    return constants


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, f"cannot read a project name from requirement {requirement!r}"
    return match.group(0).lower()


def is_executable(path: Path) -> bool:
    return path.is_file() and bool(path.stat().st_mode & stat.S_IXUSR)


# ---------------------------------------------------------------------------------------------------------------------
# colcon build (ament_python), simulated


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Install the repo the way colcon's ament_python build does; return ``(prefix, site_packages)``.

    colcon (colcon-core's PythonBuildTask, used by colcon-ros for ament_python) runs, from the package directory,
    ``setup.py egg_info --egg-base BUILD build --build-base BUILD/build install --prefix INSTALL --record ...
    --single-version-externally-managed``. ``setup.py install`` is deprecated by setuptools but still works; the
    deprecation only fails when SETUPTOOLS_ENFORCE_DEPRECATION is set, so it is unset here.
    """
    tmp = tmp_path_factory.mktemp("colcon")
    prefix = tmp / "install"
    before = set(os.listdir(REPO))
    env = {key: value for key, value in os.environ.items() if key != "SETUPTOOLS_ENFORCE_DEPRECATION"}
    command = [
        sys.executable, "setup.py",
        "egg_info", "--egg-base", str(tmp),
        "build", "--build-base", str(tmp / "build"),
        "install", "--prefix", str(prefix), "--record", str(tmp / "install.log"),
        "--single-version-externally-managed",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    left = set(os.listdir(REPO)) - before
    assert not left, f"the build left {sorted(left)} in the source tree"
    site_packages = [path.parent for path in prefix.glob("lib/python3*/*-packages/acr_pose_core")]
    assert len(site_packages) == 1, f"acr_pose_core is not installed once under {prefix}: {site_packages}"
    return prefix, site_packages[0]


def test_colcon_install_layout(colcon_install: tuple[Path, Path]) -> None:
    prefix, site_packages = colcon_install
    for package in ("acr_pose_ros", "acr_pose_core"):
        marker = prefix / "share/ament_index/resource_index/packages" / package
        assert marker.is_file(), f"ament index marker for {package} is missing"
    assert (prefix / "share/acr_pose_ros/package.xml").read_bytes() == (REPO / "package.xml").read_bytes()
    assert is_executable(prefix / "lib/acr_pose_core/train"), "lib/acr_pose_core/train missing or not executable"
    # setup.cfg sends console scripts to lib/acr_pose_ros: `ros2 run acr_pose_ros acr-pose`.
    assert is_executable(prefix / "lib/acr_pose_ros/acr-pose")
    assert is_executable(prefix / "lib/acr_pose_ros/pose_node"), "the node's executable is not in lib/acr_pose_ros"
    assert is_executable(prefix / "lib/acr_pose_ros/pose_lifecycle_node"), "no managed node executable"
    for source in [*REPO.glob("launch/*.launch.py"), REPO / "config/pose.yaml"]:
        installed = prefix / "share/acr_pose_ros" / source.parent.name / source.name
        assert installed.is_file(), f"{source.relative_to(REPO)} is not installed"
    # The training configurations are not the node's parameters: they stay out of the ROS package's share/.
    assert sorted(p.name for p in (prefix / "share/acr_pose_ros/config").iterdir()) == ["pose.yaml"]
    interfaces = sorted(p.name for p in site_packages.glob("acr_pose_ros/interfaces/*/msg/*.msg"))
    assert "Detection3D.msg" in interfaces and "TFMessage.msg" in interfaces


def test_colcon_install_has_every_package(colcon_install: tuple[Path, Path]) -> None:
    _, site_packages = colcon_install
    for top in ("acr_pose_core", "acr_pose_ros"):
        for init in (REPO / top).rglob("__init__.py"):
            package = init.parent.relative_to(REPO)
            assert (site_packages / package / "__init__.py").is_file(), f"package {package} is not installed"


def test_colcon_train_executable_runs(colcon_install: tuple[Path, Path], tmp_path: Path) -> None:
    prefix, site_packages = colcon_install
    # As in a sourced ROS workspace: the installed packages on PYTHONPATH, a python3 that has the dependencies.
    env = dict(os.environ, PYTHONPATH=str(site_packages))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    train = str(prefix / "lib/acr_pose_core/train")

    result = subprocess.run([train, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout

    # ROS arguments, as `ros2 run` and launch files pass them, are dropped before parsing.
    command = [train, "--config", "c.yaml", "--ros-args", "-r", "__node:=train", "--", "--out", "o"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "c.yaml: no such configuration file" in result.stderr  # parsed past the ROS arguments, then ran

    # The copy it ran is the installed one, not the source tree or an editable install.
    probe = "import acr_pose_core.cli.train as m; print(m.__file__)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert Path(result.stdout.strip()).is_relative_to(site_packages), result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------------------------------
# package.xml and setup.py


@pytest.fixture(scope="module")
def manifest() -> ET.Element:
    return ET.parse(REPO / "package.xml").getroot()


def test_package_xml_identity(manifest: ET.Element) -> None:
    constants = setup_constants()
    assert manifest.tag == "package"
    assert manifest.get("format") == "3"
    assert manifest.findtext("name") == "acr_pose_ros" == constants["NAME"]
    assert manifest.findtext("version") == constants["VERSION"] == acr_pose_core.__version__
    assert manifest.findtext("license") == "Apache-2.0"
    assert manifest.find("maintainer").get("email")
    assert manifest.findtext("export/build_type") == "ament_python"


def test_package_xml_element_order(manifest: ET.Element) -> None:
    ranks = [_FORMAT3_ORDER.index("depends" if child.tag in _DEPENDS else child.tag) for child in manifest]
    assert ranks == sorted(ranks), f"elements out of format-3 order: {[child.tag for child in manifest]}"
    for required in ("name", "version", "description", "maintainer", "license"):
        assert manifest.find(required) is not None, f"package.xml lacks <{required}>"


def test_every_pip_requirement_has_a_rosdep_key(manifest: ET.Element) -> None:
    exec_depends = {element.text.strip() for element in manifest.iter("exec_depend")}
    for requirement in setup_constants()["INSTALL_REQUIRES"]:
        name = requirement_name(requirement)
        assert name in PIP_TO_ROSDEP, f"{requirement!r}: add its rosdep key to PIP_TO_ROSDEP and package.xml"
        assert PIP_TO_ROSDEP[name] in exec_depends, f"package.xml lacks <exec_depend>{PIP_TO_ROSDEP[name]}"
    assert "python3-pytest" in {element.text.strip() for element in manifest.iter("test_depend")}


def test_setup_py_constants() -> None:
    constants = setup_constants()
    names = {requirement_name(r) for r in constants["INSTALL_REQUIRES"]}
    assert names == set(PIP_TO_ROSDEP)
    assert set(constants["EXTRAS_REQUIRE"]["test"]) >= {"pytest", "ruff"}


def test_resource_markers_and_scripts() -> None:
    for package in ("acr_pose_ros", "acr_pose_core"):
        assert (REPO / "resource" / package).read_bytes() == b""
    scripts = ("scripts/setup.sh", "scripts/test.sh", "scripts/main.sh", "scripts/train_default.sh")
    for script in ("scripts/ros/train", ".ci/run", *scripts):
        assert is_executable(REPO / script), f"{script} is not executable (git add keeps the mode: chmod +x it)"
    for script in (".ci/run", *scripts):
        result = subprocess.run(["bash", "-n", str(REPO / script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script}: {result.stderr}"


# ---------------------------------------------------------------------------------------------------------------------
# The acr-pose command


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"acr-pose {acr_pose_core.__version__}"


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli_main.SUBCOMMANDS:
        assert name in out
    assert cli_train.HELP in out  # read from the source, without importing the module
    assert cli_main._static_help("acr_pose_core.cli.train") == cli_train.HELP


def test_train_reports_configuration_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli_main.main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path)]) == 2
    assert "c.yaml: no such configuration file" in capsys.readouterr().err
    assert cli_main.main(["train"]) == 2  # --out is required
    assert cli_train.main(["--out", str(tmp_path), "--set", "model.chanels=3"]) == 2
    assert "unknown key(s) ['chanels']" in capsys.readouterr().err
    assert cli_train.main(["--out", str(tmp_path)]) == 2  # no training data named
    assert "no training data" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no-such-command"], "invalid choice"),
        ([], "required"),
        (["train", "--out", "o", "--no-such-option"], "acr-pose train: error: unrecognized arguments"),
    ],
)
def test_bad_arguments_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def failing_command(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Register a subcommand ``boom`` whose ``run`` raises ``state.error``."""
    state = types.SimpleNamespace(error=ValueError("bad value"))
    module = types.ModuleType("_acr_pose_test_boom")
    module.HELP = "raise an error"
    module.add_arguments = lambda parser: parser.add_argument("--flag", action="store_true")

    def run(args):
        raise state.error

    module.run = run
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(cli_main.SUBCOMMANDS, "boom", module.__name__)
    return state


@pytest.mark.parametrize("error", [ValueError("bad value"), FileNotFoundError(2, "No such file", "missing.pkl")])
def test_user_errors_are_reported_without_traceback(
    failing_command: types.SimpleNamespace, error: Exception, capsys: pytest.CaptureFixture[str]
) -> None:
    failing_command.error = error
    assert cli_main.main(["boom", "--flag"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"acr-pose boom: error: {error}")
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["--debug", "boom"], ["boom", "--debug"]])
def test_debug_shows_the_exception(failing_command: types.SimpleNamespace, argv: list[str]) -> None:
    with pytest.raises(ValueError, match="bad value"):
        cli_main.main(argv)


def test_bugs_are_not_hidden(failing_command: types.SimpleNamespace) -> None:
    failing_command.error = RuntimeError("a bug")
    with pytest.raises(RuntimeError, match="a bug"):
        cli_main.main(["boom"])


def test_missing_subcommand_module(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(cli_main.SUBCOMMANDS, "ghost", "acr_pose_core.cli._no_such_module")
    assert cli_main.main(["ghost"]) == 1
    assert "acr-pose ghost: error: not available in this installation" in capsys.readouterr().err


def test_help_imports_no_torch() -> None:
    script = textwrap.dedent(
        """
        import sys
        from acr_pose_core.cli.main import main
        try:
            main(["--help"])
        except SystemExit:
            pass
        print("torch" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False", "acr-pose --help imported torch"


def test_strip_ros_args() -> None:
    argv = ["--config", "a", "--ros-args", "-r", "__node:=x", "-p", "p:=1", "--", "--out", "b", "--ros-args", "-r"]
    assert cli_train.strip_ros_args(argv) == ["--config", "a", "--out", "b"]
    assert cli_train.strip_ros_args(["--out", "b"]) == ["--out", "b"]


def test_real_colcon_build_installs_the_ros_layout(tmp_path: Path) -> None:
    """Debian's colcon (scripts/setup_ros.sh installs it where it can) builds the package as a ROS workspace
    would; the node, the train entry, the launch file and the node's parameters land where ros2 run/launch look."""
    colcon = shutil.which("colcon")
    if colcon is None:
        pytest.skip("colcon is not installed (Debian/Ubuntu: apt-get install colcon python3-colcon-ros)")
    command = [
        colcon, "--log-base", str(tmp_path / "log"), "build", "--base-paths", str(REPO), "--packages-select",
        "acr_pose_ros", "--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install"),
    ]  # fmt: skip
    before = set(os.listdir(REPO))
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert set(os.listdir(REPO)) - before == set(), "colcon left files in the source tree"
    prefix = tmp_path / "install/acr_pose_ros"
    for path in ("share/acr_pose_ros/launch/pose.launch.py", "share/acr_pose_ros/config/pose.yaml"):
        assert (prefix / path).is_file(), path
    for path in ("lib/acr_pose_ros/pose_node", "lib/acr_pose_core/train"):
        assert is_executable(prefix / path), path
