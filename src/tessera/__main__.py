"""`python -m tessera ...`: the same command line as the `tessera` console script."""

import sys

from tessera.cli import main

sys.exit(main())
