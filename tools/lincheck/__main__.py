"""Entry point of ``python -m tools.lincheck``."""

from tools.lincheck.cli import main

raise SystemExit(main())
