"""``python -m tsrnn``: the ``tsrnn`` command (see :mod:`tsrnn.cli`)."""

import sys

from tsrnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
