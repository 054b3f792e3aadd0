#!/usr/bin/env bash
# Learned matching speed and memory on a real 1 Mpx pair, against census in the same run:
# every bundle × head (cosine, MLP exact, MLP top-k) × runtime (tract, ONNX Runtime), printing
# time, peak memory, feature-extraction GFLOP/s (cost per pixel read from the graphs) and the
# ratio to census + SGM.
#
# Usage: bash bench/learned_speed.sh [PAIR_DIR] [BUNDLE ...]
#   PAIR_DIR: left.png + right.png (default ../shared/data/aerial-unlabeled/toulouse-0051, search 0..159)
#   BUNDLES:  default models/msaff models/unet32 models/unet_attention
# Environment: DEEPSIM_BIN (an already built engine; default: build this checkout) RUNTIMES="tract ort" HEADS="cosine mlp mlp-topk" TOPK=4 DISP_MAX=159 EXTRA_ARGS="..."
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pair="${1:-$root/../shared/data/aerial-unlabeled/toulouse-0051}"
[ -f "$pair/left.png" ] || pair=/work/shared/data/aerial-unlabeled/toulouse-0051
shift || true
bundles=("$@")
[ ${#bundles[@]} -gt 0 ] || bundles=("$root/models/msaff" "$root/models/unet32" "$root/models/unet_attention")
runtimes="${RUNTIMES:-tract ort}"
heads="${HEADS:-cosine mlp mlp-topk}"
topk="${TOPK:-4}"
venv="${DEEPSIM_TRAIN_VENV:-$HOME/.cache/deepsim/train-venv}"
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
    ORT_DYLIB_PATH="$(ls "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1* 2>/dev/null | sort | tail -n 1 || true)"
fi
export ORT_DYLIB_PATH
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
if [ -n "${DEEPSIM_BIN:-}" ]; then bin="$DEEPSIM_BIN"; else
    cargo build --release --quiet --manifest-path "$root/Cargo.toml"
    bin="$root/target/release/deepsim"
fi
search=(--disp-min 0 --disp-max "${DISP_MAX:-159}")

report() { # name, run dir, MACs per pixel of the features (0: none)
    python3 - "$1" "$2" "$3" "$out/census.json" <<'PY'
import json, os, sys
name, d, macs, census = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
r = json.load(open(f"{d}/run.json"))
t = r["timings_s"]; peak = (r.get("peak_memory_bytes") or 0) / 2**30
w, h = r["inputs"]["left"]["width"], r["inputs"]["left"]["height"]
row = f"{name:<40} {t['total']:8.2f} s  peak {peak:5.2f} GB  features {t['prepare']:7.2f} s  costs {t['cost']:7.2f} s"
if macs > 0:
    levels = r.get("models", [{}])[0].get("learned_levels", 3)
    px = 2 * w * h * sum(4 ** -i for i in range(levels))
    row += f"  {2 * macs * px / t['prepare'] / 1e9:6.1f} GFLOP/s"
else:
    row += " " * 17
if os.path.exists(census):
    c = json.load(open(census))
    row += f"  ×{t['total'] / c['timings_s']['total']:6.1f} census time  ×{peak / max(1e-9, (c.get('peak_memory_bytes') or 1) / 2**30):5.1f} census memory"
runtime = (r.get("models") or [{}])[0].get("model", {}).get("runtime_choice", {}).get("chosen", "")
print(row + (f"  [{runtime}]" if runtime else ""), flush=True)
PY
}

echo "deepsim $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, pair $pair, search 0..${DISP_MAX:-159}"
"$bin" -q match --left "$pair/left.png" --right "$pair/right.png" --out "$out/census" "${search[@]}"
cp "$out/census/run.json" "$out/census.json"
report "census + SGM" "$out/census" 0

declare -A macs=([msaff]=413000 [unet32]=202000 [unet_attention]=281000)
for b in "${bundles[@]}"; do
    name="$(basename "$b")"
    for rt in $runtimes; do
        if [ "$rt" = ort ] && [ -z "$ORT_DYLIB_PATH" ]; then echo "$name: no ONNX Runtime library (set ORT_DYLIB_PATH)"; continue; fi
        for head in $heads; do
            case "$head" in
                cosine) args=(--head cosine) ;;
                mlp) args=(--head mlp --mlp-top-k 0) ;;
                mlp-topk) args=(--head mlp --mlp-top-k "$topk"); head="mlp top-$topk" ;;
                mlp-onnx) args=(--head mlp --mlp-top-k 0 --mlp-onnx) ;;
            esac
            [ -f "$b/mlp.onnx" ] || [ "${args[1]}" = cosine ] || continue
            dir="$out/$name-$rt-${head// /}"
            # shellcheck disable=SC2086
            if "$bin" -q match --left "$pair/left.png" --right "$pair/right.png" --out "$dir" "${search[@]}" \
                --model "$b" --runtime "$rt" "${args[@]}" ${EXTRA_ARGS:-} 2>"$dir.err"; then
                report "$name $head $rt" "$dir" "${macs[$name]:-0}"
            else
                echo "$name $head $rt: failed: $(tail -n 1 "$dir.err")"
            fi
        done
    done
done

# Pandora MC-CNN fast + libSGM (the peer of issue #15) is not run here: its wrapper
# (bench/peers/run_pandora_mccnn.py) scores against ground truth, which these aerial pairs lack.
echo "Pandora MC-CNN fast + libSGM: not run by this script (bench/peers/run_pandora_mccnn.py; issue #15 measured 30.5 s, 5.1 GB on toulouse-0051)"
