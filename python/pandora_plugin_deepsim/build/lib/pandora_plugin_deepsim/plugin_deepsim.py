"""Pandora matching-cost method ``"deepsim"``: deepsim's cost volume inside a Pandora pipeline.

Pandora (CNES) runs its steps on an xarray cost volume; this plugin fills that volume with the
cost ``deepsim match`` uses at full resolution (:func:`deepsim.cost_volume`): the learned
DeepSim-Nets cost of a model bundle (blended with census as deepsim does, ``learned_weight``),
or the classical census / NCC cost. Pandora's own optimisation (e.g. libSGM), refinement,
filters and validity products then run on it unchanged. Configuration::

    "matching_cost": {"matching_cost_method": "deepsim", "model": "models/msaff",
                      "head": "cosine", "runtime": "tract"}

Conventions handled here:

- **Sign**: Pandora's disparity is ``d_p = x_secondary - x_reference``; deepsim's is
  ``x_right = x_left - d``. The volume of disparities ``[a, b]`` is deepsim's ``[-b, -a]``
  reversed. Pandora also computes the right image's volume (cross-checking) by calling this
  method with the images swapped; the same rule serves both calls.
- **Disparity range**: Pandora's global range (its ``disp`` coordinate); per-pixel ranges and
  masks are applied afterwards by Pandora's ``cv_masked``, as for its built-in methods.
- **Masks and no-data**: pixels whose ``msk`` is not ``valid_pixels`` (no-data included) are
  handed to deepsim as invalid, so they take no part in the features or windows.
- **Subpixel** (``subpix`` 2 or 4): costs at fractional disparities are interpolated linearly
  between the integer ones (deepsim has no shifted-image cost).
- **Grey levels**: images holding integers in [0, 255] are given to deepsim as uint8 (mapped
  by /255, as deepsim reads an 8-bit file, which its models were trained on); other integer
  images as uint16, anything else as float32 (2nd-98th percentile stretch).
- ``window_size`` is Pandora's border/no-data dilation window: 1 (deepsim handles its own
  windows and borders; ``window`` sets the census/NCC window, as ``deepsim match --window``).
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import numpy as np
import xarray as xr
from json_checker import And, Checker, Or
from pandora.matching_cost import matching_cost

import deepsim

#: deepsim options accepted in the configuration (the names of ``deepsim match``'s options).
_DEEPSIM_OPTIONS = ("model", "head", "runtime", "device", "similarity", "window", "learned_weight", "mlp_top_k")


@matching_cost.AbstractMatchingCost.register_subclass("deepsim")
class Deepsim(matching_cost.AbstractMatchingCost):
    """Fills Pandora's cost volume with deepsim's learned or classical cost."""

    _WINDOW_SIZE = 1
    _RUNTIME = "auto"
    _SIMILARITY = "census"
    _WINDOW = "7x7"

    def __init__(self, **cfg: Any) -> None:
        """:param cfg: the matching_cost configuration, checked by :meth:`check_conf`."""
        super().instantiate_class(**cfg)
        self._model: Optional[deepsim.Model] = None

    def check_conf(self, **cfg: Any) -> Dict[str, Any]:
        """Adds the defaults and checks the configuration (Pandora's ``check_conf`` calls this)."""
        cfg = super().check_conf(**cfg)
        cfg.setdefault("runtime", self._RUNTIME)
        cfg.setdefault("similarity", self._SIMILARITY)
        cfg.setdefault("window", self._WINDOW)
        schema = dict(self.schema)
        schema.update(
            {
                "matching_cost_method": And(str, lambda x: x == "deepsim"),
                "window_size": And(int, lambda x: x == 1),
                "runtime": And(str, lambda x: x in ("auto", "tract", "ort")),
                "similarity": And(str, lambda x: x in ("census", "ncc")),
                "window": And(str, lambda x: len(x) > 0),
            }
        )
        if "model" in cfg:
            schema["model"] = And(str, lambda x: os.path.isdir(x))
        if "head" in cfg:
            schema["head"] = And(str, lambda x: x in ("cosine", "mlp"))
        if "device" in cfg:
            schema["device"] = And(str, lambda x: x in ("cpu", "cuda", "tensorrt", "auto"))
        if "learned_weight" in cfg:
            schema["learned_weight"] = And(Or(int, float), lambda x: 0 <= x <= 1)
        if "mlp_top_k" in cfg:
            schema["mlp_top_k"] = And(int, lambda x: x >= 0)
        Checker(schema).validate(cfg)
        if "model" not in cfg and any(k in cfg for k in ("head", "learned_weight", "mlp_top_k")):
            raise ValueError("deepsim matching cost: head, learned_weight and mlp_top_k need a model (a bundle folder)")
        return cfg

    def _loaded_model(self) -> Optional[deepsim.Model]:
        """The model, loaded on first use and kept for the right image's volume."""
        if "model" not in self.cfg:
            return None
        if self._model is None:
            options = {k: self.cfg[k] for k in ("head", "runtime", "device", "mlp_top_k") if k in self.cfg}
            self._model = deepsim.Model(self.cfg["model"], **options)
        return self._model

    def _image(self, img: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
        """The reference band as a deepsim input array, and its validity."""
        im = img["im"].data
        if im.ndim == 3:
            band = self._band if self._band is not None else img.coords["band_im"].data[0]
            im = im[list(img.coords["band_im"].data).index(band)]
        im = np.asarray(im, dtype=np.float64)
        valid = np.isfinite(im)
        if "msk" in img:
            valid &= np.asarray(img["msk"].data) == int(img.attrs["valid_pixels"])
        values = im[valid]
        integer = values.size > 0 and np.all(values == np.round(values)) and values.min() >= 0
        if integer and values.max() <= 255:
            out = np.where(valid, im, 0).astype(np.uint8)
        elif integer and values.max() <= 65535:
            out = np.where(valid, im, 0).astype(np.uint16)
        else:
            out = np.where(valid, im, np.nan).astype(np.float32)
        return out, valid

    def compute_cost_volume(self, img_left: xr.Dataset, img_right: xr.Dataset, cost_volume: xr.Dataset) -> xr.Dataset:
        """Fills ``cost_volume`` (row, col, disp) for reference ``img_left`` against ``img_right``."""
        self.check_band_input_mc(img_left, img_right)
        left, left_valid = self._image(img_left)
        right, right_valid = self._image(img_right)
        disps = np.asarray(cost_volume.coords["disp"].data, dtype=np.float64)
        d_lo, d_hi = int(np.floor(disps[0])), int(np.ceil(disps[-1]))

        options: Dict[str, Any] = {k: self.cfg[k] for k in ("similarity", "window", "learned_weight") if k in self.cfg}
        model = self._loaded_model()
        # Pandora's d_p = x_sec - x_ref is deepsim's -d: deepsim's range [-d_hi, -d_lo], reversed.
        costs = deepsim.cost_volume(
            left,
            right,
            disp_min=-d_hi,
            disp_max=-d_lo,
            model=model,
            left_mask=left_valid,
            right_mask=right_valid,
            **options,
        )[:, :, ::-1]

        # Integer disparities index directly; fractional ones (subpix) interpolate linearly.
        position = disps - d_lo
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, costs.shape[2] - 1)
        weight = (position - below).astype(np.float32)
        full = costs[:, :, below] * (1 - weight) + costs[:, :, above] * weight
        full[:, :, weight == 0] = costs[:, :, below[weight == 0]]

        index_col = np.asarray(cost_volume.attrs["col_to_compute"]) - img_left.coords["col"].data[0]
        cost_volume["cost_volume"].data = np.ascontiguousarray(full[:, index_col, :], dtype=np.float32)
        cost_volume.attrs.update({"type_measure": "min", "cmax": 1})
        return cost_volume
