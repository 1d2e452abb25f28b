"""Histories made up for testing the checker: linearizable by construction,
unless a stale read is planted on purpose.

Clients run against an in-memory store that is linearizable by design:
each operation takes effect atomically at one random instant strictly
between its call and its return, its linearization point. Ordering the
operations by those instants is a linearization, so the checker must find
one. Each client makes one call at a time, pausing a little between calls.

With ``unknown`` > 0, that fraction of the answers is lost on the way
back: the client records no answer, waits ``timeout`` and goes on. Such an
operation takes effect, or not (even odds), at a random instant after its
call, possibly after the client gave up on it: the server may still have
had the request.

Every value written is unique (``v3-7`` is the value of client 3's 8th
operation, a put; cas writes ``s3-7``; append adds ``+3-7``), so a read
names the write it saw. That is what makes a planted stale read a certain
violation: a get that returns what put P wrote, although put W replaced it
before the get was called (P returned before W's call, W returned before
the get's), cannot be explained by any order.

``python -m tools.lincheck.generate -c 10 -n 1000 -o history.json`` writes
one (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIX = {"get": 0.4, "put": 0.25, "cas": 0.2, "append": 0.15}
"""How often clients use each operation."""


@dataclass
class _Call:
    """An operation under way in the simulation."""

    client: int
    op: str
    key: str
    value: str
    compare_value: str
    call: float
    ret: float | None = None
    output: tuple[str, bool] | None = None
    effect: float | None = None  # when it takes effect; None: never
    answered: bool = True
    after: str | None = None  # the key's value just after it took effect


@dataclass
class _Client:
    seen: dict[str, str] = field(default_factory=dict)  # key -> last value seen
    count: int = 0


def generate(
    clients: int = 10,
    ops: int = 1000,
    keys: int = 10,
    *,
    unknown: float = 0.0,
    stale_read: bool = False,
    seed: int = 1,
    latency: float = 0.001,
    think: float = 0.0002,
    timeout: float = 0.01,
) -> list[dict[str, Any]]:
    """A history of ``ops`` operations by ``clients`` clients on ``keys``
    keys, as JSON records, in call order.

    ``latency`` is the median time from call to return (seconds), ``think``
    the mean pause between a client's calls (both > 0). ``unknown`` is the fraction of
    answers lost; ``stale_read`` plants a stale read (see the module's
    docstring; ValueError if the history offers no place for one).
    Deterministic for a given ``seed``.
    """
    rng = random.Random(seed)
    names = [f"k{k}" for k in range(keys)]
    store: dict[str, str] = {}
    people = [_Client() for _ in range(clients)]
    done: list[_Call] = []
    # Events in time order: (time, tie-breaker, what, the call). A client's
    # next call is scheduled when its previous one returns or is given up.
    events: list[tuple[float, int, str, _Call | int]] = []
    order = 0

    def schedule(at: float, what: str, subject: _Call | int) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (at, order, what, subject))

    per_client = [ops // clients + int(c < ops % clients) for c in range(clients)]
    for c in range(clients):
        if per_client[c]:
            schedule(rng.expovariate(1 / think), "call", c)
    while events:
        now, _, what, subject = heapq.heappop(events)
        if isinstance(subject, int):  # a client makes its next call
            client = people[subject]
            call = _new_call(rng, subject, client, names, store, now)
            client.count += 1
            done.append(call)
            if rng.random() < unknown:
                call.answered = False
                if rng.random() < 0.5:
                    call.effect = now + rng.uniform(0, 2 * timeout)
                    schedule(call.effect, "effect", call)
                given_up = now + timeout
                if client.count < per_client[subject]:
                    schedule(given_up + rng.expovariate(1 / think), "call", subject)
            else:
                took = min(rng.lognormvariate(0, 0.6) * latency, timeout)
                call.ret = now + took
                call.effect = rng.uniform(now, call.ret)
                schedule(call.effect, "effect", call)
                schedule(call.ret, "return", call)
        elif what == "effect":
            subject.output = _apply(store, subject)
            subject.after = store.get(subject.key)
        else:  # the answer reaches the client, which learns the value
            client = people[subject.client]
            if subject.after is not None:
                client.seen[subject.key] = subject.after
            if client.count < per_client[subject.client]:
                schedule(now + rng.expovariate(1 / think), "call", subject.client)
    records = [_record(call) for call in sorted(done, key=lambda c: c.call)]
    if stale_read:
        plant_stale_read(records, rng)
    return records


def _new_call(
    rng: random.Random,
    number: int,
    client: _Client,
    names: list[str],
    store: dict[str, str],
    now: float,
) -> _Call:
    op = rng.choices(list(MIX), weights=list(MIX.values()))[0]
    key = rng.choice(names)
    tag = f"{number}-{client.count}"
    value = {"get": "", "put": f"v{tag}", "cas": f"s{tag}", "append": f"+{tag}"}[op]
    compare = ""
    if op == "cas":
        # Read-then-CAS races other writers; a stale or made-up guess fails.
        if key in store and rng.random() < 0.5:
            compare = store[key]
        else:
            compare = client.seen.get(key, f"v{rng.randrange(len(names))}-0")
    return _Call(number, op, key, value, compare, now)


def _apply(store: dict[str, str], call: _Call) -> tuple[str, bool]:
    found = call.key in store
    before = store.get(call.key, "")
    if call.op == "put" or (
        call.op == "cas" and found and before == call.compare_value
    ):
        store[call.key] = call.value
    elif call.op == "append":
        store[call.key] = before + call.value
    return before, found


def _record(call: _Call) -> dict[str, Any]:
    answered = call.answered and call.output is not None
    return {
        "client": call.client,
        "op": call.op,
        "key": call.key,
        "value": call.value,
        "compare_value": call.compare_value,
        "call": round(call.call, 9),
        "return": round(call.ret, 9) if answered and call.ret is not None else None,
        "output": (
            {"found": call.output[1], "value": call.output[0]}
            if answered and call.output is not None
            else None
        ),
    }


def plant_stale_read(records: list[dict[str, Any]], rng: random.Random) -> int:
    """Make one answered get return the value of a put that another put had
    replaced before the get was called; return the get's index.

    Raises ValueError if no get has such a pair of puts before it.
    """
    puts: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record["op"] == "put" and record["output"] is not None:
            puts.setdefault(record["key"], []).append(record)
    gets = [i for i, r in enumerate(records) if r["op"] == "get" and r["output"]]
    rng.shuffle(gets)
    for i in gets:
        get = records[i]
        before = [p for p in puts.get(get["key"], []) if p["return"] < get["call"]]
        for overwrite in sorted(before, key=lambda p: p["return"], reverse=True):
            older = [p for p in before if p["return"] < overwrite["call"]]
            if older:
                get["output"] = {"found": True, "value": older[-1]["value"]}
                return i
    raise ValueError("no get in this history has two puts on its key before it")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.lincheck.generate``: write a history as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.lincheck.generate",
        description="Write a made-up history of clients on a linearizable store.",
    )
    parser.add_argument("-c", "--clients", type=int, default=10)
    parser.add_argument("-n", "--ops", type=int, default=1000)
    parser.add_argument("-k", "--keys", type=int, default=10)
    parser.add_argument(
        "-u", "--unknown", type=float, default=0.0, help="fraction of answers lost"
    )
    parser.add_argument(
        "--stale-read", action="store_true", help="plant one stale read"
    )
    parser.add_argument("-s", "--seed", type=int, default=1)
    parser.add_argument("-o", "--output", type=Path, help="file (default: stdout)")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.ops < 0 or args.keys < 1:
        parser.error("need at least one client and one key, and ops >= 0")
    if not 0 <= args.unknown <= 1:
        parser.error("--unknown is a fraction, from 0 to 1")
    try:
        records = generate(
            args.clients,
            args.ops,
            args.keys,
            unknown=args.unknown,
            stale_read=args.stale_read,
            seed=args.seed,
        )
    except ValueError as error:
        parser.error(str(error))
    text = json.dumps(records, separators=(",", ":"))
    if args.output is None:
        sys.stdout.write(text + "\n")
    else:
        args.output.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
