"""``check``: a whole history, one key at a time.

Why checking one key at a time is sound (P-compositionality)
-------------------------------------------------------------
Herlihy and Wing's *locality* theorem says that a history of several
objects is linearizable if and only if, for each object, the operations on
that object alone form a linearizable history. One way is plain: a
linearization of the whole, restricted to one object, is one of that
object. The other way is the theorem's content: linearizations of each
object can always be merged into one of the whole, because each keeps the
real-time order of its own operations, and real-time order is a partial
order that the merge can respect (an interval order has no cycles).

Horn and Kroening's *P-compositionality* applies the same idea inside one
data type: the keys of a key/value store behave as separate registers,
since an operation on one key neither reads nor changes another. So the
history splits into one sub-history per key, each searched on its own.
That matters because the search's cost grows much faster than the number
of operations: ten keys of 1,000 operations cost far less than one history
of 10,000 in which every pair of concurrent operations could be reordered.
A model opts in with its ``partition`` function.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .history import Operation, Output, counted, describe_output, parse_history
from .model import KV_MODEL, Model, State
from .search import Verdict, blocked, search, without_needless

SHOWN_PREFIX = 5
"""How many of the prefix's last operations an explanation shows."""


@dataclass(frozen=True)
class PartResult:
    """The verdict on one part of the history (one key, for the store).

    ``order`` is the linearization found, or else the longest linearizable
    prefix found; ``state`` describes the model's state after it. On
    failure, ``blocked`` are the answered operations that could come next
    and none of which can follow the prefix, with ``expected``, what the
    model says each would have answered there.
    """

    key: str
    verdict: Verdict
    ops: tuple[Operation, ...]
    order: tuple[Operation, ...]
    state: str
    blocked: tuple[Operation, ...]
    expected: tuple[Output, ...]
    steps: int

    @property
    def ok(self) -> bool:
        """True when this part is linearizable."""
        return self.verdict == "ok"

    def explain(self) -> str:
        """Why this part failed (or ran out of time), for a reader."""
        ops = counted(len(self.ops), "operation")
        lines = [f"key {self.key!r} ({ops}): {self.verdict}"]
        prefix = counted(len(self.order), "operation")
        if self.verdict == "unknown":
            lines.append(
                f"  the timeout ran out after {counted(self.steps, 'search step')}; "
                f"the longest linearizable prefix found has {prefix}"
            )
            return "\n".join(lines)
        lines.append(
            f"  the longest linearizable prefix found has {prefix}; after it "
            f"the key holds {self.state}"
        )
        if self.order:
            shown = self.order[-SHOWN_PREFIX:]
            lines.append(f"  it ends with ({len(shown)} of {len(self.order)}):")
            lines.extend(f"    {op}" for op in shown)
        lines.append("  none of these can come next:")
        for op, output in zip(self.blocked, self.expected, strict=True):
            if output == op.output:
                why = "possible, but every way on from it is a dead end"
            else:
                why = f"there it would answer {describe_output(output)}"
            lines.append(f"    {op}: {why}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Result:
    """The verdict on a whole history, and one per part of it."""

    verdict: Verdict
    history: tuple[Operation, ...]
    parts: tuple[PartResult, ...]
    model: str

    @property
    def ok(self) -> bool:
        """True when the history is linearizable."""
        return self.verdict == "ok"

    @property
    def failures(self) -> tuple[PartResult, ...]:
        """The parts that are not linearizable, or not decided in time."""
        return tuple(part for part in self.parts if not part.ok)

    @property
    def steps(self) -> int:
        """The search steps of every part, summed."""
        return sum(part.steps for part in self.parts)

    def explain(self) -> str:
        """The verdict, and for each failed part why, for a reader."""
        head = (
            f"{self.verdict}: {counted(len(self.history), 'operation')} on "
            f"{counted(len(self.parts), 'key')} ({self.model})"
        )
        bad = [p for p in self.failures if p.verdict == "not linearizable"]
        undecided = [p for p in self.failures if p.verdict == "unknown"]
        return "\n".join([head, *(part.explain() for part in bad + undecided)])


def check(
    history: Any,
    model: Model[Any] = KV_MODEL,
    timeout: float | None = None,
) -> Result:
    """Check that a history is linearizable with respect to ``model``.

    ``history`` is a list of operations as JSON gives them (dicts: see
    ``tools.lincheck.history``). Each part of it (each key) is searched on
    its own. ``timeout`` (seconds) bounds the whole check: once it runs out
    the parts not decided get the verdict ``unknown``. The result is
    ``not linearizable`` if any part is, else ``unknown`` if any part is
    undecided, else ``ok``. Raises HistoryError on a malformed history.
    """
    ops = parse_history(history, model.ops)
    return check_operations(ops, model, timeout)


def check_operations(
    ops: Sequence[Operation],
    model: Model[Any] = KV_MODEL,
    timeout: float | None = None,
) -> Result:
    """``check`` for operations already parsed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    by_key: dict[str, list[Operation]] = {}
    for op in ops:
        by_key.setdefault(model.partition(op), []).append(op)
    parts = []
    for key in sorted(by_key):
        part = tuple(by_key[key])
        if deadline is not None and time.monotonic() > deadline:
            parts.append(PartResult(key, "unknown", part, (), "", (), (), 0))
        else:
            parts.append(_check_part(key, part, model, deadline))
    verdicts = {part.verdict for part in parts}
    verdict: Verdict = "ok"
    for worse in ("unknown", "not linearizable"):
        if worse in verdicts:
            verdict = worse
    return Result(verdict, tuple(ops), tuple(parts), model.name)


def _check_part(
    key: str, ops: tuple[Operation, ...], model: Model[State], deadline: float | None
) -> PartResult:
    outcome = search(ops, model, deadline)
    stuck: tuple[Operation, ...] = ()
    expected: tuple[Output, ...] = ()
    if outcome.verdict == "not linearizable":
        stuck = tuple(blocked(ops, outcome.order))
        expected = tuple(model.apply(outcome.state, op)[1] for op in stuck)
    return PartResult(
        key,
        outcome.verdict,
        ops,
        tuple(without_needless(outcome.order, model)),
        model.describe_state(outcome.state),
        stuck,
        expected,
        outcome.steps,
    )
