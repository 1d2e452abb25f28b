"""HTML pages: one per test, and an index of the run.

A test's page says at the top what the test is (its stage, name, status and
docstring), why it failed if it did, and what it checked; then an overview
strip, the cluster at a chosen moment (each server's state, term and log),
and the timeline table with the messages drawn beside it as a space-time
diagram.

Pages are self-contained (style, script and data inline) and every piece of
log text is HTML-escaped; the data the script draws from is JSON in which
``<``, ``>`` and ``&`` are escaped too. Rows are plain table rows, so a page
still shows its table with scripts off; the script adds the controls, the
cluster panel and the diagram. A page is built as one list of strings joined
at the end: with tens of thousands of rows that is what keeps rendering a
whole run to a few seconds.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import quote

from .assets import MARKER_COLOURS, MESSAGE_COLOURS, page_scripts, page_style
from .cluster import (
    BaseOp,
    CommitOp,
    History,
    LogOp,
    Op,
    PeerOp,
    StateOp,
    Truncation,
    build_history,
)
from .messages import LOST, REPLY, Message
from .parse import Entry, RunLog, TestLog
from .timeline import Marker, Row, Segment, State, Timeline, build_timeline

DEFAULT_OUTDIR = Path(tempfile.gettempdir()) / "raftviz"
"""Where pages go unless told otherwise: ``raftviz`` in the temp dir."""

STATE_CLASS = {
    State.FOLLOWER: "F",
    State.CANDIDATE: "C",
    State.LEADER: "L",
    State.DEAD: "D",
}
"""The CSS class of each state (short: it is written once per cell)."""

# The empty cell of a server in each state.
_EMPTY_CELL = {state: f"<td class={cls}>" for state, cls in STATE_CLASS.items()}
CHUNK_ROWS = 100
"""Rows per chunk of the timeline table (see ``_append_table``)."""

# Time and TEST get fixed widths; the servers share the rest.
_COLUMNS = "<colgroup><col style=width:7.5em><col style=width:11%></colgroup>"
_CHUNK_START = f"<div class=chunk><table class=log>{_COLUMNS}<tbody>\n"
_CHUNK_END = "</tbody></table></div>\n"
_GUIDED = frozenset(
    {"disconnect", "reconnect", "crash", "restart", "failed", "violation"}
)
_BAD = frozenset({"failed", "violation"})
_OPENING = _GUIDED | {"check"}
MAX_CHECKS_LISTED = 100
"""How many checks the list at the top of a page links to."""
_UNSAFE_FILENAME = re.compile(r"[^\w.\[\]-]")


@dataclass(frozen=True, slots=True)
class Page:
    """A written page of one test."""

    test: TestLog
    path: Path

    @property
    def url(self) -> str:
        """The page's ``file://`` URL."""
        return self.path.as_uri()


@dataclass(frozen=True, slots=True)
class Site:
    """The pages of a run and their index."""

    pages: list[Page]
    index: Path


def write_site(run: RunLog, outdir: Path) -> Site:
    """Write one page per test of ``run`` and ``index.html`` into ``outdir``."""
    outdir = outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    pages: list[Page] = []
    for test, filename in zip(run.tests, page_filenames(run.tests), strict=True):
        path = outdir / filename
        timeline = build_timeline(test)
        html = render_page(timeline, build_history(timeline))
        path.write_text(html, encoding="utf-8")
        pages.append(Page(test, path))
    index = outdir / "index.html"
    index.write_text(render_index(run, pages), encoding="utf-8")
    return Site(pages, index)


def page_filenames(tests: list[TestLog]) -> list[str]:
    """A distinct, file-system-safe file name for each test's page.

    A name seen again (the same test run twice in one log) gets ``_2``,
    ``_3``...; no page may be called ``index.html``.
    """
    used = {"index.html"}
    names: list[str] = []
    for test in tests:
        stem = _UNSAFE_FILENAME.sub("_", test.name) or "test"
        name, n = f"{stem}.html", 1
        while name in used:
            n += 1
            name = f"{stem}_{n}.html"
        used.add(name)
        names.append(name)
    return names


def format_duration(test: TestLog) -> str:
    """The test's duration as its frame gave it, e.g. ``0.87s``."""
    return "-" if test.duration is None else f"{test.duration:.2f}s"


def render_page(timeline: Timeline, history: History | None = None) -> str:
    """The HTML page of one test (``history``: its cluster history, built
    from ``timeline`` if not given)."""
    if history is None:
        history = build_history(timeline)
    test = timeline.test
    checks = [m for m in timeline.markers if m.kind in ("check", "failed")]
    bad = [m for m in timeline.markers if m.kind in _BAD]
    linked = {m.row for m in checks[:MAX_CHECKS_LISTED]} | {m.row for m in bad[:1]}
    parts = [
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>",
        f"<title>{escape(f'{test.title} — {test.status}')}</title>",
        f"<style>{page_style()}{_column_rules(timeline)}</style></head><body>\n",
        f"<h1>{_title(test)} <span class='status {escape(test.status)}'>",
        f"{escape(test.status)}</span></h1>\n",
    ]
    if test.doc:
        parts.append(f"<p class=doc>{escape(test.doc)}</p>\n")
    parts += [
        _why(timeline, bad),
        _meta(timeline),
        _checks(checks),
        _legend(),
        _notes(timeline),
    ]
    if timeline.rows:
        parts.append(_overview(timeline, history.truncations))
    else:
        parts.append("<p>This test logged no Raft lines.</p>\n")
    parts.append(_controls(timeline))
    _append_table(parts, timeline, history, linked)
    parts.append("<div id=tip hidden></div>\n")
    parts.append(
        f"<script type=application/json id=data>{_data(timeline, history)}</script>\n"
    )
    parts += [f"<script>{script}</script>\n" for script in page_scripts()]
    parts.append("</body></html>\n")
    return "".join(parts)


def _title(test: TestLog) -> str:
    stage = f"<span class=stage>{escape(test.stage)} ·</span> " if test.stage else ""
    return stage + escape(test.name)


def _row_link(marker: Marker) -> str:
    """A link to a marker's row, which the page's script makes the moment
    (the row has the matching id, so it works without the script too)."""
    return (
        f"<a href=#r{marker.row} data-row={marker.row}>{marker.ms:.3f} ms</a> "
        f"<code>{escape(marker.text, quote=False)}</code>"
    )


def _why(timeline: Timeline, bad: list[Marker]) -> str:
    """Why the test failed: the failure's message, the first safety
    violation and the first failed check; and for a test that passed with
    safety violations (a planted bug), those."""
    test = timeline.test
    violations = [m for m in bad if m.kind == "violation"]
    if not test.failed and not violations:
        return ""
    parts = ["<div id=why>"]
    if test.failed:
        parts.append("<b>Why it failed</b>")
        if test.reason:
            parts.append(f"<pre>{escape(test.reason, quote=False)}</pre>")
        elif test.status == "FAIL":
            parts.append(
                "<p>The log does not say (pytest prints it under FAILURES).</p>"
            )
        else:
            parts.append("<p>The log ends before the test does.</p>")
    else:
        planted = any(m.text.startswith("planted bug: ") for m in timeline.markers)
        expected = " (expected: the test plants a bug)" if planted else ""
        parts.append(f"<b>Safety violations{expected}</b>")
    if violations:
        count = len(violations)
        more = f", first of {count}" if count > 1 else ""
        parts.append(
            f"<p>Safety violation{more} (marked red on the strip): "
            f"{_row_link(violations[0])}</p>"
        )
    failed = next((m for m in bad if m.kind == "failed"), None)
    if failed is not None:
        parts.append(f"<p>Failed check: {_row_link(failed)}</p>")
    parts.append("</div>\n")
    return "".join(parts)


def _checks(checks: list[Marker]) -> str:
    """The list of what the test checked, each a link to its row."""
    if not checks:
        return ""
    failed = sum(m.kind == "failed" for m in checks)
    listed = "".join(f"<li>{_row_link(m)}" for m in checks[:MAX_CHECKS_LISTED])
    more = len(checks) - MAX_CHECKS_LISTED
    if more > 0:
        listed += f"<li>... and {more} more (the next-TEST-action button finds them)"
    opened = " open" if len(checks) <= 10 else ""
    return (
        f"<details class=checks{opened}><summary>What it checked: "
        f"{len(checks)} check{'s' if len(checks) > 1 else ''}, {failed} failed"
        f"</summary><ol>{listed}</ol></details>\n"
    )


DIAGRAM_WIDTH = 36
"""Pixels of the messages diagram per server (at least 120 in all)."""


def _column_rules(timeline: Timeline) -> str:
    # Hiding server s hides its column, and its line in the messages
    # diagram: class x<s> on #timeline. Columns are time, TEST, then the
    # servers, so server i is the (i + 3)rd child.
    width = max(120, DIAGRAM_WIDTH * len(timeline.servers))
    return f"#msgs,#mhead{{width:{width}px}}" + "".join(
        f"#timeline.x{server} tr>:nth-child({i + 3}),"
        f"#timeline.x{server} #mhead>:nth-child({i + 1}){{display:none}}"
        for i, server in enumerate(timeline.servers)
    )


def _meta(timeline: Timeline) -> str:
    test = timeline.test
    duration = (
        "" if test.duration is None else f"pytest duration {format_duration(test)} · "
    )
    return (
        f"<p class=meta>{duration}"
        f"{len(timeline.servers)} servers · {len(timeline.rows)} log lines · "
        f"log span {timeline.span_ms:.1f} ms · "
        "<a href=index.html>all tests of the run</a></p>\n"
    )


def _legend() -> str:
    states = "".join(
        f"<span class={cls}>{state}</span>" for state, cls in STATE_CLASS.items()
    )
    marks = "".join(f"<i class='key k-{kind}'></i>{kind}" for kind in MARKER_COLOURS)
    arrows = "".join(
        f"<i class=arrow style=background:{colour}></i>{kind}"
        for kind, colour in MESSAGE_COLOURS.items()
    )
    return (
        f"<p class=legend>States: {states} · TEST lines:{marks} · "
        "<b>n</b> = the server's term, <b style=color:#c92a2a>a→b</b> = "
        "term change · time in ms since the test's first line (hover for "
        f"the wall clock)<br>Messages:{arrows} · ✕ lost · ⊣ not connected · "
        "dashed: still in flight when the test ended · "
        "<b style=color:#c92a2a>▼</b>, ✂: a follower wrote over entries of "
        "its log</p>\n"
    )


def _notes(timeline: Timeline) -> str:
    """What the page leaves out: malformed lines, message lines it could not
    pair, lines logged after the test ended."""
    test, messages = timeline.test, timeline.messages
    parts: list[str] = []
    if test.malformed:
        items = "".join(
            f"<li>line {m.lineno} ({escape(m.reason)}): <code>{escape(m.text)}</code>"
            for m in test.malformed
        )
        count = len(test.malformed)
        plural = "s" if count > 1 else ""
        parts.append(
            f"<details><summary>{count} malformed line{plural} skipped</summary>"
            f"<ul>{items}</ul></details>\n"
        )
    unpaired = [
        (row, "its message was not sent in this test") for row in messages.orphans
    ] + messages.malformed
    if unpaired:
        items = "".join(
            f"<li>line {timeline.rows[row].entry.lineno} ({escape(why)}): "
            f"<code>{escape(timeline.rows[row].entry.message)}</code>"
            for row, why in sorted(unpaired)
        )
        count = len(unpaired)
        plural = "s" if count > 1 else ""
        parts.append(
            f"<details><summary>{count} message line{plural} not drawn</summary>"
            f"<ul>{items}</ul></details>\n"
        )
    if test.late:
        items = "".join(
            f"<li>line {e.lineno}: <code>{escape(_logged(e))}</code>" for e in test.late
        )
        count = len(test.late)
        plural = "s were" if count > 1 else " was"
        parts.append(
            f"<details><summary>{count} line{plural} logged after the test "
            "ended (a thread of its servers finishing), not drawn</summary>"
            f"<ul>{items}</ul></details>\n"
        )
    return "".join(parts)


def _logged(entry: Entry) -> str:
    """An entry as its line showed it, from its ``[ID]`` on."""
    who = "TEST" if entry.server is None else str(entry.server)
    if entry.source == "kv":
        who = f"kv {entry.server}"
    elif entry.source:
        who = entry.source
    return f"{entry.wall} [{who}] {entry.message}"


def _overview(timeline: Timeline, truncations: list[Truncation]) -> str:
    span = timeline.span_ms or 1.0  # a one-line test still gets a strip
    lanes: dict[int, list[str]] = {server: [] for server in timeline.servers}
    for segment in timeline.segments:
        lanes[segment.server].append(_segment(segment, span))
    for cut in truncations:
        ms = timeline.rows[cut.row].ms
        tip = (
            f"{ms:.1f} ms: server {cut.server} wrote over its entries from "
            f"index {cut.start} on"
        )
        lanes[cut.server].append(f"<s style='left:{_pct(ms, span)}' title='{tip}'></s>")
    parts = [f"<div id=overview data-span={span:.3f} title='click: go to that time'>"]
    for server, segments in lanes.items():
        parts.append(
            f"<div class=lane id=lane{server}><span>{server}</span>"
            f"<div class=bar>{''.join(segments)}</div></div>"
        )
    marks = "".join(_marker(marker, span) for marker in timeline.markers)
    parts.append(
        f"<div class='lane marks'><span>TEST</span><div class=bar>{marks}</div></div>"
    )
    axis = _ticks(span)
    parts.append(
        f"<div class='lane axis'><span>ms</span><div class=bar>{axis}</div></div>"
    )
    # Lines across the servers' bars only for actions that change the
    # cluster, and for failures: a chaos test submits thousands of commands,
    # whose lines would hide the states.
    guides = "".join(
        f"<i class=k-{m.kind} style='left:{_pct(m.ms, span)}'></i>"
        for m in timeline.markers
        if m.kind in _GUIDED
    )
    parts.append(f"<div id=guides>{guides}</div></div>\n")
    return "".join(parts)


def _pct(ms: float, span: float) -> str:
    return f"{100 * ms / span:.3f}%"


def _segment(segment: Segment, span: float) -> str:
    tip = (
        f"server {segment.server}: {segment.state}, term {segment.term}, "
        f"{segment.start_ms:.1f} to {segment.end_ms:.1f} ms"
    )
    return (
        f"<i class={STATE_CLASS[segment.state]} style='left:"
        f"{_pct(segment.start_ms, span)};width:"
        f"{_pct(segment.end_ms - segment.start_ms, span)}' title='{tip}'>"
        f"{segment.term}</i>"
    )


def _marker(marker: Marker, span: float) -> str:
    tip = escape(f"{marker.ms:.1f} ms: {marker.text}")
    return (
        f"<i class='mk k-{marker.kind}' style='left:{_pct(marker.ms, span)}' "
        f"title='{tip}'></i>"
    )


def _ticks(span: float) -> str:
    # A round step (1, 2 or 5 times a power of ten) giving at most 10 ticks.
    magnitude = 10 ** math.floor(math.log10(span / 10)) if span > 10 else 1.0
    step = next(m * magnitude for m in (1, 2, 5, 10) if span / (m * magnitude) <= 10)
    return "".join(
        f"<u style='left:{_pct(k * step, span)}'>{k * step:g}</u>"
        for k in range(int(span // step) + 1)
    )


def _controls(timeline: Timeline) -> str:
    boxes = "".join(
        f"<label><input type=checkbox data-server={s} checked> server {s}</label>"
        for s in timeline.servers
    )
    total = len(timeline.rows)
    return (
        f"<div id=controls>{boxes}"
        "<label><input type=checkbox id=hb> hide heartbeats</label>"
        "<label title='the lines that the messages diagram draws'>"
        "<input type=checkbox id=rp> hide rpc lines</label>"
        "<label>filter <input type=search id=filter "
        "placeholder='text in the line'></label>"
        f"<span id=count>{total} of {total} rows shown</span></div>\n"
    )


JUMPS = {
    "test": "TEST action",
    "state": "state change",
    "commit": "commit",
    "cut": "overwrite",
}
"""The kinds of row the jump buttons go to: a TEST line (other than a
delivery), a change of some server's state or term, an entry newly known
to be committed, a follower writing over entries of its log."""


def _moment(timeline: Timeline, history: History) -> str:
    # The slider (over the test's time), the step and jump buttons, and the
    # cluster panel, which the script fills for the moment chosen.
    if not timeline.rows:
        return ""
    span = f"{timeline.span_ms:.3f}"
    start = f"{timeline.rows[opening_row(timeline)].ms:.3f}"
    kinds = JUMPS if history.has_log else {"test": JUMPS["test"], "state": "state"}
    jumps = "".join(
        f"<span><button data-jump={kind} data-step=-1 title='previous {what}'>"
        f"&#9664;</button> {what} <button data-jump={kind} data-step=1 "
        f"title='next {what}'>&#9654;</button></span>"
        for kind, what in kinds.items()
    )
    commands = (
        "<label><input type=checkbox id=cmds> commands in the log boxes</label>"
        if history.has_log
        else "<input type=checkbox id=cmds hidden>"
    )
    return (
        "<div id=moment><button id=prev title='previous line'>&#9664;</button>"
        f"<input type=range id=slider min=0 max={span} step=0.001 value={start} "
        "aria-label='moment of the test'>"
        "<button id=next title='next line'>&#9654;</button> <span id=at></span></div>"
        f"<div id=jumps>go to the previous or next: {jumps}{commands}</div>"
        "<div id=cluster></div>\n"
    )


def opening_row(timeline: Timeline) -> int:
    """The row a page opens at: the test's first check or fault (something
    happened by then), else its first action (a TEST line after the
    cluster starts). Without one (a log of a cluster run by hand), the last
    row before the servers stop, one after the other, at the end of the log
    (-1 if there is no row)."""
    markers = timeline.markers
    for marker in markers:
        if marker.kind in _OPENING:
            return marker.row
    for marker in markers:
        if not marker.text.startswith("New cluster"):
            return marker.row
    dead = [row.states.count(State.DEAD) for row in timeline.rows]
    # Back over the rows from which fewer and fewer servers are alive, then
    # forward to the last one before the first of them stopped.
    n = len(dead) - 1
    while n > 0 and dead[n - 1] <= dead[n]:
        n -= 1
    while n + 1 < len(dead) and dead[n + 1] == dead[n]:
        n += 1
    return n


def _append_table(
    parts: list[str], timeline: Timeline, history: History, linked: set[int]
) -> None:
    # The rows come in chunks of CHUNK_ROWS, each its own table in a
    # ``content-visibility: auto`` block, so that the browser lays out only
    # the chunks near the viewport: that is what keeps a page of 50,000 rows
    # responsive. Fixed layout with the same column widths lines the chunks
    # up under the header, which is a table of its own (sticky). The rows
    # that links point to (``linked``) get an id.
    heads = "".join(f"<th>{server}" for server in timeline.servers)
    labels = "".join(f"<span>{server}</span>" for server in timeline.servers)
    parts.append(
        f"<div id=timeline><div id=top>{_moment(timeline, history)}"
        f"<div id=head><div id=mhead title='messages'>{labels}</div>"
        f"<table class=log>{_COLUMNS}"
        f"<thead><tr><th>ms<th>TEST{heads}</table></div></div>\n"
        "<div id=body><div id=msgs><canvas id=arrows></canvas></div><div id=rows>\n"
    )
    column = {server: i for i, server in enumerate(timeline.servers)}
    bad = {m.row for m in timeline.markers if m.kind in _BAD}
    cuts = {cut.row for cut in history.truncations}
    # Cells of servers that did not log the row depend only on the states
    # tuple, which rows share until a state changes: build them once.
    states: tuple[State, ...] | None = None
    cells: list[str] = []
    for n, row in enumerate(timeline.rows):
        if n % CHUNK_ROWS == 0:
            if n:
                parts.append(_CHUNK_END)
            parts.append(_CHUNK_START)
        if row.states is not states:
            states = row.states
            cells = [_EMPTY_CELL[state] for state in states]
        entry = row.entry
        head = f"<td title={entry.wall}>{row.ms:.3f}"
        message = _message_text(entry)
        anchor = f" id=r{n}" if n in linked else ""
        if entry.server is None:
            cls = "'sT bad'" if n in bad else "sT"
            parts.append(
                f"<tr class={cls}{anchor}>{head}<td class=X>{message}{''.join(cells)}\n"
            )
            continue
        i = column[entry.server]
        hb = " hb" if row.heartbeat else ""
        cut = " cut" if n in cuts else ""
        parts.append(
            f"<tr class='s{entry.server}{hb}{cut}'{anchor}>{head}<td>"
            f"{''.join(cells[:i])}{_message_cell(row, i, message)}"
            f"{''.join(cells[i + 1 :])}\n"
        )
    if timeline.rows:
        parts.append(_CHUNK_END)
    parts.append("</div></div></div>\n")


def _message_text(entry: Entry) -> str:
    # A key/value service's or client's line names who logged it.
    message = escape(entry.message, quote=False)
    if entry.source:
        return f"<em>{escape(entry.source)}</em> {message}"
    return message


def _message_cell(row: Row, i: int, message: str) -> str:
    cls = STATE_CLASS[row.states[i]]
    if row.term_change is None:
        return f"<td class={cls}><b>{row.terms[i]}</b>{message}"
    old, new = row.term_change
    return f"<td class='{cls} tc'><b>{old}→{new}</b>{message}"


KIND_CODE = {"RequestVote": 0, "AppendEntries": 1, "heartbeat": 2, "InstallSnapshot": 3}
"""How the page's data names a message's kind; any other kind is 4."""
OUTCOME_CODE = {"": 0, REPLY: 1, LOST: 2}
"""How the page's data names a message's outcome."""


def _data(timeline: Timeline, history: History) -> str:
    """The JSON the page's script draws the messages and the cluster from."""
    data = {
        "servers": timeline.servers,
        "rows": {
            "ms": [row.ms for row in timeline.rows],
            "server": [
                -1 if row.entry.server is None else row.entry.server
                for row in timeline.rows
            ],
            "flags": "".join(_flags(row) for row in timeline.rows),
        },
        "chunk": CHUNK_ROWS,
        "hasLog": history.has_log,
        "colours": list(MESSAGE_COLOURS.values()),
        "msgs": [_message_data(m) for m in timeline.messages.messages],
        "ops": [[_op_data(op) for op in history.ops[s]] for s in timeline.servers],
        "cmds": {f"{i}:{t}": command for (i, t), command in history.commands.items()},
        "committed": history.committed,
        "jumps": jumps(timeline, history),
        "open": opening_row(timeline),
    }
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    # Inside <script>, "</script>" or "<!--" in a command would end it.
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def jumps(timeline: Timeline, history: History) -> dict[str, list[int]]:
    """The rows of each kind of JUMPS, in order."""
    rows = timeline.rows
    changes = [
        n
        for n in range(1, len(rows))
        if rows[n].states != rows[n - 1].states or rows[n].terms != rows[n - 1].terms
    ]
    return {
        "test": [marker.row for marker in timeline.markers],
        "state": changes,
        "commit": sorted({first for first, _ in history.committed}),
        "cut": sorted({cut.row for cut in history.truncations}),
    }


def _flags(row: Row) -> str:
    """Whether a row is heartbeat noise (1), an rpc line (2), or both."""
    rpc = not row.entry.source and row.entry.message.startswith("rpc ")
    return "0123"[row.heartbeat + 2 * rpc]


def _message_data(m: Message) -> list[object]:
    return [
        m.id,
        m.sender,
        m.receiver,
        KIND_CODE.get(m.kind, len(KIND_CODE)),
        m.send_row,
        m.deliver_row,
        m.drop_row,
        m.end_row,
        OUTCOME_CODE[m.outcome],
        int(m.never_sent),
    ]


def _op_data(op: Op) -> list[object]:
    match op:
        case StateOp():
            return [op.row, "s", STATE_CLASS[op.state], op.term]
        case LogOp():
            return [op.row, "l", op.start, list(op.terms)]
        case CommitOp():
            return [op.row, "c", op.commit_index]
        case PeerOp():
            return [op.row, "p", op.peer, op.next_index, op.match_index]
        case BaseOp():
            return [op.row, "b", op.index, op.term]


def render_index(run: RunLog, pages: list[Page]) -> str:
    """The index page: every test of the run with its stage, status and a
    link."""
    failed = sum(page.test.failed for page in pages)
    overall = run.status
    rows = "".join(
        f"<tr><td>{n}<td><a href='{quote(page.path.name)}'>{_title(page.test)}</a>"
        f"<td><span class='status {escape(page.test.status)}'>"
        f"{escape(page.test.status)}</span><td>{format_duration(page.test)}"
        f"<td>{len(page.test.servers)}<td>{len(page.test.entries)}"
        f"<td>{len(page.test.malformed)}\n"
        for n, page in enumerate(pages, start=1)
    )
    stages = sorted({page.test.stage for page in pages} - {""})
    run_name = escape(
        f"Raft test run ({', '.join(stages)})" if stages else "Raft test run"
    )
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{run_name} — {overall}</title><style>{page_style()}</style>"
        "</head><body>\n"
        f"<h1>{run_name} <span class='status {overall}'>{overall}</span></h1>\n"
        f"<p class=meta>{len(pages)} tests, {failed} failed</p>\n"
        "<table id=index><thead><tr><th>#<th>test<th>status<th>duration"
        "<th>servers<th>entries<th>malformed lines</thead><tbody>\n"
        f"{rows}</tbody></table>\n</body></html>\n"
    )
