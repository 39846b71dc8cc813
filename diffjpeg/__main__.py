"""``python -m diffjpeg``: the ``diffjpeg`` command (:mod:`diffjpeg.tools.cli`)."""
import sys

from .tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
