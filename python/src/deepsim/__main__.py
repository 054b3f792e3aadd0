"""``python -m deepsim …``: the ``deepsim`` command line, run in this process."""

import sys

from . import _deepsim


def main() -> int:
    """Runs ``deepsim`` with this process's arguments; returns the exit code."""
    argv = sys.argv[1:]
    if any(a == "--dask" or a.startswith("--dask=") for a in argv):
        # Tiles on a Dask cluster: driven from Python (deepsim.distributed).
        from .distributed import main as distributed_main

        return distributed_main(argv)
    return _deepsim.run_cli(["deepsim", *argv], raise_errors=False)


if __name__ == "__main__":
    sys.exit(main())
