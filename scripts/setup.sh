#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv.
#
#   bash scripts/setup.sh          # from any directory
#
# torch is installed FIRST and pinned exactly (torch==2.13.0): pip then finds the CPU
# wheel on local disk, and later resolution sees torch as already satisfied. Installing
# the package first would let pip pick a multi-GB CUDA build of torch.
# The exact tested versions (torch, Ray) are in scripts/constraints.txt; pyproject.toml
# declares only the ranges the package supports.
# Safe to run again: existing packages are left as they are, nothing is upgraded.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

if [[ ! -x "$PY" ]]; then
    echo "[setup] creating virtual environment: $VENV"
    python3 -m venv "$VENV"
else
    echo "[setup] using existing virtual environment: $VENV"
fi

echo "[setup] pip install torch==2.13.0"
"$PY" -m pip install torch==2.13.0

echo "[setup] pip install -c scripts/constraints.txt -e .[dev]  (cl_sim + ray + test tools)"
"$PY" -m pip install -c "$ROOT/scripts/constraints.txt" -e ".[dev]"

echo "[setup] done: $("$PY" -c 'import torch; print("torch", torch.__version__)')"
echo "[setup] run the tests with: .venv/bin/python -m pytest"
