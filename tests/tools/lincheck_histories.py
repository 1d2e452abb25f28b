"""Small histories for the checker's tests, written the way a reader would
draw them: who did what, between which instants, and what it answered."""

from __future__ import annotations

from typing import Any

from tools.lincheck.generate import generate

Record = dict[str, Any]


def op(
    client: int,
    kind: str,
    call: float,
    ret: float | None,
    answer: str | None = None,
    found: bool = True,
    *,
    key: str = "x",
    value: str = "",
    compare: str = "",
) -> Record:
    """One operation as the history JSON has it; ``ret`` None is an unknown
    outcome. ``answer`` is the value read, or the value before a write; an
    answer of None with a return time means "absent" (``("", False)``)."""
    output = None
    if ret is not None:
        output = (
            {"found": False, "value": ""}
            if answer is None
            else {"found": found, "value": answer}
        )
    return {
        "client": client,
        "op": kind,
        "key": key,
        "value": value,
        "compare_value": compare,
        "call": call,
        "return": ret,
        "output": output,
    }


def stale_read_history() -> list[Record]:
    """A read that misses a write that returned before it was called."""
    return [
        op(0, "put", 0, 1, None, value="1"),
        op(1, "put", 2, 3, "1", value="2"),
        op(2, "get", 4, 5, "1"),
    ]


def failing_generated_history() -> list[Record]:
    """A made-up history of four clients on two keys, one answer lost, with
    a planted stale read: small enough to read in its HTML view."""
    return generate(4, 40, 2, unknown=0.1, stale_read=True, seed=7)
