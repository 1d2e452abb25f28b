"""tools.playground without a browser: actions reach the cluster at their
virtual moment, a saved session replays byte for byte, every scenario
still shows what it says, bad input is refused, and the command line
serves the page and ends cleanly.

The browser's side is in test_playground_browser.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.playground import recorder
from tools.playground.live import LiveRun, Mode, Played, play
from tools.playground.scenarios import FOLDER, SCENARIOS, load_scenario
from tools.playground.session import (
    Action,
    BadSessionError,
    Session,
    parse_action,
    parse_session,
)
from tools.playground.stages import STAGES
from tools.playground.web import Playground
from tools.sim import install

from .conftest import ROOT, run_python, sigint_by_default

LEADER = re.compile(r"\[(\d+)\] becomes Leader; term=(\d+)")
CANDIDATE = re.compile(r"\[(\d+)\] becomes Candidate \(currentTerm=(\d+)\)")


def first_leader(session: Session, by: float) -> int:
    """The server that leads ``session``'s cluster at ``by`` s (played)."""
    played = play(Session(session.part, session.servers, session.seed, end=by))
    leaders = [v["id"] for v in played.view["servers"] if v["state"] == "L"]
    assert len(leaders) == 1, played.view
    return int(leaders[0])


def at(line: str) -> float:
    """The virtual time of a log line, in seconds since midnight."""
    hours, minutes, seconds = line[:15].split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def assert_logged_at(played: Played, expected: list[tuple[float, str]]) -> None:
    """Each ``(moment, text)``: one line of the played log starts with
    ``text`` after its time, and it was logged at ``moment``."""
    for moment, text in expected:
        (line,) = [line for line in played.lines if line[16:].startswith(text)]
        assert at(line) == moment, line


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    """Wait until ``condition()`` holds; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


@pytest.fixture
def live() -> Iterator[Callable[[Session, float], LiveRun]]:
    """Start paced runs; quit them after the test."""
    runs: list[LiveRun] = []

    def start(session: Session, speed: float) -> LiveRun:
        run = LiveRun(session, speed=speed)
        runs.append(run)
        run.start()
        return run

    yield start
    for run in runs:
        run.quit()


def leader_of(run: LiveRun) -> tuple[int, int] | None:
    """The live run's leader of the highest term, and that term, if any."""
    view = run.state(-1, 10)["view"]
    leaders = [
        (v["term"], v["id"])
        for v in (view or {"servers": []})["servers"]
        if v["state"] == "L" and v["alive"]
    ]
    if not leaders:
        return None
    term, leader = max(leaders)
    return leader, term


# --- Actions reach the cluster at their moment ---------------------------------


def test_actions_reach_the_cluster_at_their_virtual_time() -> None:
    leader = first_leader(Session("part3", 5, seed=11), by=0.5)
    other = (leader + 1) % 5
    side = tuple(sorted((leader, other)))
    rest = tuple(s for s in range(5) if s not in side)
    actions = [
        Action(0.6, "submit", server=leader, command="x=1"),
        Action(0.7, "disconnect", server=other),
        Action(0.85, "reconnect", server=other),
        Action(1.0, "partition", groups=(side, rest)),
        Action(1.25, "heal"),
        Action(1.5, "crash", server=leader),
        Action(1.5, "restart", server=leader),
    ]
    played = play(Session("part3", 5, 11, actions=actions, end=2.0))
    expected = [
        (0.6, f"[TEST] submitting x=1 to {leader}"),
        (0.7, f"[TEST] Disconnect {other}"),
        (0.85, f"[TEST] Reconnect {other}"),
        (1.0, f"[TEST] Partition {' '.join(map(str, side))} | "),
        (1.25, "[TEST] Heal the partition"),
        (1.5, f"[TEST] Crash {leader}"),
        (1.5, f"[TEST] Restart {leader}"),
    ]
    assert_logged_at(played, expected)
    assert [a.at for a, _ in played.outcomes] == [a.at for a in actions]
    assert played.outcomes[0][1] == f"server {leader} appended it at index 0"
    # While the partition lasted, no message crossed it.
    crossed = [
        line
        for line in played.lines
        if 1.0 <= at(line) < 1.25
        and (m := re.search(r"\[(\d)\] rpc (\d)\.\d+ deliver", line))
        and (int(m[1]) in side) != (int(m[2]) in side)
    ]
    assert crossed == []
    assert any(1.0 <= at(line) < 1.25 and " deliver " in line for line in played.lines)


def test_part2_runs_and_refuses_crashes() -> None:
    session = Session("part2", 3, seed=5, end=0.8)
    played = play(session)
    assert sum(v["state"] == "L" for v in played.view["servers"]) == 1
    with pytest.raises(BadSessionError, match="part2 has no crash: crash and restart"):
        parse_action({"do": "crash", "server": 0}, session, timed=False)


def test_the_snapshot_action_reaches_the_cluster_at_its_virtual_time() -> None:
    leader = first_leader(Session("part6", 5, seed=12), by=0.5)
    follower = (leader + 1) % 5
    actions = [
        Action(0.6, "submit", server=leader, command="x=1"),
        Action(0.65, "submit", server=leader, command="y=2"),
        Action(0.8, "snapshot", server=leader),
        Action(0.9, "snapshot", server=follower),
    ]
    played = play(Session("part6", 5, 12, actions=actions, end=1.0))
    expected = [
        (0.8, f"[TEST] Snapshot {leader} at index 1"),
        (0.8, f"[{leader}] snapshot at index 1 (term 1)"),
        (0.9, f"[TEST] Snapshot {follower} at index 1"),
        (0.9, f"[{follower}] snapshot at index 1 (term 1)"),
    ]
    assert_logged_at(played, expected)
    assert [a.at for a, _ in played.outcomes] == [a.at for a in actions]
    assert played.outcomes[2][1] == (
        f"server {leader}'s snapshot covers its log up to index 1 (term 1)"
    )
    # The page gets each log from index 0, and the base of its snapshot.
    for v in played.view["servers"]:
        assert v["log"] == [1, 1], v
        assert v["commands"] == ["x=1", "y=2"], v
        snapshotted = v["id"] in (leader, follower)
        assert (v["base"], v["baseTerm"]) == ((1, 1) if snapshotted else (-1, -1))
    assert played.view["committed"] == [1, 1]


@pytest.mark.parametrize("part", ["part2", "part3"])
def test_a_stage_without_snapshots_refuses_the_snapshot_action(part: str) -> None:
    with pytest.raises(BadSessionError) as refused:
        parse_action({"do": "snapshot", "server": 0}, Session(part, 3, 1), timed=False)
    assert str(refused.value) == (
        f"{part} has no snapshots: they come with part6 (log compaction)"
    )


PART6 = Session("part6", 5, seed=1)


def test_part6_takes_the_snapshot_action() -> None:
    action = parse_action({"do": "snapshot", "server": 4}, PART6, timed=False)
    assert action == Action(0.0, "snapshot", server=4)
    assert action.describe() == "snapshot 4"


@pytest.mark.parametrize(
    ("server", "message"),
    [
        (5, "no server 5 in a cluster of 5 (the servers are 0 to 4)"),
        (-1, "no server -1 in a cluster of 5"),
        ("1", "no server '1' in a cluster of 5"),
        (True, "no server True in a cluster of 5"),
        (None, "no server None in a cluster of 5"),
    ],
)
def test_a_snapshot_of_a_server_not_in_the_cluster_is_refused(
    server: object, message: str
) -> None:
    with pytest.raises(BadSessionError) as refused:
        parse_action({"do": "snapshot", "server": server}, PART6, timed=False)
    assert message in str(refused.value)


def test_a_snapshot_the_server_cannot_take_now_is_refused_and_changes_nothing() -> None:
    leader = first_leader(Session("part6", 3, seed=3), by=0.5)
    other = (leader + 1) % 3
    actions = [
        Action(0.1, "snapshot", server=leader),
        Action(0.6, "submit", server=leader, command="x=1"),
        Action(0.8, "snapshot", server=leader),
        Action(0.9, "snapshot", server=leader),
        Action(1.0, "crash", server=other),
        Action(1.1, "snapshot", server=other),
    ]
    played = play(Session("part6", 3, 3, actions=actions, end=1.2))
    assert played.notices == [
        f"snapshot {leader} at 0.1 s: refused: server {leader} has delivered "
        "nothing yet: nothing to snapshot",
        f"snapshot {leader} at 0.9 s: refused: server {leader}'s snapshot already "
        "covers all it delivered (up to index 0)",
        f"snapshot {other} at 1.1 s: refused: server {other} is crashed",
    ]
    assert [a.at for a, _ in played.outcomes] == [0.6, 0.8, 1.0]
    # A refused action leaves no trace in the run.
    done = [a for a in actions if a.at in (0.6, 0.8, 1.0)]
    assert play(Session("part6", 3, 3, actions=done, end=1.2)).lines == played.lines


# --- Replays --------------------------------------------------------------------


def test_a_saved_session_replays_to_the_same_log_byte_for_byte(
    live: Callable[[Session, float], LiveRun],
) -> None:
    run = live(Session("part3", 5, seed=2024), 1.0)
    wait_for(lambda: leader_of(run) is not None, "a leader is elected")
    found = leader_of(run)
    assert found is not None
    leader, term = found
    others = [s for s in range(5) if s != leader]
    done = run.act(Action(0, "submit", server=leader, command="x=1"), 10)
    assert done.outcome == f"server {leader} appended it at index 0"
    assert run.act(Action(0, "crash", server=leader), 10).done is not None
    wait_for(
        lambda: (found := leader_of(run)) is not None and found[1] > term,
        "a new leader is elected",
    )
    minority = (others[0], others[1])
    majority = (*others[2:], leader)
    partition = Action(0, "partition", groups=(minority, majority))
    assert run.act(partition, 10).done is not None
    run.control("pause")
    run.control("step")
    wait_for(lambda: run.state(-1, 10)["atLine"], "the step pauses at a line")
    # An action asked in the middle of an instant waits for its end.
    assert run.act(Action(0, "submit", server=others[0], command="y=2"), 10).done
    run.control("resume")
    time.sleep(0.3)
    save = run.save(10)
    assert save is not None
    assert save.session is not None
    run.quit()  # one simulation at a time in a process
    replayed = play(parse_session(save.session.to_json()))
    assert replayed.lines == save.lines
    assert (
        "".join(f"{line}\n" for line in replayed.lines).encode()
        == "".join(f"{line}\n" for line in save.lines).encode()
    )


def test_a_part6_session_where_a_follower_installs_a_snapshot_replays_exactly(
    live: Callable[[Session, float], LiveRun],
) -> None:
    run = live(Session("part6", 5, seed=2026), 1.0)
    wait_for(lambda: leader_of(run) is not None, "a leader is elected")
    found = leader_of(run)
    assert found is not None
    leader, _ = found
    follower = (leader + 1) % 5

    def view() -> dict[str, Any]:
        state: dict[str, Any] = run.state(-1, 10)["view"]
        return state

    assert run.act(Action(0, "submit", server=leader, command="x=1"), 10).done
    wait_for(lambda: view()["servers"][follower]["commit"] == 0, "x=1 is committed")
    assert run.act(Action(0, "crash", server=follower), 10).done
    for command in ("y=2", "z=3"):
        assert run.act(Action(0, "submit", server=leader, command=command), 10).done
    wait_for(lambda: view()["servers"][leader]["commit"] == 2, "z=3 is committed")
    snapshot = run.act(Action(0, "snapshot", server=leader), 10)
    assert snapshot.outcome == (
        f"server {leader}'s snapshot covers its log up to index 2 (term 1)"
    )
    assert run.act(Action(0, "restart", server=follower), 10).done
    wait_for(
        lambda: view()["servers"][follower]["base"] == 2,
        "the follower installs the leader's snapshot",
    )
    save = run.save(10)
    assert save is not None
    assert save.session is not None
    run.quit()  # one simulation at a time in a process
    installed = f"[{follower}] ... installing snapshot at index 2 (term 1)"
    assert any(line[16:].startswith(installed) for line in save.lines)
    replayed = play(parse_session(save.session.to_json()))
    assert replayed.lines == save.lines
    assert replayed.view["servers"][follower]["base"] == 2


def test_a_replay_pauses_at_the_end_of_its_session(
    live: Callable[[Session, float], LiveRun],
) -> None:
    session = load_scenario("leader-crash")
    session.actions = [a for a in session.actions if a.do != "pause"]
    session.end = 0.9
    expected = play(session)
    run = live(session, 1.0)
    wait_for(lambda: run.state(-1, 10)["mode"] == "paused", "the replay pauses")
    state = run.state(-1, 10)
    assert state["clock"] == 0.9
    assert any("the session's end" in n for n in state["notices"])
    assert run.end_lines == expected.lines
    assert run.log_lines() == expected.lines  # paused: nothing more happened


def test_a_session_reads_back_as_it_was_written() -> None:
    session = load_scenario("figure-8")
    session.end = 2.5
    assert parse_session(session.to_json()) == session
    # One action per line: the file reads like a script.
    lines = session.to_json().splitlines()
    assert sum(line.startswith('    {"at": ') for line in lines) == len(session.actions)


# --- Pausing, stepping, speed -----------------------------------------------------


def test_pause_holds_the_clock_and_step_goes_to_the_next_line(
    live: Callable[[Session, float], LiveRun],
) -> None:
    run = live(Session("part3", 3, seed=3), 1.0)
    wait_for(lambda: leader_of(run) is not None, "a leader is elected")
    run.control("pause")
    wait_for(lambda: run.state(-1, 10)["held"], "the run stands still")
    first = run.state(-1, 10)
    lines = len(run.log_lines())
    time.sleep(0.3)  # a negative check: nothing may happen while paused
    assert run.state(-1, 10)["clock"] == first["clock"]
    assert len(run.log_lines()) == lines
    for _ in range(3):
        version = run.state(-1, 10)["version"]
        run.control("step")

        def paused_again(version: int = version) -> bool:
            state = run.state(version, 5)
            return bool(state["atLine"]) and state["version"] > version

        wait_for(paused_again, "the step pauses")
        assert len(run.log_lines()) == lines + 1
        lines += 1


def test_the_clock_never_runs_ahead_of_the_speed(
    live: Callable[[Session, float], LiveRun],
) -> None:
    start = time.monotonic()
    run = live(Session("part3", 3, seed=4), 0.1)
    time.sleep(1.0)
    state = run.state(-1, 10)
    elapsed = time.monotonic() - start
    assert 0 < state["clock"] <= 0.1 * elapsed + 1e-3


def test_a_page_that_fell_behind_learns_what_it_missed(
    live: Callable[[Session, float], LiveRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The recorder keeps fewer lines and messages for the page, so that a
    # page falls behind them in a moment (as a tab in the background does).
    monkeypatch.setattr(recorder, "RECENT_LINES", 40)
    monkeypatch.setattr(recorder, "ENDED_MESSAGES", 10)
    run = live(Session("part3", 3, seed=6), 1.0)
    wait_for(lambda: run.state(-1, 10)["messages"], "messages travel")
    seen = run.state(-1, 10)
    lines_seen = seen["firstLine"] + len(seen["lines"])
    wait_for(lambda: len(run.log_lines()) > lines_seen + 200, "the page falls behind")
    run.control("pause")
    wait_for(lambda: run.state(-1, 10)["held"], "the run stands still")
    behind = run.state(seen["version"], 10)
    log = run.log_lines()
    # The latest lines, and where they start: the page says how many it missed.
    assert behind["firstLine"] > lines_seen
    assert [line[2] for line in behind["lines"]] == log[behind["firstLine"] :]
    # Every message the recorder follows, so that the page drops the ones it
    # saw leave and never saw end.
    assert behind["allMessages"]
    followed = {m.id for m in run.recorder.messages.values()}
    assert {m[0] for m in behind["messages"]} == followed
    assert {m[0] for m in seen["messages"]} - followed  # some ended unseen
    # A page that keeps up gets only what changed.
    assert not run.state(behind["version"], 0.1)["allMessages"]


# --- Scenarios ---------------------------------------------------------------------


def played_to_the_end(name: str, extra: float = 0.6) -> Played:
    """Scenario ``name``, played to ``extra`` s after its last action."""
    session = load_scenario(name)
    session.end = session.actions[-1].at + extra
    return play(session)


def delivered(played: Played, command: str) -> list[int]:
    """The servers that delivered ``command`` (harness lines)."""
    return sorted(
        int(m[1])
        for line in played.lines
        if (
            m := re.search(
                rf"collect_commits\((\d)\) got CommitEntry\(command='{command}'", line
            )
        )
    )


def check_leader_crash(played: Played) -> None:
    leaders = [
        (int(m[2]), int(m[1])) for line in played.lines if (m := LEADER.search(line))
    ]
    (first_term, first), *_ = leaders
    crash = next(line for line in played.lines if f"[TEST] Crash {first}" in line)
    new = [(t, s) for t, s in leaders if s != first and t > first_term]
    assert new, leaders
    elected = next(
        line
        for line in played.lines
        if LEADER.search(line) and f"[{new[0][1]}]" in line
    )
    assert at(elected) - at(crash) < 2.0
    logs = {tuple(v["log"]) for v in played.view["servers"]}
    assert len(logs) == 1, played.view
    assert len(played.view["committed"]) == len(logs.pop())


def check_split_vote(played: Played) -> None:
    candidates: dict[int, set[int]] = {}
    for line in played.lines:
        if m := CANDIDATE.search(line):
            candidates.setdefault(int(m[2]), set()).add(int(m[1]))
    led = {int(m[2]) for line in played.lines if (m := LEADER.search(line))}
    split = [t for t, who in candidates.items() if len(who) >= 2 and t not in led]
    assert split, (candidates, led)
    assert any(t > split[0] for t in led)


def check_lagging_follower(played: Played) -> None:
    servers = played.view["servers"]
    (leader,) = [v for v in servers if v["state"] == "L"]
    restarted = next(
        int(m[1])
        for line in played.lines
        if (m := re.search(r"\[TEST\] Restart (\d)", line))
    )
    assert servers[restarted]["log"] == leader["log"]
    assert servers[restarted]["commit"] == leader["commit"]
    backed = f"[{leader['id']}] AppendEntries reply from {restarted} !success"
    assert any(backed in line for line in played.lines)


def check_partitioned_leader(played: Played) -> None:
    assert delivered(played, "y=2") == []
    assert delivered(played, "z=3") == [0, 1, 2, 3, 4]
    old = next(
        int(m[1])
        for line in played.lines
        if (m := re.search(r"\[TEST\] submitting y=2 to (\d)", line))
    )
    assert played.view["servers"][old]["state"] == "F"


def check_figure_8(played: Played) -> None:
    # (c): b, of term 1, on a majority and not committed.
    session = load_scenario("figure-8")
    session.end = 1.25
    middle = play(session)
    holding_b = [v["id"] for v in middle.view["servers"] if v["commands"][1:2] == ["b"]]
    assert len(holding_b) >= 3, middle.view
    assert len(middle.view["committed"]) == 1  # only a
    # (d), (e): b overwritten by c, which is committed with d.
    for v in played.view["servers"]:
        assert v["commands"] == ["a", "c", "d"], v
    assert delivered(played, "b") == []
    assert delivered(played, "c") == [0, 1, 2, 3, 4]
    overwritten = {
        int(line[17])
        for line in played.lines
        if "inserting entries from index 1" in line and at(line) > 1.25
    }
    assert overwritten == set(holding_b) - {0}


def check_snapshot_catch_up(played: Played) -> None:
    servers = played.view["servers"]
    (leader,) = [v for v in servers if v["state"] == "L"]
    restart, restarted = next(
        (line, int(m[1]))
        for line in played.lines
        if (m := re.search(r"\[TEST\] Restart (\d)", line))
    )
    base = leader["base"]
    assert base >= 0
    after = played.lines[played.lines.index(restart) :]
    installed = f"[{restarted}] ... installing snapshot at index {base} (term "
    assert any(installed in line for line in after)
    replied = f"[{leader['id']}] InstallSnapshot reply from {restarted}: "
    assert any(replied in line for line in after)
    # It caught up from the snapshot: no AppendEntries brought it an entry
    # the snapshot covers.
    for line in after:
        if m := re.search(
            rf"\[{restarted}\] AppendEntries: .*prev_log_index=(-?\d+)", line
        ):
            assert int(m[1]) >= base, line
    follower = servers[restarted]
    assert (follower["base"], follower["baseTerm"]) == (base, leader["baseTerm"])
    assert follower["log"] == leader["log"]
    assert follower["commit"] == leader["commit"]


CHECKS = {
    "leader-crash": check_leader_crash,
    "split-vote": check_split_vote,
    "lagging-follower": check_lagging_follower,
    "partitioned-leader": check_partitioned_leader,
    "figure-8": check_figure_8,
    "snapshot-catch-up": check_snapshot_catch_up,
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_runs_to_its_expected_end(name: str) -> None:
    played = played_to_the_end(name)
    assert played.view["violations"] == []
    assert played.notices == []  # no action refused
    CHECKS[name](played)


def test_the_scenarios_folder_holds_exactly_the_listed_scenarios() -> None:
    folder = ROOT / "tools" / "playground" / FOLDER
    assert sorted(p.stem for p in folder.iterdir()) == sorted(SCENARIOS)
    assert sorted(CHECKS) == sorted(SCENARIOS)


# --- Bad input ---------------------------------------------------------------------

PART3 = Session("part3", 5, seed=1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"do": "crsh", "server": 1}, "'do' is 'crsh': the actions are crash, restart"),
        ({"server": 1}, "no 'do': the actions are"),
        (
            {"do": "crash", "server": 7},
            "no server 7 in a cluster of 5 (the servers are 0 to 4)",
        ),
        ({"do": "crash", "server": "2"}, "no server '2' in a cluster of 5"),
        ({"do": "crash"}, "a crash action needs 'server'"),
        (
            {"do": "crash", "sever": 1, "server": 1},
            "unknown field 'sever' in a crash action (it takes 'do', 'note', 'server')",
        ),
        ({"do": "submit", "server": 1}, "a submit action needs 'command'"),
        ({"do": "submit", "server": 1, "command": ""}, "'command' must be some text"),
        ({"do": "submit", "server": 1, "command": "x" * 41}, "at most 40 printable"),
        ({"do": "submit", "server": 1, "command": "a\nb"}, "one line"),
        (
            {"do": "partition", "groups": [[0, 1]]},
            "'groups' must be two lists of server ids",
        ),
        ({"do": "partition", "groups": [[0, 1], [1, 2, 3, 4]]}, "exactly once"),
        ({"do": "partition", "groups": [[0, 1], [2, 3]]}, "exactly once"),
        (
            {"do": "snapshot", "server": 1},
            "part3 has no snapshots: they come with part6",
        ),
        (["crash", 1], "an action is a JSON object"),
    ],
)
def test_a_malformed_action_is_refused_saying_why(data: Any, message: str) -> None:
    with pytest.raises(BadSessionError) as refused:
        parse_action(data, PART3, timed=False)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "not a playground session"),
        ("{", "not JSON"),
        (
            '{"part": "part1", "servers": 3, "seed": 1, "actions": []}',
            "'part' is 'part1': the playground runs part2, part3, part6",
        ),
        (
            '{"part": "part3", "servers": 10, "seed": 1, "actions": []}',
            "'servers' must be a whole number from 1 to 9",
        ),
        (
            '{"part": "part3", "servers": 3, "seed": -1, "actions": []}',
            "'seed' must be a whole number",
        ),
        ('{"part": "part3", "servers": 3, "seed": 1}', "a session needs 'actions'"),
        (
            '{"part": "part3", "servers": 3, "seed": 1, "actions": [{"do": "heal"}]}',
            "action 1: a heal action needs 'at'",
        ),
        (
            json.dumps(
                {
                    "part": "part3",
                    "servers": 3,
                    "seed": 1,
                    "actions": [{"at": 2, "do": "heal"}, {"at": 1, "do": "heal"}],
                }
            ),
            "action 2 (heal) is at 1.0 s, before the action before it (2.0 s)",
        ),
        (
            '{"part": "part3", "servers": 3, "seed": 1, "actions": [], "speed": 2}',
            "a speed is a number from 0.01",
        ),
    ],
)
def test_a_malformed_session_is_refused_saying_why(text: str, message: str) -> None:
    with pytest.raises(BadSessionError) as refused:
        parse_session(text)
    assert message in str(refused.value)


def test_an_action_the_cluster_cannot_do_now_is_refused_and_changes_nothing(
    live: Callable[[Session, float], LiveRun],
) -> None:
    run = live(Session("part3", 3, seed=8), 1.0)
    assert run.act(Action(0, "crash", server=1), 10).done is not None
    for action, why in [
        (Action(0, "crash", server=1), "refused: server 1 is crashed already"),
        (
            Action(0, "reconnect", server=1),
            "refused: server 1 is crashed: restart it (that reconnects it)",
        ),
        (
            Action(0, "restart", server=0),
            "refused: server 0 is running: crash it first",
        ),
        (Action(0, "heal"), "refused: the cluster is not partitioned"),
    ]:
        request = run.act(action, 10)
        assert request.done is None
        assert request.outcome == why
    save = run.save(10)
    assert save is not None
    assert save.session is not None
    assert [a.do for a in save.session.actions] == ["crash"]
    run.quit()
    assert play(save.session).lines == save.lines


# --- The web server ---------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Playground]:
    """A playground on a free port, part3 with 3 servers at full speed."""
    playground = Playground(
        Session("part3", 3, seed=9, speed=1.0), port=0, outdir=tmp_path
    )
    playground.start()
    yield playground
    playground.close()


def call(
    playground: Playground,
    path: str,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """GET (no body) or POST JSON to the playground; its status and JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(playground.url.rstrip("/") + path, data=data)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    kind = "json" if text.startswith((b"{", b"[")) else "text"
    return status, json.loads(text) if kind == "json" else text.decode()


def test_the_api_drives_the_run_and_writes_what_it_saves(
    server: Playground, tmp_path: Path
) -> None:
    status, page = call(server, "/")
    assert status == 200
    assert "window.RaftPanel" in page  # the visualizer's panel, inlined
    status, state = call(server, "/api/state?run=0&since=-1")
    assert status == 200
    assert state["session"]["part"] == "part3"
    assert len(state["view"]["servers"]) == 3
    wait_for(
        lambda: any(
            v["state"] == "L" for v in call(server, "/api/state")[1]["view"]["servers"]
        ),
        "a leader",
    )
    status, done = call(server, "/api/action", {"do": "crash", "server": 0})
    assert status == 200, done
    assert done["describe"] == "crash 0"
    status, saved = call(server, "/api/save", {})
    assert status == 200, saved
    session = parse_session(Path(saved["session"]).read_text())
    assert [a.do for a in session.actions] == ["crash"]
    assert saved["replay"] == f"python -m tools.playground --replay {saved['session']}"
    log = Path(saved["log"]).read_text()
    status, opened = call(server, "/api/log", {})
    assert status == 200, opened
    assert Path(opened["log"]).parent == tmp_path
    status, viz = call(server, opened["url"])
    assert status == 200
    assert "playground part3, 3 servers, seed 9" in viz
    status, started = call(server, "/api/start", {"scenario": "split-vote"})
    assert (status, started["run"]) == (200, 1)
    status, state = call(server, "/api/state?run=0&since=1000")
    assert (state["run"], state["session"]["servers"]) == (1, 4)
    server.close()  # one simulation at a time in a process
    assert log == "".join(f"{line}\n" for line in play(session).lines)


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "message"),
    [
        (
            "/api/nope",
            None,
            {},
            404,
            "no route '/api/nope': the routes are /, /api/action",
        ),
        ("/api/action", None, {}, 405, "/api/action takes POST, not GET"),
        (
            "/api/action",
            {"do": "crash", "server": 5},
            {},
            400,
            "no server 5 in a cluster of 3",
        ),
        ("/api/action", {"do": "pause"}, {}, 400, "use /api/control to pause"),
        (
            "/api/action",
            {"do": "snapshot", "server": 1},
            {},
            400,
            "part3 has no snapshots: they come with part6 (log compaction)",
        ),
        (
            "/api/action",
            {"do": "restart", "server": 1},
            {},
            409,
            "restart 1: refused: server 1 is running",
        ),
        (
            "/api/control",
            {"do": "fast"},
            {},
            400,
            "the controls are pause, resume, step and speed",
        ),
        (
            "/api/control",
            {"do": "speed", "speed": 5},
            {},
            400,
            "a speed is a number from 0.01",
        ),
        (
            "/api/start",
            {"scenario": "nope"},
            {},
            400,
            "no scenario 'nope': the scenarios are leader-crash",
        ),
        (
            "/api/start",
            {"part": "part4kv"},
            {},
            400,
            "'part' is 'part4kv': the playground runs part2, part3, part6",
        ),
        ("/api/state?since=x", None, {}, 400, "since='x': want a whole number"),
        ("/files/../../etc/passwd", None, {}, 404, "no file"),
        (
            "/",
            None,
            {"Host": "evil.example:80"},
            403,
            "this server answers only at http://127.0.0.1:",
        ),
    ],
)
def test_the_api_refuses_bad_requests_saying_why(
    server: Playground,
    path: str,
    body: object,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    got, answer = call(server, path, body, headers)
    assert got == status
    assert message in answer["error"]


def test_the_api_runs_part6_and_takes_a_snapshot(server: Playground) -> None:
    status, started = call(
        server, "/api/start", {"part": "part6", "servers": 3, "seed": 3}
    )
    assert status == 200, started
    status, state = call(server, f"/api/state?run={started['run']}&since=-1")
    assert state["session"]["part"] == "part6"
    assert state["session"]["snapshots"] is True
    status, refused = call(server, "/api/action", {"do": "snapshot", "server": 0})
    assert status == 409
    assert refused["error"] == (
        "snapshot 0: refused: server 0 has delivered nothing yet: nothing to snapshot"
    )

    def leader() -> int | None:
        view = call(server, "/api/state")[1]["view"]
        found = [v["id"] for v in view["servers"] if v["state"] == "L"]
        return found[0] if found else None

    wait_for(lambda: leader() is not None, "a leader")
    chief = leader()
    assert chief is not None
    status, done = call(
        server, "/api/action", {"do": "submit", "server": chief, "command": "x=1"}
    )
    assert status == 200, done
    wait_for(
        lambda: call(server, "/api/state")[1]["view"]["servers"][chief]["commit"] == 0,
        "x=1 is committed",
    )
    status, done = call(server, "/api/action", {"do": "snapshot", "server": chief})
    assert status == 200, done
    assert done["describe"] == f"snapshot {chief}"
    assert (
        done["outcome"]
        == f"server {chief}'s snapshot covers its log up to index 0 (term 1)"
    )
    view = call(server, "/api/state")[1]["view"]["servers"][chief]
    assert (view["base"], view["baseTerm"], view["log"]) == (0, 1, [1])


def post_raw(playground: Playground, body: bytes, kind: str) -> tuple[int, str]:
    """POST ``body`` as ``kind`` to the controls; the status and the error."""
    request = urllib.request.Request(
        playground.url + "api/control", data=body, method="POST"
    )
    request.add_header("Content-Type", kind)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    return refused.value.code, json.loads(refused.value.read())["error"]


def test_a_post_must_carry_json(server: Playground) -> None:
    code, error = post_raw(server, b"do=pause", "application/x-www-form-urlencoded")
    assert code == 415
    assert "a POST carries JSON (Content-Type: application/json)" in error
    code, error = post_raw(server, b"{", "application/json")
    assert code == 400
    assert error.startswith("the body is not JSON")


# --- The command line -------------------------------------------------------------


def start_cli(outdir: Path, stderr: int) -> subprocess.Popen[str]:
    """``python -m tools.playground`` on a free port, a 3-server part3 run
    with seed 3, as a terminal starts it (SIGINT at its default)."""
    command = ["tools.playground", "--no-browser", "--port", "0", "--seed", "3"]
    return subprocess.Popen(
        [sys.executable, "-m", *command, "-n", "3", "--outdir", str(outdir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        preexec_fn=sigint_by_default,
    )


def test_the_command_line_serves_the_page_and_ends_on_ctrl_c(tmp_path: Path) -> None:
    process = start_cli(tmp_path, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        title = process.stdout.readline()
        assert title.startswith(
            "Raft playground: part3 (persistence), 3 servers, seed 3"
        )
        url = process.stdout.readline().strip()
        port = int(url.rsplit(":", 1)[1].strip("/"))
        with urllib.request.urlopen(url, timeout=30) as response:
            assert b"Raft playground" in response.read()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out.strip().endswith("stopping...\nstopped.")
    assert err == ""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), 1).close()


def test_sigterm_ends_it_when_its_standard_output_is_gone(tmp_path: Path) -> None:
    # A terminal closed, or a pipe whose reader ended: the prints at the
    # end fail, and the playground's threads must end all the same.
    process = start_cli(tmp_path, stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("Raft playground: part3")
        url = process.stdout.readline().strip()
        port = int(url.rsplit(":", 1)[1].strip("/"))
        process.stdout.close()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), 1).close()


def test_replaying_a_session_of_another_stage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    path.write_text(Session("part3", 3, 1, end=1.0).to_json())
    done = run_python(
        "-m", "tools.playground", "--replay", str(path), "--part", "part2"
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"python -m tools.playground: {path} is a session of part3, not of part2: "
        "replay it without --part\n"
    )


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "cannot read"),
        ("{", [], ": not JSON"),
        (
            '{"part": "part9", "servers": 3, "seed": 1, "actions": []}',
            [],
            "'part' is 'part9'",
        ),
        (
            '{"part": "part3", "servers": 3, "seed": 1, "actions": []}',
            ["--seed", "2"],
            "--replay takes its seed and size from the session: drop --seed",
        ),
    ],
)
def test_a_bad_replay_file_exits_2_with_one_line(
    tmp_path: Path, content: str | None, args: list[str], message: str
) -> None:
    path = tmp_path / "session.json"
    if content is not None:
        path.write_text(content)
    done = run_python("-m", "tools.playground", "--replay", str(path), *args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert message in done.stderr
    assert done.stdout == ""


def test_a_busy_port_exits_2_saying_what_to_do() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_python("-m", "tools.playground", "--port", str(port), "--no-browser")
    assert done.returncode == 2
    assert f"cannot serve on port {port}" in done.stderr
    assert "--port 0: any free one" in done.stderr


def test_threads_end_with_the_playground(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    playground = Playground(Session("part3", 3, seed=1), port=0, outdir=tmp_path)
    playground.start()
    time.sleep(0.2)
    playground.close()
    assert set(threading.enumerate()) == before


@pytest.mark.parametrize(
    "session",
    [
        Session("part3", 3, seed=1, end=1.0),
        Session("part3", 3, seed=1, actions=[Action(1.0, "pause", note="look")]),
    ],
    ids=["end", "pause"],
)
def test_the_clock_stops_at_an_end_or_a_pause_however_late_the_pacer_looks(
    session: Session,
) -> None:
    run = LiveRun(session, speed=1.0)
    # The pacer looks late: the shown time is past the pause at 1.0 and the
    # next deadline, 2.0. The clock must still not move on to 2.0.
    run.anchor = (5.0, time.monotonic())
    moved: list[float | None] = []
    pacer = threading.Thread(target=lambda: moved.append(run.pace(0.5, 2.0)))
    pacer.start()
    pacer.join(0.3)  # a negative check: the pacer holds the clock
    assert pacer.is_alive()
    assert (run.mode, run.frozen) == (Mode.PAUSED, 1.0)
    run.quit()
    pacer.join()
    assert moved == [None]


def test_a_session_runs_the_same_whatever_the_stage_variables_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = Session("part3", 5, seed=5, end=1.0)
    monkeypatch.delenv("RAFT_UNRELIABLE_RPC", raising=False)
    monkeypatch.delenv("RAFT_FORCE_MORE_REELECTION", raising=False)
    plain = play(session)
    monkeypatch.setenv("RAFT_UNRELIABLE_RPC", "1")
    monkeypatch.setenv("RAFT_FORCE_MORE_REELECTION", "1")
    assert play(session).lines == plain.lines
    assert os.environ["RAFT_UNRELIABLE_RPC"] == "1"  # given back after the run


def test_every_stage_of_the_playground_runs_on_the_simulator() -> None:
    assert set(STAGES) <= set(install.STAGES)
    for name in STAGES:
        played = play(Session(name, 3, seed=2, end=0.6))
        assert [v["state"] for v in played.view["servers"]].count("L") == 1
