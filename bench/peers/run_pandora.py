#!/usr/bin/env python3
"""CNES Pandora + pandora_plugin_libsgm on the shared test pair.

The pipeline is Pandora's own documented SGM example
(data_samples/json_conf_files/a_semi_global_matching.json in the Pandora repository):
  census 5x5 (subpix 1) -> libSGM (8 directions, sgm_penalty P1=8 P2=32 constant,
  no overcounting) -> WTA (invalid = NaN) -> vfit refinement -> median 3x3
  -> cross_checking_accurate (threshold 1) -> median 3x3 again.
With --matching-cost mc_cnn the MC-CNN example is used instead
(a_semi_global_matching_with_mccnn_similarity_measure.json): mc_cnn window 11 with the
plugin's default weights (MC-CNN fast, Middlebury-trained, ONNX int8), libSGM with
mc_cnn_fast_penalty, WTA, vfit, median 3, cross_checking_accurate (threshold 1).

Sign convention: Pandora defines d = x_right - x_left, so our search range 0..63
(x_right = x_left - d) becomes Pandora's [-63, 0] and the output is negated.
The script verifies this photometrically (mean |L(x) - R(x - d)| vs |L(x) - R(x + d)|).

Runtime = median over --runs of pandora.run() (the pipeline; the config check,
image loading and plugin import are timed separately as 'setup').
Outputs <out>/<name>.npy (float32, positive, NaN invalid) and <out>/<name>.json.
"""
from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import logging
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metrics  # noqa: E402

DATA = Path("/work/shared/data/motorcycle")
HERE = Path(__file__).resolve().parent


def census_sgm_config(left: str, right: str, disp_max: int) -> dict:
    return sgm_config(left, right, disp_max, {"matching_cost_method": "census", "window_size": 5, "subpix": 1}, 8, 32)


def sgm_config(left: str, right: str, disp_max: int, matching_cost: dict, p1: float, p2: float) -> dict:
    """Pandora's documented SGM pipeline (libSGM with constant P1/P2, WTA, vfit, median 3,
    cross-checking 1 px, median 3) with ``matching_cost``, over disparities 0..disp_max."""
    return {
        "input": {
            "left": {"img": left, "disp": [-disp_max, 0]},
            "right": {"img": right},
        },
        "pipeline": {
            "matching_cost": matching_cost,
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


def mccnn_sgm_config(left: str, right: str, disp_max: int) -> dict:
    return {
        "input": {
            "left": {"img": left, "disp": [-disp_max, 0]},
            "right": {"img": right},
        },
        "pipeline": {
            "matching_cost": {"matching_cost_method": "mc_cnn", "window_size": 11, "subpix": 1},
            "optimization": {
                "optimization_method": "sgm",
                "overcounting": False,
                "penalty": {"penalty_method": "mc_cnn_fast_penalty"},
            },
            "disparity": {"disparity_method": "wta", "invalid_disparity": "NaN"},
            "refinement": {"refinement_method": "vfit"},
            "filter": {"filter_method": "median", "filter_size": 3},
            "validation": {"validation_method": "cross_checking_accurate", "cross_checking_threshold": 1},
        },
    }


def _invalid_flag() -> int:
    try:
        from pandora.constants import PANDORA_MSK_PIXEL_INVALID  # older Pandora
        return int(PANDORA_MSK_PIXEL_INVALID)
    except ImportError:
        from pandora.constants import Criteria
        return int(Criteria.PANDORA_MSK_PIXEL_INVALID)


def our_disparity(left_ds) -> np.ndarray:
    """Pandora's left disparity in this project's convention (x_right = x_left − d; Pandora has
    x_right = x_left + d), NaN where Pandora has none or flags the pixel invalid: Pandora keeps a
    value at pixels its validation step rejects and flags them in validity_mask
    (PANDORA_MSK_PIXEL_INVALID groups border/nodata/occlusion/mismatch)."""
    d = -np.asarray(left_ds["disparity_map"].data, dtype=np.float32)
    d[~np.isfinite(d)] = np.nan
    d[(np.asarray(left_ds["validity_mask"].data) & int(_invalid_flag())) != 0] = np.nan
    return d


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("pandora", "pandora_plugin_libsgm", "libsgm", "pandora_plugin_mccnn", "mccnn",
                "onnxruntime", "numpy", "numba", "xarray"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001 - package absent
            pass
    return out


def _json_safe(obj):
    """Strict JSON: NaN/inf floats -> strings (Pandora's resolved config holds float NaN)."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj


def run_once(user_cfg: dict):
    """Build, check and run a Pandora pipeline. Returns (left_ds, right_ds, cfg, setup_s, run_s)."""
    import pandora
    from pandora import check_configuration, img_tools
    from pandora.state_machine import PandoraMachine

    logging.getLogger("transitions.core").setLevel(logging.ERROR)  # PandoraMachine resets "transitions"
    t0 = time.perf_counter()
    pandora.import_plugin()
    machine = PandoraMachine()
    cfg = check_configuration.check_conf(copy.deepcopy(user_cfg), machine)
    img_left = img_tools.create_dataset_from_inputs(input_config=cfg["input"]["left"])
    if cfg["input"]["right"]["disp"] is None:
        d = cfg["input"]["left"]["disp"]
        cfg["input"]["right"]["disp"] = [-d[1], -d[0]]
    img_right = img_tools.create_dataset_from_inputs(input_config=cfg["input"]["right"])
    check_configuration.check_datasets(img_left, img_right)
    t1 = time.perf_counter()
    left_ds, right_ds = pandora.run(machine, img_left, img_right, cfg)
    t2 = time.perf_counter()
    return left_ds, right_ds, cfg, t1 - t0, t2 - t1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--left", default=str(DATA / "left.png"))
    ap.add_argument("--right", default=str(DATA / "right.png"))
    ap.add_argument("--gt", default=str(DATA / "gt.npy"))
    ap.add_argument("--mask", default=str(DATA / "nonocc.npy"))
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--name", default=None)
    ap.add_argument("--matching-cost", choices=["census", "mc_cnn"], default="census")
    ap.add_argument("--disp-max", type=int, default=63, help="search 0..disp-max (our convention)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--save-config", action="store_true", help="also write the resolved Pandora config")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    name = args.name or ("pandora_census_sgm" if args.matching_cost == "census" else "pandora_mccnn_sgm")
    make_cfg = census_sgm_config if args.matching_cost == "census" else mccnn_sgm_config
    user_cfg = make_cfg(str(Path(args.left).resolve()), str(Path(args.right).resolve()), args.disp_max)

    setup_times, run_times = [], []
    left_ds = cfg = None
    for _ in range(args.runs):
        left_ds, _right, cfg, s, r = run_once(user_cfg)
        setup_times.append(s)
        run_times.append(r)

    pandora_disp = np.asarray(left_ds["disparity_map"].data, dtype=np.float32)
    raw = -pandora_disp  # Pandora: x_right = x_left + d  ->  ours: x_right = x_left - d
    raw[~np.isfinite(raw)] = np.nan
    # Pandora keeps a disparity value at pixels its validation step rejects and flags them in
    # validity_mask instead; PANDORA_MSK_PIXEL_INVALID groups border/nodata/occlusion/mismatch.
    vmask = np.asarray(left_ds["validity_mask"].data)
    flagged = (vmask & int(_invalid_flag())) != 0
    disp = raw.copy()
    disp[flagged] = np.nan

    import cv2

    left = cv2.imread(args.left, cv2.IMREAD_GRAYSCALE)
    right = cv2.imread(args.right, cv2.IMREAD_GRAYSCALE)
    sign_check = {
        "mean_abs_L_minus_R_x_minus_d": metrics.photometric_error(left, right, disp),
        "mean_abs_L_minus_R_x_plus_d": metrics.photometric_error(left, right, -disp),
    }
    if sign_check["mean_abs_L_minus_R_x_minus_d"] > sign_check["mean_abs_L_minus_R_x_plus_d"]:
        print("WARNING: photometric sign check failed - output convention looks wrong", file=sys.stderr)

    gt = metrics.load_gt(args.gt)
    mask = metrics.load_mask(args.mask)
    res = metrics.evaluate(disp, gt, mask)
    res_raw = metrics.evaluate(raw, gt, mask)
    median = statistics.median(run_times)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / f"{name}.npy", disp)
    if args.save_config:
        (out / f"{name}.pandora_config.json").write_text(json.dumps(_json_safe(cfg), indent=2, default=str, allow_nan=False) + "\n")
    report = {
        "method": f"Pandora {args.matching_cost} + libSGM (documented example pipeline)",
        "date": _dt.date.today().isoformat(),
        "versions": _versions(),
        "cpu_count": os.cpu_count(),
        "inputs": {"left": args.left, "right": args.right, "width": left.shape[1], "height": left.shape[0]},
        "pandora_user_config": user_cfg,
        "runtime_s": {"median": median, "runs": run_times, "setup_runs": setup_times,
                      "note": "median of pandora.run(); first run includes numba JIT compilation"},
        "sign_check": sign_check,
        "invalid_rule": "NaN, or validity_mask & PANDORA_MSK_PIXEL_INVALID (cross-check occlusion/mismatch, border)",
        "flagged_invalid_frac_of_image": float(flagged.mean()),
        "metrics": res,
        "metrics_ignoring_validity_mask": res_raw,
    }
    (out / f"{name}.json").write_text(json.dumps(_json_safe(report), indent=2, default=str, allow_nan=False) + "\n")
    print(json.dumps({k: report[k] for k in ("method", "runtime_s", "sign_check")}, indent=2))
    print(metrics.format_row(name, res, median))
    print(metrics.format_row(name + " (validity_mask ignored)", res_raw, median))
    return 0


if __name__ == "__main__":
    sys.exit(main())
