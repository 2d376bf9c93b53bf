"""``python -m extraction``: the same as ``sawdist extract``."""

import sys

from .cli import main

sys.exit(main())
