"""Histories: what concurrent clients saw, read from JSON and checked for sense.

A history is a JSON list with one object per operation a client made::

    {"client": 0, "op": "put", "key": "x", "value": "1", "compare_value": "",
     "call": 0.10, "return": 0.25, "output": {"found": false, "value": ""}}

``call`` and ``return`` are seconds on one clock shared by every client
(within ``MAX_TIME`` of 0). ``output`` is what the operation answered:
``value`` is the value read (get) or the value the key held just before the
operation (put, cas, append), and ``found`` says whether the key existed.
``value`` and ``compare_value`` may be left out where the operation does
not use them (they are ``""`` then).

An operation whose answer never came has ``"output": null``: its outcome is
unknown, it may have taken effect at any time after its call, or never.
Its ``return`` is normally ``null`` too; a time there (when the client gave
up) is kept for the picture but bounds nothing, since a request already sent
can still be applied later.

A file may also hold an object with the list under ``"history"``, so that a
recorder can add facts of its own beside it. Other fields of an operation
are ignored.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_TIME = 1e12
"""The largest ``call`` or ``return`` a history may hold, either side of 0.
Beyond it a time is surely not seconds (nanoseconds, perhaps), and the
distance between two times could overflow a float."""

Output = tuple[str, bool]
"""What an operation answered: ``(value, found)``, as the data store returns."""


class HistoryError(ValueError):
    """A history that cannot be checked: it says what is wrong, and with
    which operation (by its index in the list, from 0)."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a history, checked and typed.

    ``index`` is its position in the history's list (from 0), the name the
    checker's messages use for it. ``output`` is None when the outcome is
    unknown; then the operation may take effect at any time after ``call``,
    or never, and ``ret`` (if not None) is only when the client gave up.
    """

    index: int
    client: int
    op: str
    key: str
    value: str
    compare_value: str
    call: float
    ret: float | None
    output: Output | None

    @property
    def unknown(self) -> bool:
        """True when no answer came: the outcome is unknown."""
        return self.output is None

    def describe(self) -> str:
        """The operation and its arguments, e.g. ``cas('x', '1' -> '2')``."""
        if self.op == "get":
            return f"get({self.key!r})"
        if self.op == "cas":
            return f"cas({self.key!r}, {self.compare_value!r} -> {self.value!r})"
        return f"{self.op}({self.key!r}, {self.value!r})"

    def describe_output(self) -> str:
        """What the operation answered, e.g. ``'1' (found)``, or ``unknown``."""
        if self.output is None:
            return "unknown (no answer)"
        return describe_output(self.output)

    def __str__(self) -> str:
        return (
            f"#{self.index} client {self.client} {self.describe()} "
            f"-> {self.describe_output()}"
        )


def counted(n: int, noun: str) -> str:
    """``n`` and the noun, singular for one: ``1 operation``, ``2 operations``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def describe_output(output: Output) -> str:
    """An answer as the messages show it: ``'v' (found)`` or ``'' (not found)``."""
    value, found = output
    return f"{value!r} ({'found' if found else 'not found'})"


_REQUIRED = ("client", "op", "key", "call", "return", "output")


def parse_history(data: Any, ops: Collection[str]) -> list[Operation]:
    """Check a history as JSON gives it (a list of objects, or an object with
    that list under ``"history"``) and turn it into operations.

    ``ops`` are the operation names the model knows. Raises HistoryError,
    naming the operation at fault, on anything that is not a history.
    """
    if isinstance(data, Mapping) and "history" in data:
        data = data["history"]
    if not isinstance(data, list):
        raise HistoryError(
            "a history is a JSON list of operations (or an object with that "
            f"list under 'history'), not {_json_type(data)}"
        )
    return [_parse_operation(i, record, ops) for i, record in enumerate(data)]


def load_history(path: Path, ops: Collection[str]) -> list[Operation]:
    """Read and check the history in a JSON file (see ``parse_history``).

    Raises HistoryError if the file cannot be read or is not JSON, too.
    """
    return parse_history(read_json(path), ops)


def read_json(path: Path) -> Any:
    """The JSON in a file; HistoryError if it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise HistoryError(f"cannot read {path}: {error}") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise HistoryError(f"{path} is not valid JSON: {error}") from error
    except RecursionError:
        raise HistoryError(
            f"{path} is not a history: its JSON is nested too deeply"
        ) from None
    except ValueError:
        # Python refuses to read integers of more digits than this.
        raise HistoryError(
            f"{path} is not a history: it holds a number with more than "
            f"{sys.get_int_max_str_digits()} digits"
        ) from None


class _OperationError(Exception):
    """What is wrong with one operation (its name is added by the caller)."""


def _parse_operation(i: int, record: Any, ops: Collection[str]) -> Operation:
    if not isinstance(record, Mapping):
        raise HistoryError(f"operation #{i} is {_json_type(record)}, not an object")
    try:
        return _operation(i, record, ops)
    except _OperationError as fault:
        raise HistoryError(f"{_where(i, record)}: {fault}") from None


def _operation(i: int, record: Mapping[str, Any], ops: Collection[str]) -> Operation:
    for name in _REQUIRED:
        if name not in record:
            raise _OperationError(f"missing field {name!r}")
    client = record["client"]
    if not _is_int(client):
        raise _OperationError("'client' must be an integer")
    op = _string(record, "op")
    if op not in ops:
        raise _OperationError(
            f"unknown op {op!r} (the model knows {', '.join(sorted(ops))})"
        )
    key = _string(record, "key")
    value = _string(record, "value")
    compare_value = _string(record, "compare_value")
    call = _time(record, "call")
    ret = None if record["return"] is None else _time(record, "return")
    if ret is not None and ret < call:
        raise _OperationError(
            f"return {record['return']!r} is before its call {record['call']!r}"
        )
    output = _output(record["output"])
    if output is not None and ret is None:
        raise _OperationError("an output but no return time")
    return Operation(i, client, op, key, value, compare_value, call, ret, output)


def _where(i: int, record: Mapping[str, Any]) -> str:
    # Name the operation as well as the record allows, to find it in the file.
    name = f"operation #{i}"
    if not _is_int(record.get("client")):
        return name
    detail = f"client {record['client']}"
    if isinstance(record.get("op"), str):
        detail += f", {record['op']}"
    if isinstance(record.get("key"), str):
        detail += f" {record['key']!r}"
    return f"{name} ({detail})"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name, "")
    if not isinstance(value, str):
        raise _OperationError(f"{name!r} must be a string, not {_json_type(value)}")
    return value


def _time(record: Mapping[str, Any], name: str) -> float:
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _OperationError(f"{name!r} must be a number of seconds")
    if isinstance(value, float) and not math.isfinite(value):
        raise _OperationError(f"{name!r} must be a finite number")
    if abs(value) > MAX_TIME:  # exact for an integer of any size
        raise _OperationError(
            f"{name!r} is out of range: times are seconds on a monotonic "
            f"clock, from -{MAX_TIME:g} to {MAX_TIME:g} (about 31,700 years)"
        )
    return float(value)


def _output(value: Any) -> Output | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _OperationError(
            f"'output' must be an object or null, not {_json_type(value)}"
        )
    for name in ("found", "value"):
        if name not in value:
            raise _OperationError(f"'output' has no {name!r}")
    if not isinstance(value["found"], bool):
        raise _OperationError("'output.found' must be true or false")
    if not isinstance(value["value"], str):
        raise _OperationError("'output.value' must be a string")
    return value["value"], value["found"]


def _json_type(value: Any) -> str:
    # The JSON name of a parsed value's type, for messages.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def to_record(op: Operation) -> dict[str, Any]:
    """An operation as the history JSON has it (the inverse of parsing)."""
    output = (
        None if op.output is None else {"found": op.output[1], "value": op.output[0]}
    )
    return {
        "client": op.client,
        "op": op.op,
        "key": op.key,
        "value": op.value,
        "compare_value": op.compare_value,
        "call": op.call,
        "return": op.ret,
        "output": output,
    }
