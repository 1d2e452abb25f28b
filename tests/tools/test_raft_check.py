"""Tests of tools.raft_check, the log-based safety checker, on small logs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.tools.conftest import run_python
from tools.raft_check import PLANTED_BUG, Violation, check_lines, check_log
from tools.raft_check.cli import main, run_checks
from tools.raft_testlog_viz.parse import parse_log


def lines(*messages: str) -> list[str]:
    """Log lines of one test, a millisecond apart: ``[ID] message`` each."""
    return [f"12:00:00.{k:03d}000 {m}" for k, m in enumerate(messages, start=1)]


def framed(name: str, body: list[str], status: str = "PASS") -> list[str]:
    """A test's lines framed as ``pytest -o log_cli=true`` prints them."""
    return [f"=== RUN {name}", *body, f"--- {status}: {name} (0.10s)"]


def leader(server: int, term: int, *log: tuple[str, int]) -> str:
    """A CM's "becomes Leader" line with its log."""
    entries = ", ".join(f"LogEntry(command={c}, term={t})" for c, t in log)
    return f"[{server}] becomes Leader; term={term}, log=[{entries}]"


def got(server: int, command: str, index: int, term: int) -> str:
    """The harness's line for a delivery."""
    return (
        f"[TEST] collect_commits({server}) got "
        f"CommitEntry(command={command}, index={index}, term={term})"
    )


def found(*messages: str) -> list[str]:
    """The violations check_lines finds, as text."""
    return [str(v) for v in check_lines(lines(*messages)).violations]


def test_a_correct_run_has_no_violation() -> None:
    assert (
        found(
            "[TEST] New cluster of 3 servers",
            leader(0, 1),
            got(0, "5", 0, 1),
            got(1, "5", 0, 1),
            "[TEST] Crash 0",
            got(0, "6", 1, 1),  # taken by the harness before the crash ended
            leader(1, 2, ("5", 1), ("6", 1)),
            "[TEST] Restart 0",
            got(0, "5", 0, 1),  # a new incarnation delivers again from 0
            got(0, "6", 1, 1),
            got(1, "6", 1, 1),
        )
        == []
    )


def test_two_leaders_in_a_term() -> None:
    assert found(leader(0, 3), leader(2, 3), leader(2, 4)) == [
        "line 2: Election Safety: servers 0 (line 1) and 2 both became leader in term 3"
    ]


def test_different_commands_at_one_index() -> None:
    assert found(leader(0, 1), got(0, "'a'", 0, 1), got(1, "'b'", 0, 1)) == [
        "line 3: State Machine Safety: server 1 delivered command 'b' of term 1 "
        "at index 0, but server 0 delivered command 'a' of term 1 there (line 2)"
    ]


def test_same_command_of_another_term_at_one_index() -> None:
    violations = found(got(0, "7", 0, 1), got(1, "7", 0, 2))
    assert len(violations) == 1
    assert "server 1 delivered command 7 of term 2 at index 0" in violations[0]


def test_deliveries_out_of_order_or_twice() -> None:
    assert found(got(0, "5", 0, 1), got(0, "5", 0, 1), got(1, "6", 1, 1)) == [
        "line 2: Delivery order: server 0 delivered index 0, expected 1: each "
        "index in order, once per incarnation",
        "line 3: Delivery order: server 1 delivered index 1, expected 0: each "
        "index in order, once per incarnation",
    ]


def test_a_later_leader_lacking_a_committed_entry() -> None:
    assert found(
        leader(0, 1),
        got(0, "5", 0, 1),
        leader(1, 2),
        leader(2, 3, ("9", 3)),
    ) == [
        "line 3: Leader Completeness: server 1 became leader in term 2 with "
        "no entry at index 0, but command 5 of term 1 was committed there "
        "(delivered by server 0 on line 2, when the latest leader's term was 1)",
        "line 4: Leader Completeness: server 2 became leader in term 3 with "
        "command 9 of term 3 at index 0, but command 5 of term 1 was committed "
        "there (delivered by server 0 on line 2, when the latest leader's term "
        "was 1)",
    ]


def test_a_stale_leader_may_lack_an_entry_committed_in_a_later_term() -> None:
    # Server 2 won term 2 with votes given before the entry was committed
    # in term 3; it says so late. Raft allows that: it is an older leader.
    assert found(leader(0, 3), got(0, "5", 0, 3), leader(2, 2)) == []


def test_leader_lines_without_a_log_are_checked_for_election_safety_only() -> None:
    assert found(got(0, "5", 0, 1), "[1] becomes Leader; term=2") == []
    assert len(found("[0] becomes Leader; term=2", "[1] becomes Leader; term=2")) == 1


def test_commands_are_compared_as_the_log_shows_them() -> None:
    assert (
        found(
            leader(0, 1),
            got(0, "'x, y'", 0, 1),
            got(0, "(1, 2)", 1, 1),
            leader(1, 2, ("'x, y'", 1), ("(1, 2)", 1)),
        )
        == []
    )


def test_a_new_cluster_starts_afresh() -> None:
    assert (
        found(
            leader(0, 1),
            got(0, "5", 0, 1),
            "[TEST] New cluster of 3 servers",
            leader(1, 1),
            got(0, "6", 0, 1),
        )
        == []
    )


def test_tests_are_checked_separately() -> None:
    log = [
        *framed("test_one", lines(leader(0, 1), got(0, "5", 0, 1))),
        *framed("test_two", lines(leader(1, 1), got(0, "6", 0, 1))),
    ]
    verdicts = check_log(log)
    assert [(v.name, v.violations, v.ok) for v in verdicts] == [
        ("test_one", [], True),
        ("test_two", [], True),
    ]


def test_violations_carry_the_line_number_in_the_input() -> None:
    log = framed("test_x", lines(leader(0, 1), leader(1, 1)))
    (verdict,) = check_log(["pytest noise", *log])
    assert verdict.violations == [
        Violation(
            4,
            "Election Safety",
            (0, 1),
            1,
            None,
            "servers 0 (line 3) and 1 both became leader in term 1",
        )
    ]


# --- Snapshots (part6) --------------------------------------------------------


def based_leader(
    server: int, term: int, base: int, base_term: int, *log: tuple[str, int]
) -> str:
    """A part6 CM's "becomes Leader" line: its base, and its log after it."""
    entries = ", ".join(f"LogEntry(command={c}, term={t})" for c, t in log)
    return (
        f"[{server}] becomes Leader; term={term}, lastIncludedIndex={base}, "
        f"lastIncludedTerm={base_term}, log=[{entries}]"
    )


def got_snapshot(server: int, index: int, term: int) -> str:
    """The harness's line for a delivered snapshot."""
    return (
        f"[TEST] collect_commits({server}) got "
        f"SnapshotEntry(data=<40 bytes>, index={index}, term={term})"
    )


def test_a_correct_run_with_snapshots_has_no_violation() -> None:
    assert (
        found(
            "[TEST] New cluster of 3 servers",
            based_leader(0, 1, -1, -1),
            got(0, "5", 0, 1),
            got(0, "6", 1, 1),
            got(0, "7", 2, 1),
            "[TEST] Crash 0",
            "[TEST] Restart 0",
            # The new incarnation hands its service its snapshot first, then
            # the entries after it.
            got_snapshot(0, 1, 1),
            got(0, "7", 2, 1),
            # Server 1 lagged: the leader's snapshot replaces what it lacks.
            got(1, "5", 0, 1),
            got_snapshot(1, 2, 1),
            got(1, "8", 3, 1),
            # A leader whose snapshot covers up to index 1 holds the rest.
            based_leader(1, 2, 1, 1, ("7", 1), ("8", 1)),
            got(0, "8", 3, 1),
        )
        == []
    )


def test_a_leader_after_a_snapshot_is_checked_at_absolute_indices() -> None:
    assert found(
        based_leader(0, 1, -1, -1),
        got(0, "5", 0, 1),
        got(0, "6", 1, 1),
        got(0, "7", 2, 1),
        # Its log after the base (index 1) holds 9 where 7 was committed.
        based_leader(1, 2, 1, 1, ("9", 2)),
        # Its base is of another term than the entry committed there.
        based_leader(2, 3, 1, 2, ("7", 1)),
    ) == [
        "line 5: Leader Completeness: server 1 became leader in term 2 with "
        "command 9 of term 2 at index 2, but command 7 of term 1 was committed "
        "there (delivered by server 0 on line 4, when the latest leader's term "
        "was 1)",
        "line 6: Leader Completeness: server 2 became leader in term 3 with a "
        "snapshot up to index 1 of term 2, but command 6 of term 1 was "
        "committed there (delivered by server 0 on line 3, when the latest "
        "leader's term was 1)",
    ]


def test_a_snapshot_is_checked_against_the_deliveries_it_covers() -> None:
    assert found(
        got(0, "5", 0, 1),
        got(0, "6", 1, 1),
        got_snapshot(1, 1, 2),  # index 1 was of term 1
        got(0, "7", 2, 1),
        got_snapshot(0, 1, 1),  # back to index 1, after index 2
        got(0, "8", 4, 1),  # after a snapshot up to 1, index 2 is next
    ) == [
        "line 3: State Machine Safety: server 1 delivered a snapshot up to "
        "index 1 of term 2, but server 0 delivered command 6 of term 1 there "
        "(line 2)",
        "line 5: Delivery order: server 0 delivered a snapshot up to index 1 "
        "after it delivered index 2: a snapshot must bring something new",
        "line 6: Delivery order: server 0 delivered index 4, expected 2: each "
        "index in order, once per incarnation",
    ]


def test_a_planted_bug_is_ok_only_if_caught() -> None:
    planted = f"[TEST] {PLANTED_BUG}votes twice"
    caught = check_lines(lines(planted, leader(0, 1), leader(1, 1)))
    missed = check_lines(lines(planted, leader(0, 1)))
    assert (caught.planted_bug, caught.ok) == ("votes twice", True)
    assert (missed.planted_bug, missed.ok) == ("votes twice", False)
    assert not check_lines(lines(leader(0, 1), leader(1, 1))).ok


def report(log: list[str], show_all: bool = False) -> tuple[int, str]:
    """Run the command line's checks on a log: exit status and output."""
    out = io.StringIO()
    status = run_checks(parse_log(log), show_all, out)
    return status, out.getvalue()


def test_cli_reports_violations_per_test() -> None:
    log = [
        *framed("test_good", lines(leader(0, 1))),
        *framed("test_bad", lines(leader(0, 1), leader(1, 1)), "FAIL"),
        *framed(
            "test_planted",
            lines(f"[TEST] {PLANTED_BUG}votes twice", leader(0, 1), leader(1, 1)),
        ),
    ]
    status, output = report(log)
    assert status == 1
    assert output.splitlines() == [
        "test_bad: 1 violation(s)",
        "  line 6: Election Safety: servers 0 (line 5) and 1 both became leader "
        "in term 1",
        "test_planted: planted bug (votes twice) caught: 1 violation(s)",
        "  line 11: Election Safety: servers 0 (line 10) and 1 both became "
        "leader in term 1",
        "checked 3 test(s): 1 not ok; 1 of 1 planted bug(s) caught",
    ]


def test_cli_exit_status_is_zero_when_all_is_well() -> None:
    status, output = report(framed("test_good", lines(leader(0, 1))))
    assert status == 0
    assert output == "checked 1 test(s): 0 not ok; 0 of 0 planted bug(s) caught\n"


def test_cli_fails_on_a_planted_bug_that_is_not_caught() -> None:
    log = framed("test_p", lines(f"[TEST] {PLANTED_BUG}votes twice", leader(0, 1)))
    status, output = report(log)
    assert status == 1
    assert "test_p: planted bug (votes twice) MISSED: no violation" in output


def test_cli_lists_ten_violations_unless_asked_for_all() -> None:
    body = lines(*(leader(k % 2, k // 2) for k in range(24)))
    status, output = report(framed("test_many", body))
    assert status == 1
    assert len(output.splitlines()) == 1 + 10 + 2
    assert "  ... and 2 more (--all lists them)" in output
    _, everything = report(framed("test_many", body), show_all=True)
    assert len(everything.splitlines()) == 1 + 12 + 1


def test_cli_checks_an_unframed_log_as_one_test() -> None:
    status, output = report(lines(leader(0, 1), leader(1, 1)))
    assert status == 1
    assert output.startswith("unframed log: 1 violation(s)\n  line 2: ")


def test_cli_without_log_lines() -> None:
    assert report(["nothing to see"]) == (2, "no Raft log lines in the input\n")


def test_cli_reads_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "raft.log"
    log.write_text("\n".join(framed("test_x", lines(leader(0, 1)))) + "\n")
    assert main([str(log)]) == 0
    assert "checked 1 test(s)" in capsys.readouterr().out


def test_a_file_that_cannot_be_read_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # 1 would mean "a violation was found".
    for path, why in (
        (tmp_path / "nosuchfile", "No such file or directory"),
        (tmp_path, "Is a directory"),
    ):
        result = run_python("-m", "tools.raft_check", str(path))
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr == (
            f"python -m tools.raft_check: cannot read {path}: {why}\n"
        )


def test_python_m_reads_standard_input() -> None:
    log = framed("test_x", lines(leader(0, 1), leader(1, 1)))
    result = run_python("-m", "tools.raft_check", input_text="\n".join(log) + "\n")
    assert result.returncode == 1
    assert "Election Safety: servers 0 (line 2) and 1" in result.stdout


def test_bytes_that_are_not_utf8_on_standard_input_are_replaced(
    tmp_path: Path,
) -> None:
    log = framed("test_x", lines(leader(0, 1), "submitting \udcff", leader(1, 1)))
    path = tmp_path / "raft.log"
    path.write_bytes(("\n".join(log) + "\n").encode("utf-8", "surrogateescape"))
    with path.open("rb") as stdin:
        # Python's own standard input would refuse the byte.
        env = {"PYTHONIOENCODING": "utf-8:strict"}
        result = run_python("-m", "tools.raft_check", stdin=stdin, env=env)
    assert result.returncode == 1, result.stderr
    assert "line 4: Election Safety: servers 0 (line 2) and 1" in result.stdout


def test_key_value_lines_are_not_raft_lines() -> None:
    verdict = check_lines(
        [
            "12:00:00.000000 [0] becomes Leader; term=1, log=[]",
            "12:00:00.000100 [kv 1] becomes Leader; term=1, log=[]",
            "12:00:00.000200 [client 1] collect_commits(0) got CommitEntry("
            "command=1, index=5, term=1)",
        ]
    )
    assert verdict.violations == []
