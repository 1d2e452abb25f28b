"""The scenarios shipped with the playground: saved sessions, in
``scenarios/*.json``, for the moments readers come for.

Each is a session (``session.py``) with a ``title``, an ``about`` (what
to watch) and notes on its actions, which the page shows as they happen.
Its seed fixes the run, so its actions can name the servers involved;
tests/tools/test_playground.py plays every scenario and checks that it
still shows what its ``about`` says.
"""

from __future__ import annotations

from importlib import resources

from .session import BadSessionError, Session, parse_session

FOLDER = "scenarios"

SCENARIOS = [
    "leader-crash",
    "split-vote",
    "lagging-follower",
    "partitioned-leader",
    "figure-8",
    "snapshot-catch-up",
]
"""The scenarios, by name (``scenarios/NAME.json``), in the menu's order."""


def load_scenario(name: str) -> Session:
    """The scenario ``name``; BadSessionError if there is none."""
    if name not in SCENARIOS:
        raise BadSessionError(
            f"no scenario {name!r}: the scenarios are {', '.join(SCENARIOS)}"
        )
    text = resources.files(__package__).joinpath(FOLDER, f"{name}.json").read_text()
    return parse_session(text)
