"""The search for a linearization of one part of a history.

What is searched
----------------
A history is linearizable if its operations can be put in one sequence
that (1) the model accepts, every operation answering what the client saw,
and (2) keeps real-time order: when an operation returned before another
was called, it comes first. Operations that overlap in time may come in
either order; each takes effect at one instant between its call and its
return, its *linearization point*.

Wing & Gong's search builds that sequence from the front. At each step the
*candidates* are the operations that may come next: those not yet placed
whose call comes before the earliest return among the operations not yet
placed (an operation that returned before another's call must precede it).
It tries a candidate: if the model, in the current state, gives the answer
the client saw, the operation is placed, the state moves on, and the search
goes on from there; if not, it tries the next candidate. When no candidate
is left, the last placed operation is taken back (backtracking) and the
next candidate after it is tried. The search ends when every operation is
placed (linearizable), or when there is nothing left to take back (not).

The history as a linked list (Lowe)
------------------------------------
Lowe's formulation keeps the history as a doubly linked list of *call* and
*return* entries, in time order. The candidates are then exactly the calls
met walking the list from its head before the first return entry. Placing
an operation *lifts* its call and return entries out of the list; taking
it back *unlifts* them. Since lifts are undone in the reverse order, each
entry still knows its old neighbours and slips back in (as in Knuth's
dancing links), so both are constant time.

Memoization: why the search is practical
----------------------------------------
Without more, the search is exponential: with ten clients it can reach the
same situation through many different orders of the same concurrent
operations, and explore what follows again each time. Lowe's observation
is that what follows depends only on the *configuration*: the set of
operations placed so far and the model's state after them (the order in
which they were placed no longer matters). So the search remembers every
configuration it has entered and never enters one twice: if it was a dead
end then, it is one now. A configuration is a set of operations (a bitset,
a Python int) and a state, so the memo is a set of pairs (below, a dict
from the answered part of the pair to the unknown-outcome part, for the
refinement at the end of this docstring). On the histories
of a working system almost every step then moves forward, and the cost is
close to linear. (Deciding linearizability is NP-complete in general:
hard histories remain hard, hence the timeout.)

The bitset of placed operations is kept short: every operation returning
before the *frontier* (the earliest-returning operation not yet placed) is
placed, so the set is stored as the frontier's rank plus a small bitset of
the operations placed beyond it (``low`` and ``window`` below).

Reads go first
--------------
An operation that answers right in the current state and leaves the state
as it is (a read, a failed CAS) can always be placed now rather than later:
moving it to the front of any way on from here changes nothing anybody
sees, and nothing has to come before it (nothing unplaced returned before
its call, or it would not be a candidate). So when one is among the
candidates, the search places it and tries nothing else: if that leads to a
dead end, so does the configuration. This spares the search from trying
every order of the concurrent reads, and from exploring everything after a
write placed too early, before the read that should have come between.

Operations of unknown outcome
-----------------------------
An operation whose answer never came may take effect at any time after its
call, or never. It has no return entry (nothing forces it to come before
anything), it is never required for success (a linearization must place
every operation that answered, and may leave out unanswered ones, which
amounts to placing them last), and since its answer is unknown the model
accepts it in any state. Such operations sit in a second list, and are
tried after the answered candidates, as most of them change nothing
anybody saw.

Two configurations with the same answered operations placed and the same
state differ then only in which unknown-outcome operations they used up:
the one that used a subset of the other's can do everything the other can
(it may still use, or skip, the rest). So a configuration is not entered
when one using a subset of its unknown-outcome operations was; and an
unknown-outcome operation that would not change the state is not tried at
all. Without this, a history with a hundred unanswered writes on one key
makes the search go through their subsets.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Literal

from .history import Operation
from .model import Model, State

Verdict = Literal["ok", "not linearizable", "unknown"]
"""The answer of a check: ``unknown`` when the timeout ran out first."""

CLOCK_EVERY = 1024
"""Steps between two looks at the clock: often enough to stop soon after
the deadline, rarely enough to cost nothing."""

SHORTEN_STEPS = 10
"""The replays of ``without_needless`` make at most this many steps (of two
model steps each) per operation of the order they shorten."""


@dataclass(frozen=True)
class Outcome(Generic[State]):
    """What the search found in one part of a history.

    ``order`` is the linearization found (``ok``), or the longest
    linearizable prefix the search reached (``not linearizable``,
    ``unknown``); ``state`` is the model's state after it. ``steps`` counts
    the operations the search tried, a measure of its effort.
    """

    verdict: Verdict
    order: tuple[Operation, ...]
    state: State
    steps: int


def search(
    ops: Sequence[Operation], model: Model[State], deadline: float | None = None
) -> Outcome[State]:
    """Look for a linearization of ``ops`` (one part of a history) under
    ``model``; give up with ``unknown`` once ``time.monotonic()`` passes
    ``deadline``."""
    n = len(ops)
    # Entries of the two lists: operation i's call is 2i, its return 2i + 1
    # (odd entries are returns). The ends of the lists are odd too.
    head, end, unknown_head, unknown_end = 2 * n, 2 * n + 1, 2 * n + 2, 2 * n + 3
    nxt = [0] * (2 * n + 4)
    prv = [0] * (2 * n + 4)
    at = [float("inf")] * (2 * n + 4)  # the time of each entry

    # Calls sort before returns at the same instant: operations that touch
    # in time count as concurrent, so that no verdict rests on a tie.
    answered = [op for op in ops if op.output is not None]
    events = sorted(
        [(op.call, 0, i) for i, op in enumerate(ops) if op.output is not None]
        + [(returned(op), 1, i) for i, op in enumerate(ops) if op.output is not None]
    )
    rank = [0] * n  # answered operations, numbered by return order
    for position, (_, _, i) in enumerate(e for e in events if e[1]):
        rank[i] = position
    entries = [2 * i + kind for _, kind, i in events]
    unknown = sorted((op.call, i) for i, op in enumerate(ops) if op.output is None)
    bit = [0] * n  # the bit of each unknown-outcome operation
    for ordinal, (_, i) in enumerate(unknown):
        bit[i] = 1 << ordinal
    _link(nxt, prv, [head, *entries, end])
    _link(nxt, prv, [unknown_head, *(2 * i for _, i in unknown), unknown_end])
    for time_, kind, i in events:
        at[2 * i + kind] = time_
    for call_time, i in unknown:
        at[2 * i] = call_time

    apply = model.apply
    outputs = [op.output for op in ops]
    total = len(answered)
    left = total  # answered operations not yet placed
    state = model.init
    low = 0  # rank of the frontier: every answered op ranked below is placed
    window = 0  # placed answered ops ranked above low: bit j is rank low + j
    used = 0  # placed unknown-outcome ops, by their bits
    # Configurations entered: for each (frontier, window, state), the sets of
    # unknown-outcome ops used up (tuples, not lists: the garbage collector
    # forgets about tuples of ints, and would otherwise scan millions).
    seen: dict[tuple[int, int, State], tuple[int, ...]] = {}
    # One entry per placed operation: it, the configuration before it, and
    # whether it was a read placed without trying anything else.
    stack: list[tuple[int, State, int, int, int, float, bool]] = []
    # The longest prefix met at a dead end, to explain a failure: the
    # operations and the state after them. The first ``kept`` of them are
    # still the bottom of the stack, so a longer prefix copies only the rest.
    best: list[int] = []
    best_state = state
    best_placed = -1
    kept = 0
    limit = 0.0  # candidates of unknown outcome are called no later than this
    in_answered = True  # walking the answered list (else the unknown one)
    entering = True  # a configuration just entered: look for a read first
    node = nxt[head]
    steps = 0
    while left:
        if entering:
            # An answered candidate that leaves the state as it is (a read)
            # and answers right here can go first: see the module docstring.
            entering = False
            scan = nxt[head]
            while not scan & 1:
                read = ops[scan >> 1]
                after, output = apply(state, read)
                if output == read.output and after == state:
                    node = scan
                    break
                scan = nxt[scan]
        if in_answered:
            if node & 1:
                # The first return: every call before it has been tried.
                # Now the unknown-outcome operations called before it.
                limit = at[node]
                in_answered = False
                node = nxt[unknown_head]
                continue
        elif at[node] > limit:
            # No candidate left in this configuration: a dead end.
            if total - left > best_placed:
                best_placed = total - left
                del best[kept:]
                best.extend(entry[0] for entry in stack[kept:])
                best_state = state
                kept = len(stack)
            if not stack:
                return _outcome("not linearizable", ops, best, best_state, steps)
            i, state, low, window, used, limit, forced = stack.pop()
            kept = min(kept, len(stack))
            call = 2 * i
            if outputs[i] is None:
                in_answered = False
            else:
                nxt[prv[call + 1]] = prv[nxt[call + 1]] = call + 1
                left += 1
                in_answered = True
            nxt[prv[call]] = prv[nxt[call]] = call
            node = unknown_end if forced else nxt[call]
            in_answered = in_answered and not forced
            continue

        steps += 1
        if (
            steps % CLOCK_EVERY == 0
            and deadline is not None
            and time.monotonic() > deadline
        ):
            return _outcome("unknown", ops, best, best_state, steps)
        i = node >> 1
        new_state, output = apply(state, ops[i])
        seen_output = outputs[i]
        if seen_output is None:
            if new_state == state:
                node = nxt[node]  # no effect: never worth using up
                continue
            new_low, new_window, new_used = low, window, used | bit[i]
            forced = False
        elif seen_output == output:
            offset = rank[i] - low
            if offset:
                new_low, new_window = low, window | 1 << offset
            else:
                # The frontier itself is placed: move it past every placed
                # op that follows it (the trailing ones of the window).
                ones = window | 1
                shift = (~ones & (ones + 1)).bit_length() - 1
                new_low, new_window = low + shift, ones >> shift
            new_used = used
            forced = new_state == state
        else:
            node = nxt[node]  # the model disagrees with what the client saw
            continue

        key = (new_low, new_window, new_state)
        seen_used = seen.get(key)
        if seen_used is None:
            seen[key] = (new_used,)
        elif new_used in seen_used or any(u & new_used == u for u in seen_used):
            # Entered before, with no more ops used up: a dead end then, so
            # now. After a read, so is this configuration.
            node = unknown_end if forced else nxt[node]
            in_answered = in_answered and not forced
            continue
        else:
            seen[key] = (*seen_used, new_used)

        stack.append((i, state, low, window, used, limit, forced))
        state, low, window, used = new_state, new_low, new_window, new_used
        call = 2 * i
        nxt[prv[call]] = nxt[call]  # lift the call...
        prv[nxt[call]] = prv[call]
        if seen_output is not None:
            nxt[prv[call + 1]] = nxt[call + 1]  # ... and the return
            prv[nxt[call + 1]] = prv[call + 1]
            left -= 1
        node = nxt[head]
        in_answered = True
        entering = True
    return _outcome("ok", ops, [entry[0] for entry in stack], state, steps)


def returned(op: Operation) -> float:
    """The return time of an answered operation."""
    if op.ret is None:
        raise ValueError(f"operation #{op.index} has an output but no return")
    return op.ret


def _link(nxt: list[int], prv: list[int], chain: list[int]) -> None:
    for a, b in itertools.pairwise(chain):
        nxt[a] = b
        prv[b] = a


def _outcome(
    verdict: Verdict,
    ops: Sequence[Operation],
    order: list[int],
    state: State,
    steps: int,
) -> Outcome[State]:
    return Outcome(verdict, tuple(ops[i] for i in order), state, steps)


def without_needless(
    order: Sequence[Operation], model: Model[State]
) -> list[Operation]:
    """``order`` (a linearization, or a linearizable prefix) without the
    operations of unknown outcome it does not need: those whose effect is
    overwritten before anybody sees it. The search takes the first that
    help; the result says, for each, whether it took effect (or might as
    well not have). The state at the end stays the same.

    From the front, each unknown outcome is dropped if what follows, played
    without it, answers the same and ends in the same state. A replay stops
    where the states meet again, usually at the next write that sets the
    value, so the cost is about linear. Only a long run of unknown outcomes
    that nobody reads (appends, say) replays far, each to the end: the
    replays make at most SHORTEN_STEPS model steps per operation in all,
    and the operations not yet tried then are kept. So the shortening does
    a bounded amount of work after a timeout ran out.
    """
    kept: list[Operation] = []
    state = model.init  # the state after kept
    budget = SHORTEN_STEPS * len(order)
    for j, op in enumerate(order):
        after = model.apply(state, op)[0]
        if op.output is None and budget > 0:
            needless, steps = _needless(order, j + 1, state, after, model, budget)
            budget -= steps
            if needless:
                continue
        kept.append(op)
        state = after
    return kept


def _needless(
    order: Sequence[Operation],
    start: int,
    without: State,
    with_: State,
    model: Model[State],
    budget: int,
) -> tuple[bool, int]:
    # Play order[start:] from the states without and with the operation
    # before it, until the states meet: from there on nothing changes.
    # Every answer on the way must stay the same. Also returns the steps
    # made (two model steps each), at most ``budget``.
    steps = 0
    for k in range(start, len(order)):
        if without == with_:
            return True, steps
        if steps == budget:
            return False, steps
        steps += 1
        with_ = model.apply(with_, order[k])[0]
        without, output = model.apply(without, order[k])
        if order[k].output not in (None, output):
            return False, steps
    return without == with_, steps


def blocked(ops: Sequence[Operation], prefix: Sequence[Operation]) -> list[Operation]:
    """The answered operations that could come next after ``prefix``, in
    call order: when the search stopped at ``prefix``, none of them could be
    placed there, or each led to a dead end. (The first of them to return,
    the frontier, must be placed before anything called after its return.)"""
    placed = {op.index for op in prefix}
    waiting = [op for op in ops if op.index not in placed and op.output is not None]
    if not waiting:
        return []
    frontier = min(returned(op) for op in waiting)
    return sorted((op for op in waiting if op.call <= frontier), key=lambda o: o.call)
