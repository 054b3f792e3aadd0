"""``python -m deepsim …``: the ``deepsim`` command line, run in this process."""

import sys

from . import _deepsim


def main() -> int:
    """Runs ``deepsim`` with this process's arguments; returns the exit code."""
    return _deepsim.run_cli(["deepsim", *sys.argv[1:]], raise_errors=False)


if __name__ == "__main__":
    sys.exit(main())
