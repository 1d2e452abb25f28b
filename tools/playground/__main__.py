"""``python -m tools.playground``: see tools/playground/cli.py."""

import sys

from .cli import main

sys.exit(main())
