#!/usr/bin/env bash
# The project's test command (README): Rust tests, then the Python training tests, then the
# Python package (its wheel built by `pip install .`) and the Pandora plugin.
# Sets up what it needs on a fresh machine: the training venv (training/setup.sh), whose
# onnxruntime package also provides the ONNX Runtime library for the engine's ort tests, and
# the package's venv (python/setup.sh: pandora + pandora_plugin_libsgm and dask[distributed]
# pinned).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Python environment (training/setup.sh) =="
bash training/setup.sh
venv="${DEEPSIM_TRAIN_VENV:-$HOME/.cache/deepsim/train-venv}"
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
    ORT_DYLIB_PATH="$(ls "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1* | sort | tail -n 1)"
    export ORT_DYLIB_PATH
fi

echo "== Rust: cargo test (release; ONNX Runtime from $ORT_DYLIB_PATH) =="
cargo test --release --locked

echo "== Python: training tests =="
"$venv/bin/python" -m pytest -q training/tests

echo "== Python package: build (pip install .) and tests (API, Dask LocalCluster, Pandora plugin) =="
bash python/setup.sh
py_venv="${DEEPSIM_PY_VENV:-$HOME/.cache/deepsim/py-venv}"
"$py_venv/bin/python" -m pytest -q python/tests python/pandora_plugin_deepsim/tests

echo "== Dockerfile: hadolint (no container engine here) =="
"$py_venv/bin/hadolint" Dockerfile && echo "hadolint: Dockerfile clean"
