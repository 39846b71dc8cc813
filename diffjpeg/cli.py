"""Deprecated alias of :mod:`diffjpeg.tools.cli` (the ``diffjpeg`` command); removed in the next release."""
import sys
import warnings

from .tools.cli import SUBSAMPLINGS, CommandError, check_output, compare, compress, demo, main, parser, quality  # noqa: F401
from .tools.images import load_image  # noqa: F401

warnings.warn("diffjpeg.cli is deprecated: use diffjpeg.tools.cli", DeprecationWarning, stacklevel=2)

if __name__ == "__main__":
    sys.exit(main())
