"""Type stubs of the native module (use the ``deepsim`` package, not this module)."""

from typing import Optional

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
