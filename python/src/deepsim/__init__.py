"""deepsim: dense stereo matching of epipolar pairs with learned or classical similarity.

The Python face of the Rust engine (the same code as the ``deepsim`` command line, no copy of
the pipeline): options are the CLI's, with underscores (``disp_min=0`` is ``--disp-min 0``,
``no_subpixel=True`` is ``--no-subpixel``) and the CLI's defaults, so that ``match`` gives the
disparity ``deepsim match`` writes for the same images and options, bit for bit.

Disparity convention: left pixel ``(x, y)`` matches right pixel ``(x - d, y)``; NaN = no value.

>>> import deepsim, numpy as np
>>> result = deepsim.match(left, right, disp_min=0, disp_max=63)          # doctest: +SKIP
>>> model = deepsim.Model("models/msaff-adapted", head="cosine", runtime="tract")  # doctest: +SKIP
>>> result = deepsim.match(left, right, disp_min=0, disp_max=63, model=model)  # doctest: +SKIP

The engine runs with the GIL released; errors are :class:`deepsim.errors.DeepsimError`
subclasses carrying the engine's message. Large pairs on a Dask cluster (the tiles of a tiled
run matched by the workers, same result): :func:`deepsim.distributed.match_tiled` (imported on
demand: ``import deepsim.distributed``; needs ``dask[distributed]``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

import numpy as np

from . import _deepsim
from .errors import (
    BackendError,
    DecodeError,
    DeepsimError,
    DeepsimIOError,
    InvalidInputError,
    InvalidParameterError,
    OptionError,
    PluginError,
    UnsupportedError,
)

__version__: str = _deepsim.__version__

PathLike = Union[str, "os.PathLike[str]"]

#: Options that configure how a model is loaded and run: given to :class:`Model`, which keeps
#: them; a run with ``model=Model(...)`` may not change them.
MODEL_OPTIONS = frozenset(
    {"head", "runtime", "device", "device_id", "trt_cache", "trt_fp16", "feature_tile", "feature_margin", "mlp_top_k", "mlp_onnx", "precision"}
)

#: Arguments of the CLI that name files, which the array functions take as arrays instead.
_FILE_OPTIONS = frozenset({"left", "right", "out", "config", "overrides", "models"})


def _text(value: Any) -> str:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    return str(value)


def _flags(options: Mapping[str, Any]) -> list[str]:
    """``{"disp_min": 0, "no_subpixel": True}`` -> ``["--disp-min=0", "--no-subpixel"]``.

    ``None`` and ``False`` leave an option out (the CLI's default applies).
    """
    argv = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        else:
            # "--name=value" so that negative numbers are never read as options.
            argv.append(f"{flag}={_text(value)}")
    return argv


def _global_flags(quiet: bool, threads: Optional[int]) -> list[str]:
    argv = ["deepsim"]
    if quiet:
        argv.append("--quiet")
    if threads is not None:
        argv.append(f"--threads={_text(threads)}")
    return argv


def _refuse(options: Mapping[str, Any], names: frozenset, why: str) -> None:
    bad = sorted(n for n in options if n in names and options[n] is not None)
    if bad:
        raise OptionError(f"{', '.join(bad)}: {why}")


class Model:
    """A model bundle loaded once (the features network, its head and runtime) and reused.

    ``Model(path, head="cosine", runtime="tract")`` takes the CLI's ``--model`` and the model
    options (``head``, ``runtime``, ``device``, ``device_id``, ``trt_cache``, ``trt_fp16``,
    ``feature_tile``, ``feature_margin``, ``mlp_top_k``, ``mlp_onnx``, ``precision``). Pass it as ``model=`` to
    :func:`match` and :func:`cost_volume` to skip loading the networks on each call.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        head: Optional[str] = None,
        runtime: Optional[str] = None,
        device: Optional[str] = None,
        quiet: bool = True,
        **options: Any,
    ) -> None:
        _refuse(options, frozenset(options) - MODEL_OPTIONS, "not a model option; give it to deepsim.match")
        self.path = os.fspath(path)
        self.options = {"head": head, "runtime": runtime, "device": device, **options}
        flags = _flags(self.options)
        argv = _global_flags(quiet, None) + ["match", "--left=-", "--right=-", "--out=-", f"--model={self.path}", *flags]
        self._native = _deepsim.NativeModel(argv, flags)

    @property
    def name(self) -> str:
        """The backend's name, e.g. ``msaff+cosine``."""
        return self._native.name

    @property
    def report(self) -> dict:
        """The model's description (bundle, runtime and why, head), as in run.json's ``models``."""
        return json.loads(self._native.report_json)

    def __repr__(self) -> str:
        return f"deepsim.Model({self.path!r}, {self.name})"


@dataclass(frozen=True)
class MatchResult:
    """What :func:`match` returns."""

    #: float32 (rows, cols): disparity of each left pixel, NaN = no value.
    disparity: np.ndarray
    #: float32 (rows, cols) in [0, 1]: 1 - best / second-best aggregated cost (0 where no value).
    confidence: np.ndarray
    #: The run's report: run.json's content (parameters, models, steps, timings, stats).
    report: dict = field(repr=False)


def _model_argv(model: Union[None, PathLike, Model], options: Mapping[str, Any]) -> tuple[list[str], Optional[Model]]:
    """The ``--model`` arguments, and the loaded model if one was given."""
    if model is None:
        return [], None
    if isinstance(model, Model):
        _refuse(options, MODEL_OPTIONS, "set when the deepsim.Model was loaded; give it to deepsim.Model(...)")
        return [f"--model={model.path}", *model._native.options], model
    return [f"--model={os.fspath(model)}"], None


def _image(name: str, array: Any) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim != 2:
        raise InvalidInputError(f"{name}: expected a 2-D array (one grey band, rows × columns), got shape {a.shape}")
    if a.dtype not in (np.uint8, np.uint16, np.float32):
        raise InvalidInputError(
            f"{name}: dtype {a.dtype}: give uint8, uint16 or float32 (e.g. {name}.astype(np.float32))"
        )
    return a


def _mask(name: str, mask: Any) -> Optional[np.ndarray]:
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InvalidInputError(f"{name}: expected a 2-D mask (non-zero = valid), got shape {m.shape}")
    return m != 0


def _array_call(
    left: Any,
    right: Any,
    disp_min: Optional[int],
    disp_max: Optional[int],
    model: Union[None, PathLike, Model],
    left_mask: Any,
    right_mask: Any,
    quiet: bool,
    threads: Optional[int],
    options: dict,
) -> tuple[list, dict]:
    _refuse(options, _FILE_OPTIONS, "deepsim.match takes arrays; use deepsim.match_files for files")
    _refuse(options, frozenset({"dask"}), "use deepsim.distributed.match_tiled(..., client=...) for a Dask cluster")
    model_argv, loaded = _model_argv(model, options)
    argv = (
        _global_flags(quiet, threads)
        + ["match", "--left=<left array>", "--right=<right array>", "--out=<memory>"]
        + _flags({"disp_min": disp_min, "disp_max": disp_max})
        + model_argv
        + _flags(options)
    )
    arrays = dict(
        left=_image("left", left),
        right=_image("right", right),
        left_mask=_mask("left_mask", left_mask),
        right_mask=_mask("right_mask", right_mask),
        model=loaded._native if loaded is not None else None,
    )
    return argv, arrays


def match(
    left: np.ndarray,
    right: np.ndarray,
    *,
    disp_min: Optional[int] = None,
    disp_max: Optional[int] = None,
    model: Union[None, PathLike, Model] = None,
    head: Optional[str] = None,
    runtime: Optional[str] = None,
    levels: Optional[int] = None,
    left_mask: Optional[np.ndarray] = None,
    right_mask: Optional[np.ndarray] = None,
    quiet: bool = True,
    threads: Optional[int] = None,
    **options: Any,
) -> MatchResult:
    """Matches an epipolar pair given as 2-D arrays (uint8, uint16 or float32).

    Same engine, options and defaults as ``deepsim match`` on files holding these arrays
    (uint8 maps to [0, 1] by /255, other types by the 2nd-98th percentile stretch; NaN and
    ``nodata`` samples are invalid; masks: non-zero = valid). ``disp_min``/``disp_max``:
    the inclusive search range in pixels (both or neither: ±width/4). ``model``: a bundle
    folder or a loaded :class:`Model`. ``options``: any other ``deepsim match`` option with
    underscores (``similarity="ncc"``, ``learned_weight=1.0``, ``no_median=True``, ...).
    """
    options.update(head=head, runtime=runtime, levels=levels)
    argv, arrays = _array_call(left, right, disp_min, disp_max, model, left_mask, right_mask, quiet, threads, options)
    disparity, confidence, report_json = _deepsim.match_arrays(argv, **arrays)
    report = json.loads(report_json)
    report["command"] = argv
    return MatchResult(disparity=disparity, confidence=confidence, report=report)


def cost_volume(
    left: np.ndarray,
    right: np.ndarray,
    *,
    disp_min: int,
    disp_max: int,
    model: Union[None, PathLike, Model] = None,
    head: Optional[str] = None,
    runtime: Optional[str] = None,
    left_mask: Optional[np.ndarray] = None,
    right_mask: Optional[np.ndarray] = None,
    quiet: bool = True,
    threads: Optional[int] = None,
    **options: Any,
) -> np.ndarray:
    """The matching cost of every pixel and disparity, for callers with their own optimiser.

    Returns float32 ``(rows, cols, disp_max - disp_min + 1)``: index ``k`` is disparity
    ``disp_min + k`` (left ``(x, y)`` against right ``(x - d, y)``), costs in [0, 1]
    (0 = best match, in steps of 1/1024), NaN where the right pixel is outside the right image
    or invalid, and for all disparities of an invalid left pixel. The cost is the one
    ``deepsim match`` uses at full resolution with the same options: with a ``model``, the
    learned cost blended with ``similarity`` (``learned_weight``, default 0.5; 1 = learned
    only); else the classical ``similarity`` (census 7x7 by default).
    """
    options.update(head=head, runtime=runtime)
    argv, arrays = _array_call(left, right, disp_min, disp_max, model, left_mask, right_mask, quiet, threads, options)
    return _deepsim.cost_volume(argv, **arrays)


def match_files(
    left_path: PathLike,
    right_path: PathLike,
    out_dir: PathLike,
    *,
    model: Union[None, PathLike, Model] = None,
    quiet: bool = True,
    threads: Optional[int] = None,
    **options: Any,
) -> dict:
    """``deepsim match --left L --right R --out DIR [options]``, run in this process.

    Writes ``disparity.tif``, ``confidence.tif``, ``disparity.png`` and ``run.json`` into
    ``out_dir`` with the CLI's guarantees (atomic outputs, ``run.json`` last) and returns the
    report (run.json's content). A :class:`Model` given as ``model`` is loaded again from its
    folder with its options (the files path has no in-memory model).
    """
    _refuse(options, frozenset({"left", "right", "out", "config"}), "give the files as left_path, right_path, out_dir")
    _refuse(options, frozenset({"dask"}), "use deepsim.distributed.match_tiled(..., client=...) for a Dask cluster")
    if isinstance(model, Model):
        _refuse(options, MODEL_OPTIONS, "set when the deepsim.Model was loaded; give it to deepsim.Model(...)")
        model_argv = [f"--model={model.path}", *model._native.options]
    else:
        model_argv = [] if model is None else [f"--model={os.fspath(model)}"]
    files = {"left": left_path, "right": right_path, "out": out_dir}
    argv = _global_flags(quiet, threads) + ["match", *_flags(files), *model_argv, *_flags(options)]
    _deepsim.run_cli(argv, raise_errors=True)
    with open(os.path.join(os.fspath(out_dir), "run.json"), encoding="utf-8") as f:
        return json.load(f)


__all__ = [
    "match",
    "match_files",
    "cost_volume",
    "Model",
    "MatchResult",
    "MODEL_OPTIONS",
    "DeepsimError",
    "OptionError",
    "InvalidParameterError",
    "InvalidInputError",
    "DeepsimIOError",
    "DecodeError",
    "UnsupportedError",
    "BackendError",
    "PluginError",
    "__version__",
]
