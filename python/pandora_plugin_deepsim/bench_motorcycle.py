#!/usr/bin/env python3
"""Pandora with the "deepsim" matching cost on the whole motorcycle pair, beside Pandora census.

Runs Pandora's documented SGM pipeline (bench/peers/run_pandora.py: libSGM 8 directions, WTA,
vfit, median 3, cross-checking 1 px, median 3) with each matching cost, in this process, and
prints the non-occluded bad-2 % (invalid = bad, the rule of bench/real.py) and density.
Penalties: census keeps Pandora's P1 8 / P2 32 (Hamming units); deepsim's costs are in [0, 1],
so they get deepsim's own defaults P1 0.2 / P2 0.8 (units of the worst cost; not tuned here:
motorcycle is validation only).

    python python/pandora_plugin_deepsim/bench_motorcycle.py [--model models/msaff-adapted]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "peers"))
import run_pandora as rp  # noqa: E402  (the peers' Pandora pipeline, run and conversion)
from metrics import bad2_nonocc  # noqa: E402  (bench/real.py's rule)

DATA = ROOT.parent / "shared" / "data" / "motorcycle"
if not DATA.exists():
    DATA = Path("/work/shared/data/motorcycle")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "msaff-adapted"))
    ap.add_argument("--runtime", default="auto")
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("transitions.core").setLevel(logging.ERROR)
    left, right = str(DATA / "left.png"), str(DATA / "right.png")
    gt, nonocc = np.load(DATA / "gt.npy"), np.load(DATA / "nonocc.npy").astype(bool)
    learned = {"matching_cost_method": "deepsim", "model": a.model, "head": "cosine", "runtime": a.runtime}
    methods = {
        "Pandora census 5x5 + libSGM": ({"matching_cost_method": "census", "window_size": 5, "subpix": 1}, 8, 32),
        "Pandora + deepsim census 7x7 + libSGM": ({"matching_cost_method": "deepsim"}, 0.2, 0.8),
        f"Pandora + deepsim {Path(a.model).name} cosine + census (W 0.5) + libSGM": (learned, 0.2, 0.8),
        f"Pandora + deepsim {Path(a.model).name} cosine alone (W 1) + libSGM": ({**learned, "learned_weight": 1.0}, 0.2, 0.8),
    }
    results = {}
    for name, (cost, p1, p2) in methods.items():
        left_ds, _, _, _, seconds = rp.run_once(rp.sgm_config(left, right, 63, cost, p1, p2))
        disp = rp.our_disparity(left_ds)
        error, density = bad2_nonocc(disp, gt, nonocc)
        results[name] = {"nonocc_bad2_pct": round(error, 2), "density_pct": round(density, 1), "pandora_run_s": round(seconds, 2)}
        print(f"{name:60s} bad-2 {error:6.2f} %  density {density:5.1f} %  {seconds:6.1f} s", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
