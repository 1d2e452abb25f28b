"""Entry point of ``python -m tools.raft_testlog_viz``."""

from tools.raft_testlog_viz.cli import main

raise SystemExit(main())
