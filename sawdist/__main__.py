"""``python -m sawdist``: the ``sawdist`` command (:mod:`sawdist.cli`), e.g. ``python -m sawdist extract``."""

import sys

from sawdist.cli import main

sys.exit(main())
