#!/usr/bin/env bash
# Tiled vs whole-level matching of a large synthetic pair: wall time, peak memory (from
# /usr/bin/time) and accuracy of each run, printed side by side.
#   bash bench/large.sh [SIZE=4096] [TILE=1024] [LEVELS=4]
set -euo pipefail
size=${1:-4096}; tile=${2:-1024}; levels=${3:-4}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release/deepsim"
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$bin" -q synth --out "$work/ds" --count 1 --seed 77 --size "$size"
pair="$work/ds/000000"
printf '%-22s %10s %12s %10s\n' run seconds "peak MB" "bad-2 %"
for t in "$tile" 0; do
  /usr/bin/time -f '%e %M' -o "$work/time" "$bin" -q match --left "$pair/left.png" --right "$pair/right.png" \
    --out "$work/out$t" --disp-min 0 --disp-max 255 --levels "$levels" --tile "$t"
  read -r secs kb < "$work/time"
  bad2=$("$bin" eval --disparity "$work/out$t/disparity.tif" --gt "$pair/disp_left.tif" --mask "$pair/mask_nonocc.png" | awk '$1=="nonocc"{print $5}')
  label=$([ "$t" = 0 ] && echo "whole levels" || echo "tiles of $t px")
  printf '%-22s %10s %12d %10s\n' "$label" "$secs" $((kb / 1024)) "$bad2"
done
