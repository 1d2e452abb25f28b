"""``python -m tools.bench``: the quick run completes and its table and JSON
have the promised structure; the stall detector, the leader-change retry and
the thread-leak report work. No timing is checked (it depends on the
machine), except that no run of a real part may stall: that is a bug.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import pickle
import queue
import subprocess
import sys
import threading
from typing import Any

import pytest
from rich.console import Console
from rich.progress import Progress

from part2.server import Server
from part6.raft import CommitEntry, SnapshotEntry
from tests.tools.conftest import run_python
from tools.bench import cli, measure
from tools.bench.cli import ENV_KNOBS, build_arg_parser, build_rows, settings_from_args
from tools.bench.cluster import END_OF_COMMITS, Collector, raft_logging
from tools.bench.measure import QUICK, Bench, Measurement, Settings

QUICK_RUNS = {
    "part3": ["--quick"],
    "part2": ["--quick", "--logging", "off"],
    "part4kv": ["--quick", "--logging", "off"],
    "part6": ["--quick", "--logging", "off"],
    "part6kv": ["--quick", "--logging", "off"],
}
"""Each part's quick run: part3 in both logging modes, the others with
logging off only, to keep this file under a minute."""

RAFT_FIGURES = {
    "throughput": [
        "throughput N=1,000",
        "cost per command N=1,000",
        "throughput N=5,000",
        "cost per command N=5,000",
        "growth N=1,000→5,000",
    ],
    "latency": [
        "latency p50",
        "latency p99",
        "latency max",
        "network floor p50",
        "latency p50 / floor",
    ],
    "failover": ["failover p50", "failover p99", "failover max"],
    "idle": ["idle CPU", "idle CPU, bench thread", "idle RPCs"],
}
"""The rows of a Raft part's quick run, by phase, for each logging mode."""

KV_FIGURES = {
    "latency": [
        "put latency p50",
        "put latency p99",
        "put latency max",
        "get latency p50",
        "get latency p99",
        "get latency max",
        "part3 commit latency p50",
        "put p50 / part3 commit p50",
    ],
    "throughput": [
        "throughput 1 client",
        "throughput 4 clients",
        "throughput 16 clients",
        "growth 1→4 clients",
    ],
}
"""The rows of a key/value stage's quick run."""

COMPACTION_FIGURES = {
    "throughput": [
        *RAFT_FIGURES["throughput"],
        "part3 throughput N=1,000",
        "part3 throughput N=5,000",
        "throughput N=5,000 part6 / part3",
    ],
    "latency": [
        *RAFT_FIGURES["latency"],
        "part3 latency p50",
        "part3 latency p99",
        "latency p50 part6 / part3",
    ],
    "snapshot": [
        "snapshot call under load p50",
        "snapshot call under load p99",
        "snapshot call under load max",
        "snapshot size N=5,000",
        "quiet snapshot of 1,000 entries p50",
        "quiet snapshot of 1,000 entries max",
        "quiet snapshot of 2,000 entries at once",
    ],
    "catch-up": [
        "catch-up 2,000 behind",
        "part3 catch-up 2,000 behind",
        "catch-up 2,000 behind part6 / part3",
    ],
}
"""The rows of part6's quick run: part3's figures beside its own."""

KV_COMPACTION_FIGURES = {
    "latency": [
        *[figure.replace("part3", "part6") for figure in KV_FIGURES["latency"]],
        "part5kv put latency p50",
        "part5kv put latency p99",
        "part5kv get latency p50",
        "part5kv get latency p99",
        "put latency p50 part6kv / part5kv",
    ],
    "throughput": [
        *KV_FIGURES["throughput"],
        "part5kv throughput 1 client",
        "part5kv throughput 4 clients",
        "part5kv throughput 16 clients",
        "throughput 16 clients part6kv / part5kv",
    ],
}
"""The rows of part6kv's quick run: part5kv's figures beside its own."""

FIGURES = {
    "part2": RAFT_FIGURES,
    "part3": RAFT_FIGURES,
    "part4kv": KV_FIGURES,
    "part6": COMPACTION_FIGURES,
    "part6kv": KV_COMPACTION_FIGURES,
}

QuickRun = tuple[subprocess.CompletedProcess[str], dict[str, Any]]


@pytest.fixture(scope="module", params=sorted(QUICK_RUNS))
def quick_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> QuickRun:
    """One part's quick run, as a reader would start it, and its JSON."""
    part: str = request.param
    path = tmp_path_factory.mktemp("bench") / f"{part}.json"
    env: dict[str, str | None] = dict.fromkeys(ENV_KNOBS)
    env["COLUMNS"] = "200"
    args = ["-m", "tools.bench", "--part", part, "--json", str(path)]
    result = run_python(*args, *QUICK_RUNS[part], env=env, timeout=110)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads(path.read_text())


def positive(value: object) -> bool:
    """A finite number above zero (not a bool)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return math.isfinite(value) and value > 0


@pytest.mark.timeout(120)
def test_quick_run_prints_every_figure(quick_run: QuickRun) -> None:
    result, document = quick_run
    part = document["settings"]["part"]
    assert f"Raft benchmark: {part}, quick set, one run" in result.stdout
    cells = [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in result.stdout.splitlines()
        if line.startswith("│")
    ]
    assert [(row[0], row[1]) for row in cells] == [
        (mode, name)
        for mode in document["settings"]["logging"]
        for names in FIGURES[part].values()
        for name in names
    ]
    assert "STALLED" not in result.stdout
    assert "Traceback" not in result.stderr
    # The progress bars go to standard error, one per phase and more.
    assert f"{part} logging off: " in result.stderr


@pytest.mark.timeout(120)
def test_quick_run_json(quick_run: QuickRun) -> None:
    _, document = quick_run
    settings, env = document["settings"], document["environment"]
    figures = FIGURES[settings["part"]]
    assert settings["quick"] is True
    assert settings["throughput_ns"] == list(QUICK.throughput_ns)
    assert env["python"] == sys.version.split()[0]
    assert set(env) >= {"date", "platform", "cpu_model", "load_average", "env"}
    assert env["env"] == dict.fromkeys(ENV_KNOBS)
    assert env["git_revision"]
    assert document["leaked_threads"] == []
    rows = document["rows"]
    assert [(row["logging"], row["figure"]) for row in rows] == [
        (mode, name)
        for mode in settings["logging"]
        for names in figures.values()
        for name in names
    ]
    for row in rows:
        assert row["status"] in ("ok", "LEADER CHANGED"), row
        if row["status"] == "ok":
            assert positive(row["value"]), row
            assert row["runs"] == [row["value"]], row
    if figures not in (KV_FIGURES, KV_COMPACTION_FIGURES):
        floors = [row for row in rows if row["figure"] == "network floor p50"]
        assert len(floors) == len(settings["logging"])
        assert all(positive(row["value"]) for row in floors)


@pytest.mark.timeout(120)
def test_quick_run_json_measurements(quick_run: QuickRun) -> None:
    _, document = quick_run
    measurements = document["measurements"]
    modes = document["settings"]["logging"]
    figures = FIGURES[document["settings"]["part"]]
    assert [(m["logging"], m["phase"]) for m in measurements] == [
        (mode, phase) for mode in modes for phase in figures
    ]
    for m in measurements:
        assert m["status"] != "STALLED", m
        assert list(m["units"]) == figures[m["phase"]]
        if figures in (KV_FIGURES, KV_COMPACTION_FIGURES):
            if m["phase"] == "latency" and m["status"] == "ok":
                for op in ("put", "get"):
                    samples = m["samples"][f"{op} latency"]
                    assert len(samples) == QUICK.latency_commands
            continue
        if m["phase"] == "latency" and m["status"] == "ok":
            assert len(m["samples"]["latency"]) == QUICK.latency_commands
            assert len(m["samples"]["network floor"]) == QUICK.latency_commands
            assert all(positive(ms) for ms in m["samples"]["network floor"])
        if m["phase"] == "failover":
            assert len(m["samples"]["failover"]) == QUICK.failover_trials
        if m["phase"] == "snapshot" and m["status"] == "ok":
            # 5,000 entries, a snapshot every 1,000: up to 5 per server.
            assert 6 <= len(m["samples"]["snapshot call under load"]) <= 15
            # 2,000 entries: two snapshots of 1,000 per server, or one.
            assert len(m["samples"]["quiet snapshot of 1,000 entries"]) == 6
            assert len(m["samples"]["quiet snapshot of 2,000 entries at once"]) == 3


def test_settings_from_args() -> None:
    parser = build_arg_parser()

    def settings(*args: str) -> Settings:
        return settings_from_args(parser, parser.parse_args(args))

    assert settings() == Settings()
    quick = settings("--quick", "--part", "part2", "--logging", "on")
    assert quick == dataclasses.replace(
        QUICK, part="part2", logging=("on",), only=tuple(measure.RAFT_PHASES)
    )
    options = "--only idle --only latency -n 20 10 20 --repeat 3"
    custom = settings(*options.split(" "))
    assert custom.only == ("latency", "idle")  # in the part's order
    assert custom.throughput_ns == (10, 20)
    assert custom.repeat == 3
    with pytest.raises(SystemExit):
        settings("--commands", "1")  # a p99 needs two samples
    part6 = settings("--part", "part6", "--only", "catch-up", "--snapshot-every", "5")
    assert (part6.only, part6.snapshot_every) == (("catch-up",), 5)
    assert settings("--part", "part6", "--quick").behind == QUICK.behind
    with pytest.raises(SystemExit):
        settings("--part", "part3", "--only", "catch-up")  # part6's own
    part6kv = settings("--part", "part6kv", "--max-raft-state", "1000")
    assert (part6kv.only, part6kv.max_raft_state) == (("latency", "throughput"), 1000)


def test_raft_logging_restores_the_logger() -> None:
    logger = logging.getLogger("part2")
    before = (logger.level, logger.propagate, list(logger.handlers))
    with raft_logging(("part2",), enabled=True):
        assert logging.getLogger("part2.raft").isEnabledFor(logging.DEBUG)
        assert not logger.propagate
    with raft_logging(("part2",), enabled=False):
        assert not logging.getLogger("part2.raft").isEnabledFor(logging.INFO)
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_rows_show_failed_runs() -> None:
    def run(status: str, p50: float | None) -> Measurement:
        m = Measurement(units={"latency p50": "ms", "latency max": "ms"})
        if p50 is not None:
            m.values = {"latency p50": p50, "latency max": 2 * p50}
        if status != "ok":
            m.fail(status, "stalled here")
        return m

    runs = [run("ok", 3.0), run("STALLED", None), run("ok", 1.0)]
    p50, top = build_rows({("off", "latency"): runs})
    assert (p50["status"], p50["value"], p50["runs"]) == ("STALLED", 2.0, [3.0, 1.0])
    assert (p50["notes"], top["notes"]) == (["stalled here"], [])
    assert top["value"] == 4.0


def quiet_bench(**settings: Any) -> Bench:
    """A Bench on part2 whose progress bars draw into a string."""
    progress = Progress(console=Console(file=io.StringIO()), auto_refresh=False)
    return Bench(Settings(part="part2", **settings), progress)


@pytest.mark.parametrize("phase", ["throughput", "latency"])
def test_a_run_without_deliveries_is_stalled(
    monkeypatch: pytest.MonkeyPatch, phase: str
) -> None:
    # Commit senders that deliver nothing: the run ends as STALLED after
    # stall_seconds, saying what each server delivered, and its cluster is
    # shut down (the autouse fixture checks that no thread is left).
    monkeypatch.setattr("part2.raft.ConsensusModule.commit_chan_sender", lambda _: None)
    bench = quiet_bench(stall_seconds=0.3, throughput_ns=(20,), latency_commands=2)
    m = Measurement()
    measure.RAFT_PHASES[phase](bench, m)
    assert m.status == "STALLED"
    assert "nothing new for 0.3 s, delivered 0/0/0" in m.notes[0]
    assert m.values == {}
    assert bench.leaked == []


def test_the_cli_reports_a_stall(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("part2.raft.ConsensusModule.commit_chan_sender", lambda _: None)
    monkeypatch.setattr(cli, "QUICK", dataclasses.replace(QUICK, stall_seconds=0.3))
    args = "--quick --part part2 --only latency --logging off"
    assert cli.main(args.split()) == 1
    assert "STALLED" in capsys.readouterr().out


def test_a_leader_change_is_retried_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A leader that refuses a command looks deposed. Refused once, the run
    # goes through on a second cluster and says so.
    submit, calls = Server.submit, []

    def refuse_first(self: Server, command: Any) -> bool:
        calls.append(command)
        return len(calls) > 1 and submit(self, command)

    monkeypatch.setattr(Server, "submit", refuse_first)
    bench, m = quiet_bench(latency_commands=3), Measurement()
    measure.latency(bench, m)
    assert (m.status, m.notes) == ("ok", ["latency: leader changed, retried once"])
    assert len(m.samples["latency"]) == 3


def test_a_second_leader_change_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Server, "submit", lambda _self, _command: False)
    bench, m = quiet_bench(latency_commands=3), Measurement()
    measure.latency(bench, m)
    assert (m.status, m.notes) == ("LEADER CHANGED", ["latency: leader changed twice"])
    assert "latency p50" not in m.values
    assert bench.leaked == []


def test_leaked_threads_are_reported() -> None:
    bench, release = quiet_bench(), threading.Event()
    with bench.threads_checked():
        threading.Thread(target=release.wait, name="left-behind").start()
    release.set()
    assert bench.leaked == ["left-behind"]


def test_knobs_are_warned_about(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAFT_FORCE_MORE_REELECTION", "1")
    args = "--part part2 --only latency --commands 2 --logging off"
    assert cli.main(args.split()) == 0
    assert "warning: RAFT_FORCE_MORE_REELECTION is set" in capsys.readouterr().err


def test_a_collector_knows_the_snapshot_its_server_installed() -> None:
    # A follower that fell behind gets its leader's snapshot instead of the
    # entries it covers, so it never takes its own snapshot at the index the
    # bench waits for (a quick part6 run waited for it forever, under load).
    chan: queue.Queue[Any] = queue.Queue()
    taken: list[int] = []
    collector = Collector(
        0, chan, snapshot=lambda index, data: taken.append(index), snapshot_every=2
    )
    chan.put(SnapshotEntry(data=pickle.dumps([10, 11, 12, 13]), index=3, term=1))
    chan.put(CommitEntry(command=14, index=4, term=1))
    chan.put(END_OF_COMMITS)
    collector.thread.join(5)
    assert not collector.thread.is_alive()
    assert collector.count() == 5
    assert taken == []
    assert collector.snapshot_index == 3
