"""Entry point of ``python -m tools.raft_check``."""

from tools.raft_check.cli import main

raise SystemExit(main())
