"""Make the example configs' input cubes: ``python scripts/make_examples.py [OUT_DIR]``.

The generator lives in :mod:`batchfit.examples` (``batchfit examples`` runs it too).
"""

from batchfit.examples import *  # noqa: F403 - the generator's names, for scripts and tests
from batchfit.examples import main

if __name__ == "__main__":
    main()
