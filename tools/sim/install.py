"""How a simulated run reaches the unchanged code of a Raft stage.

The stages write ``threading.Thread(...)``, ``time.sleep(...)``,
``random.uniform(...)``, ``queue.Queue()``: each looks a name up in its
module's globals at the moment of the call. For the length of a run,
``installed`` binds those four names, in the modules of the stage under
test, of its tests and of the thread-leak check (``run_modules``), to a
simulation's stand-ins, and puts the real modules back afterwards, also
when the run fails. Nothing else changes: pytest, logging and every other
module keep the real ones.

Three more things make two runs of one seed the same, byte for byte:

* a class that a test module derived from ``threading.Thread`` or
  ``queue.Queue`` when it was imported derives from the stand-in during
  the run (its instances must be simulated threads and queues);
* module-level state that the stages keep for the whole process starts
  afresh (``PER_RUN_STATE``);
* log records get their time from the virtual clock (``logging`` reads
  ``time.time()`` for each record), so a log's timestamps are virtual.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import random
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

from . import runtime

STAGES = ["part1", "part2", "part3", "part6"]
"""The Raft stages the simulator runs. Their modules, and those of their
tests (``tests/<stage>/``), see simulated names during a run."""

LEAK_CHECK = ["tests.conftest", "tools.threadcheck"]
"""The modules of the thread-leak check that runs after every test: in a
simulated run it counts simulated threads, and waits for them in virtual
time."""

REAL_MODULES: dict[str, types.ModuleType] = {
    "threading": threading,
    "time": time,
    "random": random,
    "queue": queue,
}

REAL_BASES: dict[type, type] = {
    threading.Thread: runtime.Thread,
    threading.Event: runtime.Event,
    threading.Condition: runtime.Condition,
    queue.Queue: runtime.Queue,
}
"""Real classes a module may derive from, and their stand-ins."""

PER_RUN_STATE: dict[str, Callable[[], object]] = {
    "_message_numbers": lambda: itertools.count(1),
}
"""Module-level state of the stages, and how a run starts it afresh. Each
server.py numbers the messages of the whole process from one counter: two
runs in one process would number theirs differently."""


def stage_modules(stage: str) -> list[types.ModuleType]:
    """The loaded modules of ``stage`` and of its tests."""
    prefixes = (f"{stage}.", f"tests.{stage}.")
    return [
        module
        for name, module in list(sys.modules.items())
        if module is not None and (name == stage or name.startswith(prefixes))
    ]


def run_modules(stage: str, extra: list[types.ModuleType]) -> list[types.ModuleType]:
    """The modules a run of a test of ``stage`` reaches: the stage's, its
    tests', the leak check's, and ``extra`` (the test's own module)."""
    modules = stage_modules(stage) + [
        sys.modules[name] for name in LEAK_CHECK if name in sys.modules
    ]
    return list({id(m): m for m in modules + extra}.values())


@contextlib.contextmanager
def installed(
    sim: runtime.Simulation, modules: list[types.ModuleType]
) -> Iterator[None]:
    """Run the block with ``sim``'s stand-ins in ``modules``."""
    undo: list[tuple[Any, str, object]] = []

    def patch(target: Any, name: str, value: object) -> None:
        undo.append((target, name, getattr(target, name)))
        setattr(target, name, value)

    try:
        for module in modules:
            check_no_names_imported(module, sim)
            for name, value in list(vars(module).items()):
                if name in REAL_MODULES and value is REAL_MODULES[name]:
                    patch(module, name, sim.modules[name])
                elif name in PER_RUN_STATE:
                    patch(module, name, PER_RUN_STATE[name]())
                elif isinstance(value, type) and value.__module__ == module.__name__:
                    bases = tuple(REAL_BASES.get(b, b) for b in value.__bases__)
                    if bases != value.__bases__:
                        patch(value, "__bases__", bases)
        patch(logging, "time", sim.time)
        yield
    finally:
        for target, name, value in reversed(undo):
            setattr(target, name, value)


def check_no_names_imported(module: types.ModuleType, sim: runtime.Simulation) -> None:
    """Fail loudly if ``module`` holds a function or class of the replaced
    modules under a name of its own (``from time import sleep``): the run
    would not reach it."""
    replaced = {
        id(getattr(REAL_MODULES[name], attribute)): f"{name}.{attribute}"
        for name, stand_in in sim.modules.items()
        for attribute, value in vars(stand_in).items()
        if not attribute.startswith("__")
        and getattr(REAL_MODULES[name], attribute, value) is not value
    }
    for name, value in vars(module).items():
        if id(value) in replaced:
            raise RuntimeError(
                f"{module.__name__}.{name} is {replaced[id(value)]}, imported by "
                "name: tools.sim replaces only the module names threading, "
                "time, random and queue"
            )
