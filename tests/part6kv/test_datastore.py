"""Tests of the DataStore, the state machine the log drives."""

from __future__ import annotations

import threading

from part6kv.datastore import DataStore


def test_get_put() -> None:
    ds = DataStore()
    assert ds.get("foo") == ("", False)
    assert ds.put("foo", "bar") == ("", False)
    assert ds.get("foo") == ("bar", True)
    assert ds.put("foo", "baz") == ("bar", True)
    assert ds.get("foo") == ("baz", True)
    assert ds.put("nix", "hard") == ("", False)


def test_empty_and_non_ascii_strings() -> None:
    ds = DataStore()
    # The empty value is a value: the key is found.
    assert ds.put("", "") == ("", False)
    assert ds.get("") == ("", True)
    assert ds.put("ключ", "värde 値 🙂") == ("", False)
    assert ds.get("ключ") == ("värde 値 🙂", True)


def test_cas_basic() -> None:
    ds = DataStore()
    ds.put("foo", "bar")
    ds.put("sun", "beam")

    # A CAS that does not match changes nothing; one that does swaps.
    assert ds.cas("foo", "mex", "bro") == ("bar", True)
    assert ds.get("foo") == ("bar", True)
    assert ds.cas("foo", "bar", "bro") == ("bar", True)
    assert ds.get("foo") == ("bro", True)

    # A CAS never creates a key, not even comparing with "".
    assert ds.cas("goa", "mm", "vv") == ("", False)
    assert ds.cas("goa", "", "vv") == ("", False)
    assert ds.get("goa") == ("", False)

    ds.put("goa", "tva")
    assert ds.cas("goa", "mm", "vv") == ("tva", True)
    assert ds.cas("goa", "mm", "vv") == ("tva", True)
    assert ds.get("goa") == ("tva", True)
    assert ds.get("sun") == ("beam", True)


def test_cas_on_empty_value() -> None:
    ds = DataStore()
    ds.put("k", "")
    assert ds.cas("k", "", "full") == ("", True)
    assert ds.get("k") == ("full", True)


def test_append() -> None:
    ds = DataStore()
    # An absent key counts as empty, and is created.
    assert ds.append("k", "ab") == ("", False)
    assert ds.get("k") == ("ab", True)
    assert ds.append("k", "cd") == ("ab", True)
    assert ds.append("k", "") == ("abcd", True)
    assert ds.get("k") == ("abcd", True)


def test_cas_concurrent() -> None:
    ds = DataStore()
    ds.put("foo", "bar")
    swaps = {"bar": 0, "baz": 0}
    seen: set[tuple[str, bool]] = set()

    def swap(compare: str, value: str) -> None:
        for _ in range(2000):
            prev, found = ds.cas("foo", compare, value)
            seen.add((prev, found))
            if prev == compare:
                swaps[compare] += 1

    threads = [
        threading.Thread(target=swap, args=("bar", "baz")),
        threading.Thread(target=swap, args=("baz", "bar")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert seen <= {("bar", True), ("baz", True)}
    # Each swap flips the value, so they alternate: starting from "bar",
    # there is one more bar->baz swap than baz->bar iff the value is "baz".
    value, _ = ds.get("foo")
    assert swaps["bar"] - swaps["baz"] == (1 if value == "baz" else 0)


def test_concurrent_appends_lose_nothing() -> None:
    ds = DataStore()

    def append_many(letter: str) -> None:
        for _ in range(1000):
            ds.append("k", letter)

    threads = [threading.Thread(target=append_many, args=(x,)) for x in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    value, _ = ds.get("k")
    assert sorted(set(value)) == list("abcd")
    assert all(value.count(x) == 1000 for x in "abcd")
