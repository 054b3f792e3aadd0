#!/usr/bin/env bash
# Accuracy on real imagery, deepsim against its peers, one table (bench/real.py):
#   labelled real pairs (motorcycle, teddy, venus, tsukuba; validation only): non-occluded bad-2;
#   unlabelled real aerial pairs: density and left-right consistency, plus PNG montages.
# Usage: bash bench/real.sh [bench/real.py options], e.g.
#   bash bench/real.sh --no-peers --heads cosine
#   bash bench/real.sh --variant "msaff blend=--model models/msaff --head cosine --learned-weight 0.5"
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bash "$root/bench/peers/setup.sh" >/dev/null
train_venv="${DEEPSIM_TRAIN_VENV:-$HOME/.cache/deepsim/train-venv}"
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
    lib="$(ls "$train_venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1* 2>/dev/null | sort | tail -n 1 || true)"
    [ -z "$lib" ] && lib="$(ls "${DEEPSIM_PEERS_VENV:-$HOME/.cache/deepsim/peers-venv}"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1* | sort | tail -n 1)"
    export ORT_DYLIB_PATH="$lib"
fi
exec "${DEEPSIM_PEERS_VENV:-$HOME/.cache/deepsim/peers-venv}/bin/python" "$root/bench/real.py" "$@"
