#!/usr/bin/env bash
# Accuracy on the Middlebury Motorcycle pair (quarter size), deepsim against its peers in one run.
# Usage: bash bench/motorcycle.sh [DATA_DIR]   (DATA_DIR holds left.png right.png gt.npy nonocc.npy)
# Peers (OpenCV StereoSGBM, Pandora census + libSGM) run when bench/peers/setup.sh can set up their venv.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$root/../shared/data/motorcycle}"
[ -f "$data/gt.npy" ] || data=/work/shared/data/motorcycle
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/deepsim"

run() { # name, extra args...
    local name=$1; shift
    "$bin" -q match --left "$data/left.png" --right "$data/right.png" --out "$out/$name" --disp-min 0 --disp-max 63 "$@"
    "$bin" eval --disparity "$out/$name/disparity.tif" --gt "$data/gt.npy" --mask "$data/nonocc.npy" --json "$out/$name/eval.json" >/dev/null
    python3 - "$name" "$out/$name" <<'PY'
import json, sys
name, d = sys.argv[1], sys.argv[2]
e = json.load(open(f"{d}/eval.json")); r = json.load(open(f"{d}/run.json"))
print(f"{name:<34} nonocc bad-2 {e['nonocc']['bad_2']:6.2f}  all bad-2 {e['all']['bad_2']:6.2f}  "
      f"EPE {e['nonocc']['epe']:.3f}  density {e['nonocc']['density']:6.2f}  {r['timings_s']['total']:.3f} s")
PY
}

echo "deepsim $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores"
run "census7x7+sgm8, 1 level" --levels 1
run "census7x7+sgm8, 3 levels" --levels 3
run "census7x7+sgm16, 1 level" --levels 1 --directions 16
run "ncc7+sgm8, 1 level" --levels 1 --similarity ncc --window 7
run "census7x7+micmac NbDir 7, 1 level" --levels 1 --regularizer micmac --nb-dir 7

if bash "$root/bench/peers/setup.sh" >/dev/null 2>&1; then
    venv="${DEEPSIM_PEERS_VENV:-$HOME/.cache/deepsim/peers-venv}"
    for script in run_opencv_sgbm.py run_pandora.py; do
        "$venv/bin/python" "$root/bench/peers/$script" --left "$data/left.png" --right "$data/right.png" \
            --gt "$data/gt.npy" --mask "$data/nonocc.npy" --out "$out/peers" --runs 1 >/dev/null
    done
    python3 - "$out/peers" <<'PY'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    j = json.load(open(f))
    m = j.get("metrics", j)
    try:
        nonocc, allpx = m["nonocc"], m["all"]
    except (KeyError, TypeError):
        continue
    rt = j.get("runtime_s", j.get("runtime", {}))
    print(f"{f.stem:<34} nonocc bad-2 {nonocc['bad2']:6.2f}  all bad-2 {allpx['bad2']:6.2f}  EPE {nonocc['epe']:.3f}  density {nonocc['density']:6.2f}  (peer)")
PY
else
    echo "(peers skipped: bench/peers/setup.sh could not set up their venv)"
fi
