"""``python -m pulsar.apps.shell``: the same as the ``pulsar-shell`` console script."""

from __future__ import annotations

import sys

from ._app import main

if __name__ == "__main__":
    sys.argv[0] = "pulsar-shell"  # the program name in --help and error messages
    main()
