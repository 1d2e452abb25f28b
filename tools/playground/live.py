"""A session, running: the simulated cluster, its clock, and what the user
asks of it.

A ``LiveRun`` runs a session's cluster on tools.sim, on a thread of its
own, whose simulated main thread is the *driver*: it builds the stage's
harness, then waits for the pacer to hand it an action, does it, and waits
again. Everything the user does goes through the *pacer* (``pace``), which
the simulation asks each time every simulated thread waits, before its
virtual clock moves on to the next deadline:

- **Pacing.** The clock may move to a deadline once the *shown* time has
  reached it: the virtual time the person watching sees, which runs at
  ``speed`` times the wall clock (from 1/100 to 1), stands still while
  paused, and jumps to each next event while stepping. So a run at 1/20
  shows in 20 s what happened in 1 s, and between two events nothing is
  computed.
- **Actions.** An action from the page (crash, submit...) waits for the
  next such moment; the pacer stops the clock at the shown time (or at
  the clock, whichever is later), before the next deadline, and wakes the
  driver, which does it. The action is recorded with that moment, so a
  replay, which stops the clock at the same moments, makes the same run.
  An action that cannot be done (crash a crashed server) is refused there,
  without waking the driver: a refusal changes nothing in the run.
- **Stepping.** A step lets the run go on to its next log line, and
  pauses there, in the middle of what the servers do at that instant
  (the recorder calls ``after_line``). An action asked there waits until
  the servers are done with that instant.
- **The page's view.** The page asks for the cluster as it is; the pacer
  (or a paused line) reads it while no simulated thread runs.
- **Replays and scenarios.** A session's own actions are done at their
  moments, as the shown time reaches them; its ``end`` pauses the run
  (``pause`` and ``note`` actions speak to the page and change nothing).

``play`` runs a session without a page, as fast as it goes: the tests and
the scenarios' checks use it.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import importlib
import math
import os
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from tools import threadcheck
from tools.sim import install
from tools.sim.runtime import Simulation

from .cluster import Cluster
from .recorder import Board, Recorder
from .session import PAGE_ACTIONS, Action, Session

DEFAULT_SPEED = 0.05
"""The speed a session starts at unless it says: 1/20 of real time, at
which a message takes 20 to 100 ms to cross and an election timeout 3 to
6 s."""

BEHIND = 0.1
"""Virtual seconds the run may fall behind the shown time (when the
machine cannot keep up) before the shown time waits for it."""

MAX_NOTICES = 20
"""How many notices (refusals, the end of a session) are kept for the page."""

QUIT = Action(0.0, "quit")
"""What the pacer hands the driver to end the run."""

STAGE_VARIABLES = ("RAFT_UNRELIABLE_RPC", "RAFT_FORCE_MORE_REELECTION")
"""The environment variables the stages read at every call. A session runs
without them (on the reliable network, with random election timeouts):
the seed and the actions alone must fix the run."""


class Mode(enum.Enum):
    """What the shown time does."""

    RUNNING = "running"
    PAUSED = "paused"
    STEPPING = "stepping"


@dataclass
class Request:
    """An action from the page, until the run has done it or refused it."""

    action: Action
    done: Action | None = None
    """The action as done, with its moment."""
    outcome: str | None = None
    """What came of it, or why it was refused."""


@dataclass
class SaveRequest:
    """A save, until the run has reached a moment to save at."""

    session: Session | None = None
    lines: list[str] = field(default_factory=list)
    """The log up to that moment."""


@dataclass
class Played:
    """A session played without a page (``play``)."""

    lines: list[str]
    """The log, up to the session's end."""
    view: dict[str, Any]
    """The cluster at the end (``Cluster.view``)."""
    outcomes: list[tuple[Action, str]]
    """Each action done, with what came of it."""
    notices: list[str]


class LiveRun:
    """One session, running on a thread of its own from ``start()`` until
    ``quit()``. ``paced=False`` runs it as fast as it goes, to its end."""

    def __init__(
        self, session: Session, *, paced: bool = True, speed: float | None = None
    ) -> None:
        self.session = session
        self.paced = paced
        self.board = Board()
        self.recorder = Recorder(self.board, self.after_line)
        self.script = collections.deque(session.actions)
        self.end = session.end
        # The session as it is played: what Save writes.
        self.played = replace(session, actions=[], end=None)
        self.mode = Mode.RUNNING
        self.speed = speed or session.speed or DEFAULT_SPEED
        self.anchor = (0.0, time.monotonic())  # shown time, at wall time
        self.frozen = 0.0  # the shown time, while paused
        self.clock = 0.0  # the simulation's clock, as last seen
        self.requests: collections.deque[Request] = collections.deque()
        self.doing: Request | None = None
        self.saves: collections.deque[SaveRequest] = collections.deque()
        self.due: Action | None = None
        self.outcomes: list[tuple[Action, str]] = []
        self.quitting = False
        self.finished = False
        self.failure = ""
        self.at_line = False
        self.held = False
        self.want_view = False
        self.view: dict[str, Any] | None = None
        self.view_version = -1
        self.view_clock = 0.0
        self.view_until: float | None = 0.0
        self.caption = ""
        self.notices: collections.deque[tuple[int, str]] = collections.deque(
            maxlen=MAX_NOTICES
        )
        self.end_lines: list[str] | None = None
        self.sim: Simulation | None = None
        self.cluster: Cluster | None = None
        self.thread = threading.Thread(target=self.run, name="playground run")

    # --- The run's thread ---------------------------------------------------

    def start(self) -> None:
        """Start the run."""
        self.thread.start()

    def run(self) -> None:
        """Run the session in a simulation, until ``quit()`` (or, unpaced,
        its end). A failure is kept for the page, and printed."""
        part = self.session.part
        try:
            importlib.import_module(f"{part}.harness")
            sim = Simulation(self.session.seed, pacer=self.pace)
            self.sim = sim
            modules = [*install.stage_modules(part), threadcheck]
            with (
                without(STAGE_VARIABLES),
                install.installed(sim, modules),
                self.recorder.attached(part, sim),
                sim,
            ):
                self.drive(sim)
        except Exception as error:
            traceback.print_exc()
            with self.board.cv:
                self.failure = f"the run stopped: {type(error).__name__}: {error}"
                self.notice(self.failure)
        finally:
            with self.board.cv:
                self.finished = True
                if self.doing is not None and self.doing.outcome is None:
                    self.doing.outcome = "the run ended first"
                self.board.bump()

    def drive(self, sim: Simulation) -> None:
        """The simulated main thread: build the cluster, then do each action
        the pacer hands over, until it hands over QUIT."""
        cluster = Cluster(self.session.stage, self.session.servers)
        with self.board.cv:
            self.cluster = cluster
        while True:
            sim.wait_for_pacer()
            with self.board.cv:
                action, self.due = self.due, None
            if action is None or action is QUIT:
                break
            outcome = cluster.apply(action)
            with self.board.cv:
                self.outcomes.append((action, outcome))
                if self.doing is not None:
                    self.doing.done = action
                    self.doing.outcome = outcome
                    self.doing = None
                self.board.bump()
        cluster.shutdown()
        # As after a test: every thread the servers started ends (in virtual
        # time, on the simulated threading of tools.threadcheck).
        leaked = threadcheck.leaked_threads({sim.threading.current_thread()})
        if leaked:
            names = ", ".join(sorted(thread.name for thread in leaked))
            raise RuntimeError(f"threads still alive after the shutdown: {names}")

    # --- The pacer ----------------------------------------------------------

    def pace(self, now: float, deadline: float | None) -> float | None:
        """Asked by the simulation before its clock moves from ``now`` to
        ``deadline``: wait until the shown time reaches it, or stop the
        clock earlier for an action (see the module's docstring)."""
        with self.board.cv:
            if now != self.clock:
                self.clock = now
                self.board.bump()
            try:
                return self.pace_locked(now, deadline)
            finally:
                self.held = False

    def pace_locked(self, now: float, deadline: float | None) -> float | None:
        """``pace``, with the lock held."""
        while True:
            if self.quitting:
                return self.stop(QUIT, now) if self.driver_waits() else None
            stop = self.next_stop(now, deadline)
            if stop is not None:
                return stop
            # After next_stop: a pause or the session's end may have
            # stopped the shown time there.
            shown = self.shown(now)
            if self.want_view:
                self.look(shown, self.next_event(deadline))
            if deadline is None:
                if not self.paced:
                    return None  # nothing can happen: the run deadlocked
                if self.mode is Mode.STEPPING:
                    self.pause_at(now)
                    self.notice("nothing is left to happen")
            elif self.mode is Mode.STEPPING or deadline <= shown:
                if self.mode is Mode.RUNNING and shown - deadline > BEHIND:
                    self.anchor = (deadline, time.monotonic())
                return None
            target = self.next_event(deadline)
            if self.mode is Mode.RUNNING and target is not None:
                self.board.cv.wait((target - shown) / self.speed)
            else:
                self.hold(self.mode is Mode.PAUSED)
                self.board.cv.wait()

    def shown(self, now: float) -> float:
        """The virtual time the person watching sees (never before the
        clock). Expects the lock held."""
        if not self.paced:
            return math.inf
        if self.mode is Mode.RUNNING:
            at, wall = self.anchor
            shown = at + (time.monotonic() - wall) * self.speed
        elif self.mode is Mode.STEPPING:
            shown = now
        else:
            shown = self.frozen
        return max(shown, now)

    def next_event(self, deadline: float | None) -> float | None:
        """The next moment something happens unless the user acts: the
        deadline, a scripted action, the session's end."""
        moments = [deadline] if deadline is not None else []
        if self.script and self.driver_waits():
            moments.append(self.script[0].at)
        if self.end is not None:
            moments.append(self.end)
        return min(moments, default=None)

    def next_stop(self, now: float, deadline: float | None) -> float | None:
        """Where to stop the clock now, if an action is due (doing the page
        actions and the session's end on the way). Expects the lock held."""
        limit = math.inf if deadline is None else deadline
        cluster = self.cluster
        while self.script and self.script[0].at < limit:
            action = self.script[0]
            if not self.reached(action.at, now):
                break
            if action.do in PAGE_ACTIONS:
                self.script.popleft()
                self.page_action(action, now)
                continue
            if cluster is None or not self.driver_waits():
                break
            self.script.popleft()
            problem = cluster.problem(action)
            if problem is not None:
                self.notice(f"{action.describe()} at {action.at} s: refused: {problem}")
                continue
            return self.stop(action, max(action.at, now))
        if (
            self.end is not None
            and self.end < limit
            and self.reached(self.end, now)
            and not (self.script and self.script[0].at <= self.end)
        ):
            self.reach_end(now)
        if cluster is None or not (self.requests or self.saves):
            return None
        at = self.stamp(now, limit, self.shown(now))
        if at is None:
            return None
        while self.saves:
            self.save_at(self.saves.popleft(), at)
        while self.requests and self.driver_waits():
            request = self.requests.popleft()
            problem = cluster.problem(request.action)
            if problem is not None:
                request.outcome = f"refused: {problem}"
                self.board.bump()
                continue
            self.doing = request
            return self.stop(replace(request.action, at=at), at)
        return None

    def reached(self, moment: float, now: float) -> bool:
        """Whether the shown time has reached ``moment`` (a step reaches
        every moment before the next deadline)."""
        return self.mode is Mode.STEPPING or self.shown(now) >= moment

    def stamp(self, now: float, limit: float, shown: float) -> float | None:
        """The moment for an action of the page asked now: the shown time,
        to the microsecond if it can, but not before the clock and before
        the next deadline (None: the clock must move first)."""
        moment = now if math.isinf(shown) else max(shown, now)
        if not moment < limit:
            return None
        rounded = round(moment, 6)
        return rounded if now <= rounded < limit else moment

    def stop(self, action: Action, at: float) -> float:
        """Hand ``action`` to the driver at ``at``; record it."""
        self.due = action
        if action is not QUIT:
            self.played.actions.append(replace(action, at=at))
            if action.note:
                self.caption = action.note
        self.board.bump()
        return at

    def page_action(self, action: Action, now: float) -> None:
        """A ``pause`` or a ``note`` of the session: show its note; a pause
        stops the shown time there."""
        self.played.actions.append(action)
        if action.note:
            self.caption = action.note
        if action.do == "pause" and self.paced:
            self.pause_at(max(action.at, now))
        self.board.bump()

    def reach_end(self, now: float) -> None:
        """The session's end: keep the log, then pause there (or, unpaced,
        quit)."""
        assert self.end is not None
        at = max(self.end, now)
        self.end = None
        self.end_lines = list(self.recorder.lines)
        self.look(at, at)
        if self.paced:
            self.pause_at(at)
            self.notice(f"the session's end, at {at:.6f} s: resume to go on")
        else:
            self.quitting = True

    def pause_at(self, at: float) -> None:
        """Pause the shown time at ``at``."""
        self.mode = Mode.PAUSED
        self.frozen = at
        self.board.bump()

    def save_at(self, save: SaveRequest, at: float) -> None:
        """Take what a save writes: the session up to ``at``, and the log."""
        save.session = replace(self.played, actions=list(self.played.actions), end=at)
        save.lines = list(self.recorder.lines)
        self.board.bump()

    def driver_waits(self) -> bool:
        """Whether the driver waits for the pacer, to be handed an action."""
        return self.sim is not None and self.sim.pacer_waiter is not None

    def look(self, clock: float, until: float | None) -> None:
        """Read the cluster for the page, at a moment when no simulated
        thread runs. Expects the lock held."""
        if self.cluster is None:
            return
        self.recorder.look_at_messages()
        self.view = self.cluster.view(self.recorder.timeouts)
        self.view_version = self.board.version
        self.view_clock = clock
        self.view_until = until
        self.want_view = False
        self.board.cv.notify_all()

    def hold(self, held: bool) -> None:
        """Note whether the run stands still, paused: every simulated thread
        waits, and nothing happens until the user acts."""
        if held != self.held:
            self.held = held
            if held:
                self.board.bump()

    def notice(self, text: str) -> None:
        """Tell the page something (a refusal, the end of a session)."""
        self.notices.append((self.board.bump(), text))

    # --- Stepping: a pause in the middle of an instant ----------------------

    def after_line(self) -> None:
        """Called by the recorder after each line: while stepping, pause
        here until the user does something."""
        if self.mode is not Mode.STEPPING:
            return
        sim = self.sim
        assert sim is not None
        with self.board.cv:
            if self.mode is not Mode.STEPPING or self.quitting:
                return
            self.clock = sim.now
            self.pause_at(sim.now)
            self.at_line = True
            try:
                while self.held_at_line():
                    if self.want_view:
                        self.look(sim.now, sim.now)
                    self.hold(True)
                    self.board.cv.wait()
            finally:
                self.at_line = False
                self.held = False

    def held_at_line(self) -> bool:
        """Whether a pause at a line lasts: until the user resumes, steps,
        acts or saves (an action or a save waits for the servers to be done
        with the instant), or the run ends."""
        return (
            self.mode is Mode.PAUSED
            and not self.quitting
            and not self.requests
            and not self.saves
        )

    # --- What the page asks (on the web server's threads) -------------------

    def control(self, do: str, speed: float | None = None) -> None:
        """``pause``, ``resume``, ``step`` or ``speed`` (to ``speed``)."""
        with self.board.cv:
            shown = self.shown(self.clock)
            if do == "pause" and self.mode is not Mode.PAUSED:
                self.pause_at(shown)
            elif do == "resume" and self.mode is not Mode.RUNNING:
                self.mode = Mode.RUNNING
                self.anchor = (shown, time.monotonic())
            elif do == "step":
                self.mode = Mode.STEPPING
            elif do == "speed" and speed is not None:
                if self.mode is Mode.RUNNING:
                    self.anchor = (shown, time.monotonic())
                self.speed = speed
            self.board.bump()

    def act(self, action: Action, timeout: float) -> Request:
        """Have the run do ``action`` at its next moment; wait at most
        ``timeout`` seconds for it to be done or refused."""
        request = Request(action)
        with self.board.cv:
            if self.finished or self.quitting:
                request.outcome = "refused: the run is over"
                return request
            self.requests.append(request)
            self.board.bump()
            self.board.cv.wait_for(
                lambda: request.outcome is not None or self.finished, timeout
            )
            if request.outcome is None and self.finished:
                request.outcome = "refused: the run is over"
        return request

    def save(self, timeout: float) -> SaveRequest | None:
        """The session played so far and its log, at the run's next moment
        between two events; None if the run is over or took too long."""
        save = SaveRequest()
        with self.board.cv:
            if self.finished or self.quitting:
                return None
            self.saves.append(save)
            self.board.bump()
            self.board.cv.wait_for(
                lambda: save.session is not None or self.finished, timeout
            )
            if save.session is None and save in self.saves:
                self.saves.remove(save)
        return save if save.session is not None else None

    def log_lines(self) -> list[str]:
        """The run's log so far."""
        with self.board.cv:
            return list(self.recorder.lines)

    def state(self, since: int, timeout: float) -> dict[str, Any]:
        """What the page shows, once there is a view of the cluster newer
        than its version ``since`` and than every change before the call
        (or after ``timeout`` seconds): the view, and the lines, messages
        and notices since. A page that fell further behind than the
        recorder keeps is sent the latest lines (``firstLine``: the
        number of the first, in the whole log, so that it sees how many
        it missed) and every message the recorder follows
        (``allMessages``: it drops the others)."""
        with self.board.cv:
            deadline = time.monotonic() + timeout
            now = self.board.version
            while not (
                (self.view_version >= now and self.view_version > since)
                or self.finished
                or self.quitting
            ):
                if self.board.version > max(since, self.view_version):
                    self.want_view = True
                    self.board.cv.notify_all()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.board.cv.wait(remaining)
            version = self.view_version
            lines = [
                line
                for line in self.recorder.lines_since(since)
                if line.version <= version
            ]
            messages = [
                m.to_json()
                for m in self.recorder.messages_since(since)
                if m.version <= version
            ]
            return {
                "version": version,
                "mode": self.mode.value,
                "atLine": self.at_line,
                "held": self.held,
                "speed": self.speed,
                "clock": self.view_clock,
                "until": self.view_until,
                "view": self.view,
                "lines": [line.to_json() for line in lines],
                "firstLine": lines[0].number if lines else None,
                "messages": messages,
                "allMessages": since < self.recorder.forgotten,
                "caption": self.caption,
                "notices": [text for v, text in self.notices if since < v <= version],
                "actions": len(self.played.actions),
                "finished": self.finished,
                "failure": self.failure,
            }

    def quit(self) -> None:
        """End the run: the servers shut down, the simulation ends, and the
        run's thread with it."""
        with self.board.cv:
            self.quitting = True
            self.board.bump()
        if self.thread.is_alive():
            self.thread.join()


@contextlib.contextmanager
def without(names: tuple[str, ...]) -> Iterator[None]:
    """Run the block with the environment variables ``names`` unset, and
    give them back after."""
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def play(session: Session) -> Played:
    """Play ``session`` to its ``end`` without a page, as fast as it goes."""
    if session.end is None:
        raise ValueError("play() needs a session with an end")
    run = LiveRun(session, paced=False)
    run.start()
    run.thread.join()
    if run.failure:
        raise RuntimeError(run.failure)
    assert run.end_lines is not None
    assert run.view is not None
    return Played(
        run.end_lines, run.view, run.outcomes, [text for _, text in run.notices]
    )
