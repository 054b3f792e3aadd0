#!/usr/bin/env bash
# Idempotent setup of the training environment.
# Creates (or reuses) the venv at $DEEPSIM_TRAIN_VENV (default: $HOME/.cache/deepsim/train-venv),
# installs the pinned requirements and this package in editable mode.
# Usage: bash training/setup.sh        (from anywhere)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${DEEPSIM_TRAIN_VENV:-$HOME/.cache/deepsim/train-venv}"
python="${PYTHON:-python3.11}"
if [ ! -x "$venv/bin/python" ]; then
    echo "creating venv $venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --upgrade --quiet pip
# Already-satisfied pins make this a quick no-op on a second run.
"$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt"
"$venv/bin/python" -m pip install --quiet --no-deps -e "$here"
"$venv/bin/python" -c "import torch, lightning, onnxruntime, deepsim_train; print('torch', torch.__version__, '| lightning', lightning.__version__, '| onnxruntime', onnxruntime.__version__, '| deepsim_train ok')"
echo "activate with: source $venv/bin/activate"
