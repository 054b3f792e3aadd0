from __future__ import annotations

import numpy as np
import pytest

from deepsim_train.data.pairs import derive_nonocc
from deepsim_train.imageio import read_pfm, to_grey, to_unit, write_pfm


def test_uint8_is_divided_by_255():
    img = np.array([[0, 51, 255]], dtype=np.uint8)
    np.testing.assert_allclose(to_unit(img), [[0.0, 0.2, 1.0]], atol=1e-7)


def test_uint16_robust_stretch():
    rng = np.random.default_rng(0)
    img = rng.integers(1000, 3000, size=(50, 50)).astype(np.uint16)
    img[0, 0] = 65535  # outlier: must not squash the range
    out = to_unit(img)
    lo, hi = np.percentile(img.astype(np.float64), [2, 98])
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out[5, 5], np.clip((img[5, 5] - lo) / (hi - lo), 0, 1), atol=1e-6)
    assert 0.3 < out.mean() < 0.7


def test_float_stretch_ignores_invalid_and_masks():
    img = np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10) * 500
    img[0, 0] = np.nan
    mask = np.ones_like(img, dtype=bool)
    mask[9] = False
    out = to_unit(img, valid=mask)
    assert out[0, 0] == 0.0 and (out[9] == 0).all()
    valid = img[mask & np.isfinite(img)]
    lo, hi = np.percentile(valid, [2, 98])
    np.testing.assert_allclose(out[4, 4], (img[4, 4] - lo) / (hi - lo), atol=1e-6)


def test_flat_image_is_zero():
    assert (to_unit(np.full((4, 4), 7.0, dtype=np.float32)) == 0).all()
    assert (to_unit(np.full((4, 4), np.nan, dtype=np.float32)) == 0).all()


def test_grey_conversion_weights():
    rgb = np.zeros((1, 1, 3), dtype=np.uint8)
    rgb[..., 1] = 200
    assert to_grey(rgb)[0, 0] == round(0.587 * 200)


def test_pfm_round_trip(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    a[1, 2] = np.inf
    write_pfm(tmp_path / "d.pfm", a)
    b = read_pfm(tmp_path / "d.pfm")
    np.testing.assert_array_equal(a, b)
    assert b.shape == (3, 4)


def test_pfm_big_endian_and_bad_header(tmp_path):
    a = np.array([[1.5, 2.5], [3.5, 4.5]], dtype=np.float32)
    with open(tmp_path / "be.pfm", "wb") as f:
        f.write(b"Pf\n2 2\n1.0\n" + np.flipud(a).astype(">f4").tobytes())
    np.testing.assert_array_equal(read_pfm(tmp_path / "be.pfm"), a)
    (tmp_path / "bad.pfm").write_bytes(b"P6\n1 1\n255\n\x00\x00\x00")
    with pytest.raises(ValueError, match="not a PFM"):
        read_pfm(tmp_path / "bad.pfm")


def test_derive_nonocc_step_edge():
    # background d=2 on the left, foreground d=6 from column 10: the 4 background pixels just
    # left of the edge are hidden by the foreground in the right image; x - d < 0 is occluded
    d = np.full((1, 20), 2.0, dtype=np.float32)
    d[0, 10:] = 6.0
    m = derive_nonocc(d, tol_px=1.0)
    assert not m[0, :2].any()  # x - d < 0
    assert m[0, 2:6].all()
    assert not m[0, 7:10].any()  # hidden behind the foreground
    assert m[0, 10:].all()
