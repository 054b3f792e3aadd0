"""The "deepsim" matching cost inside real Pandora pipelines (pandora + pandora_plugin_libsgm
from PyPI, the plugin found through its `pandora.plugin` entry point), on a crop of the
motorcycle pair."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import pandora
from pandora import check_configuration, img_tools
from pandora.state_machine import PandoraMachine

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "data"
MODEL = ROOT / "models" / "msaff-adapted"
MOTORCYCLE = ROOT.parent / "shared" / "data" / "motorcycle"
if not MOTORCYCLE.exists():
    MOTORCYCLE = Path("/work/shared/data/motorcycle")

#: The crop: rows, columns of the 741 x 500 pair (disparities 7..60 px).
CROP = (slice(140, 300), slice(180, 520))
DISP_MAX = 63


def pipeline(matching_cost: dict, p1: float = 0.2, p2: float = 0.8) -> dict:
    """Pandora's documented SGM pipeline (as bench/peers/run_pandora.py) with `matching_cost`;
    deepsim's costs are in [0, 1], so the penalties are deepsim's own defaults (--p1 0.2
    --p2 0.8, in units of the worst cost) instead of census's 8 and 32 (Hamming distances)."""
    return {
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
    }


@pytest.fixture(scope="module")
def crop(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("crop")
    paths = {}
    for side in ("left", "right"):
        grey = np.asarray(Image.open(EXAMPLES / f"motorcycle_{side}.png"))[CROP]
        tifffile.imwrite(folder / f"{side}.tif", grey)
        paths[side] = str(folder / f"{side}.tif")
    mask = np.zeros_like(grey)  # Pandora's masks: 0 = valid ("valid_pixels"), else invalid
    mask[20:50, 40:90] = 1
    tifffile.imwrite(folder / "left_mask.tif", mask)
    paths["left_mask"] = str(folder / "left_mask.tif")
    return paths


def run(paths: dict, matching_cost: dict, left_mask: bool = False, penalties: tuple = (0.2, 0.8)) -> np.ndarray:
    """Checks (check_conf) and runs a Pandora pipeline; our disparity (x_right = x_left - d)."""
    logging.getLogger("transitions.core").setLevel(logging.ERROR)
    pandora.import_plugin()
    user = {
        "input": {
            "left": {"img": paths["left"], "disp": [-DISP_MAX, 0], **({"mask": paths["left_mask"]} if left_mask else {})},
            "right": {"img": paths["right"]},
        },
        "pipeline": pipeline(matching_cost, *penalties),
    }
    machine = PandoraMachine()
    cfg = check_configuration.check_conf(copy.deepcopy(user), machine)
    left = img_tools.create_dataset_from_inputs(input_config=cfg["input"]["left"])
    d = cfg["input"]["left"]["disp"]
    cfg["input"]["right"]["disp"] = [-d[1], -d[0]]
    right = img_tools.create_dataset_from_inputs(input_config=cfg["input"]["right"])
    left_ds, _ = pandora.run(machine, left, right, cfg)
    disp = -np.asarray(left_ds["disparity_map"].data, dtype=np.float32)  # Pandora: d = x_right - x_left
    invalid = (np.asarray(left_ds["validity_mask"].data) & int(pandora.constants.Criteria.PANDORA_MSK_PIXEL_INVALID)) != 0
    disp[invalid | ~np.isfinite(disp)] = np.nan
    return disp


def bad2(disp: np.ndarray) -> tuple[float, float]:
    """Non-occluded bad-2 % (invalid = bad) and density % on the crop, against the ground truth."""
    if not (MOTORCYCLE / "gt.npy").exists():
        pytest.skip(f"motorcycle ground truth not found at {MOTORCYCLE}")
    gt = np.load(MOTORCYCLE / "gt.npy")[CROP]
    region = np.load(MOTORCYCLE / "nonocc.npy")[CROP].astype(bool) & np.isfinite(gt)
    valid = np.isfinite(disp) & region
    good = valid & (np.abs(np.where(valid, disp, 0) - gt) <= 2)
    return 100 * (1 - good.sum() / region.sum()), 100 * valid.sum() / region.sum()


def photometric(paths: dict, disp: np.ndarray, sign: int) -> float:
    """Mean |L(x) - R(x - sign·d)| over valid pixels: lowest for the right sign."""
    left, right = tifffile.imread(paths["left"]).astype(float), tifffile.imread(paths["right"]).astype(float)
    rows, cols = np.nonzero(np.isfinite(disp))
    xr = np.rint(cols - sign * disp[rows, cols]).astype(int)
    ok = (xr >= 0) & (xr < left.shape[1])
    return float(np.mean(np.abs(left[rows[ok], cols[ok]] - right[rows[ok], xr[ok]])))


def test_check_conf_validates_and_completes_the_configuration():
    pandora.import_plugin()
    from pandora.matching_cost import AbstractMatchingCost

    cfg = AbstractMatchingCost(matching_cost_method="deepsim").cfg
    assert cfg["window_size"] == 1 and cfg["subpix"] == 1 and cfg["similarity"] == "census" and cfg["runtime"] == "auto"
    for bad in (
        {"window_size": 5},
        {"runtime": "cuda"},
        {"similarity": "sad"},
        {"subpix": 3},
        {"head": "cosine"},  # needs a model
        {"model": "/nonexistent/bundle"},
        {"model": str(MODEL), "learned_weight": 1.5},
    ):
        with pytest.raises(Exception):
            AbstractMatchingCost(matching_cost_method="deepsim", **bad)


@pytest.fixture(scope="module")
def pandora_census(crop) -> float:
    """Pandora's own census 5x5 (its documented P1 8 / P2 32) on the crop: the reference."""
    error, _ = bad2(run(crop, {"matching_cost_method": "census", "window_size": 5}, penalties=(8, 32)))
    return error


def test_census_cost_in_a_full_pandora_pipeline(crop, pandora_census):
    disp = run(crop, {"matching_cost_method": "deepsim"})
    # Sign: deepsim's convention once Pandora's is undone.
    assert photometric(crop, disp, +1) < 0.5 * photometric(crop, disp, -1)
    error, density = bad2(disp)
    # The crop is a hard part of the pair (Pandora census: ~20 %); deepsim's census cost under
    # the same Pandora pipeline does at least as well.
    assert density > 70 and error < pandora_census + 1, (error, density, pandora_census)


def test_learned_cost_subpixel_and_masks(crop, pandora_census):
    cost = {"matching_cost_method": "deepsim", "model": str(MODEL), "head": "cosine", "runtime": "tract", "subpix": 2}
    disp = run(crop, cost, left_mask=True)
    assert np.all(np.isnan(disp[20:50, 40:90]))  # masked out
    fractional = np.isfinite(disp) & (disp != np.round(disp))
    assert fractional.mean() > 0.3  # vfit refinement on a half-pixel volume
    error, density = bad2(disp)
    assert density > 60 and error < pandora_census + 5, (error, density, pandora_census)
