"""``pytest --sim[=SEED]``: run the tests of the Raft stages simulated.

A test of a stage the simulator knows (one under ``tests/part1/`` ...
``tests/part3/`` or ``tests/part6/``, or one marked
``@pytest.mark.stage("part3")``) runs on a ``Simulation`` of its own, from
the start of its setup to the end of its teardown: its fixtures, the test,
and the thread-leak check after it. Its seed derives from SEED and the
test's id; with ``RAFT_SIM_SEED`` set in the environment, every test runs
with that seed instead, which is how one test is replayed. Each report
says the test's seed (``RAFT_SIM_SEED=...``), and the durations it reports
are virtual seconds. Other tests run as usual, on real threads.

Enabled in tests/conftest.py, next to ``--raft-viz``, which it composes
with: a simulated run's log has virtual timestamps, and its pages read like
any other.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shlex
from collections.abc import Generator

import pytest

from . import install, runtime

SEED_ENV = "RAFT_SIM_SEED"
"""The environment variable that gives every simulated test its seed."""

SEED_LIMIT = 1 << 32
"""Seeds are whole numbers below this."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--sim[=SEED]``."""
    parser.getgroup("sim").addoption(
        "--sim",
        nargs="?",
        const="",
        default=None,
        metavar="SEED",
        help=(
            "run the tests of the Raft stages on tools.sim's deterministic "
            "scheduler and virtual clock; each test's seed derives from SEED "
            f"(default: a random one) and its id, or is ${SEED_ENV} if set"
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``stage`` marker; with ``--sim``, start simulating."""
    config.addinivalue_line(
        "markers",
        "stage(name): the Raft stage a test outside tests/<stage>/ runs; "
        "pytest --sim simulates it",
    )
    value = config.getoption("sim")
    if value is None:
        return
    if value and not value.isdigit():
        reclaim_test_path(config, value)
        value = ""
    seed = int(value) if value else random.randrange(SEED_LIMIT)
    forced = os.environ.get(SEED_ENV)
    if forced is not None and not forced.isdigit():
        raise pytest.UsageError(f"{SEED_ENV}={forced!r}: a seed is a whole number")
    plugin = SimulatedTests(seed, None if forced is None else int(forced))
    config.pluginmanager.register(plugin, "raft-sim")


def reclaim_test_path(config: pytest.Config, value: str) -> None:
    """``pytest --sim tests/part3``: the option took the test path that
    follows it as its SEED. Give the path back to the tests to run."""
    invocation = [str(arg) for arg in config.invocation_params.args]
    if "--sim" not in invocation:  # it was --sim=VALUE
        raise pytest.UsageError(f"--sim={value}: SEED is a whole number")
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = []
        config.args_source = pytest.Config.ArgsSource.ARGS
    before = invocation[: invocation.index("--sim")]
    config.args.insert(sum(arg in before for arg in config.args), value)


def seed_for(seed: int, nodeid: str) -> int:
    """The seed of the test ``nodeid`` in a session of seed ``seed``."""
    digest = hashlib.sha256(f"{seed} {nodeid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % SEED_LIMIT


def stage_of(item: pytest.Item) -> str | None:
    """The stage a test runs, if the simulator knows it."""
    marker = item.get_closest_marker("stage")
    if marker is not None:
        stage = str(marker.args[0])
        if stage not in install.STAGES:
            raise ValueError(
                f"unknown stage {stage!r}: tools.sim runs {install.STAGES}"
            )
        return stage
    module = getattr(item, "module", None)
    parts = str(getattr(module, "__name__", "")).split(".")
    if len(parts) > 2 and parts[0] == "tests" and parts[1] in install.STAGES:
        return parts[1]
    return None


def time_limit(item: pytest.Item) -> float | None:
    """The test's timeout (pytest-timeout's), as a limit of virtual time."""
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0]) or None
    try:
        value = item.config.getini("timeout")
    except ValueError:  # pytest-timeout is not installed
        return None
    return (float(value) or None) if value else None


class SimulatedRun:
    """One test's simulation: started before its setup, ended after its
    teardown, with the stand-ins installed in between."""

    def __init__(self, item: pytest.Item, stage: str, seed: int) -> None:
        self.item = item
        self.seed = seed
        self.sim = runtime.Simulation(seed, time_limit(item))
        module = getattr(item, "module", None)
        self.modules = install.run_modules(stage, [module] if module else [])
        self.stack = contextlib.ExitStack()
        self.durations: dict[str, float] = {}

    def start(self) -> None:
        """Install the stand-ins, then make this thread the main thread."""
        self.stack.enter_context(install.installed(self.sim, self.modules))
        self.stack.enter_context(self.sim)

    def finish(self) -> None:
        """End the simulation (its threads unwind on the stand-ins), then
        put the real modules back."""
        self.stack.close()

    def replay_note(self) -> str:
        """What a report says of the run."""
        test_id = shlex.quote(self.item.nodeid)
        return (
            f"{SEED_ENV}={self.seed}, replayed by: "
            f"python -m tools.sim run {test_id} --seed {self.seed}"
        )


class SimulatedTests:
    """The plugin's work in a ``--sim`` session."""

    def __init__(self, seed: int, forced: int | None) -> None:
        self.seed = seed
        self.forced = forced
        self.run: SimulatedRun | None = None

    def pytest_report_header(self) -> str:
        """Say how the seeds are chosen."""
        if self.forced is not None:
            return f"sim: every simulated test runs with {SEED_ENV}={self.forced}"
        return (
            f"sim: SEED={self.seed}; each simulated test's seed derives from it "
            "and the test's id"
        )

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        """Start the test's simulation before its fixtures are set up."""
        stage = stage_of(item)
        if stage is not None:
            seed = self.forced
            if seed is None:
                seed = seed_for(self.seed, item.nodeid)
            self.run = SimulatedRun(item, stage, seed)
            self.run.start()
        return (yield from self.timed("setup"))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self) -> Generator[None, None, None]:
        """Time the test in virtual seconds."""
        return (yield from self.timed("call"))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self) -> Generator[None, None, None]:
        """End the simulation once every fixture is torn down."""
        try:
            return (yield from self.timed("teardown"))
        finally:
            if self.run is not None:
                self.run.finish()

    def timed(self, when: str) -> Generator[None, None, None]:
        """Run a phase, noting its virtual duration."""
        run = self.run
        start = run.sim.now if run is not None else 0.0
        try:
            return (yield)
        finally:
            if run is not None:
                run.durations[when] = run.sim.now - start

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Give a simulated test's report its virtual duration and seed."""
        report = yield
        run = self.run
        if run is not None and run.item is item:
            report.duration = run.durations.get(report.when or "", 0.0)
            report.sections.append(("Simulation", run.replay_note()))
        return report

    def pytest_runtest_logfinish(self) -> None:
        """The test is over: forget its run."""
        self.run = None

    def pytest_sessionfinish(self) -> None:
        """Should a run still be on (an interrupted session), end it."""
        if self.run is not None:
            self.run.finish()
