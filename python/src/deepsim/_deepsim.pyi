"""Type stubs of the native module (use the ``deepsim`` package, not this module)."""

from typing import Any, Callable, Iterable, Optional

import numpy as np
import numpy.typing as npt

__version__: str

class NativeModel:
    def __init__(self, argv: list[str], options: list[str]) -> None: ...
    @property
    def report_json(self) -> str: ...
    @property
    def options(self) -> list[str]: ...
    @property
    def name(self) -> str: ...

def match_arrays(
    argv: list[str],
    left: np.ndarray,
    right: np.ndarray,
    left_mask: Optional[npt.NDArray[np.bool_]] = None,
    right_mask: Optional[npt.NDArray[np.bool_]] = None,
    model: Optional[NativeModel] = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], str]: ...
def cost_volume(
    argv: list[str],
    left: np.ndarray,
    right: np.ndarray,
    left_mask: Optional[npt.NDArray[np.bool_]] = None,
    right_mask: Optional[npt.NDArray[np.bool_]] = None,
    model: Optional[NativeModel] = None,
) -> npt.NDArray[np.float32]: ...
def run_cli(argv: list[str], raise_errors: bool = True) -> int: ...

class TileWorker:
    """A worker's share of a distributed run (``deepsim.distributed``): the pair of a
    ``deepsim match`` argument list read by path, its pyramid and backends."""

    def __init__(self, argv: list[str]) -> None: ...
    def plan(self) -> list[list[tuple[int, int, int, int]]]:
        """Per step (coarsest first), the cores ``(x0, y0, x1, y1)`` of its tiles."""
    def run_tile(self, step: int, tile: int, coarse: Optional[str] = None, products: bool = False) -> bytes:
        """Matches one tile of the plan; its core, encoded for ``run_tiled``."""

def run_tiled(argv: list[str], submit: Callable[[dict[str, Any]], Iterable[tuple[int, bytes]]], description: str) -> str:
    """``deepsim match`` with each step's tiles given to ``submit`` (a request dict: ``step``,
    ``level``, ``tiles``, ``coarse``, ``products``, ``argv``), which yields ``(tile, bytes)``;
    returns the output folder."""
