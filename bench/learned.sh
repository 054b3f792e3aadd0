#!/usr/bin/env bash
# Learned backends: feature extraction time per megapixel and fill rates, tract vs ONNX Runtime,
# for the shipped bundles in models/ and random-weight full-size bundles of every architecture.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${DEEPSIM_TRAIN_VENV:-$HOME/.cache/deepsim/train-venv}"
bash "$root/training/setup.sh" >/dev/null
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(ls "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1* | sort | tail -n 1)}"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
"$venv/bin/python" "$root/bench/export_random_models.py" "$tmp" >/dev/null 2>&1
bundles=("$tmp"/msaff "$tmp"/unet32 "$tmp"/unet_attention)
for b in "$root"/models/*/; do [ -f "$b/features.onnx" ] && bundles+=("$b"); done
cargo run --release --quiet --manifest-path "$root/Cargo.toml" --example bench_learned -- "${bundles[@]}"
