"""Simulated threads, locks, conditions, events, queues and clock.

A ``Simulation`` runs a threaded program one thread at a time. Each
simulated thread is a real OS thread, but it runs only while it holds the
simulation's *baton*; every other one is parked on a gate of its own (a real
lock). A thread hands the baton on only where it synchronizes: at a *switch
point* (acquiring a lock, waiting, sleeping, starting or joining a thread,
touching an event), the simulation's seeded generator picks which runnable
thread goes on, maybe the same one. So the order in which threads interleave
is a function of the seed, and so is everything the program does.

Time is virtual. ``time.monotonic()`` is the simulation's clock, which
stands still while threads run. When every thread waits, the clock jumps to
the earliest deadline of a timed wait (a ``sleep``, a ``Condition.wait``
with a timeout, ...), and the threads waiting for that moment go on. A
program that waits 10 s thus runs in the time its code takes. When every
thread waits and none has a deadline, nothing can ever happen again: the
program is deadlocked, and the main thread gets a ``DeadlockError`` that
lists each thread and the line it waits at.

The classes here stand in for those of ``threading`` and ``queue``, with
the same signatures, and ``Simulation.modules`` holds the stand-in modules
(``threading``, ``time``, ``random``, ``queue``) that ``tools.sim.install``
puts in place of the real ones in a program's modules. docs/sim.md tells
why switching only at synchronization points loses no behaviour of the
Raft stages.
"""

from __future__ import annotations

import collections
import datetime
import heapq
import itertools
import linecache
import queue as real_queue
import random as real_random
import sys
import threading as real_threading
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

WALL_CLOCK_START = datetime.datetime(2000, 1, 1).timestamp()
"""What ``time.time()`` reads when a simulation starts: midnight, local
time, so that a simulated run's log reads 00:00:00.000000 at its start."""

STAY = 0.75
"""How likely a thread that can go on at a switch point does. A switch
hands the baton from one OS thread to another, which costs microseconds;
staying more often than not keeps every order of the threads possible."""

ABORT_GRACE = 5.0
"""Real seconds a thread still alive when its simulation ends is given to
unwind (it gets ``Aborted`` at its next wait)."""

_HERE = str(Path(__file__).parent)


class DeadlockError(Exception):
    """Every simulated thread waits, and none has a deadline."""


class TimeLimitError(Exception):
    """The program ran past the simulation's limit of virtual time."""


class Aborted(BaseException):
    """Raised in a thread still alive when its simulation ends, to unwind it.

    A BaseException, so that ``except Exception`` in the program does not
    swallow it.
    """


_active: Simulation | None = None


def active() -> Simulation:
    """The simulation running in this process."""
    if _active is None:
        raise RuntimeError("no simulation is running (tools.sim)")
    return _active


class Simulation:
    """One run of a program: its threads, its clock and its seeded choices.

    Use it as a context manager, in the thread that is to be the program's
    main thread::

        with Simulation(seed=7) as sim:
            thread = sim.threading.Thread(target=lambda: sim.time.sleep(5))
            thread.start()
            thread.join()
            assert sim.now == 5.0

    ``time_limit`` (virtual seconds) stops a program that never ends: its
    main thread gets ``TimeLimitError`` when the clock would pass it.
    """

    def __init__(self, seed: int, time_limit: float | None = None) -> None:
        self.seed = seed
        # Two streams: the program's draws do not shift the schedule's.
        self.schedule = real_random.Random(f"schedule {seed}")
        self.random = real_random.Random(f"program {seed}")
        self.now = 0.0
        self.time_limit = time_limit
        self.over = False
        # Every live thread, in the order they started, and those that can
        # run now, in the order they became able to: the schedule picks from
        # the latter, so its order must not depend on memory addresses.
        self.threads: list[Thread] = []
        self.runnable: dict[Thread, None] = {}
        # (deadline, ticket, thread): a thread's current timed wait is the
        # one whose ticket it holds; other entries are stale.
        self.timers: list[tuple[float, int, Thread]] = []
        self.tickets = 0
        self.thread_numbers = itertools.count(1)
        self.threads_started = 0
        self.switches = 0
        self.idle_workers: list[Worker] = []
        self.threading = _threading_module()
        self.time = _time_module(self)
        self.random_module = _random_module(self)
        self.queue = _queue_module()
        self.modules = {
            "threading": self.threading,
            "time": self.time,
            "random": self.random_module,
            "queue": self.queue,
        }
        self.main = Thread.__new__(Thread)
        self.current = self.main

    # --- Starting and ending ------------------------------------------------

    def __enter__(self) -> Simulation:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finish()

    def start(self) -> None:
        """Make the calling thread the program's main thread, holding the
        baton."""
        global _active
        if _active is not None:
            raise RuntimeError("a simulation is running already")
        _active = self
        self.main._setup(self, "MainThread", None, (), {}, daemon=False)
        self.main._gate.acquire()
        self.main._started = True
        self.runnable[self.main] = None
        self.main._ident = real_threading.get_ident()
        self.threads.append(self.main)

    def finish(self) -> None:
        """End the run: every thread still alive gets ``Aborted`` at its next
        wait, and this waits until the OS threads that ran them are gone."""
        global _active
        if _active is not self:
            return
        self.over = True
        try:
            for thread in list(self.threads):
                if thread._worker is not None:
                    thread._gate.release()
                    thread._worker.os_thread.join(ABORT_GRACE)
            for worker in self.idle_workers:
                worker.thread = None
                worker.gate.release()
                worker.os_thread.join(ABORT_GRACE)
        finally:
            _active = None

    def take_worker(self) -> Worker:
        """An idle worker OS thread, or a new one."""
        return self.idle_workers.pop() if self.idle_workers else Worker()

    # --- The baton ----------------------------------------------------------

    def enter(self) -> Thread:
        """The calling thread, at a call into the simulation: it must be the
        one holding the baton."""
        if self.over:
            if _active is self:
                raise Aborted
            raise RuntimeError("this object belongs to a simulated run that ended")
        me = self.current
        if me._ident != real_threading.get_ident():
            raise RuntimeError(
                "a thread outside the simulation called into it "
                f"({real_threading.current_thread().name})"
            )
        return me

    def switch(self) -> None:
        """A switch point: the schedule picks who runs on, maybe the caller."""
        self.run_next(self.enter())

    def run_next(self, me: Thread | None) -> None:
        """Give the baton to a runnable thread picked by the schedule, and
        park ``me`` (the caller) until it gets the baton back; ``me`` is None
        for a thread that has ended. When no thread can run, the clock moves
        on to the next deadline first.

        A caller that can go on does so with probability STAY; otherwise
        another runnable thread goes, each as likely.
        """
        while not self.runnable:
            self.fire_next_timers()
        if me in self.runnable:
            if len(self.runnable) == 1 or self.schedule.random() < STAY:
                return
            others = [thread for thread in self.runnable if thread is not me]
        else:
            others = list(self.runnable)
        chosen = (
            others[self.schedule.randrange(len(others))]
            if len(others) > 1
            else others[0]
        )
        self.current = chosen
        self.switches += 1
        chosen._gate.release()
        if me is not None:
            me._park()

    def block(self, what: str, deadline: float | None = None) -> bool:
        """Make the calling thread wait until ``wake``, or until the clock
        reaches ``deadline``: True if it was woken, False if it timed out.

        The caller registers itself with what it waits for (a lock, a
        condition...) first, and unregisters itself after, also when this
        raises.
        """
        me = self.current
        del self.runnable[me]
        me._woken = False
        me._waiting_on = what
        if deadline is not None:
            self.tickets += 1
            me._ticket = self.tickets
            heapq.heappush(self.timers, (deadline, self.tickets, me))
        self.run_next(me)
        me._ticket = 0
        me._waiting_on = ""
        if me._error is not None:
            error, me._error = me._error, None
            raise error
        return me._woken

    def wake(self, thread: Thread) -> None:
        """Make a waiting thread runnable: its ``block`` returns True."""
        if thread not in self.runnable:
            self.runnable[thread] = None
            thread._woken = True
            thread._ticket = 0

    def fire_next_timers(self) -> None:
        """Move the clock to the earliest deadline and make the threads
        waiting for it runnable. With no deadline, or one past the time
        limit, fail the main thread instead."""
        while self.timers:
            deadline, ticket, thread = self.timers[0]
            if thread._ticket != ticket:
                heapq.heappop(self.timers)
                continue
            if self.time_limit is not None and deadline > self.time_limit:
                self.fail_main(
                    TimeLimitError(
                        self.describe(
                            f"no end after {self.time_limit:g} s of virtual time"
                        )
                    )
                )
                return
            self.now = max(self.now, deadline)
            while self.timers and self.timers[0][0] <= self.now:
                _, ticket, thread = heapq.heappop(self.timers)
                if thread._ticket == ticket:
                    self.runnable[thread] = None
                    thread._ticket = 0
            return
        self.fail_main(
            DeadlockError(
                self.describe("deadlock: every thread waits, and no timer is set")
            )
        )

    def fail_main(self, error: Exception) -> None:
        """Raise ``error`` in the main thread, where it waits."""
        self.main._error = error
        self.runnable[self.main] = None
        self.main._ticket = 0

    def describe(self, headline: str) -> str:
        """``headline``, then each live thread and the line it waits at."""
        frames = sys._current_frames()
        lines = [f"{headline} (at {self.now:.6f} s):"]
        for thread in self.threads:
            frame = frames.get(thread._ident or 0)
            where = _program_line(frame)
            lines.append(f"  {thread.name} waits in {thread._waiting_on} at {where}")
        return "\n".join(lines)

    # --- Virtual time -------------------------------------------------------

    def monotonic(self) -> float:
        """``time.monotonic()``: virtual seconds since the run started."""
        return self.now

    def wall_time(self) -> float:
        """``time.time()``: the virtual clock, from WALL_CLOCK_START."""
        return WALL_CLOCK_START + self.now

    def sleep(self, seconds: float) -> None:
        """``time.sleep()``: wait until the clock has moved on ``seconds``."""
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        me = self.enter()
        if seconds == 0:
            self.run_next(me)
        else:
            self.block("time.sleep", self.now + seconds)

    def deadline(self, timeout: float | None) -> float | None:
        """The moment a wait of ``timeout`` seconds from now ends."""
        return None if timeout is None else self.now + max(timeout, 0.0)


def _program_line(frame: types.FrameType | None) -> str:
    """Where ``frame``'s thread is in the program: the innermost frame
    outside this package, as ``file:line (source)``."""
    while frame is not None and frame.f_code.co_filename.startswith(_HERE):
        frame = frame.f_back
    if frame is None:
        return "(unknown)"
    code = frame.f_code
    source = linecache.getline(code.co_filename, frame.f_lineno).strip()
    return (
        f"{_short_path(code.co_filename)}:{frame.f_lineno} in {code.co_name}: {source}"
    )


def _short_path(filename: str) -> str:
    """``filename``, relative to the working directory when it is inside."""
    path = Path(filename)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return filename


class Thread:
    """``threading.Thread``, run by the simulation: a real OS thread that
    runs only while it holds the baton."""

    def __init__(
        self,
        group: None = None,
        target: Callable[..., object] | None = None,
        name: str | None = None,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        daemon: bool | None = None,
    ) -> None:
        sim = active()
        if name is None:
            name = f"Thread-{next(sim.thread_numbers)}"
        self._setup(sim, name, target, args, kwargs or {}, daemon=daemon)

    def _setup(
        self,
        sim: Simulation,
        name: str,
        target: Callable[..., object] | None,
        args: Iterable[Any],
        kwargs: dict[str, Any],
        daemon: bool | None,
    ) -> None:
        self._sim = sim
        self.name = name
        self.daemon: bool = sim.current.daemon if daemon is None else daemon
        self._target = target
        self._args = tuple(args)
        self._kwargs = kwargs
        # The gate this thread waits at for the baton (a real lock, locked
        # while it may not run): its own for the main thread, its worker's
        # for the others, from start() on.
        self._gate = real_threading.Lock()
        self._worker: Worker | None = None
        self._ident: int | None = None
        self._started = False
        self._done = False
        self._woken = False
        self._waiting_on = ""
        self._ticket = 0
        self._error: BaseException | None = None
        self._joiners: list[Thread] = []

    def __repr__(self) -> str:
        state = "stopped" if self._done else "started" if self._started else "initial"
        return f"<simulated Thread({self.name}, {state})>"

    @property
    def ident(self) -> int | None:
        """The OS thread's identifier, once started."""
        return self._ident

    def start(self) -> None:
        """Start the thread; the schedule then picks who runs first."""
        sim = self._sim
        me = sim.enter()
        if self._started:
            raise RuntimeError("threads can only be started once")
        self._started = True
        sim.runnable[self] = None
        sim.threads.append(self)
        sim.threads_started += 1
        self._worker = sim.take_worker()
        self._worker.thread = self
        self._gate = self._worker.gate
        self._ident = self._worker.os_thread.ident
        sim.run_next(me)

    def run(self) -> None:
        """What the thread does: call its target."""
        if self._target is not None:
            self._target(*self._args, **self._kwargs)

    def join(self, timeout: float | None = None) -> None:
        """Wait until the thread ends, or ``timeout`` virtual seconds."""
        sim = self._sim
        me = sim.enter()
        if not self._started:
            raise RuntimeError("cannot join thread before it is started")
        if self is me:
            raise RuntimeError("cannot join current thread")
        sim.run_next(me)
        deadline = sim.deadline(timeout)
        if self._done or (deadline is not None and deadline <= sim.now):
            return
        self._joiners.append(me)
        try:
            sim.block(f"Thread.join({self.name})", deadline)
        finally:
            _remove(self._joiners, me)

    def is_alive(self) -> bool:
        """True from ``start()`` until the thread's ``run()`` returns."""
        return self._started and not self._done

    def _run_on_worker(self) -> None:
        """Run on a worker that got the baton; then pass the baton on."""
        try:
            if not self._sim.over:
                self.run()
        except (Aborted, SystemExit):
            pass
        except BaseException as error:
            hook_args = (type(error), error, error.__traceback__, self)
            real_threading.excepthook(real_threading.ExceptHookArgs(hook_args))
        finally:
            self._end()

    def _park(self) -> None:
        """Wait for the baton. A signal (Ctrl-C, pytest-timeout) that
        interrupts the main thread here breaks the run: the other threads
        get ``Aborted`` at their next call into the simulation."""
        try:
            self._gate.acquire()
        except BaseException:
            self._sim.over = True
            raise
        if self._sim.over:
            raise Aborted

    def _end(self) -> None:
        """The thread's run is over: wake its joiners, pass the baton on."""
        sim = self._sim
        self._done = True
        sim.runnable.pop(self, None)
        sim.threads.remove(self)
        for joiner in self._joiners:
            sim.wake(joiner)
        if not sim.over:
            assert self._worker is not None
            sim.idle_workers.append(self._worker)
            sim.run_next(None)


class Worker:
    """A real OS thread that runs simulated threads, one after the other:
    starting an OS thread costs more than handing the baton over."""

    def __init__(self) -> None:
        self.gate = real_threading.Lock()
        self.gate.acquire()
        self.thread: Thread | None = None
        self.os_thread = real_threading.Thread(
            target=self.serve, name="tools.sim worker", daemon=True
        )
        self.os_thread.start()

    def serve(self) -> None:
        """Run each simulated thread given, when it gets the baton, until
        the simulation is over."""
        while True:
            self.gate.acquire()
            thread = self.thread
            if thread is None:
                return
            thread._run_on_worker()
            if thread._sim.over:
                return


def _remove(waiters: list[Thread], thread: Thread) -> None:
    """Take ``thread`` off a list of waiters, if it is on it."""
    if thread in waiters:
        waiters.remove(thread)


class Lock:
    """``threading.Lock``. Acquiring it is a switch point."""

    def __init__(self) -> None:
        self._sim = active()
        self._owner: Thread | None = None
        self._waiters: list[Thread] = []

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock; wait for it unless ``blocking`` is False, at most
        ``timeout`` seconds if it is not -1."""
        sim = self._sim
        me = sim.enter()
        sim.run_next(me)
        deadline = None if timeout == -1 else sim.deadline(timeout)
        while self._owner is not None:
            if not blocking or (deadline is not None and deadline <= sim.now):
                return False
            self._waiters.append(me)
            try:
                sim.block("Lock.acquire", deadline)
            finally:
                _remove(self._waiters, me)
        self._owner = me
        return True

    def release(self) -> None:
        """Free the lock, and wake one waiter (the schedule picks which)."""
        if self._owner is None:
            raise RuntimeError("release unlocked lock")
        self._owner = None
        if self._waiters and not self._sim.over:
            count = len(self._waiters)
            pick = self._sim.schedule.randrange(count) if count > 1 else 0
            self._sim.wake(self._waiters.pop(pick))

    def locked(self) -> bool:
        """True while some thread holds the lock."""
        return self._owner is not None

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class Condition:
    """``threading.Condition`` over a simulated Lock (a new one if none is
    given: an RLock in the real module). ``notify`` wakes the longest
    waiting threads first."""

    def __init__(self, lock: Lock | None = None) -> None:
        self._sim = active()
        self._lock = lock if lock is not None else Lock()
        self._waiters: list[Thread] = []
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notify or ``timeout`` seconds, take
        the lock again; True if notified."""
        sim = self._sim
        me = self._check_owner("wait")
        deadline = sim.deadline(timeout)
        self._waiters.append(me)
        self._lock.release()
        notified = False
        try:
            if deadline is None or deadline > sim.now:
                notified = sim.block("Condition.wait", deadline)
        finally:
            _remove(self._waiters, me)
            self._lock.acquire()
        return notified

    def wait_for(
        self, predicate: Callable[[], T], timeout: float | None = None
    ) -> T | bool:
        """Wait until ``predicate()`` is true, at most ``timeout`` seconds;
        return its last value."""
        deadline = self._sim.deadline(timeout)
        result = predicate()
        while not result:
            if deadline is None:
                self.wait()
            else:
                remaining = deadline - self._sim.now
                if remaining <= 0:
                    break
                self.wait(remaining)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        """Wake the ``n`` threads that have waited longest."""
        self._check_owner("notify")
        for thread in self._waiters[:n]:
            self._waiters.remove(thread)
            self._sim.wake(thread)

    def notify_all(self) -> None:
        """Wake every waiting thread."""
        self.notify(len(self._waiters))

    def _check_owner(self, what: str) -> Thread:
        me = self._sim.enter()
        if self._lock._owner is not me:
            raise RuntimeError(f"cannot {what} on un-acquired lock")
        return me


class Event:
    """``threading.Event``. Every call is a switch point."""

    def __init__(self) -> None:
        self._sim = active()
        self._flag = False
        self._waiters: list[Thread] = []

    def is_set(self) -> bool:
        """True once set (and not cleared)."""
        self._sim.switch()
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        self._sim.switch()
        self._flag = True
        for thread in self._waiters:
            self._sim.wake(thread)
        self._waiters.clear()

    def clear(self) -> None:
        """Reset the flag."""
        self._sim.switch()
        self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set, at most ``timeout`` seconds; return
        the flag."""
        sim = self._sim
        me = sim.enter()
        sim.run_next(me)
        deadline = sim.deadline(timeout)
        if self._flag or (deadline is not None and deadline <= sim.now):
            return self._flag
        self._waiters.append(me)
        try:
            sim.block("Event.wait", deadline)
        finally:
            _remove(self._waiters, me)
        return self._flag


class Queue:
    """``queue.Queue`` on simulated locks: FIFO, bounded by ``maxsize`` if
    positive, with timed ``get``/``put`` and ``task_done``/``join``."""

    def __class_getitem__(cls, item: Any) -> types.GenericAlias:
        return types.GenericAlias(cls, item)

    def __init__(self, maxsize: int = 0) -> None:
        self._sim = active()
        self.maxsize = maxsize
        self.items: collections.deque[Any] = collections.deque()
        self.mutex = Lock()
        self.not_empty = Condition(self.mutex)
        self.not_full = Condition(self.mutex)
        self.all_tasks_done = Condition(self.mutex)
        self.unfinished_tasks = 0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item``; if the queue is full, wait for room (or raise
        ``queue.Full`` when not blocking or after ``timeout`` seconds)."""
        with self.not_full:
            self._wait(self.not_full, self.full_locked, block, timeout, real_queue.Full)
            self.items.append(item)
            self.unfinished_tasks += 1
            self.not_empty.notify()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Take the oldest item; if there is none, wait (or raise
        ``queue.Empty`` when not blocking or after ``timeout`` seconds)."""
        with self.not_empty:
            self._wait(
                self.not_empty, lambda: not self.items, block, timeout, real_queue.Empty
            )
            item = self.items.popleft()
            self.not_full.notify()
            return item

    def put_nowait(self, item: Any) -> None:
        """``put(item, block=False)``."""
        self.put(item, block=False)

    def get_nowait(self) -> Any:
        """``get(block=False)``."""
        return self.get(block=False)

    def task_done(self) -> None:
        """Mark one item taken earlier as processed."""
        with self.all_tasks_done:
            if self.unfinished_tasks <= 0:
                raise ValueError("task_done() called too many times")
            self.unfinished_tasks -= 1
            if self.unfinished_tasks == 0:
                self.all_tasks_done.notify_all()

    def join(self) -> None:
        """Wait until every item put has been marked done."""
        with self.all_tasks_done:
            while self.unfinished_tasks:
                self.all_tasks_done.wait()

    def qsize(self) -> int:
        """The number of items in the queue."""
        with self.mutex:
            return len(self.items)

    def empty(self) -> bool:
        """True if the queue holds no item."""
        with self.mutex:
            return not self.items

    def full(self) -> bool:
        """True if the queue holds ``maxsize`` items."""
        with self.mutex:
            return self.full_locked()

    def full_locked(self) -> bool:
        """``full()``, for a caller holding ``mutex``."""
        return 0 < self.maxsize <= len(self.items)

    def _wait(
        self,
        condition: Condition,
        must_wait: Callable[[], bool],
        block: bool,
        timeout: float | None,
        error: type[Exception],
    ) -> None:
        """Wait on ``condition`` while ``must_wait()``, as get and put do."""
        if not block:
            timeout = 0
        elif timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        deadline = self._sim.deadline(timeout)
        while must_wait():
            remaining = None if deadline is None else deadline - self._sim.now
            if remaining is not None and remaining <= 0:
                raise error
            condition.wait(remaining)


def current_thread() -> Thread:
    """``threading.current_thread()``: the calling simulated thread."""
    return active().enter()


def enumerate_threads() -> list[Thread]:
    """``threading.enumerate()``: the live simulated threads."""
    return list(active().threads)


def main_thread() -> Thread:
    """``threading.main_thread()``: the simulated main thread."""
    return active().main


class Random(real_random.Random):
    """``random.Random``: seeded from the simulation when no seed is given."""

    def __init__(self, x: Any = None) -> None:
        super().__init__(active().random.getrandbits(64) if x is None else x)


def _module(name: str, doc: str, **attributes: object) -> types.ModuleType:
    """A stand-in module: ``attributes``, and an AttributeError that says
    so for anything else."""
    module = types.ModuleType(name, doc)
    module.__dict__.update(attributes)

    def missing(attribute: str) -> Any:
        raise AttributeError(f"{name}.{attribute} is not simulated by tools.sim")

    module.__dict__["__getattr__"] = missing
    return module


def _threading_module() -> types.ModuleType:
    return _module(
        "threading",
        "threading, simulated by tools.sim",
        Thread=Thread,
        Lock=Lock,
        Condition=Condition,
        Event=Event,
        current_thread=current_thread,
        enumerate=enumerate_threads,
        main_thread=main_thread,
    )


def _time_module(sim: Simulation) -> types.ModuleType:
    def to_ns(clock: Callable[[], float]) -> Callable[[], int]:
        return lambda: round(clock() * 1e9)

    return _module(
        "time",
        "time, on the virtual clock of tools.sim",
        monotonic=sim.monotonic,
        monotonic_ns=to_ns(sim.monotonic),
        perf_counter=sim.monotonic,
        perf_counter_ns=to_ns(sim.monotonic),
        time=sim.wall_time,
        time_ns=to_ns(sim.wall_time),
        sleep=sim.sleep,
    )


RANDOM_FUNCTIONS = [
    name
    for name in real_random.__all__
    if isinstance(
        getattr(getattr(real_random, name), "__self__", None), real_random.Random
    )
    and name not in ("seed", "getstate", "setstate")
]
"""The functions of ``random`` that draw from its hidden generator."""


def _random_module(sim: Simulation) -> types.ModuleType:
    functions = {name: getattr(sim.random, name) for name in RANDOM_FUNCTIONS}
    return _module("random", "random, seeded by tools.sim", Random=Random, **functions)


def _queue_module() -> types.ModuleType:
    return _module(
        "queue",
        "queue, simulated by tools.sim",
        Queue=Queue,
        Empty=real_queue.Empty,
        Full=real_queue.Full,
    )
