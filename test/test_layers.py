"""The house's layers (DESIGN.md): every import inside acr_pose_core goes down the layers, never up or sideways
into a home of the same layer; what a robot imports (the estimator, the node) loads no training code and no
renderer."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from conftest import require_ros

REPO = Path(__file__).resolve().parents[1]

LAYERS = {
    "categories": 0, "fileio": 0, "settings": 0, "threads": 0, "host_sync": 0, "device": 0,
    "geometry": 1,
    "evaluation": 2,
    "data": 3, "models": 3,
    "model_folder": 4, "detection": 4, "synth": 4,
    "training": 5, "pipeline": 5,
    "calibration": 6, "cli": 7,
}  # fmt: skip
"""Each home of acr_pose_core (a top-level module or package) and its layer: a home imports only lower layers."""


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return [n for n in names if n.startswith("acr_pose_core.")]


def test_every_import_goes_down_the_layers():
    upward = []
    homes = set()
    for path in sorted((REPO / "acr_pose_core").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if len(parts) < 2 or parts[1] == "__init__":
            continue
        home = parts[1]
        homes.add(home)
        assert home in LAYERS, f"{path}: a new home; give it a layer in LAYERS (and DESIGN.md)"
        for name in _imports(path):
            target = name.split(".")[1]
            if target != home and LAYERS[target] >= LAYERS[home]:
                upward.append(f"{path.relative_to(REPO)} ({home}, layer {LAYERS[home]}) imports {name} (layer "
                              f"{LAYERS[target]})")  # fmt: skip
    assert not upward, "\n".join(upward)
    assert homes == set(LAYERS)  # every listed home exists


def _loaded_by(statement: str) -> dict:
    code = (
        f"import sys, json; {statement}; "
        "print(json.dumps({'modules': sorted(m for m in sys.modules if m.startswith('acr_pose_core')), "
        "'trimesh': 'trimesh' in sys.modules, 'embreex': 'embreex' in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_estimator_loads_no_training_code_and_no_renderer():
    loaded = _loaded_by("import acr_pose_core.pipeline")
    assert "acr_pose_core.pipeline" in loaded["modules"]  # the check itself works
    assert not [m for m in loaded["modules"] if m.startswith("acr_pose_core.training")], loaded["modules"]
    assert not [m for m in loaded["modules"] if m.split(".")[-1] in ("generate", "render", "scene", "shapes")]
    assert not loaded["trimesh"] and not loaded["embreex"]


def test_the_node_loads_no_training_code_and_no_renderer():
    require_ros()
    loaded = _loaded_by("import acr_pose_ros.node")
    assert "acr_pose_core.pipeline" in loaded["modules"]
    assert not [m for m in loaded["modules"] if m.startswith("acr_pose_core.training")], loaded["modules"]
    assert not loaded["trimesh"] and not loaded["embreex"]
