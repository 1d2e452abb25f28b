"""``python -m tools.bench``: the quick run completes and its output has the
promised structure. The timings themselves are not checked (they depend on
the machine), except that no run may stall: that would be a bug in a part.
"""

from __future__ import annotations

import io
import json
import logging
import math
import subprocess
import sys
from typing import Any

import pytest
from rich.console import Console
from rich.progress import Progress

from tests.tools.conftest import run_python
from tools.bench.cli import build_arg_parser, settings_from_args
from tools.bench.cluster import accepted, load_part, raft_logging
from tools.bench.measure import Measurement, Runner, percentile
from tools.bench.progress import PhaseProgress
from tools.bench.report import ENV_KNOBS, Target, build_figures
from tools.bench.settings import QUICK, Settings, Step

QUICK_RUNS = {
    "part3": ["--quick"],
    "part2": ["--quick", "--logging", "off"],
}
"""The command line of each part's quick run: part3 with both logging modes,
part2 with logging off only, to keep the whole file near 30 s."""

FIGURES = [
    "throughput N=1,000",
    "throughput N=5,000",
    "growth N=1,000→5,000",
    "latency p50",
    "latency p99",
    "latency max",
    "failover p50",
    "failover p99",
    "failover max",
    "idle CPU",
    "idle RPCs",
]
"""The rows of a quick run, for each logging mode."""


@pytest.fixture(scope="module", params=sorted(QUICK_RUNS))
def quick_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run the quick benchmark of one part, as a reader would; its result
    and the JSON document it wrote."""
    part: str = request.param
    path = tmp_path_factory.mktemp("bench") / f"{part}.json"
    # The table is not squeezed into 80 columns, and no knob is set.
    env: dict[str, str | None] = dict.fromkeys(ENV_KNOBS)
    env["COLUMNS"] = "200"
    result = run_python(
        "-m",
        "tools.bench",
        "--part",
        part,
        "--json",
        str(path),
        *QUICK_RUNS[part],
        env=env,
        timeout=110,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads(path.read_text())


def is_number(value: object) -> bool:
    """A finite int or float (not a bool)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (math.isfinite(value))
    )


@pytest.mark.timeout(120)
def test_quick_run_prints_every_figure(
    quick_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    result, document = quick_run
    part = document["settings"]["part"]
    assert f"Raft benchmark: {part}, quick set" in result.stdout
    for name in FIGURES:
        assert name in result.stdout
    assert "Traceback" not in result.stderr
    # The progress bars go to standard error, one per phase.
    assert f"{part} logging off: failover" in result.stderr


@pytest.mark.timeout(120)
def test_quick_run_json_settings(
    quick_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    _, document = quick_run
    settings = document["settings"]
    assert settings["quick"] is True
    assert settings["part"] in QUICK_RUNS
    assert settings["throughput_ns"] == list(QUICK.throughput_ns)
    assert settings["latency_commands"] == QUICK.latency_commands
    assert settings["failover_trials"] == QUICK.failover_trials
    assert settings["python"] == sys.version.split()[0]
    for key in ("date", "platform", "cpu_count", "cpu_model", "logging_modes"):
        assert key in settings
    assert document["leaked_threads"] == []


@pytest.mark.timeout(120)
def test_quick_run_json_figures(
    quick_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    _, document = quick_run
    modes = document["settings"]["logging_modes"]
    figures = document["figures"]
    assert [(f["logging"], f["figure"]) for f in figures] == [
        (mode, name) for mode in modes for name in FIGURES
    ]
    for figure in figures:
        assert figure["status"] != "STALLED", figure
        if figure["status"] == "ok":
            assert is_number(figure["value"]), figure
            assert figure["value"] > 0, figure
            assert all(is_number(run) for run in figure["runs"]), figure
        if figure["target"] is None:
            assert figure["verdict"] == ""
        else:
            assert figure["logging"] == "off"
            assert figure["verdict"] in ("PASS", "MISS")
            assert set(figure["target"]) == {"limit", "at_most"}


@pytest.mark.timeout(120)
def test_quick_run_json_measurements(
    quick_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    _, document = quick_run
    measurements = document["measurements"]
    modes = document["settings"]["logging_modes"]
    steps = len(QUICK.throughput_ns) + 3
    assert len(measurements) == len(modes) * steps
    for m in measurements:
        assert m["status"] != "STALLED", m
        assert set(m) >= {"logging", "run", "phase", "n", "status", "values"}
        if m["status"] != "ok":
            continue
        assert all(is_number(v) for v in m["values"].values()), m
        if m["phase"] == "latency":
            assert len(m["samples"]) == QUICK.latency_commands
        if m["phase"] == "failover":
            assert len(m["samples"]) == QUICK.failover_trials


def test_percentile_interpolates() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 100) == 4.0
    assert percentile([7.0], 99) == 7.0


def test_accepted_reads_both_parts_submit() -> None:
    assert accepted(True)
    assert not accepted(False)
    assert accepted(0)  # part3: index 0, not False
    assert accepted(41)
    assert not accepted(-1)


def test_settings_from_args() -> None:
    parse = build_arg_parser().parse_args
    assert settings_from_args(parse([])) == Settings()
    quick = settings_from_args(parse(["--quick", "--part", "part2"]))
    assert quick == Settings(
        part="part2",
        throughput_ns=QUICK.throughput_ns,
        latency_commands=QUICK.latency_commands,
        failover_trials=QUICK.failover_trials,
        idle_seconds=QUICK.idle_seconds,
        quick=True,
    )
    options = "--only idle --only latency -n 10 20 --logging on --repeat 3"
    custom = settings_from_args(parse(options.split()))
    assert custom.phases == ("latency", "idle")  # in run order
    assert custom.throughput_ns == (10, 20)
    assert custom.logging_modes == ("on",)
    assert custom.repeat == 3


def test_raft_logging_restores_the_logger() -> None:
    logger = logging.getLogger("part2")
    before = (logger.level, logger.propagate, list(logger.handlers))
    with raft_logging("part2", enabled=True):
        assert logger.isEnabledFor(logging.DEBUG)
        assert not logger.propagate
    with raft_logging("part2", enabled=False):
        assert not logger.isEnabledFor(logging.DEBUG)
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_targets_apply_with_logging_off_only() -> None:
    settings = Settings(phases=("throughput",), throughput_ns=(1_000, 20_000))
    fast = {"commands_per_s": 90_000.0, "us_per_command": 11.0, "seconds": 0.2}
    results = {
        (mode, Step("throughput", n)): [Measurement("throughput", n, values=fast)]
        for mode in settings.logging_modes
        for n in settings.throughput_ns
    }
    stall = Measurement(
        "throughput",
        20_000,
        status="STALLED",
        details={"stalled": "no progress", "delivered": [5, 5, 4]},
    )
    results["off", Step("throughput", 20_000)] = [stall]
    figures = {(f.logging, f.name): f for f in build_figures(settings, results)}
    stalled = figures["off", "throughput N=20,000"]
    assert (stalled.value_text(), stalled.verdict) == ("STALLED", "MISS")
    assert "delivered 5/5/4" in stalled.note
    assert figures["off", "throughput N=1,000"].verdict == ""
    assert figures["on", "throughput N=20,000"].verdict == ""
    assert figures["on", "growth N=1,000→20,000"].value == 1.0
    assert figures["off", "growth N=1,000→20,000"].verdict == "MISS"
    assert Target(3, at_most=True).met(3.0)
    assert not Target(60_000, at_most=False).met(59_999.0)


def quiet_runner(settings: Settings) -> Runner:
    """A Runner on part2 whose progress bars draw into a string."""
    console = Console(file=io.StringIO())
    progress = PhaseProgress(Progress(console=console, auto_refresh=False))
    return Runner(load_part("part2"), settings, progress)


def test_a_run_without_deliveries_is_stalled(monkeypatch: pytest.MonkeyPatch) -> None:
    # A commit sender that delivers nothing: the throughput run must end as
    # STALLED after stall_seconds, with what each server delivered, and
    # leave no thread behind (the autouse fixture checks).
    monkeypatch.setattr("part2.raft.ConsensusModule.commit_chan_sender", lambda _: None)
    runner = quiet_runner(Settings(stall_seconds=0.3))
    measurement = runner.measure(Step("throughput", 20), "stall")
    assert measurement.status == "STALLED"
    assert measurement.details["delivered"] == [0, 0, 0]
    assert measurement.values == {}
    assert runner.leaked_threads == []


def test_a_leader_change_is_retried_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A leader that refuses every command looks deposed: the latency run is
    # tried on a second fresh cluster, then reported as LEADER CHANGED.
    monkeypatch.setattr("part2.server.Server.submit", lambda _self, _cmd: False)
    runner = quiet_runner(Settings())
    measurement = runner.measure(Step("latency"), "leader change")
    assert measurement.status == "LEADER CHANGED"
    assert measurement.details["leader_changes"] == 2
    assert runner.leaked_threads == []
