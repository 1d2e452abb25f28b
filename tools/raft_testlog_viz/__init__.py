"""The test-log visualizer: turns a test run's Raft log into timelines.

A log in the format of ``docs/log-format.md`` (``HH:MM:SS.ffffff [ID]
message``, each test framed by ``=== RUN name`` and ``--- PASS: name (Ns)``;
a log without frames is one run) becomes one HTML page per test plus an
index, or a coloured timeline in the terminal.

* ``parse`` reads the log into tests and their entries; ``frames`` writes
  the frames;
* ``messages`` pairs the network layer's ``rpc`` lines into messages;
* ``timeline`` replays each test: server states, terms, heartbeats, actions;
* ``cluster`` rebuilds every server's log, commit index and a leader's
  next/match indices, for the page's "cluster at a moment";
* ``pages`` writes the HTML pages, with the style and scripts of the
  package's ``page.css``, ``page.js``, ``panel.css`` and ``panel.js``
  (``assets`` reads them; ``panel.js`` is the cluster panel, which a live
  page can drive too), ``terminal`` draws the terminal view;
* ``cli`` is ``python -m tools.raft_testlog_viz``; ``bench`` its
  ``--bench``, which times the rendering, and the pages in a browser with
  ``browser``;
* ``pytest_plugin`` adds ``--raft-viz`` to pytest: one command from test run
  to pages.

docs/visualizer.md tells how to use it and read a page.
"""
