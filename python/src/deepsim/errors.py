"""Exceptions raised by deepsim: one class per kind of engine error, all ``DeepsimError``.

The message is the engine's (what ``deepsim match`` prints after ``error:``). Each class also
derives from the built-in exception a Python caller would expect (``ValueError`` for bad
options and inputs, ``OSError`` for files), so generic handlers keep working.
"""


class DeepsimError(Exception):
    """Any error of the deepsim engine."""


class OptionError(DeepsimError, ValueError):
    """An option the command line would refuse (unknown name, bad value)."""


class InvalidParameterError(DeepsimError, ValueError):
    """A parameter value outside its allowed domain."""


class InvalidInputError(DeepsimError, ValueError):
    """Inputs that do not fit (dtype, shape, sizes, masks, no valid pixel)."""


class DeepsimIOError(DeepsimError, OSError):
    """A file could not be opened, read or written."""


class DecodeError(DeepsimError, ValueError):
    """A file was read but could not be decoded (corrupt, truncated, wrong format)."""


class UnsupportedError(DeepsimError, ValueError):
    """A pixel type, layout or feature this build does not support."""


class BackendError(DeepsimError, RuntimeError):
    """A similarity backend (model runtime) failed while computing costs."""


class PluginError(DeepsimError, RuntimeError):
    """A run-time similarity plugin could not be loaded or refused its options."""


__all__ = [
    "DeepsimError",
    "OptionError",
    "InvalidParameterError",
    "InvalidInputError",
    "DeepsimIOError",
    "DecodeError",
    "UnsupportedError",
    "BackendError",
    "PluginError",
]
