"""HTML pages: one per test (a timeline table under an overview strip), and
an index of the run.

Pages are self-contained (style and script inline) and every piece of log
text is HTML-escaped. Rows are plain table rows, so a page works even with
scripts off; the script only adds the controls. A page is built as one list
of strings joined at the end: with tens of thousands of rows that is what
keeps rendering a whole run to a second or two.
"""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import quote

from .assets import MARKER_COLOURS, SCRIPT, STYLE
from .parse import RunLog, TestLog
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
CHUNK_ROWS = 250
"""Rows per chunk of the timeline table (see ``_append_table``)."""

# Time and TEST get fixed widths; the servers share the rest.
_COLUMNS = "<colgroup><col style=width:7.5em><col style=width:11%></colgroup>"
_CHUNK_START = f"<div class=chunk><table class=log>{_COLUMNS}<tbody>\n"
_CHUNK_END = "</tbody></table></div>\n"
_GUIDED = frozenset({"disconnect", "reconnect", "crash", "restart"})
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
        path.write_text(render_page(build_timeline(test)), encoding="utf-8")
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


def render_page(timeline: Timeline) -> str:
    """The HTML page of one test."""
    test = timeline.test
    title = escape(f"{test.name} — {test.status}")
    parts = [
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>",
        f"<title>{title}</title><style>{STYLE}{_column_rules(timeline)}</style>",
        "</head><body>\n",
        f"<h1>{escape(test.name)} <span class='status {escape(test.status)}'>",
        f"{escape(test.status)}</span></h1>\n",
        _meta(timeline),
        _legend(),
        _malformed(test),
    ]
    if timeline.rows:
        parts.append(_overview(timeline))
    else:
        parts.append("<p>This test logged no Raft lines.</p>\n")
    parts.append(_controls(timeline))
    _append_table(parts, timeline)
    parts.append(f"<script>{SCRIPT}</script>\n</body></html>\n")
    return "".join(parts)


def _column_rules(timeline: Timeline) -> str:
    # Hiding server s hides its column: class x<s> on #timeline. Columns
    # are time, TEST, then the servers, so server i is the (i + 3)rd child.
    return "".join(
        f"#timeline.x{server} tr>:nth-child({i + 3}){{display:none}}"
        for i, server in enumerate(timeline.servers)
    )


def _meta(timeline: Timeline) -> str:
    test = timeline.test
    return (
        f"<p class=meta>pytest duration {format_duration(test)} · "
        f"{len(timeline.servers)} servers · {len(timeline.rows)} log lines · "
        f"log span {timeline.span_ms:.1f} ms · "
        "<a href=index.html>all tests of the run</a></p>\n"
    )


def _legend() -> str:
    states = "".join(
        f"<span class={cls}>{state}</span>" for state, cls in STATE_CLASS.items()
    )
    marks = "".join(f"<i class='key k-{kind}'></i>{kind}" for kind in MARKER_COLOURS)
    return (
        f"<p class=legend>States: {states} · TEST actions:{marks} · "
        "<b>n</b> = the server's term, <b style=color:#c92a2a>a→b</b> = "
        "term change · time in ms since the test's first line (hover for "
        "the wall clock)</p>\n"
    )


def _malformed(test: TestLog) -> str:
    if not test.malformed:
        return ""
    items = "".join(
        f"<li>line {m.lineno} ({escape(m.reason)}): <code>{escape(m.text)}</code>"
        for m in test.malformed
    )
    count = len(test.malformed)
    plural = "s" if count > 1 else ""
    return (
        f"<details><summary>{count} malformed line{plural} skipped</summary>"
        f"<ul>{items}</ul></details>\n"
    )


def _overview(timeline: Timeline) -> str:
    span = timeline.span_ms or 1.0  # a one-line test still gets a strip
    lanes: dict[int, list[str]] = {server: [] for server in timeline.servers}
    for segment in timeline.segments:
        lanes[segment.server].append(_segment(segment, span))
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
    # cluster: a chaos test submits thousands of commands, whose lines would
    # hide the states.
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
        "<label>filter <input type=search id=filter "
        "placeholder='text in the line'></label>"
        f"<span id=count>{total} of {total} rows shown</span></div>\n"
    )


def _append_table(parts: list[str], timeline: Timeline) -> None:
    # The rows come in chunks of CHUNK_ROWS, each its own table in a
    # ``content-visibility: auto`` block, so that the browser lays out only
    # the chunks near the viewport: that is what keeps a page of 50,000 rows
    # responsive. Fixed layout with the same column widths lines the chunks
    # up under the header, which is a table of its own (sticky).
    heads = "".join(f"<th>{server}" for server in timeline.servers)
    parts.append(
        f"<div id=timeline><div id=head><table class=log>{_COLUMNS}"
        f"<thead><tr><th>ms<th>TEST{heads}</table></div>\n"
    )
    column = {server: i for i, server in enumerate(timeline.servers)}
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
        message = escape(entry.message, quote=False)
        if entry.server is None:
            parts.append(f"<tr class=sT>{head}<td class=X>{message}{''.join(cells)}\n")
            continue
        i = column[entry.server]
        hb = " hb" if row.heartbeat else ""
        parts.append(
            f"<tr class='s{entry.server}{hb}'>{head}<td>{''.join(cells[:i])}"
            f"{_message_cell(row, i, message)}{''.join(cells[i + 1 :])}\n"
        )
    if timeline.rows:
        parts.append(_CHUNK_END)
    parts.append("</div>\n")


def _message_cell(row: Row, i: int, message: str) -> str:
    cls = STATE_CLASS[row.states[i]]
    if row.term_change is None:
        return f"<td class={cls}><b>{row.terms[i]}</b>{message}"
    old, new = row.term_change
    return f"<td class='{cls} tc'><b>{old}→{new}</b>{message}"


def render_index(run: RunLog, pages: list[Page]) -> str:
    """The index page: every test of the run with its status and a link."""
    failed = sum(page.test.failed for page in pages)
    overall = "FAIL" if run.failed else "PASS"
    rows = "".join(
        f"<tr><td>{n}<td><a href='{quote(page.path.name)}'>{escape(page.test.name)}</a>"
        f"<td><span class='status {escape(page.test.status)}'>"
        f"{escape(page.test.status)}</span><td>{format_duration(page.test)}"
        f"<td>{len(page.test.servers)}<td>{len(page.test.entries)}"
        f"<td>{len(page.test.malformed)}\n"
        for n, page in enumerate(pages, start=1)
    )
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>Raft test run — {overall}</title><style>{STYLE}"
        "#index td,#index th{padding:2px 8px;border-bottom:1px solid #ddd;"
        "text-align:left}</style></head><body>\n"
        f"<h1>Raft test run <span class='status {overall}'>{overall}</span></h1>\n"
        f"<p class=meta>{len(pages)} tests, {failed} failed</p>\n"
        "<table id=index><thead><tr><th>#<th>test<th>status<th>duration"
        "<th>servers<th>entries<th>malformed lines</thead><tbody>\n"
        f"{rows}</tbody></table>\n</body></html>\n"
    )
