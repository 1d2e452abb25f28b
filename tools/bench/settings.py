"""What a benchmark run measures, and how much of it: the full set of issue 7
or the reduced ``--quick`` one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

PHASES = ("throughput", "latency", "failover", "idle")
"""Every phase, in the order a run measures them."""

LOGGING_MODES = ("off", "on")
"""Raft logging off (loggers at WARNING), and on (DEBUG records formatted
and written to the null device)."""

CLUSTER_SIZE = 3
"""Servers in the clusters of the throughput, latency and failover phases."""

IDLE_CLUSTER_SIZE = 5
"""Servers in the cluster of the idle phase."""


class Step(NamedTuple):
    """One measurement of a run: a phase, and for throughput its N."""

    phase: str
    n: int | None = None


@dataclass(frozen=True)
class Settings:
    """The parameters of a run; the defaults are the full set of issue 7."""

    part: str = "part3"
    logging_modes: tuple[str, ...] = LOGGING_MODES
    phases: tuple[str, ...] = PHASES
    throughput_ns: tuple[int, ...] = (1_000, 5_000, 20_000)
    latency_commands: int = 500
    failover_trials: int = 30
    idle_seconds: float = 10.0
    stall_seconds: float = 10.0
    """A run with no progress for this long is reported as STALLED."""
    repeat: int = 1
    """Runs of every measurement; the table shows their median."""
    quick: bool = False

    def steps(self) -> list[Step]:
        """The measurements of one logging mode, in order."""
        steps: list[Step] = []
        for phase in self.phases:
            if phase == "throughput":
                steps.extend(Step(phase, n) for n in self.throughput_ns)
            else:
                steps.append(Step(phase))
        return steps


QUICK = Settings(
    throughput_ns=(1_000, 5_000),
    latency_commands=100,
    failover_trials=5,
    idle_seconds=3.0,
    quick=True,
)
"""The reduced set of ``--quick``: both logging modes in well under 60 s."""
