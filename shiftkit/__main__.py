"""`python -m shiftkit ...` runs the command line."""

import sys

from shiftkit.cli import main

sys.exit(main())
