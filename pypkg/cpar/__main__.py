"""`python -m cpar` is the `cpar` command."""

import sys

from .cli import main

sys.exit(main())
