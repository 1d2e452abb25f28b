"""The HTML pages: what a reader sees, read back from the written files."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from tools.raft_testlog_viz.assets import MESSAGE_COLOURS, asset
from tools.raft_testlog_viz.cluster import build_history
from tools.raft_testlog_viz.pages import (
    CHUNK_ROWS,
    STATE_CLASS,
    page_filenames,
    render_page,
    write_site,
)
from tools.raft_testlog_viz.parse import RunLog, TestLog, parse_log
from tools.raft_testlog_viz.timeline import build_timeline


class Cell:
    """A table cell read back from a page."""

    def __init__(self, attrs: dict[str, str | None]) -> None:
        self.classes = (attrs.get("class") or "").split()
        self.title = attrs.get("title")
        self.text = ""


class PageReader(HTMLParser):
    """Collects the timeline's header and rows, and the overview's lanes."""

    def __init__(self) -> None:
        super().__init__()
        self.heads: list[str] = []
        self.rows: list[tuple[list[str], list[Cell]]] = []
        self.lanes: list[str] = []
        self.chunks = 0
        self.in_th = False
        self.cell: Cell | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("th", "td", "tr"):
            # Pages leave out end tags HTML lets them omit: a new cell or
            # row ends the last one.
            self.end_cell()
        if tag == "th":
            self.in_th = True
            self.heads.append("")
        elif tag == "tr" and a.get("class"):
            self.rows.append(((a["class"] or "").split(), []))
        elif tag == "td" and self.rows:
            self.cell = Cell(a)
            self.rows[-1][1].append(self.cell)
        elif tag == "div" and a.get("class") == "chunk":
            self.chunks += 1
        elif tag == "div" and (a.get("id") or "").startswith("lane"):
            self.lanes.append(a["id"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td", "tr", "thead", "tbody", "table"):
            self.end_cell()

    def end_cell(self) -> None:
        if self.cell is not None:
            # The line break between rows is not the cell's text.
            self.cell.text = self.cell.text.rstrip("\n")
        self.in_th = False
        self.cell = None

    def handle_data(self, data: str) -> None:
        if self.in_th:
            self.heads[-1] += data
        elif self.cell is not None:
            self.cell.text += data


def read_page(html: str) -> PageReader:
    """The parts of a page that the tests look at."""
    reader = PageReader()
    reader.feed(html)
    return reader


def one_test(*lines: str, name: str = "test_a", status: str = "PASS") -> TestLog:
    """A test made of the given log lines."""
    run = parse_log([f"=== RUN {name}", *lines, f"--- {status}: {name} (1.00s)"])
    return run.tests[0]


def test_real_site_has_a_page_per_test_and_an_index(
    real_run: RunLog, tmp_path: Path
) -> None:
    site = write_site(real_run, tmp_path / "out")
    assert site.index == (tmp_path / "out" / "index.html").resolve()
    assert [p.path.name for p in site.pages] == [
        f"{t.name}.html" for t in real_run.tests
    ]
    index = site.index.read_text(encoding="utf-8")
    for page in site.pages:
        assert page.path.exists()
        assert page.url == page.path.as_uri()
        assert f"href='{page.path.name}'" in index
        # The stage is the test's folder: pages of two stages differ.
        assert f"><span class=stage>part1 ·</span> {page.test.name}</a>" in index
    assert "<title>Raft test run (part1) — PASS</title>" in index
    assert "<span class='status PASS'>PASS</span></h1>" in index
    assert index.count("<span class='status PASS'>PASS</span><td>") == 2


def test_real_page_rows_columns_and_colours(real_run: RunLog) -> None:
    test = real_run.tests[1]
    timeline = build_timeline(test)
    html = render_page(timeline)
    page = read_page(html)
    assert f"<title>part1 · {test.name} — PASS</title>" in html
    assert f"<h1><span class=stage>part1 ·</span> {test.name} <span" in html
    assert page.heads == ["ms", "TEST", "0", "1", "2"]
    assert len(page.rows) == len(test.entries)
    assert page.lanes == ["lane0", "lane1", "lane2"]
    for (classes, cells), row in zip(page.rows, timeline.rows, strict=True):
        entry = row.entry
        assert classes[0] == ("sT" if entry.server is None else f"s{entry.server}")
        assert ("hb" in classes) == row.heartbeat
        assert float(cells[0].text) == row.ms
        assert cells[0].title == entry.wall
        # Every server cell is coloured by that server's state at the row.
        assert [c.classes[0] for c in cells[2:]] == [
            STATE_CLASS[state] for state in row.states
        ]
        logged = [c.text for c in cells[1:] if c.text]
        assert len(logged) == 1
        assert logged[0].endswith(entry.message)
        if row.term_change is not None:
            old, new = row.term_change
            cell = cells[2 + timeline.servers.index(entry.server or 0)]
            assert "tc" in cell.classes
            assert cell.text.startswith(f"{old}→{new}")
    total = len(test.entries)
    assert f"<span id=count>{total} of {total} rows shown</span>" in html
    assert html.count("class='mk k-disconnect'") == 1


def test_overview_lines_mark_only_actions_that_change_the_cluster() -> None:
    test = one_test(
        "12:00:00.000000 [TEST] Disconnect 1",
        "12:00:00.050000 [TEST] submitting 7 to 0",
        "12:00:00.100000 [TEST] Crash 2",
        "12:00:00.200000 [0] becomes Leader; term=1",
    )
    html = render_page(build_timeline(test))
    marks = re.findall(r"<i class='mk k-(\w+)' style='left:([\d.]+)%'", html)
    assert marks == [("disconnect", "0.000"), ("submit", "25.000"), ("crash", "50.000")]
    guides = html.split("<div id=guides>")[1].split("</div>")[0]
    assert re.findall(r"k-(\w+)", guides) == ["disconnect", "crash"]


def test_page_is_self_contained(real_run: RunLog) -> None:
    html = render_page(build_timeline(real_run.tests[1]))
    assert not re.search(r"\b(src|href)\s*=\s*['\"]?(https?:)?//", html)
    for outside in ("<link", "@import", "url(", "@font-face", "<script src"):
        assert outside not in html
    # The page's own scripts: the cluster panel's and the page's.
    assert html.count("<script>") == 2


def test_log_text_is_escaped() -> None:
    test = one_test(
        "12:00:00.000000 [0] <script>window.pwned = 1</script> & <b>",
        "12:00:00.100000 [TEST] <img src=x onerror=alert(1)>",
        name="test_<i>odd</i>",
    )
    html = render_page(build_timeline(test))
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt; &amp; &lt;b&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>window" not in html
    assert "<img" not in html
    assert "<i>odd" not in html
    assert "test_&lt;i&gt;odd&lt;/i&gt;" in html
    # The reader sees the original text.
    page = read_page(html)
    assert page.rows[0][1][2].text.endswith("<script>window.pwned = 1</script> & <b>")


def test_long_tests_come_in_chunks() -> None:
    lines = [
        f"12:00:{i // 1000:02d}.{i % 1000:03d}000 [{i % 3}] line {i}"
        for i in range(2 * CHUNK_ROWS + 1)
    ]
    page = read_page(render_page(build_timeline(one_test(*lines))))
    assert page.chunks == math.ceil(len(lines) / CHUNK_ROWS) == 3
    assert [cells[2 + i % 3].text for i, (_, cells) in enumerate(page.rows)] == [
        f"0line {i}" for i in range(len(lines))
    ]


def test_page_of_a_failed_test_with_no_raft_lines_and_a_malformed_one() -> None:
    test = one_test("12:00:00.000000 [x] what", "just pytest output", status="FAIL")
    html = render_page(build_timeline(test))
    assert "<title>test_a — FAIL</title>" in html
    assert "<span class='status FAIL'>" in html
    assert "This test logged no Raft lines." in html
    assert "id=overview" not in html
    assert "<summary>1 malformed line skipped</summary>" in html
    assert "line 2 (source is none of N, TEST, kv N, client N)" in html
    assert read_page(html).rows == []


def test_page_filenames_are_safe_and_distinct() -> None:
    run = parse_log(
        [
            "=== RUN test_a",
            "=== RUN test_a",
            "=== RUN index",
            "=== RUN test_b[3-nodes/slow]",
            "=== RUN ../../etc",
        ]
    )
    assert page_filenames(run.tests) == [
        "test_a.html",
        "test_a_2.html",
        "index_2.html",
        "test_b[3-nodes_slow].html",
        ".._.._etc.html",
    ]


def page_data(html: str) -> dict[str, Any]:
    """The JSON a page's script draws from."""
    found = re.search(r"<script type=application/json id=data>(.*?)</script>", html)
    assert found is not None
    data: dict[str, Any] = json.loads(found[1])
    return data


def test_page_data_holds_the_messages_and_the_cluster_history(
    part3_run: RunLog,
) -> None:
    test = next(t for t in part3_run.tests if t.name == "test_crash_after_submit")
    timeline = build_timeline(test)
    history = build_history(timeline)
    html = render_page(timeline, history)
    data = page_data(html)
    assert data["servers"] == timeline.servers == [0, 1, 2]
    assert data["hasLog"] is True
    assert data["chunk"] == CHUNK_ROWS
    rows = data["rows"]
    assert rows["ms"] == [row.ms for row in timeline.rows]
    assert rows["server"] == [
        -1 if r.entry.server is None else r.entry.server for r in timeline.rows
    ]
    assert [int(f) & 1 for f in rows["flags"]] == [r.heartbeat for r in timeline.rows]
    rpc = [int(f) >> 1 for f in rows["flags"]]
    assert rpc == [r.entry.message.startswith("rpc ") for r in timeline.rows]
    messages = timeline.messages.messages
    assert [m[0] for m in data["msgs"]] == [m.id for m in messages]
    for sent, m in zip(data["msgs"], messages, strict=True):
        assert sent[1:3] == [m.sender, m.receiver]
        assert sent[4:8] == [m.send_row, m.deliver_row, m.drop_row, m.end_row]
    # The operations, replayed as the page's script does, give the history.
    last = len(timeline.rows) - 1
    for i, ops in enumerate(data["ops"]):
        server = timeline.servers[i]
        log: list[int | None] = []
        for op in ops:
            if op[1] == "l":
                log[op[2] :] = op[3]
        assert log == history.at(last)[server].log
    assert data["cmds"] == {f"{i}:{t}": c for (i, t), c in history.commands.items()}
    assert "<div id=moment>" in html
    assert "<canvas id=arrows></canvas>" in html


def test_page_data_is_escaped_inside_its_script_tag() -> None:
    nasty = "</script><script>window.pwned = 1</script><!-- & >"
    test = one_test(
        "12:00:00.000000 [0] becomes Leader; term=1, log=[]",
        f"12:00:00.000100 [0] Submit received by Leader: {nasty}",
        "12:00:00.000200 [0] ... log index=0",
    )
    html = render_page(build_timeline(test))
    found = re.search(r"<script type=application/json id=data>(.*?)</script>", html)
    assert found is not None
    assert not set("<>&") & set(found[1])
    assert page_data(html)["cmds"] == {"0:1": nasty}
    assert html.count("<script>") == 2


def test_key_value_lines_on_a_page() -> None:
    test = one_test(
        "12:00:00.000000 [kv 1] applied <put>",
        "12:00:00.000100 [client 7] put x -> OK",
    )
    page = read_page(render_page(build_timeline(test)))
    kv, client = page.rows
    assert kv[0][0] == "s1"
    assert kv[1][2].text == "0kv applied <put>"
    assert client[0][0] == "sT"
    assert client[1][1].text == "client 7 put x -> OK"


def test_a_part1_page_shows_no_log() -> None:
    test = one_test(
        "12:00:00.000000 [0] becomes Candidate (currentTerm=1)",
        "12:00:00.001000 [0] becomes Leader; term=1",
    )
    data = page_data(render_page(build_timeline(test)))
    assert data["hasLog"] is False
    assert data["ops"] == [[[0, "s", "C", 1], [1, "s", "L", 1]]]


CONFLICT = (
    "12:00:00.000000 [1] becomes Leader; term=1, log=[]",
    "12:00:00.000100 [1] Submit received by Leader: a",
    "12:00:00.000100 [1] ... log index=0",
    "12:00:00.000300 [0] AppendEntries: AppendEntriesArgs(term=2, leader_id=2, "
    "prev_log_index=-1, prev_log_term=-1, entries=[LogEntry(command='b', "
    "term=2)], leader_commit=0)",
    "12:00:00.000300 [0] ... inserting entries from index 0",
    "12:00:00.000300 [0] ... setting commitIndex=0",
    "12:00:00.000400 [1] AppendEntries: AppendEntriesArgs(term=2, leader_id=2, "
    "prev_log_index=-1, prev_log_term=-1, entries=[LogEntry(command='b', "
    "term=2)], leader_commit=0)",
    "12:00:00.000400 [1] ... inserting entries from index 0",
)


def test_a_page_says_what_the_test_checked_and_links_to_it() -> None:
    test = one_test(
        "12:00:00.000000 [TEST] New cluster of 3 servers",
        "12:00:00.100000 [0] becomes Leader; term=1, log=[]",
        "12:00:00.200000 [TEST] check_single_leader -> 0 (term 1)",
        "12:00:00.300000 [TEST] Disconnect 0",
        "12:00:00.400000 [TEST] wait_until('a <new> leader'): ok",
        "12:00:00.500000 [TEST] collect_commits(1) got CommitEntry(command=1, "
        "index=0, term=2)",
    )
    html = render_page(build_timeline(test))
    assert (
        "<details class=checks open><summary>What it checked: 2 checks, 0 failed"
        in html
    )
    assert (
        "<li><a href=#r2 data-row=2>200.000 ms</a> "
        "<code>check_single_leader -&gt; 0 (term 1)</code>"
    ) in html
    assert "<code>wait_until('a &lt;new&gt; leader'): ok</code>" in html
    assert "<tr class=sT id=r2>" in html
    assert "<tr class=sT id=r4>" in html
    # The checks are marks of their own; a delivery is no action.
    marks = re.findall(r"<i class='mk k-(\w+)'", html)
    assert marks == ["other", "check", "disconnect", "check"]
    data = page_data(html)
    # The page opens at the first check (the first fault, else action).
    assert data["open"] == 2
    assert data["jumps"]["test"] == [0, 2, 3, 4]
    assert "id=why" not in html


def test_a_failed_test_says_why_and_links_to_its_first_violation() -> None:
    test = one_test(
        "12:00:00.000000 [0] becomes Leader; term=1, log=[]",
        "12:00:00.100000 [TEST] VIOLATION Election Safety: servers 0 and 1 both "
        "became leader in term 1",
        "12:00:00.200000 [TEST] check failed: no <single> leader",
        "12:00:00.300000 [TEST] VIOLATION Delivery order: twice",
        status="FAIL",
    )
    test.reason = "AssertionError: no <single> leader"
    html = render_page(build_timeline(test))
    why = html.split("<div id=why>")[1].split("</div>")[0]
    assert why.startswith("<b>Why it failed</b><pre>AssertionError: no &lt;single&gt;")
    assert (
        "<p>Safety violation, first of 2 (marked red on the strip): "
        "<a href=#r1 data-row=1>100.000 ms</a> <code>VIOLATION Election Safety: "
    ) in why
    assert "<p>Failed check: <a href=#r2 data-row=2>200.000 ms</a>" in why
    assert "<tr class='sT bad' id=r1>" in html
    assert "<tr class='sT bad'>" in html  # the second violation: no link
    guides = html.split("<div id=guides>")[1].split("</div>")[0]
    assert re.findall(r"k-(\w+)", guides) == ["violation", "failed", "violation"]
    assert page_data(html)["open"] == 1


def test_why_a_test_failed_when_the_log_does_not_say() -> None:
    failed = render_page(build_timeline(one_test(status="FAIL")))
    assert "<p>The log does not say (pytest prints it under FAILURES).</p>" in failed
    cut_off = parse_log(["=== RUN test_a", "12:00:00.000000 [0] hello"]).tests[0]
    assert "<p>The log ends before the test does.</p>" in render_page(
        build_timeline(cut_off)
    )


def test_a_planted_bug_s_violations_are_shown_as_expected() -> None:
    test = one_test(
        "12:00:00.000000 [TEST] planted bug: votes twice",
        "12:00:00.100000 [TEST] VIOLATION Election Safety: servers 0 and 1 both "
        "became leader in term 1",
    )
    why = render_page(build_timeline(test)).split("<div id=why>")[1]
    assert why.startswith("<b>Safety violations (expected: the test plants a bug)</b>")


def test_a_truncation_is_marked_in_the_table_and_on_the_strip() -> None:
    timeline = build_timeline(one_test(*CONFLICT))
    history = build_history(timeline)
    html = render_page(timeline, history)
    assert [(t.row, t.server, t.start) for t in history.truncations] == [(7, 1, 0)]
    assert "<tr class='s1 cut'>" in html
    assert html.count(" cut'>") == 1
    lane = html.split("id=lane1>")[1].split("</div></div>")[0]
    assert "title='0.4 ms: server 1 wrote over its entries from index 0 on'" in lane
    data = page_data(html)
    assert data["jumps"]["cut"] == [7]
    # Server 0's commit makes index 0, of term 2, known to be committed.
    assert data["committed"] == [[5, 2]]
    assert data["jumps"]["commit"] == [5]
    assert data["jumps"]["state"] == []


def test_the_frames_id_gives_the_stage_on_the_page_and_the_index(
    tmp_path: Path,
) -> None:
    run = parse_log(
        [
            "=== RUN test_a",
            "    tests/part2/test_raft.py::test_a",
            "12:00:00.000000 [0] becomes Leader; term=1, log=[]",
            "--- PASS: test_a (0.10s)",
            "=== RUN test_a",
            "    tests/part3/test_raft.py::test_a",
            "--- PASS: test_a (0.10s)",
        ]
    )
    site = write_site(run, tmp_path)
    first, second = (page.path.read_text() for page in site.pages)
    assert "<title>part2 · test_a — PASS</title>" in first
    assert "<title>part3 · test_a — PASS</title>" in second
    index = site.index.read_text()
    assert "<title>Raft test run (part2, part3) — PASS</title>" in index
    assert index.count("<span class=stage>") == 2


def test_the_page_s_scripts_and_style_come_from_the_package_s_files() -> None:
    html = render_page(build_timeline(one_test("12:00:00.000000 [0] hi")))
    for name in ("panel.js", "page.js", "page.css", "panel.css"):
        text = asset(name)
        assert len(text) > 1000
        assert text in html
        # Inline, nothing in them may end their element early.
        assert "</script" not in text
        assert "</style" not in text


def test_a_log_without_test_lines_opens_before_its_servers_stop() -> None:
    test = one_test(
        "12:00:00.000000 [0] becomes Leader; term=1, log=[]",
        "12:00:00.100000 [1] becomes Dead",  # crashed by hand
        "12:00:00.200000 [1] becomes Follower; term=1",  # and back
        "12:00:00.300000 [0] leader sends heartbeats",
        "12:00:00.400000 [0] becomes Dead",  # Ctrl-C: all of them stop
        "12:00:00.400100 [1] becomes Dead",
    )
    assert page_data(render_page(build_timeline(test)))["open"] == 3


def test_each_kind_of_message_has_its_colour() -> None:
    args = {
        "RequestVote": "RequestVoteArgs(term=2)",
        "AppendEntries": "AppendEntriesArgs(term=2, entries=[LogEntry(1, 2)])",
        "heartbeat": "AppendEntriesArgs(term=2, entries=[])",
        "InstallSnapshot": "InstallSnapshotArgs(term=2, data=<9 bytes>)",
        "other": "Ping()",
    }
    test = one_test(
        *(
            f"12:00:00.00{k}000 [0] rpc 0.{k} send to 1: {text}"
            for k, text in enumerate(args.values())
        )
    )
    html = render_page(build_timeline(test))
    data = page_data(html)
    # The page draws a message in the colour its kind's code picks.
    drawn = [data["colours"][m[3]] for m in data["msgs"]]
    assert drawn == [MESSAGE_COLOURS[kind] for kind in args]
    assert len(set(drawn)) == len(args)
    # ... and the legend says which is which.
    for kind, colour in MESSAGE_COLOURS.items():
        assert f"<i class=arrow style=background:{colour}></i>{kind}" in html
