"""tools.sim: run the Raft stages' unchanged code on a deterministic
scheduler, so that one seed replays a run exactly (docs/sim.md).

- ``runtime.py``: the scheduler, its virtual clock, and the simulated
  ``threading``, ``time``, ``random`` and ``queue``: read it first;
- ``install.py``: how a run reaches a stage's modules, and the list of
  stages the simulator knows;
- ``pytest_plugin.py``: ``pytest --sim[=SEED]``;
- ``replay.py`` and ``cli.py``: ``python -m tools.sim run`` and ``sweep``.
"""
