"""``python -m batchfit``: the command line (see :mod:`batchfit.cli`)."""

from batchfit.cli import main

raise SystemExit(main())
