"""``python -m deepsim.distributed match … --dask SCHEDULER_ADDRESS`` (``deepsim match --dask``)."""

import sys

from deepsim.distributed import main

if __name__ == "__main__":
    sys.exit(main())
