"""The linearizability checker: hand-made histories with known verdicts,
made-up ones, a brute-force cross-check, other models, and bad input."""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.tools.lincheck_histories import (
    Record,
    failing_generated_history,
    op,
    stale_read_history,
)
from tools.lincheck import (
    KV_MODEL,
    HistoryError,
    Model,
    Operation,
    Output,
    Result,
    assert_linearizable,
    check,
    check_operations,
    load_history,
    parse_history,
    render_page,
    view,
)
from tools.lincheck.generate import generate, plant_stale_read
from tools.lincheck.model import kv_apply
from tools.lincheck.search import CLOCK_EVERY, SHORTEN_STEPS, search, without_needless
from tools.lincheck.view import ROW_HEIGHT


def verdict(history: list[Record]) -> str:
    """The checker's verdict on a history."""
    return check(history).verdict


def placed(result: Result, key: str = "x") -> list[int]:
    """The indexes of the operations of ``key``'s linearization (or prefix)."""
    part = next(p for p in result.parts if p.key == key)
    return [o.index for o in part.order]


# Sequential histories: one order only, the model decides.


def test_a_sequential_history_that_follows_the_model_is_linearizable() -> None:
    history = [
        op(0, "get", 0, 1, None),
        op(0, "put", 2, 3, None, value="a"),
        op(1, "append", 4, 5, "a", value="b"),
        op(0, "get", 6, 7, "ab"),
        op(1, "cas", 8, 9, "ab", compare="ab", value="c"),
        op(0, "cas", 10, 11, "c", compare="zz", value="d"),
        op(1, "put", 12, 13, "c", value=""),
        op(0, "get", 14, 15, ""),
    ]
    result = check(history)
    assert result.ok
    assert result.verdict == "ok"
    assert placed(result) == list(range(len(history)))


@pytest.mark.parametrize(
    ("answer", "found"),
    [("", False), ("b", True), ("", True)],
    ids=["absent", "wrong-value", "empty-but-present"],
)
def test_a_sequential_history_with_a_wrong_answer_is_not(
    answer: str, found: bool
) -> None:
    history = [
        op(0, "put", 0, 1, None, value="a"),
        op(0, "get", 2, 3, answer, found),
    ]
    result = check(history)
    assert not result.ok
    assert result.verdict == "not linearizable"
    (part,) = result.failures
    assert part.key == "x"
    assert [o.index for o in part.order] == [0]
    assert [o.index for o in part.blocked] == [1]
    assert part.expected == (("a", True),)


def test_cas_never_creates_a_key_and_append_counts_absent_as_empty() -> None:
    history = [
        op(0, "cas", 0, 1, None, compare="", value="a"),
        op(0, "get", 2, 3, None),
        op(0, "append", 4, 5, None, value="b"),
        op(0, "get", 6, 7, "b"),
    ]
    assert verdict(history) == "ok"
    history[1] = op(0, "get", 2, 3, "a")
    assert verdict(history) == "not linearizable"


# Concurrency: overlapping operations may be ordered either way.


@pytest.mark.parametrize(
    ("seen", "expected"),
    [("a", "ok"), ("b", "ok"), ("ab", "not linearizable"), (None, "not linearizable")],
)
def test_a_read_after_two_overlapping_writes_sees_either(
    seen: str | None, expected: str
) -> None:
    history = [
        op(0, "put", 0, 10, None, value="a"),
        op(1, "put", 1, 9, None, value="b"),
        op(2, "get", 11, 12, seen),
    ]
    # The writes answer "absent": each was first. Fix that up: the one
    # the read sees must have come second, so it saw the other's value.
    if seen == "a":
        history[0]["output"] = {"found": True, "value": "b"}
    elif seen == "b":
        history[1]["output"] = {"found": True, "value": "a"}
    assert verdict(history) == expected


def test_a_read_overlapping_a_write_sees_the_old_or_the_new_value() -> None:
    for seen in (None, "1"):
        history = [
            op(0, "put", 0, 10, None, value="1"),
            op(1, "get", 2, 3, seen),
            op(1, "get", 4, 5, seen),
        ]
        assert verdict(history) == "ok"
    # But not the new value, then the old one.
    history = [
        op(0, "put", 0, 10, None, value="1"),
        op(1, "get", 2, 3, "1"),
        op(1, "get", 4, 5, None),
    ]
    assert verdict(history) == "not linearizable"


def test_a_stale_read_after_a_completed_write_is_not_linearizable() -> None:
    result = check(stale_read_history())
    assert result.verdict == "not linearizable"
    (part,) = result.failures
    assert [o.index for o in part.order] == [0, 1]
    assert part.state == "'2'"
    assert [o.index for o in part.blocked] == [2]
    assert part.expected == (("2", True),)
    explanation = result.explain()
    assert "key 'x'" in explanation
    assert "#2 client 2 get('x') -> '1' (found)" in explanation
    assert "it would answer '2' (found)" in explanation


def test_the_same_read_overlapping_the_second_write_is_fine() -> None:
    history = stale_read_history()
    history[2]["call"] = 2.5  # now it overlaps put(x, 2)
    assert verdict(history) == "ok"


def test_operations_that_touch_in_time_count_as_concurrent() -> None:
    history = [op(0, "put", 0, 1, None, value="1"), op(1, "get", 1, 2, None)]
    assert verdict(history) == "ok"
    history[1]["call"] = 1.000001
    assert verdict(history) == "not linearizable"


def test_cas_answers_can_force_the_only_possible_order() -> None:
    # Both CASes succeeded (each saw its compare value), so the first must
    # have changed "a" to "b" before the second changed "b" to "c": the
    # reverse order, which the call times would suggest, is impossible.
    history = [
        op(0, "put", 0, 1, None, value="a"),
        op(2, "cas", 2, 10, "b", compare="b", value="c"),
        op(1, "cas", 3, 9, "a", compare="a", value="b"),
        op(0, "get", 11, 12, "c"),
    ]
    result = check(history)
    assert result.ok
    assert placed(result) == [0, 2, 1, 3]
    history[3] = op(0, "get", 11, 12, "b")
    assert verdict(history) == "not linearizable"


def test_a_failed_cas_must_have_seen_another_value() -> None:
    history = [
        op(0, "put", 0, 1, None, value="a"),
        op(1, "put", 2, 6, "a", value="b"),
        op(2, "cas", 3, 5, "b", compare="a", value="c"),  # failed: saw "b"
        op(0, "get", 7, 8, "b"),
    ]
    assert verdict(history) == "ok"
    history[2]["output"] = {"found": True, "value": "a"}  # saw "a": succeeded
    assert verdict(history) == "not linearizable"


def test_concurrent_reads_are_placed_without_trying_their_orders() -> None:
    # Sixteen reads overlap one write: eight saw the old value, eight the
    # new. Reads that answer right where the search stands go first, so it
    # places one op per step instead of trying subsets of the reads.
    history = [op(0, "put", 0, 100, None, value="1")]
    for n in range(16):
        seen = "1" if n % 2 else None
        history.append(op(1 + n, "get", 1 + n, 50 + n, seen))
    result = check(history)
    assert result.ok
    assert result.steps < 100
    history[-1]["output"] = {"found": True, "value": "2"}
    result = check(history)
    assert result.verdict == "not linearizable"
    assert result.steps < 1000


# Unknown outcomes: the operation may take effect at any time after its
# call, or never; but only once.


def unknown_append(reads: list[str]) -> list[Record]:
    """put(x, a), an append of "b" whose answer never came, then reads."""
    history = [
        op(0, "put", 0, 1, None, value="a"),
        op(1, "append", 2, None, value="b"),
    ]
    for n, seen in enumerate(reads):
        history.append(op(0, "get", 5 + 2 * n, 6 + 2 * n, seen))
    return history


@pytest.mark.parametrize(
    ("reads", "expected"),
    [
        (["ab"], "ok"),  # it took effect
        (["a"], "ok"),  # it did not (or not yet)
        (["a", "ab"], "ok"),  # it took effect late, after the first read
        (["ab", "a"], "not linearizable"),  # an effect undone
        (["abb"], "not linearizable"),  # applied twice
        (["b"], "not linearizable"),  # the put lost
    ],
)
def test_an_append_of_unknown_outcome(reads: list[str], expected: str) -> None:
    assert verdict(unknown_append(reads)) == expected


def test_an_unknown_outcome_cannot_take_effect_before_its_call() -> None:
    history = [
        op(0, "get", 0, 1, "a"),
        op(1, "put", 2, None, value="a"),
    ]
    assert verdict(history) == "not linearizable"


def test_the_linearization_says_which_unknown_outcomes_took_effect() -> None:
    result = check(unknown_append(["a", "ab"]))
    assert placed(result) == [0, 2, 1, 3]
    result = check(unknown_append(["a", "a"]))
    assert placed(result) == [0, 2, 3]


def test_unanswered_writes_are_not_tried_in_every_combination() -> None:
    # Twelve writes without an answer, one of which a read saw. The search
    # never enters a configuration that used up more of them than one it
    # entered before with the same state, so it does not go through all
    # their subsets; and the linearization keeps only the write it needs.
    history = [op(0, "put", 0, 1, None, value="a")]
    history += [op(1 + n, "put", 2 + n, None, value=f"u{n}") for n in range(12)]
    history += [op(0, "get", 30, 31, "u7"), op(0, "get", 32, 33, "u3")]
    result = check(history)
    assert result.ok
    assert placed(result) == [0, 8, 13, 4, 14]
    assert result.steps < 3000
    history[-1] = op(0, "get", 32, 33, "a")  # the first write came back
    result = check(history)
    assert result.verdict == "not linearizable"
    assert result.steps < 70_000


def test_an_unknown_outcome_with_the_time_the_client_gave_up() -> None:
    # A time in "return" with no output bounds nothing: the request may
    # still be applied after the client stopped waiting.
    history = unknown_append(["a", "ab"])
    history[1]["return"] = 3
    assert verdict(history) == "ok"


def counting(model: Model[Any], calls: list[float]) -> Model[Any]:
    """``model``, noting in ``calls`` when each of its steps was made."""

    def apply(state: Any, o: Operation) -> tuple[Any, Output]:
        calls.append(time.monotonic())
        return model.apply(state, o)

    return Model(model.name, model.ops, model.init, apply, model.partition)


def unanswered_puts(n: int, read: str) -> list[Operation]:
    """``n`` concurrent puts whose answers never came, then a get that
    read ``read`` while they were all under way."""
    history = [op(i, "put", i, None, value=f"v{i}") for i in range(n)]
    history.append(op(n, "get", 0, 2 * n, read))
    return parse_history(history, KV_MODEL.ops)


def shortened_the_slow_way(
    order: Sequence[Operation], model: Model[Any]
) -> list[Operation]:
    """What ``without_needless`` must give, by its definition: from the
    front, drop each unknown outcome whose removal changes no answer that
    follows and leaves the same state at the end."""
    kept = list(order)
    j = 0
    while j < len(kept):
        rest = kept[:j] + kept[j + 1 :]
        if kept[j].output is None and _replay(rest, model) == _replay(kept, model):
            kept = rest
        else:
            j += 1
    return kept


def _replay(order: Sequence[Operation], model: Model[Any]) -> Any:
    # The state after ``order``, or None if some answer comes out otherwise.
    state = model.init
    for o in order:
        state, output = model.apply(state, o)
        if o.output not in (None, output):
            return None
    return (state,)


def test_the_linearization_keeps_the_unknown_outcomes_it_needs() -> None:
    for seed in range(40):
        ops = parse_history(generate(4, 60, 1, unknown=0.3, seed=seed), KV_MODEL.ops)
        order = search(ops, KV_MODEL).order
        expected = shortened_the_slow_way(order, KV_MODEL)
        assert without_needless(order, KV_MODEL) == expected


def test_shortening_the_linearization_is_linear() -> None:
    # The get saw the last put: the search places every put before it,
    # and all but that one are needless. Deciding so for one put takes a
    # step or two (the next put overwrites it), whatever comes after.
    n = 2000
    ops = unanswered_puts(n, f"v{n - 1}")
    order = search(ops, KV_MODEL).order
    assert len(order) == n + 1
    calls: list[float] = []
    shortened = without_needless(order, counting(KV_MODEL, calls))
    assert [o.index for o in shortened] == [n - 1, n]
    assert len(calls) <= 4 * len(order)


def test_shortening_a_long_prefix_does_a_bounded_amount_of_work() -> None:
    # Unanswered appends: taking one out changes the value for good, and
    # nothing reads it, so each replay would run to the end. The
    # shortening makes at most SHORTEN_STEPS model steps per operation
    # (each replay two) and keeps what it did not get to.
    n = 1000
    history = [op(i, "append", i, None, value="a") for i in range(n)]
    order = parse_history(history, KV_MODEL.ops)
    calls: list[float] = []
    shortened = without_needless(order, counting(KV_MODEL, calls))
    assert shortened == order  # none of them is needless
    assert len(calls) <= (2 * SHORTEN_STEPS + 1) * n


def test_the_timeout_bounds_the_whole_check() -> None:
    # A get that no order explains, among unanswered appends: the search
    # cannot finish, and its longest prefix is all the appends. Past the
    # deadline the checker makes a bounded number of model steps: up to the
    # search's next look at the clock, and the shortening's bounded work.
    n = 1500
    history = [op(i, "append", i * 1e-4, None, value="a") for i in range(n)]
    history.append(op(n, "get", 0, 10, "nope"))
    calls: list[float] = []
    timeout = 0.2
    start = time.monotonic()
    result = check(history, counting(KV_MODEL, calls), timeout)
    assert result.verdict == "unknown"
    late = sum(when > start + timeout for when in calls)
    assert late <= 2 * CLOCK_EVERY + (2 * SHORTEN_STEPS + 1) * len(history)


# Keys are independent objects.


def test_each_key_is_checked_on_its_own() -> None:
    history = [
        op(0, "put", 0, 1, None, key="x", value="1"),
        op(1, "get", 2, 3, None, key="y"),
        op(1, "put", 4, 5, None, key="y", value="2"),
        op(0, "get", 6, 7, "1", key="x"),
    ]
    result = check(history)
    assert result.ok
    assert [(p.key, len(p.ops)) for p in result.parts] == [("x", 2), ("y", 2)]


def test_a_failing_key_is_named_and_the_others_still_pass() -> None:
    history = [
        *stale_read_history(),
        op(3, "put", 0, 1, None, key="y", value="2"),
        op(3, "get", 4, 5, "2", key="y"),
    ]
    result = check(history)
    assert result.verdict == "not linearizable"
    assert {p.key: p.verdict for p in result.parts} == {
        "x": "not linearizable",
        "y": "ok",
    }
    assert [p.key for p in result.failures] == ["x"]


def test_an_empty_history_is_linearizable() -> None:
    assert check([]).ok


# Made-up histories: linearizable by construction, unless corrupted.


@pytest.mark.parametrize("seed", range(6))
def test_every_generated_history_is_linearizable(seed: int) -> None:
    keys = 1 + seed % 3
    assert check(generate(5, 300, keys, seed=seed)).ok
    assert check(generate(5, 300, keys, unknown=0.1, seed=seed)).ok


@pytest.mark.parametrize("seed", range(6))
def test_a_planted_stale_read_is_caught(seed: int) -> None:
    history = generate(5, 300, 2, seed=seed)
    index = plant_stale_read(history, random.Random(seed))
    result = check(history)
    assert result.verdict == "not linearizable"
    (part,) = result.failures
    assert part.key == history[index]["key"]
    assert index in [o.index for o in part.blocked]


@pytest.mark.parametrize("seed", range(6))
def test_any_corrupted_read_is_caught(seed: int) -> None:
    history = generate(5, 300, 2, unknown=0.05, seed=seed)
    rng = random.Random(seed)
    gets = [r for r in history if r["op"] == "get" and r["output"] is not None]
    rng.choice(gets)["output"] = {"found": True, "value": "never written"}
    assert verdict(history) == "not linearizable"


def test_generate_with_a_stale_read() -> None:
    assert verdict(generate(5, 300, 2, stale_read=True, seed=1)) == "not linearizable"
    with pytest.raises(ValueError, match="no get"):
        generate(2, 2, 1, stale_read=True, seed=1)


# A brute-force checker, to cross-check the search on small histories.


def brute_force(ops: list[Operation]) -> bool:
    """Try every order: linearizable if one places every answered
    operation, keeps real-time order and matches every answer."""
    answered = [o for o in ops if o.output is not None]

    def extend(done: frozenset[int], state: str | None) -> bool:
        if all(o.index in done for o in answered):
            return True
        for o in ops:
            if o.index in done:
                continue
            if any(p.index not in done and (p.ret or 0) < o.call for p in answered):
                continue  # something that returned before o's call comes first
            new_state, output = kv_apply(state, o)
            if o.output not in (None, output):
                continue
            if extend(done | {o.index}, new_state):
                return True
        return False

    return extend(frozenset(), None)


def random_history(rng: random.Random, size: int) -> list[Operation]:
    """Random operations on one key with random answers (mostly wrong)."""
    values = ["", "a", "b", "ab", "ba"]
    ops = []
    for i in range(size):
        kind = rng.choice(["get", "put", "cas", "append"])
        call = float(rng.randint(0, 8))
        ret = None if rng.random() < 0.25 else call + rng.randint(0, 4)
        output: Output | None = None
        if ret is not None:
            output = (rng.choice(values), True) if rng.random() < 0.8 else ("", False)
        ops.append(
            Operation(
                i,
                rng.randint(0, 2),
                kind,
                "x",
                rng.choice(["a", "b"]) if kind != "get" else "",
                rng.choice(values) if kind == "cas" else "",
                call,
                ret,
                output,
            )
        )
    return ops


def assert_is_linearization(ops: list[Operation], order: tuple[Operation, ...]) -> None:
    """``order`` follows the model and real-time order, each op at most once."""
    assert len({o.index for o in order}) == len(order)
    state = None
    for n, o in enumerate(order):
        state, output = kv_apply(state, o)
        assert o.output in (None, output)
        for later in order[n + 1 :]:
            assert not (later.ret is not None and later.ret < o.call)
    placed_ = {o.index for o in order}
    for o in ops:  # nothing left out that returned before a placed op's call
        if o.output is not None and o.index not in placed_:
            assert all(o.ret is not None and o.ret >= p.call for p in order)


def test_the_search_agrees_with_brute_force_on_small_histories() -> None:
    rng = random.Random(42)
    counts = {True: 0, False: 0}
    for _ in range(1500):
        ops = random_history(rng, rng.randint(1, 6))
        expected = brute_force(ops)
        result = check_operations(ops)
        assert result.ok == expected, ops
        (part,) = result.parts
        assert_is_linearization(ops, part.order)
        if expected:
            assert {o.index for o in ops if o.output} <= {o.index for o in part.order}
        else:
            assert part.blocked
        counts[expected] += 1
    assert min(counts.values()) > 200  # both verdicts well represented


def test_the_search_agrees_with_brute_force_on_corrupted_real_histories() -> None:
    rng = random.Random(7)
    for seed in range(300):
        records = generate(3, 7, 1, unknown=0.2, seed=seed)
        answered = [r for r in records if r["output"] is not None]
        if seed % 2 and answered:
            rng.choice(answered)["output"] = {
                "found": True,
                "value": rng.choice(["", "v0-0", "v1-0+2-1"]),
            }
        ops = parse_history(records, KV_MODEL.ops)
        assert check_operations(ops).ok == brute_force(ops), records


# The search gives up when told to.


def test_the_search_looks_at_the_clock_and_gives_up() -> None:
    ops = parse_history(generate(10, 500, 1, unknown=0.1, seed=3), KV_MODEL.ops)
    full = search(ops, KV_MODEL)
    assert full.verdict == "ok"
    assert full.steps > CLOCK_EVERY
    late = search(ops, KV_MODEL, deadline=time.monotonic() - 1)
    assert late.verdict == "unknown"
    assert late.steps == CLOCK_EVERY


def test_a_timeout_that_ran_out_gives_unknown() -> None:
    result = check(generate(10, 500, 3, seed=3), timeout=-1)
    assert result.verdict == "unknown"
    assert not result.ok
    assert all(p.verdict == "unknown" for p in result.parts)
    assert "unknown" in result.explain()


def test_a_violation_found_in_time_outweighs_an_undecided_key() -> None:
    result = check(stale_read_history(), timeout=60)
    assert result.verdict == "not linearizable"


# Other models, through the same interface.


def register_apply(state: str, o: Operation) -> tuple[str, Output]:
    """The register of the model module's docstring."""
    if o.op == "put":
        return o.value, (state, True)
    return state, (state, True)


REGISTER = Model(
    name="register", ops=frozenset({"get", "put"}), init="", apply=register_apply
)


def queue_apply(state: tuple[str, ...], o: Operation) -> tuple[tuple[str, ...], Output]:
    """A FIFO queue: enqueue answers nothing, dequeue the head if any."""
    if o.op == "enqueue":
        return (*state, o.value), ("", True)
    if not state:
        return state, ("", False)
    return state[1:], (state[0], True)


QUEUE: Model[tuple[str, ...]] = Model(
    name="queue", ops=frozenset({"enqueue", "dequeue"}), init=(), apply=queue_apply
)


def test_a_register_model() -> None:
    history = [
        op(0, "put", 0, 1, "", value="1", key="ignored"),
        op(1, "get", 2, 3, "1", key="other"),
    ]
    assert check(history, model=REGISTER).ok  # one register, whatever the key
    assert not check(history, model=KV_MODEL).ok  # two keys of a store
    with pytest.raises(HistoryError, match="unknown op 'append'"):
        check([op(0, "append", 0, 1, "", value="1")], model=REGISTER)


def test_a_queue_model() -> None:
    def history(first: str, second: str) -> list[Record]:
        return [
            op(0, "enqueue", 0, 1, "", value="a"),
            op(0, "enqueue", 2, 3, "", value="b"),
            op(1, "dequeue", 4, 5, first),
            op(1, "dequeue", 6, 7, second),
        ]

    assert check(history("a", "b"), model=QUEUE).ok
    result = check(history("b", "a"), model=QUEUE)
    assert result.verdict == "not linearizable"
    assert [o.index for o in result.parts[0].blocked] == [2]
    assert result.parts[0].expected == (("a", True),)


# Bad input: a clear error naming the operation.


def good() -> Record:
    return op(3, "put", 1.0, 2.0, None, value="v")


def with_change(**changes: Any) -> list[Any]:
    record = good()
    for name, value in changes.items():
        if value is DROP:
            del record[name]
        else:
            record[name] = value
    return [good(), record]


DROP = object()


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ({"not": "a list"}, "a history is a JSON list"),
        (["put"], "operation #0 is a string, not an object"),
        (with_change(call=DROP), "#1 (client 3, put 'x'): missing field 'call'"),
        (with_change(output=DROP), "missing field 'output'"),
        (with_change(op="delete"), "operation #1 (client 3, delete 'x'): unknown op"),
        (with_change(op=7), "'op' must be a string"),
        (with_change(client="3"), "operation #1: 'client' must be an integer"),
        (with_change(client=True), "'client' must be an integer"),
        (with_change(key=None), "'key' must be a string, not null"),
        (with_change(value=5), "'value' must be a string, not a number"),
        (with_change(call="1.0"), "'call' must be a number"),
        (with_change(call=float("nan")), "'call' must be a finite number"),
        (with_change(call=10**400), "#1 (client 3, put 'x'): 'call' is out of range"),
        (with_change(**{"return": 1.7e308}), "'return' is out of range"),
        (with_change(call=-2e12), "'call' is out of range"),
        (with_change(**{"return": 0.5}), "return 0.5 is before its call 1.0"),
        (with_change(output=[]), "'output' must be an object or null"),
        (with_change(output={"found": 1, "value": ""}), "'output.found' must be"),
        (with_change(output={"found": True}), "'output' has no 'value'"),
        (with_change(output={"found": True, "value": 3}), "'output.value' must be"),
        (with_change(**{"return": None}), "an output but no return time"),
    ],
)
def test_a_malformed_history_is_refused_naming_the_operation(
    history: Any, message: str
) -> None:
    with pytest.raises(HistoryError) as caught:
        check(history)
    assert message in str(caught.value)


def test_value_and_compare_value_may_be_left_out() -> None:
    history = [
        {"client": 0, "op": "get", "key": "x", "call": 0, "return": 1,
         "output": {"found": False, "value": ""}},
    ]  # fmt: skip
    assert check(history).ok
    assert parse_history(history, KV_MODEL.ops)[0].value == ""


def test_a_wrapped_history_and_extra_fields_are_accepted(tmp_path: Path) -> None:
    records = [dict(r, note="extra") for r in stale_read_history()]
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"history": records, "test": "t"}))
    ops = load_history(path, KV_MODEL.ops)
    assert len(ops) == 3
    assert check_operations(ops).verdict == "not linearizable"


def test_load_history_names_what_is_wrong_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    path.write_text('[{"client": 0,')
    with pytest.raises(HistoryError, match="is not valid JSON"):
        load_history(path, KV_MODEL.ops)
    with pytest.raises(HistoryError, match="cannot read"):
        load_history(tmp_path / "missing.json", KV_MODEL.ops)


# The helper for the kv harnesses.


def test_assert_linearizable_returns_the_result_when_ok(tmp_path: Path) -> None:
    html = tmp_path / "history.html"
    result = assert_linearizable(generate(3, 50, 2, seed=1), html)
    assert result.ok
    assert not html.exists()


def test_assert_linearizable_writes_the_view_and_says_where(tmp_path: Path) -> None:
    html = tmp_path / "views" / "history.html"
    history = failing_generated_history()
    with pytest.raises(AssertionError) as caught:
        assert_linearizable(history, html)
    message = str(caught.value)
    assert "not linearizable" in message
    assert "key 'k0'" in message
    assert f"HTML view of the history: {html}" in message
    assert html.read_text().startswith("<!doctype html>")
    saved = json.loads(html.with_suffix(".json").read_text())
    assert check(saved).verdict == "not linearizable"
    assert [r["output"] for r in saved] == [r["output"] for r in history]


def test_assert_linearizable_fails_when_it_cannot_decide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a path, the view goes to a new directory in the temporary
    # directory: here, the test's own.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(AssertionError, match="unknown") as caught:
        assert_linearizable(generate(3, 50, 2, seed=1), timeout=-1)
    [html] = tmp_path.glob("lincheck-*/history.html")
    assert f"HTML view of the history: {html}" in str(caught.value)


# The HTML view, as text (tests/tools/test_lincheck_browser.py shows it).


def test_the_page_is_self_contained_and_escapes_the_history() -> None:
    history = failing_generated_history()
    history[0]["key"] = "<b>k</b>"
    history[0]["value"] = "\"'&<script>"
    page = render_page(check(history))
    for outside in ("<script src", "<link", "@import", "url(", "http:", "https:"):
        assert outside not in page
    assert "<b>k</b>" not in page
    assert "&lt;b&gt;k&lt;/b&gt;" in page
    assert "&lt;script&gt;" in page
    assert page.count("<script>") == 1


def test_the_page_s_style_and_script_are_view_css_and_view_js() -> None:
    page = render_page(check(stale_read_history()))
    package = Path(view.__file__).parent
    style = (package / "view.css").read_text(encoding="utf-8")
    script = (package / "view.js").read_text(encoding="utf-8")
    assert ".op.blocked{" in style
    assert 'addEventListener("mouseover"' in script
    assert f"<style>{style}</style>" in page
    assert f"<script>{script}</script>" in page
    # Inline, nothing in them may end their element early.
    assert "</style" not in style
    assert "</script" not in script


def test_the_page_of_a_big_history_takes_time_in_proportion() -> None:
    # 8,000 clients with one get each, and one client with 8,000 gets that
    # all overlap (8,000 lanes). Drawing each client's row once, and each
    # bar in its lane without looking at every lane, takes a fraction of a
    # second; looking at every operation for each client and every lane for
    # each bar took some 10 s.
    n = 8000
    history = [op(c, "get", 0, 1, None) for c in range(n)]
    history += [op(n, "get", k / n, 2, None) for k in range(n)]
    result = check(history)
    started = time.monotonic()
    page = render_page(result)
    assert time.monotonic() - started < 3
    assert page.count("<div class=row") == n + 1
    assert f"height:{n * ROW_HEIGHT}px" in page


def test_the_messages_say_one_operation_not_one_operations() -> None:
    one = check([op(0, "get", 0, 1, None)])
    assert one.explain() == "ok: 1 operation on 1 key (key/value store)"
    assert "1 operation ·" in render_page(one)
    assert "(1 operation)" in render_page(one)
    history = [op(0, "put", 0, 1, None, value="1"), op(1, "get", 2, 3, "2")]
    failed = check(history)
    assert failed.explain().splitlines()[:3] == [
        "not linearizable: 2 operations on 1 key (key/value store)",
        "key 'x' (2 operations): not linearizable",
        "  the longest linearizable prefix found has 1 operation; after it the "
        "key holds '1'",
    ]
    assert "found (1 operation), after which" in render_page(failed)
    undecided = check([op(0, "get", 0, 1, None)], timeout=-1).explain()
    assert "key 'x' (1 operation): unknown" in undecided
    assert "after 0 search steps; the longest linearizable prefix found has 0 " in (
        undecided
    )
