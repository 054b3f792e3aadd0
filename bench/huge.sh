#!/usr/bin/env bash
# Bounded memory on a very large pair: a synthetic 2048² pair tiled SIZE/2048 times in each
# direction (the seams are a few disparities wide and count as errors), matched under a memory
# budget; prints wall time, throughput, peak memory (from /usr/bin/time) and accuracy.
#   bash bench/huge.sh [SIZE=20480] [BUDGET=2G] [LEVELS=4]
set -euo pipefail
size=${1:-20480}; budget=${2:-2G}; levels=${3:-4}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release/deepsim"
python="${DEEPSIM_TRAIN_VENV:-$HOME/.cache/deepsim/train-venv}/bin/python"
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
work=${WORK:-$(mktemp -d)}
"$bin" -q synth --out "$work/ds" --count 1 --seed 77 --size 2048
"$python" - "$work/ds/000000" "$work" "$size" <<'PY'
import sys, numpy as np, tifffile
from PIL import Image
src, out, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
reps = -(-size // 2048)
def tile(a):
    return np.tile(a, (reps, reps))[:size, :size]
for name in ("left", "right"):
    tifffile.imwrite(f"{out}/{name}.tif", tile(np.asarray(Image.open(f"{src}/{name}.png"))), tile=(256, 256), bigtiff=True)
tifffile.imwrite(f"{out}/gt.tif", tile(tifffile.imread(f"{src}/disp_left.tif")).astype(np.float32), bigtiff=True)
tifffile.imwrite(f"{out}/nonocc.tif", tile(np.asarray(Image.open(f"{src}/mask_nonocc.png"))), bigtiff=True)
PY
/usr/bin/time -f '%e %M' -o "$work/time" "$bin" -q match --left "$work/left.tif" --right "$work/right.tif" \
  --out "$work/out" --disp-min 0 --disp-max 255 --levels "$levels" --max-memory "$budget"
read -r secs kb < "$work/time"
bad2=$("$bin" eval --disparity "$work/out/disparity.tif" --gt "$work/gt.tif" --mask "$work/nonocc.tif" | awk '$1=="nonocc"{print $5}')
storage=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['storage'])" "$work/out/run.json")
printf 'pair %d², budget %s, %d levels: %.1f s, %.2f Mpx/s, peak %d MB, nonocc bad-2 %s %%, storage %s\n' \
  "$size" "$budget" "$levels" "$secs" "$(echo "$size * $size / $secs / 1000000" | bc -l)" $((kb / 1024)) "$bad2" "$storage"
