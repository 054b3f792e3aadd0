#!/usr/bin/env bash
# The project's test command (README): Rust tests, then the Python training tests.
# Sets up what it needs on a fresh machine (the Python venv of training/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Rust: cargo test (release) =="
cargo test --release --locked

if [ -d training/tests ]; then
    echo "== Python: training tests =="
    bash training/setup.sh
    venv="${DEEPSIM_TRAIN_VENV:-$HOME/.cache/deepsim/train-venv}"
    "$venv/bin/python" -m pytest -q training/tests
fi
