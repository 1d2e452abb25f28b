"""The test-log visualizer: turns a test run's Raft log into timelines.

A log in the format of ``docs/log-format.md`` (``HH:MM:SS.ffffff [ID]
message``, each test framed by ``=== RUN name`` and ``--- PASS: name (Ns)``)
becomes one HTML page per test plus an index, or a coloured timeline in the
terminal.

* ``parse`` reads the log into tests and their entries;
* ``timeline`` replays each test: server states, terms, heartbeats, actions;
* ``pages`` writes the HTML pages (``assets`` holds their style and
  script), ``terminal`` draws the terminal view;
* ``cli`` is ``python -m tools.raft_testlog_viz``;
* ``pytest_plugin`` adds ``--raft-viz`` to pytest: one command from test run
  to pages.
"""
