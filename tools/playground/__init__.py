"""tools.playground: drive a live cluster of a Raft stage's real code from
the browser (docs/playground.md).

The cluster runs on tools.sim's virtual clock, paced to the wall clock at a
speed the user sets, so it can be paused, stepped, slowed down and replayed
exactly. Read in this order:

- ``live.py``: a session running, and its pacer, which turns the user's
  clicks into actions at moments of virtual time; start here;
- ``cluster.py``: the stage's own test harness, driven and read;
- ``recorder.py``: the run's log, and what the page draws of it;
- ``session.py``: sessions and actions, as saved and checked;
  ``scenarios.py`` and ``scenarios/``: the shipped ones;
- ``stages.py``: the stages it runs, and what each allows;
- ``web.py``, ``page.py``, ``page.html``, ``playground.js``,
  ``playground.css``: the web server and the page (whose cluster panel is
  the visualizer's ``panel.js``);
- ``cli.py``: ``python -m tools.playground``.
"""
