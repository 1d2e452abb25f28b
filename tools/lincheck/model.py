"""Models: the sequential specification a history is checked against.

A model says how the object behaves when operations come one at a time: an
initial state, and a function ``apply(state, op) -> (new_state, output)``
that performs one operation on a state and says what it must answer. The
checker never needs more than that: it asks "if this operation took effect
now, in this state, would it have answered what the client saw?" and
compares the model's output with the recorded one.

States must be hashable (the search remembers the states it has been in)
and are never changed in place: ``apply`` returns a new one (strings,
tuples, frozensets and None are good states).

A model may also split the history into independent parts, such as the
keys of a key/value store: ``partition(op)`` names the part an operation
touches. That is sound only when an operation's result and effect depend
on its own part alone (see ``tools.lincheck.check``).

Adding a model: a register holding one string, read by ``get`` and written
by ``put`` (both answer the value before them), is::

    def register_apply(state: str, op: Operation) -> tuple[str, Output]:
        if op.op == "put":
            return op.value, (state, True)
        return state, (state, True)

    REGISTER = Model(
        name="register",
        ops=frozenset({"get", "put"}),
        init="",
        apply=register_apply,
    )

and ``check(history, model=REGISTER)`` checks a history against it. A FIFO
queue would have a tuple of values as state, ``enqueue`` returning
``(values + (op.value,), ("", True))`` and ``dequeue`` returning
``(values[1:], (values[0], True))``, or ``((), ("", False))`` when empty.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .history import Operation, Output

State = TypeVar("State", bound=Hashable)


def one_partition(op: Operation) -> str:
    """The partition function of a model whose operations all touch one
    object: the whole history is checked at once."""
    return ""


@dataclass(frozen=True)
class Model(Generic[State]):
    """A sequential specification: see the module's docstring.

    ``apply`` must be deterministic and must accept every operation in
    every state (an operation whose outcome is unknown is applied without
    comparing its output). ``describe_state`` shows a state to a reader.
    """

    name: str
    ops: frozenset[str]
    init: State
    apply: Callable[[State, Operation], tuple[State, Output]]
    partition: Callable[[Operation], str] = one_partition
    describe_state: Callable[[State], str] = repr


def kv_apply(state: str | None, op: Operation) -> tuple[str | None, Output]:
    """One operation of the key/value store on one key's value (None while
    the key is absent), with the data store's semantics:

    * ``get`` answers ``(value, found)``, ``("", False)`` if absent;
    * ``put`` always stores its value;
    * ``cas`` stores its value only if the key is present and holds
      ``compare_value``: it never creates a key;
    * ``append`` stores the old value (empty if absent) followed by its own.

    put, cas and append answer the value before them, and whether the key
    was present.
    """
    before: Output = ("", False) if state is None else (state, True)
    if op.op == "get":
        return state, before
    if op.op == "put":
        return op.value, before
    if op.op == "append":
        return before[0] + op.value, before
    if state is not None and state == op.compare_value:
        return op.value, before
    return state, before


def kv_partition(op: Operation) -> str:
    """Each key of the store is an object of its own."""
    return op.key


def describe_kv_state(state: str | None) -> str:
    """A key's value for a reader: ``'abc'``, or ``absent``."""
    return "absent" if state is None else repr(state)


KV_MODEL: Model[str | None] = Model(
    name="key/value store",
    ops=frozenset({"get", "put", "cas", "append"}),
    init=None,
    apply=kv_apply,
    partition=kv_partition,
    describe_state=describe_kv_state,
)
"""The key/value store of the kv stages, checked one key at a time."""
