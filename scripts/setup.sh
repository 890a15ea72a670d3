#!/usr/bin/env bash
# Sets up everything wispy needs on a fresh Debian machine, idempotently:
#   1. Debian packages (qemu-user, arm64 C runtime, lavapipe Vulkan, espeak-ng...)
#   2. a virtual environment at .venv with wispy installed (editable) and its extras
#   3. the aarch64 IREE runtime tools and the QEMU instruction-count plugin
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup_system.sh

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.wispy-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing wispy and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first, pinned: this machine's CPU wheel (an unpinned torch pulls GBs of CUDA).
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[test,bench]"
  touch "$stamp"
fi

# Fetch the aarch64 runtime tools and build the instruction counter now rather than in
# the middle of a test run.
.venv/bin/python - <<'PY'
from wispy.runtime import aarch64_tools_dir, compile_plugin
print("setup: aarch64 IREE tools in", aarch64_tools_dir())
print("setup: qemu instruction counter at", compile_plugin())
PY
