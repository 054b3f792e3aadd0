from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from deepsim_train.data import AugmentConfig, CropDataset, load_pairs, random_crop, read_synth_pair
from deepsim_train.data.crops import hflip_pair, scale_pair
from deepsim_train.data.fake import make_fake_synth
from deepsim_train.imageio import write_pfm
from deepsim_train.sampling import positive_columns, sample_columns


def _photometric_error(pair) -> float:
    ys, xs = np.nonzero(pair.nonocc)
    xr = xs - pair.disp[ys, xs]
    x0 = np.floor(xr).astype(int)
    f = xr - x0
    x1 = np.minimum(x0 + 1, pair.shape[1] - 1)
    r = pair.right[ys, x0] * (1 - f) + pair.right[ys, x1] * f
    return float(np.abs(pair.left[ys, xs] - r).mean())


def test_reads_fake_synth_layout(fake_synth):
    manifest = json.loads((fake_synth / "manifest.json").read_text())
    assert manifest["format"] == "deepsim-synth" and manifest["version"] == 1
    pairs = load_pairs(fake_synth, purpose="train")
    assert len(pairs) == 4
    for p in pairs:
        assert p.left.dtype == np.float32 and p.left.shape == (64, 96)
        assert 0 <= p.left.min() and p.left.max() <= 1
        assert np.isnan(p.disp[~p.defined]).all() and np.isfinite(p.disp[p.defined]).all()
        assert (p.nonocc <= p.defined).all() and p.nonocc.mean() > 0.5
        assert p.meta["convention"].startswith("left (x, y) matches right (x - d")
        # the GT is right: x - d matches much better than x + d
        err = _photometric_error(p)
        flipped = type(p)(p.left, p.right, -p.disp, p.defined, p.defined)
        assert err < 0.6 * _photometric_error_safe(flipped)


def _photometric_error_safe(pair) -> float:
    ys, xs = np.nonzero(pair.nonocc)
    xr = np.clip(xs - pair.disp[ys, xs], 0, pair.shape[1] - 1)
    return float(np.abs(pair.left[ys, xs] - pair.right[ys, np.rint(xr).astype(int)]).mean())


def test_tolerant_of_tif_images_and_16bit(tmp_path):
    root = make_fake_synth(tmp_path / "d", num_pairs=1, height=32, width=48, image_ext=".tif")
    p = load_pairs(root)[0]
    assert p.left.shape == (32, 48)
    # 16-bit PNG is stretched, not divided by 255
    d = root / "000000"
    (d / "left.tif").unlink()
    Image.fromarray((np.arange(32 * 48).reshape(32, 48) * 20).astype(np.uint16)).save(d / "left.png")
    q = read_synth_pair(d)
    assert q.left.max() == 1.0 and q.left.min() == 0.0


def test_manifest_errors(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "deepsim-synth", "version": 2, "pairs": []}))
    with pytest.raises(ValueError, match="version 2 unsupported"):
        load_pairs(tmp_path, format="synth")


def test_middlebury_layout(tmp_path):
    h, w = 20, 40
    rng = np.random.default_rng(0)
    left = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    d = np.full((h, w), 3.0, dtype=np.float32)
    d[0, 0] = np.inf
    right = np.zeros_like(left)
    right[:, : w - 3] = left[:, 3:]
    Image.fromarray(left).save(tmp_path / "im0.png")
    Image.fromarray(right).save(tmp_path / "im1.png")
    write_pfm(tmp_path / "disp0.pfm", d)
    (p,) = load_pairs(tmp_path)
    assert np.isnan(p.disp[0, 0]) and not p.defined[0, 0]
    assert not p.nonocc[:, :3].any() and p.nonocc[1:, 3:].all()
    np.testing.assert_allclose(p.left[5, 10], p.right[5, 7])


def test_motorcycle_is_eval_only(motorcycle):
    (p,) = load_pairs(motorcycle)
    assert p.shape == (500, 741)
    with pytest.raises(ValueError, match="evaluation-only"):
        load_pairs(motorcycle, purpose="train")


def test_crop_positive_columns_hit_the_match(fake_synth):
    pair = load_pairs(fake_synth)[0]
    rng = np.random.default_rng(0)
    for _ in range(5):
        s = random_crop(pair, height=32, width=48, right_extra=32, rng=rng)
        assert s["left"].shape == (1, 32, 48) and s["right"].shape == (1, 32, 80)
        xr = positive_columns(s["disp"][None], s["offset"][None])
        r = sample_columns(s["right"][None], xr)[0, 0]
        m = s["nonocc"] & (xr[0] >= 0)
        err = (r - s["left"][0]).abs()[m].mean()
        assert err < 0.1, err


def test_crop_vflip_and_scale_keep_gt(fake_synth):
    pair = load_pairs(fake_synth)[1]
    base = _photometric_error(pair)
    half = scale_pair(pair, 0.5)
    assert half.shape == (32, 48)
    assert np.nanmax(half.disp) <= np.nanmax(pair.disp) * 0.5 + 1e-4
    assert _photometric_error(half) < 2 * base + 0.02
    aug = AugmentConfig(vflip=1.0, brightness=0, contrast=0, gamma=0, noise=0)
    s = random_crop(pair, height=32, width=48, right_extra=32, rng=np.random.default_rng(1), augment=aug)
    xr = positive_columns(s["disp"][None], s["offset"][None])
    r = sample_columns(s["right"][None], xr)[0, 0]
    assert (r - s["left"][0]).abs()[s["nonocc"]].mean() < 0.1


def test_hflip_uses_right_disparity():
    from deepsim_train.data.fake import render_scene
    from deepsim_train.data.pairs import StereoPair

    sc = render_scene(32, 64, seed=3, num_objects=0, undefined_blob=False)  # slanted plane only
    d = sc["disp_left"]
    L = sc["scene"]["layers"][0]
    # right disparity of a plane: xr = xl - (a + b xl + c y)  =>  dR(xr) = d at xl(xr)
    ys, xs = np.mgrid[0:32, 0:64].astype(np.float64)
    xl = (xs + L["a"] + L["c"] * ys) / (1 - L["b"])
    dR = (L["a"] + L["b"] * xl + L["c"] * ys).astype(np.float32)
    p = StereoPair(sc["left"] / np.float32(255), sc["right"] / np.float32(255), d, np.ones_like(d, bool), sc["mask_nonocc"], disp_right=dR)
    with pytest.raises(ValueError):
        hflip_pair(StereoPair(p.left, p.right, d, p.defined, p.nonocc))
    f = hflip_pair(p)
    assert _photometric_error(f) < 0.05


def test_crop_dataset_reproducible_and_epoch_dependent(fake_synth):
    ds = CropDataset([fake_synth], crop_height=32, crop_width=48, right_extra=16, samples_per_epoch=4, seed=5,
                     augment=AugmentConfig())
    a, b = ds[2], ds[2]
    assert torch.equal(a["left"], b["left"])
    ds.set_epoch(1)
    assert not torch.equal(a["left"], ds[2]["left"])
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["right"].shape == (2, 1, 32, 64) and batch["right_valid"].shape == (2, 2)


def test_crop_dataset_reads_pairs_on_demand_and_keeps_a_bounded_cache(fake_synth):
    # Regression: all pairs were decoded up front (800 synth pairs = 8.5 GB per training process).
    ds = CropDataset([fake_synth], crop_height=32, crop_width=48, right_extra=16, samples_per_epoch=16, seed=5,
                     cache_pairs=2)
    assert len(ds.loaders) == 4 and len(ds._cache) == 0, "nothing read before a crop needs it"
    reference = CropDataset([fake_synth], crop_height=32, crop_width=48, right_extra=16, samples_per_epoch=16,
                            seed=5, cache_pairs=100)
    for i in range(16):
        assert torch.equal(ds[i]["left"], reference[i]["left"]), "same crops whatever the cache size"
        assert len(ds._cache) <= 2
    assert len(reference._cache) == 4


def test_disp_tiff_is_float32_nan(fake_synth):
    d = tifffile.imread(fake_synth / "000000" / "disp_left.tif")
    m = np.array(Image.open(fake_synth / "000000" / "mask_defined.png"))
    assert d.dtype == np.float32 and set(np.unique(m)) <= {0, 255}
    assert np.isnan(d[m == 0]).all()
