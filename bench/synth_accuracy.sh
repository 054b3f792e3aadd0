#!/usr/bin/env bash
# Accuracy on held-out synthetic pairs (a `deepsim synth` dataset): mean non-occluded bad-1/2/4,
# EPE and density over the first N pairs, for one deepsim configuration.
# Usage: bash bench/synth_accuracy.sh DATASET N [extra `deepsim match` options...]
# The search range is the same generic one for every pair (0 .. width/4), not the pair's GT range.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="$1"; n="$2"; shift 2
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/deepsim"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
for dir in $(ls -d "$data"/[0-9]*/ | head -n "$n"); do
    id="$(basename "$dir")"
    w="$(python3 -c "import struct,sys;f=open(sys.argv[1],'rb');f.read(16);print(struct.unpack('>I',f.read(4))[0])" "$dir/left.png")"
    "$bin" -q match --left "$dir/left.png" --right "$dir/right.png" --out "$tmp/$id" --disp-min 0 --disp-max $((w / 4 - 1)) "$@"
    "$bin" eval --disparity "$tmp/$id/disparity.tif" --gt "$dir/disp_left.tif" --mask "$dir/mask_nonocc.png" --json "$tmp/$id/eval.json" >/dev/null
done
python3 - "$tmp" "$*" <<'PY'
import json, pathlib, sys
rows = [json.load(open(p)) for p in sorted(pathlib.Path(sys.argv[1]).glob("*/eval.json"))]
runs = [json.load(open(p)) for p in sorted(pathlib.Path(sys.argv[1]).glob("*/run.json"))]
mean = lambda k: sum(r["nonocc"][k] for r in rows) / len(rows)
t = sum(r["timings_s"]["total"] for r in runs) / len(runs)
print(f"{len(rows)} pairs, options [{sys.argv[2]}]: nonocc bad-1 {mean('bad_1'):.2f}  bad-2 {mean('bad_2'):.2f}  "
      f"bad-4 {mean('bad_4'):.2f}  EPE {mean('epe'):.3f}  density {mean('density'):.1f} %  ({t:.2f} s/pair)")
PY
