"""Sessions: a seed and the user's timed actions, which replay a run exactly.

A run of the playground is fixed by its stage, its number of servers, its
seed and the actions done to it, each at a moment of virtual time: the
same session replays the same run, log line for log line (tools.sim makes
the rest deterministic). A session is saved as JSON that reads like a short
script::

    {
      "part": "part3",
      "servers": 5,
      "seed": 7,
      "end": 2.5,
      "actions": [
        {"at": 0.9, "do": "crash", "server": 3, "note": "The leader crashes."},
        {"at": 1.5, "do": "partition", "groups": [[0, 1], [2, 4]]},
        {"at": 1.8, "do": "submit", "server": 0, "command": "x=1"}
      ]
    }

``end`` is where a replay pauses: the moment the session was saved. The
actions that act on the cluster are ``crash``, ``restart`` (part3 on),
``disconnect``, ``reconnect`` (a server), ``partition`` (into two groups),
``heal``, ``submit`` (a command, to a server) and ``snapshot`` (a server,
in part6: it snapshots what it delivered).
Two more only speak to the person watching, and change nothing in the
run: ``pause`` stops the clock there, and ``note`` shows its note; any
action may carry a ``note``. The scenarios the playground ships
(``scenarios/*.json``) are sessions too, with a ``title`` and an
``about``, and a ``speed`` to start at.

Everything read here is checked, with an error that says what is wrong
and where: the same checks apply to a file and to an action from the page.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

from tools.sim.args import SEED_LIMIT

from .stages import STAGES, Stage

MAX_SERVERS = 9
"""The largest cluster the playground runs (and draws)."""

MAX_COMMAND = 40
"""The longest command, in characters: it is drawn in a log box."""

MAX_NOTE = 600
"""The longest note, in characters."""

SPEEDS = (0.01, 1.0)
"""The slowest and the fastest speed: 1/100 of real time, and real time."""

SERVER_ACTIONS = ("crash", "restart", "disconnect", "reconnect", "submit", "snapshot")
"""The actions done to one server (``submit`` also takes a command)."""

CLUSTER_ACTIONS = (*SERVER_ACTIONS, "partition", "heal")
"""The actions that change the run: the playground's driver does them, in
the run, at their moment."""

PAGE_ACTIONS = ("pause", "note")
"""The actions that only speak to the person watching."""

ACTIONS = (*CLUSTER_ACTIONS, *PAGE_ACTIONS)

_FIELDS = {
    **{kind: {"server"} for kind in SERVER_ACTIONS},
    "submit": {"server", "command"},
    "partition": {"groups"},
    "heal": set(),
    "pause": set(),
    "note": set(),
}
"""The fields each action needs, besides ``at``, ``do`` and ``note``."""

_SESSION_FIELDS = {"part", "servers", "seed", "actions"}
_OPTIONAL_SESSION_FIELDS = {"end", "title", "about", "speed"}


class BadSessionError(ValueError):
    """A session or an action that cannot be played, and why."""


@dataclass(frozen=True)
class Action:
    """One thing done to a run, at a moment of its virtual time."""

    at: float
    """Virtual seconds since the run started."""
    do: str
    """What: one of ``ACTIONS``."""
    server: int | None = None
    groups: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    command: str | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """The action as a JSON object: only the fields it has."""
        data: dict[str, Any] = {"at": self.at, "do": self.do}
        if self.server is not None:
            data["server"] = self.server
        if self.groups is not None:
            data["groups"] = [list(group) for group in self.groups]
        if self.command is not None:
            data["command"] = self.command
        if self.note:
            data["note"] = self.note
        return data

    def describe(self) -> str:
        """The action in a few words: ``crash 2``, ``partition 0 1 | 2 3 4``."""
        if self.do == "submit":
            return f"submit {self.command!r} to {self.server}"
        if self.groups is not None:
            return "partition " + " | ".join(
                " ".join(map(str, group)) for group in self.groups
            )
        if self.server is not None:
            return f"{self.do} {self.server}"
        return self.do


@dataclass
class Session:
    """A stage, a cluster size, a seed and actions: one run, replayable."""

    part: str
    servers: int
    seed: int
    actions: list[Action] = field(default_factory=list)
    end: float | None = None
    """Where a replay pauses: the moment the session was saved."""
    title: str = ""
    about: str = ""
    speed: float | None = None
    """The speed the page starts at, if the session chooses one."""

    @property
    def stage(self) -> Stage:
        """The stage the session runs."""
        return STAGES[self.part]

    def to_json(self) -> str:
        """The session as JSON, one action per line."""
        head: dict[str, Any] = {
            "part": self.part,
            "servers": self.servers,
            "seed": self.seed,
        }
        for name in ("title", "about", "speed", "end"):
            value = getattr(self, name)
            if value is not None and value != "":
                head[name] = value
        lines = [
            f"  {json.dumps(key)}: {json.dumps(value)}," for key, value in head.items()
        ]
        actions = [f"    {json.dumps(action.to_json())}" for action in self.actions]
        body = ",\n".join(actions)
        return "{\n" + "\n".join(lines) + '\n  "actions": [\n' + body + "\n  ]\n}\n"


def parse_session(text: str) -> Session:
    """Read a session from its JSON text; raise BadSessionError."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadSessionError(f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise BadSessionError(
            "not a playground session: a JSON object with part, servers, "
            "seed and actions"
        )
    _check_fields(data, _SESSION_FIELDS, _OPTIONAL_SESSION_FIELDS, "a session")
    part = data["part"]
    if part not in STAGES:
        raise BadSessionError(
            f"'part' is {part!r}: the playground runs {', '.join(STAGES)}"
        )
    servers = _whole(data["servers"], "servers", 1, MAX_SERVERS + 1)
    seed = _whole(data["seed"], "seed", 0, SEED_LIMIT)
    session = Session(part, servers, seed)
    for name in ("title", "about"):
        if name in data:
            value = data[name]
            if not isinstance(value, str):
                raise BadSessionError(f"'{name}' must be text, not {value!r}")
            setattr(session, name, value)
    if "speed" in data:
        session.speed = parse_speed(data["speed"])
    if "end" in data:
        session.end = _moment(data["end"], "'end'")
    actions = data["actions"]
    if not isinstance(actions, list):
        raise BadSessionError(f"'actions' must be a list, not {actions!r}")
    for number, item in enumerate(actions, 1):
        try:
            action = parse_action(item, session, timed=True)
        except BadSessionError as error:
            raise BadSessionError(f"action {number}: {error}") from None
        if session.actions and action.at < session.actions[-1].at:
            raise BadSessionError(
                f"action {number} ({action.describe()}) is at {action.at} s, "
                f"before the action before it ({session.actions[-1].at} s): "
                "actions go in time order"
            )
        session.actions.append(action)
    return session


def parse_action(data: object, session: Session, timed: bool) -> Action:
    """Read one action for ``session``'s cluster; raise BadSessionError.

    ``timed``: the action must say when (``at``), as in a file; an action
    from the page has no ``at``, it happens now.
    """
    if not isinstance(data, dict):
        raise BadSessionError(f"an action is a JSON object, not {data!r}")
    kind = data.get("do")
    if kind not in ACTIONS:
        said = "no 'do'" if kind is None else f"'do' is {kind!r}"
        raise BadSessionError(f"{said}: the actions are {', '.join(ACTIONS)}")
    needed = _FIELDS[kind] | ({"at"} if timed else set())
    _check_fields(data, needed | {"do"}, {"note"}, f"a {kind} action")
    stage = session.stage
    if kind in ("crash", "restart") and not stage.crashes:
        raise BadSessionError(
            f"{stage.name} has no {kind}: crash and restart come with part3, "
            "where a server keeps its state in storage"
        )
    if kind == "snapshot" and not stage.snapshots:
        raise BadSessionError(
            f"{stage.name} has no snapshots: they come with part6 (log compaction)"
        )
    action = Action(at=_moment(data["at"], "'at'") if timed else 0.0, do=kind)
    if "server" in needed:
        action = replace(action, server=_server(data["server"], session.servers))
    if "groups" in needed:
        action = replace(action, groups=_groups(data["groups"], session.servers))
    if "command" in needed:
        action = replace(action, command=_text(data["command"], "command", MAX_COMMAND))
    if "note" in data or kind == "note":
        action = replace(action, note=_text(data.get("note"), "note", MAX_NOTE))
    return action


def parse_speed(value: object) -> float:
    """A speed, checked: a number from 1/100 to 1 (real time)."""
    low, high = SPEEDS
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not low <= value <= high
    ):
        raise BadSessionError(
            f"a speed is a number from {low} (1/100 of real time) to {high:g} "
            f"(real time), not {value!r}"
        )
    return float(value)


def _check_fields(
    data: dict[str, Any], needed: set[str], optional: set[str], what: str
) -> None:
    """Fail on a missing field or an unknown one, naming them."""
    missing = sorted(needed - data.keys())
    if missing:
        raise BadSessionError(f"{what} needs {_names(missing)}")
    unknown = sorted(data.keys() - needed - optional)
    if unknown:
        known = sorted(needed | optional)
        raise BadSessionError(
            f"unknown field {_names(unknown)} in {what} (it takes {_names(known)})"
        )


def _names(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _whole(value: object, name: str, low: int, limit: int) -> int:
    """A whole number in ``[low, limit)``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not low <= value < limit
    ):
        raise BadSessionError(
            f"'{name}' must be a whole number from {low} to {limit - 1}, not {value!r}"
        )
    return value


def _moment(value: object, name: str) -> float:
    """A moment of virtual time: seconds, 0 or more."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise BadSessionError(
            f"{name} must be a number of seconds, 0 or more, not {value!r}"
        )
    return float(value)


def _server(value: object, servers: int) -> int:
    """A server id of a cluster of ``servers``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value < servers
    ):
        raise BadSessionError(
            f"no server {value!r} in a cluster of {servers} "
            f"(the servers are 0 to {servers - 1})"
        )
    return value


def _groups(value: object, servers: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two groups that split the cluster: every server in exactly one."""
    shape = "two lists of server ids, such as [[0, 1], [2, 3, 4]]"
    if not isinstance(value, list) or len(value) != 2:
        raise BadSessionError(f"'groups' must be {shape}, not {value!r}")
    groups: list[tuple[int, ...]] = []
    for group in value:
        if not isinstance(group, list) or not group:
            raise BadSessionError(f"'groups' must be {shape}, not {value!r}")
        groups.append(tuple(_server(server, servers) for server in group))
    everyone = sorted(groups[0] + groups[1])
    if everyone != list(range(servers)):
        raise BadSessionError(
            f"the groups {value!r} must hold each of the servers 0 to "
            f"{servers - 1} exactly once"
        )
    return groups[0], groups[1]


def _text(value: object, name: str, limit: int) -> str:
    """One line of text, not empty, at most ``limit`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise BadSessionError(f"'{name}' must be some text, not {value!r}")
    if len(value) > limit or not value.isprintable():
        raise BadSessionError(
            f"'{name}' must be one line of at most {limit} printable characters"
        )
    return value
