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
import copy
import json
import logging
import time
from pathlib import Path

import numpy as np

import pandora
from pandora import check_configuration, img_tools
from pandora.state_machine import PandoraMachine

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "motorcycle"
if not DATA.exists():
    DATA = Path("/work/shared/data/motorcycle")


def config(left: str, right: str, disp_max: int, cost: dict, p1: float, p2: float) -> dict:
    return {
        "input": {"left": {"img": left, "disp": [-disp_max, 0]}, "right": {"img": right}},
        "pipeline": {
            "matching_cost": cost,
            "optimization": {
                "optimization_method": "sgm",
                "overcounting": False,
                "penalty": {"penalty_method": "sgm_penalty", "P1": p1, "P2": p2, "p2_method": "constant"},
            },
            "disparity": {"disparity_method": "wta", "invalid_disparity": "NaN"},
            "refinement": {"refinement_method": "vfit"},
            "filter": {"filter_method": "median", "filter_size": 3},
            "validation": {"validation_method": "cross_checking_accurate", "cross_checking_threshold": 1},
            "filter.this_time_after_validation": {"filter_method": "median", "filter_size": 3},
        },
    }


def run(user: dict) -> tuple[np.ndarray, float]:
    pandora.import_plugin()
    machine = PandoraMachine()
    cfg = check_configuration.check_conf(copy.deepcopy(user), machine)
    left = img_tools.create_dataset_from_inputs(input_config=cfg["input"]["left"])
    d = cfg["input"]["left"]["disp"]
    cfg["input"]["right"]["disp"] = [-d[1], -d[0]]
    right = img_tools.create_dataset_from_inputs(input_config=cfg["input"]["right"])
    t = time.perf_counter()
    left_ds, _ = pandora.run(machine, left, right, cfg)
    seconds = time.perf_counter() - t
    disp = -np.asarray(left_ds["disparity_map"].data, dtype=np.float32)
    invalid = (np.asarray(left_ds["validity_mask"].data) & int(pandora.constants.Criteria.PANDORA_MSK_PIXEL_INVALID)) != 0
    disp[invalid | ~np.isfinite(disp)] = np.nan
    return disp, seconds


def bad2_nonocc(d: np.ndarray, gt: np.ndarray, nonocc: np.ndarray) -> tuple[float, float]:
    region = nonocc & np.isfinite(gt)
    valid = np.isfinite(d) & region
    bad = region & ~(valid & (np.abs(np.where(valid, d, 0) - gt) <= 2.0))
    return 100.0 * bad.sum() / region.sum(), 100.0 * valid.sum() / region.sum()


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
        disp, seconds = run(config(left, right, 63, cost, p1, p2))
        error, density = bad2_nonocc(disp, gt, nonocc)
        results[name] = {"nonocc_bad2_pct": round(error, 2), "density_pct": round(density, 1), "pandora_run_s": round(seconds, 2)}
        print(f"{name:60s} bad-2 {error:6.2f} %  density {density:5.1f} %  {seconds:6.1f} s", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
