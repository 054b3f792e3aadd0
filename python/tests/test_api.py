"""The `deepsim` Python package against the `deepsim` command line (same engine, same numbers).

Runs the installed package (`pip install .`); the CLI is `python -m deepsim`, i.e. the same
build, run as a separate process as a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import deepsim

ROOT = Path(__file__).resolve().parents[2]
LEFT_PNG = ROOT / "examples/data/motorcycle_left.png"
RIGHT_PNG = ROOT / "examples/data/motorcycle_right.png"
MODEL = ROOT / "models/msaff-adapted"


def read_png_grey(path: Path) -> np.ndarray:
    """The 8-bit grey samples of an example PNG."""
    grey = np.asarray(Image.open(path))
    assert grey.dtype == np.uint8 and grey.ndim == 2
    return grey


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    return read_png_grey(LEFT_PNG), read_png_grey(RIGHT_PNG)


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "deepsim", "-q", *args], check=True)


def cli_match(tmp: Path, left: Path, right: Path, *options: str) -> tuple[np.ndarray, np.ndarray, dict]:
    out = tmp / "out"
    cli("match", "--left", str(left), "--right", str(right), "--out", str(out), *options)
    report = json.loads((out / "run.json").read_text())
    return tifffile.imread(out / "disparity.tif"), tifffile.imread(out / "confidence.tif"), report


def assert_bit_identical(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), "not bit-identical"


def test_census_whole_motorcycle_is_bit_identical_to_the_cli(tmp_path, pair):
    left, right = pair
    cli_disp, cli_conf, cli_report = cli_match(tmp_path, LEFT_PNG, RIGHT_PNG, "--disp-min", "0", "--disp-max", "63")
    result = deepsim.match(left, right, disp_min=0, disp_max=63)
    assert_bit_identical(result.disparity, cli_disp)
    assert_bit_identical(result.confidence, cli_conf)
    assert result.report["parameters"] == cli_report["parameters"]
    assert result.report["stats"] == cli_report["stats"]
    assert 0.5 < result.report["stats"]["density"] < 1.0


def test_learned_tract_crop_is_bit_identical_to_the_cli(tmp_path, pair):
    left, right = (im[150:310, 200:456] for im in pair)
    tifffile.imwrite(tmp_path / "l.tif", left)
    tifffile.imwrite(tmp_path / "r.tif", right)
    options = ["--disp-min", "0", "--disp-max", "63", "--model", str(MODEL), "--head", "cosine", "--runtime", "tract"]
    cli_disp, _, cli_report = cli_match(tmp_path, tmp_path / "l.tif", tmp_path / "r.tif", *options)

    result = deepsim.match(left, right, disp_min=0, disp_max=63, model=MODEL, head="cosine", runtime="tract")
    assert_bit_identical(result.disparity, cli_disp)
    assert result.report["parameters"] == cli_report["parameters"]
    assert result.report["models"][0]["learned_weight"] == 0.5  # the CLI's default blend

    # A loaded Model gives the same numbers, call after call.
    model = deepsim.Model(MODEL, head="cosine", runtime="tract")
    for _ in range(2):
        again = deepsim.match(left, right, disp_min=0, disp_max=63, model=model)
        assert_bit_identical(again.disparity, cli_disp)
    # Model options belong to the Model.
    with pytest.raises(deepsim.OptionError, match="head"):
        deepsim.match(left, right, disp_min=0, disp_max=63, model=model, head="mlp")


def test_options_are_the_cli_options(tmp_path, pair):
    left, right = (im[100:260, 100:400] for im in pair)
    tifffile.imwrite(tmp_path / "l.tif", left)
    tifffile.imwrite(tmp_path / "r.tif", right)
    cli_disp, _, _ = cli_match(
        tmp_path, tmp_path / "l.tif", tmp_path / "r.tif",
        "--disp-min=-4", "--disp-max", "63", "--similarity", "ncc", "--window", "5", "--levels", "2",
        "--no-subpixel", "--lr-check=-1", "--fill", "background", "--p2", "0.6",
    )  # fmt: skip
    result = deepsim.match(
        left, right, disp_min=-4, disp_max=63, similarity="ncc", window="5", levels=2,
        no_subpixel=True, lr_check=-1, fill="background", p2=0.6,
    )  # fmt: skip
    assert_bit_identical(result.disparity, cli_disp)
    assert np.all(np.isfinite(result.disparity))  # filled, no left-right check
    assert np.mean(result.disparity == np.round(result.disparity)) > 0.9  # no sub-pixel (the median may halve)


def test_uint16_float32_and_masks(pair):
    left, right = (im[100:228, 100:356] for im in pair)
    a = deepsim.match(left, right, disp_min=0, disp_max=63)
    # uint16 and float32 are stretched by their percentiles: same ranks, close result.
    b = deepsim.match(left.astype(np.uint16) * 200, right.astype(np.uint16) * 200, disp_min=0, disp_max=63)
    assert b.report["inputs"]["left"]["sample_format"] == "u16"
    c = deepsim.match(left.astype(np.float32), right.astype(np.float32), disp_min=0, disp_max=63)
    assert c.report["inputs"]["left"]["sample_format"] == "f32"
    both = np.isfinite(a.disparity) & np.isfinite(c.disparity)
    assert np.mean(np.abs(a.disparity[both] - c.disparity[both]) < 1) > 0.9
    # NaN samples are invalid: no disparity there.
    holed = left.astype(np.float32)
    holed[40:60, 100:140] = np.nan
    d = deepsim.match(holed, right.astype(np.float32), disp_min=0, disp_max=63)
    assert np.all(np.isnan(d.disparity[40:60, 100:140]))
    # A left mask (non-zero = valid) does the same.
    mask = np.ones_like(left)
    mask[10:30, 50:90] = 0
    e = deepsim.match(left, right, disp_min=0, disp_max=63, left_mask=mask)
    assert np.all(np.isnan(e.disparity[10:30, 50:90]))
    assert e.report["inputs"]["left"]["mask"] is True


def test_cost_volume(pair):
    left, right = (im[100:164, 100:356] for im in pair)
    cv = deepsim.cost_volume(left, right, disp_min=-2, disp_max=40)
    assert cv.dtype == np.float32 and cv.shape == (64, 256, 43)
    # Outside the right image (x - d < 0 or >= width): NaN; inside: costs in [0, 1].
    assert np.all(np.isnan(cv[:, 0, 3:]))  # x = 0, d >= 1
    assert np.all(np.isnan(cv[:, 255, 0]))  # x = 255, d = -2 -> x - d = 257
    inside = cv[:, 60:250, :]
    assert np.all(np.isfinite(inside)) and inside.min() >= 0 and inside.max() <= 1
    # Winner-take-all on the cost is mostly the engine's answer.
    full = deepsim.match(left, right, disp_min=-2, disp_max=40, levels=1, regularizer="none", lr_check=-1, no_median=True, min_region=0, no_subpixel=True)
    wta = np.argmin(np.nan_to_num(cv, nan=2.0), axis=2) - 2
    agree = np.mean(wta[:, 60:250] == full.disparity[:, 60:250])
    assert agree > 0.95, agree  # ties (costs in 1/1024 steps) may break differently


def test_errors_carry_the_engine_message(tmp_path, pair):
    left, right = pair
    with pytest.raises(deepsim.OptionError, match="no_such_option|no-such-option"):
        deepsim.match(left, right, disp_min=0, disp_max=63, no_such_option=3)
    with pytest.raises(deepsim.DeepsimError, match="learned-weight"):
        deepsim.match(left, right, disp_min=0, disp_max=63, learned_weight=0.3)  # needs a model
    with pytest.raises(deepsim.InvalidInputError, match="uint8, uint16 or float32"):
        deepsim.match(left.astype(np.int64), right, disp_min=0, disp_max=63)
    with pytest.raises(deepsim.InvalidInputError, match="2-D"):
        deepsim.match(np.stack([left, left], axis=-1), right, disp_min=0, disp_max=63)
    with pytest.raises(deepsim.InvalidInputError, match="no valid pixel"):
        deepsim.match(left, right, disp_min=0, disp_max=63, left_mask=np.zeros_like(left))
    with pytest.raises(deepsim.InvalidInputError, match="mask"):
        deepsim.match(left, right, disp_min=0, disp_max=63, left_mask=np.ones((3, 3)))
    with pytest.raises(deepsim.DeepsimError, match="features.onnx|bundle|no such|No such"):
        deepsim.Model(tmp_path / "not-a-bundle")
    with pytest.raises(deepsim.DeepsimIOError):
        deepsim.match_files(tmp_path / "missing.png", RIGHT_PNG, tmp_path / "out")
    assert not (tmp_path / "out" / "run.json").exists()


def test_match_files_is_the_cli(tmp_path):
    report = deepsim.match_files(LEFT_PNG, RIGHT_PNG, tmp_path / "a", disp_min=0, disp_max=63, levels=2)
    cli("match", "--left", str(LEFT_PNG), "--right", str(RIGHT_PNG), "--out", str(tmp_path / "b"), "--disp-min", "0", "--disp-max", "63", "--levels", "2")
    for name in ("disparity.tif", "confidence.tif"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert report["parameters"]["steps"] and len(report["steps"]) == 2


def test_python_m_deepsim_forwards_to_the_cli():
    done = subprocess.run([sys.executable, "-m", "deepsim", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("deepsim ")
    done = subprocess.run([sys.executable, "-m", "deepsim", "match", "--bogus"], capture_output=True, text=True)
    assert done.returncode == 2 and "--bogus" in done.stderr
    done = subprocess.run([sys.executable, "-m", "deepsim", "match", "--left", "x.png", "--right", "y.png", "--out", "/nonexistent/o"], capture_output=True, text=True)
    assert done.returncode == 1 and "error:" in done.stderr


def test_the_gil_is_released_while_matching(pair):
    """A Python thread keeps running while the engine matches in another one."""
    left, right = pair
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.005)

    worker = threading.Thread(target=tick)
    worker.start()
    try:
        start = time.perf_counter()
        deepsim.match(left, right, disp_min=0, disp_max=63, threads=1)
        end = time.perf_counter()
    finally:
        stop.set()
        worker.join()
    during = [t for t in ticks if start < t < end]
    # The call takes well over 0.1 s on one thread; with the GIL held, no tick would land in it.
    assert end - start > 0.1
    assert len(during) >= 5, (len(during), end - start)
