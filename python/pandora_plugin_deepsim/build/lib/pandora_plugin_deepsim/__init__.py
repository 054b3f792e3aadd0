"""Pandora plugin: the matching-cost method ``"deepsim"`` (see :mod:`.plugin_deepsim`)."""

from .plugin_deepsim import Deepsim

__all__ = ["Deepsim"]
