"""``python -m tools.sim``: see tools/sim/cli.py."""

import sys

from .cli import main

sys.exit(main())
