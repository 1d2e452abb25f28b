"""The Raft stages the playground runs, and what each lets a user do.

This is the one list of them: the command line's ``--part``, the checks of
every action and the page's controls all read it. A stage runs on tools.sim
(its name must be in ``tools.sim.install.STAGES`` too) through its own test
harness, ``partN.harness.Harness(n)``.

part1 is left out: it has no log, so nothing to submit and nothing to show
but states and terms. The checks of the actions and the page's server menu
offer the ``snapshot`` action ("take a snapshot") only to a stage with
``snapshots=True``: part6, whose log starts after its snapshot's base.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """A stage, and the actions it supports beyond disconnect, reconnect,
    partition, heal and submit, which every stage here has."""

    name: str
    lesson: str
    """What the stage adds, in a few words, for the page's title."""
    crashes: bool
    """Crash and restart a server (part3's persistence)."""
    snapshots: bool
    """Take a snapshot of a server's log (part6's log compaction)."""


STAGES = {
    stage.name: stage
    for stage in [
        Stage("part2", "log replication", crashes=False, snapshots=False),
        Stage("part3", "persistence", crashes=True, snapshots=False),
        Stage("part6", "log compaction", crashes=True, snapshots=True),
    ]
}
"""The stages, by name."""

DEFAULT_STAGE = "part3"
"""The stage the playground runs unless told otherwise."""
