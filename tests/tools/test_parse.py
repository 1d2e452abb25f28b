"""The parser: real part1 logs, and the edge cases a real log can hold."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest

from tests.tools.conftest import REAL_TESTS
from tools.raft_testlog_viz.parse import (
    MAX_REPORTED,
    UNFINISHED,
    UNFRAMED,
    RunLog,
    parse_log,
    skipped_report,
)

# An independent reading of the line format, to check the parser against.
ENTRY_LINE = re.compile(r"\d\d:\d\d:\d\d\.\d{6} \[(\d+|TEST)\] ")


def test_real_log_has_every_test_with_its_status_and_duration(
    real_log: str, real_run: RunLog
) -> None:
    assert [t.name for t in real_run.tests] == REAL_TESTS
    for test in real_run.tests:
        assert test.status == "PASS"
        assert not test.failed
        frame = re.search(rf"--- PASS: {test.name} \((\d+\.\d+)s\)", real_log)
        assert frame is not None
        assert test.duration == float(frame[1])
    assert not real_run.failed


def test_real_log_entries_are_exactly_the_framed_raft_lines(real_log: str) -> None:
    run = parse_log(real_log.splitlines())
    # Cut the log at the frames by hand and count its Raft lines.
    blocks = re.split(r"^=== RUN .*$", real_log, flags=re.MULTILINE)[1:]
    for test, block in zip(run.tests, blocks, strict=True):
        inside = block.split("\n--- PASS:")[0]
        # A line may start after pytest's PASSED, glued to it.
        found = [ENTRY_LINE.search(ln) for ln in inside.splitlines()]
        expected = [m.string[m.end() :] for m in found if m is not None]
        assert len(test.entries) == len(expected) > 0
        assert [e.message for e in test.entries] == expected
        assert test.malformed == []
    # Pytest's own lines (the header, PASSED, "live log call") are ignored.
    assert "PASSED" in real_log
    assert all("PASSED" not in e.message for t in run.tests for e in t.entries)


def test_real_log_sources_and_times(real_run: RunLog) -> None:
    basic, disconnect = real_run.tests
    assert basic.servers == [0, 1, 2]
    assert disconnect.servers == [0, 1, 2]
    test_lines = [e.message for e in disconnect.entries if e.server is None]
    assert len(test_lines) == 3
    assert re.fullmatch(r"check_single_leader -> [012] \(term \d+\)", test_lines[0])
    assert re.fullmatch(r"Disconnect [012]", test_lines[1])
    assert test_lines[2].startswith("check_single_leader -> ")
    for test in real_run.tests:
        # Entries keep the log's order; each one's time is the one printed.
        # (How far apart threads log their lines depends on the machine's
        # load: no bound on it here.)
        assert all(a.lineno < b.lineno for a, b in pairwise(test.entries))
        for e in test.entries:
            h, m, s = e.wall.split(":")
            assert e.seconds % 86400 == pytest.approx(
                int(h) * 3600 + int(m) * 60 + float(s), abs=1e-6
            )
        assert test.duration is not None


def log(*lines: str) -> RunLog:
    """Parse the given lines as a log."""
    return parse_log(lines)


def test_unrelated_output_between_and_inside_frames_is_ignored() -> None:
    run = log(
        "============ test session starts ============",
        "12:00:00.000000 [0] a line before any test",
        "=== RUN test_a",
        "tests/part1/test_raft.py::test_a ",
        "-------------- live log call --------------",
        "12:00:00.100000 [0] becomes Candidate (currentTerm=1)",
        "12:00:00.150000 some.other.logger says hello",
        "PASSED                                    [ 50%]",
        "12:00:00.200000 [TEST] Disconnect 0",
        "--- PASS: test_a (0.30s)",
        "12:00:00.300000 [1] a thread logging after its test ended",
        "1 passed in 0.31s",
    )
    (test,) = run.tests
    assert [(e.server, e.message) for e in test.entries] == [
        (0, "becomes Candidate (currentTerm=1)"),
        (None, "Disconnect 0"),
    ]
    assert test.malformed == []
    # The line before the first frame is ignored; the one after the frame
    # is the test's late line, which is no fault of the log.
    assert run.outside_lines == 1
    assert [e.message for e in test.late] == ["a thread logging after its test ended"]
    assert skipped_report(run) == []


def test_failed_skipped_and_unfinished_tests() -> None:
    run = log(
        "=== RUN test_pass",
        "--- PASS: test_pass (0.10s)",
        "=== RUN test_skip",
        "--- SKIP: test_skip (0.00s)",
        "=== RUN test_fail",
        "12:00:00.000000 [0] becomes Leader; term=1",
        "--- FAIL: test_fail (1.50s)",
        "=== RUN test_cut_off",
        "12:00:01.000000 [0] becomes Follower with term=2",
    )
    assert [(t.name, t.status, t.duration) for t in run.tests] == [
        ("test_pass", "PASS", 0.10),
        ("test_skip", "SKIP", 0.0),
        ("test_fail", "FAIL", 1.50),
        ("test_cut_off", UNFINISHED, None),
    ]
    assert [t.failed for t in run.tests] == [False, False, True, True]
    assert run.failed


def test_a_test_with_no_raft_lines() -> None:
    run = log("=== RUN test_quiet", "--- PASS: test_quiet (0.01s)")
    (test,) = run.tests
    assert test.entries == []
    assert test.servers == []
    assert not run.failed


def test_a_log_with_no_test_fails() -> None:
    run = log("nothing framed here", "12:00 is no log line")
    assert run.tests == []
    assert run.failed


def test_a_log_without_frames_is_one_run() -> None:
    # The log of a cluster run by hand: no test, no verdict.
    run = parse_log(
        [
            "12:00:00.000000 [0] becomes Leader; term=1, log=[]",
            "some other output",
            "12:00:00.100000 [kv 0] serving HTTP on 127.0.0.1:8000",
            "12:00:00.200000 [x] malformed",
        ],
        unframed_name="kv.log",
    )
    (test,) = run.tests
    assert (test.name, test.status, test.failed) == ("kv.log", UNFRAMED, False)
    assert [e.lineno for e in test.entries] == [1, 3]
    assert [m.lineno for m in test.malformed] == [4]
    assert not run.failed


def test_the_frames_give_the_test_id_docstring_and_why_it_failed() -> None:
    run = log(
        "=== RUN test_a",
        "    tests/part1/test_raft.py::test_a",
        "    A leader is elected.",
        "    ",
        "    Then another.",
        "12:00:00.000000 [0] becomes Leader; term=1",
        "    an indented line inside the frame is not the docstring",
        "--- FAIL: test_a (0.20s)",
        "    tests/part1/test_raft.py:12: AssertionError: no leader",
        "    leaders by term: {}",
        "",
        "    not part of it: a line came between",
        "=== RUN test_b",
        "12:00:01.000000 [0] no id, no docstring",
        "--- PASS: test_b (0.10s)",
    )
    a, b = run.tests
    assert a.node_id == "tests/part1/test_raft.py::test_a"
    assert (a.stage, a.title) == ("part1", "part1 · test_a")
    assert a.doc == "A leader is elected.\n\nThen another."
    assert a.reason == (
        "tests/part1/test_raft.py:12: AssertionError: no leader\nleaders by term: {}"
    )
    assert len(a.entries) == 1
    assert (b.node_id, b.stage, b.title, b.doc, b.reason) == ("", "", "test_b", "", "")


def test_captured_log_sections_repeat_lines_and_are_ignored() -> None:
    run = log(
        "=== RUN test_a",
        "12:00:00.000000 [0] becomes Leader; term=1",
        "--- FAIL: test_a (0.20s)",
        "12:00:00.300000 [1] late",
        "=================================== FAILURES ===================",
        "____________________________ test_a ____________________________",
        "------------------------------ Captured log call ---------------",
        "12:00:00.000000 [0] becomes Leader; term=1",
    )
    (test,) = run.tests
    assert [e.message for e in test.late] == ["late"]
    assert run.outside_lines == 0
    assert skipped_report(run) == []


def test_malformed_lines_are_skipped_counted_and_reported() -> None:
    run = log(
        "=== RUN test_a",
        "12:00:00.000000 [0] fine",
        "12:61:00.000000 [0] minute 61",
        "12:00:00.0x0000 [1] letters in the time",
        "12:00:00.000000 [leader] not a number",
        "12:00:00.000000 [1]no space after the source",
        "12:00:00.100000 [2] also fine",
        "--- PASS: test_a (0.20s)",
    )
    (test,) = run.tests
    assert [e.message for e in test.entries] == ["fine", "also fine"]
    assert [(m.lineno, m.reason) for m in test.malformed] == [
        (3, "bad timestamp"),
        (4, "bad timestamp"),
        (5, "source is none of N, TEST, kv N, client N"),
        (6, "source is none of N, TEST, kv N, client N"),
    ]
    report = skipped_report(run)
    assert report[0] == "skipped 4 malformed lines:"
    assert report[1] == (
        "  line 3 in test_a (bad timestamp): 12:61:00.000000 [0] minute 61"
    )
    assert len(report) == 5
    # A malformed line does not fail the test.
    assert not run.failed


def test_many_malformed_lines_are_counted_beyond_those_quoted() -> None:
    bad = [f"12:00:00.000000 [x{i}] bad" for i in range(MAX_REPORTED + 3)]
    run = log("=== RUN test_a", *bad, "--- PASS: test_a (0.20s)")
    report = skipped_report(run)
    assert report[0] == f"skipped {MAX_REPORTED + 3} malformed lines:"
    assert report[-1] == "  ... and 3 more"
    assert len(report) == 1 + MAX_REPORTED + 1


def test_times_keep_growing_past_midnight() -> None:
    run = log(
        "=== RUN test_a",
        "23:59:59.900000 [0] before midnight",
        "23:59:59.899000 [1] a hair out of order, same day",
        "00:00:00.100000 [0] after midnight",
        "--- PASS: test_a (0.30s)",
    )
    seconds = [e.seconds for e in run.tests[0].entries]
    day = 24 * 3600
    expected = [day - 0.1, day - 0.101, day + 0.1]
    assert all(abs(s - e) < 1e-6 for s, e in zip(seconds, expected, strict=True))


def test_colour_codes_and_odd_frames() -> None:
    run = log(
        "\x1b[32m=== RUN test_a\x1b[0m",
        "12:00:00.000000 [0] \x1b[1mbold\x1b[0m",
        "--- PASS: test_a (0.10s)",
        "--- FAIL: test_never_started (0.20s)",
        "=== RUN test_b",
        "=== RUN test_c",
        "--- PASS: test_c",
    )
    assert [(t.name, t.status, t.duration) for t in run.tests] == [
        ("test_a", "PASS", 0.10),
        ("test_never_started", "FAIL", 0.20),
        ("test_b", UNFINISHED, None),
        ("test_c", "PASS", None),
    ]
    assert run.tests[0].entries[0].message == "bold"


def test_servers_are_listed_in_numeric_order() -> None:
    order = [6, 10, 0, 3, 1, 5, 4, 2]
    lines = [f"12:00:00.{i:06d} [{s}] election timer" for i, s in enumerate(order)]
    run = log("=== RUN test_a", *lines, "--- PASS: test_a (0.10s)")
    assert run.tests[0].servers == [0, 1, 2, 3, 4, 5, 6, 10]


def test_key_value_services_and_clients() -> None:
    run = log(
        "=== RUN test_kv",
        "12:00:00.000000 [kv 0] applied put x=1",
        "12:00:00.000100 [client 3] put x=1 -> OK",
        "12:00:00.000200 [2] becomes Leader; term=1",
        "12:00:00.000300 [TEST] Crash 2",
        "12:00:00.000400 [kv 12] serving",
        "12:00:00.000500 [kv x] not a service",
        "12:00:00.000600 [client] no number",
        "12:00:00.000700 [service 1] nor this",
        "--- PASS: test_kv (0.10s)",
    )
    (test,) = run.tests
    assert [(e.server, e.source, e.message) for e in test.entries] == [
        (0, "kv", "applied put x=1"),
        (None, "client 3", "put x=1 -> OK"),
        (2, "", "becomes Leader; term=1"),
        (None, "", "Crash 2"),
        (12, "kv", "serving"),
    ]
    # A service's lines go in its server's column; a client's with TEST.
    assert test.servers == [0, 2, 12]
    assert [(m.lineno, m.reason) for m in test.malformed] == [
        (7, "source is none of N, TEST, kv N, client N"),
        (8, "source is none of N, TEST, kv N, client N"),
        (9, "source is none of N, TEST, kv N, client N"),
    ]


def test_a_line_glued_to_pytests_progress_is_read() -> None:
    # pytest prints PASSED, then the progress, then a line break, and a
    # thread's record may come after either of the first two.
    run = log(
        "=== RUN test_a",
        "12:00:00.000000 [0] rpc 0.1 send to 1: RequestVoteArgs(term=1)",
        "PASSED" + " " * 60 + "[ 50%]12:00:00.001000 [1] rpc 0.1 deliver RequestVote",
        "PASSED12:00:00.002000 [1] rpc 0.2 deliver AppendEntries",
        " " * 60 + "[100%]",
        "--- PASS: test_a (0.10s)",
    )
    (test,) = run.tests
    assert [(e.lineno, e.server, e.message) for e in test.entries] == [
        (2, 0, "rpc 0.1 send to 1: RequestVoteArgs(term=1)"),
        (3, 1, "rpc 0.1 deliver RequestVote"),
        (4, 1, "rpc 0.2 deliver AppendEntries"),
    ]
    assert test.malformed == []


def test_the_harness_logs_what_it_checked(real_run: RunLog, part3_run: RunLog) -> None:
    # part1: each check names the leader it found, which became leader in
    # that term before the check.
    for test in real_run.tests:
        checks = [
            (k, re.fullmatch(r"check_single_leader -> (\d) \(term (\d+)\)", e.message))
            for k, e in enumerate(test.entries)
            if e.server is None and e.message.startswith("check_")
        ]
        assert checks
        for k, check in checks:
            assert check is not None
            won = f"becomes Leader; term={check[2]}"
            assert any(
                e.server == int(check[1]) and e.message.startswith(won)
                for e in test.entries[:k]
            )
    # part3: the checks of commands say where they found them.
    test = next(t for t in part3_run.tests if t.name == "test_commit_multiple_commands")
    checked = [e.message for e in test.entries if e.message.startswith("check_commit")]
    assert [re.sub(r"\d+$", "I", c) for c in checked] == [
        f"check_committed({v}) -> 3 servers, index I" for v in (42, 55, 81)
    ]
    crash = next(t for t in part3_run.tests if t.name == "test_crash_after_submit")
    checked = [e.message for e in crash.entries if e.message.startswith("check_not")]
    assert checked == ["check_not_committed(5): ok"] * 2
