"""The terminal view: the HTML page's timeline, drawn with rich.

One column per server, every cell coloured by that server's state. The
columns are laid out by hand rather than with ``rich.table.Table``: a table
pads a cell shorter than its row with the row's style, which would leave
holes in the state colours, and measuring tens of thousands of rows is slow.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

from rich.console import Console
from rich.style import Style
from rich.text import Text

from .assets import STATE_COLOURS
from .pages import STATE_CLASS, format_duration
from .timeline import Row, State, Timeline

_FEW_COLOURS = {
    State.CANDIDATE: Style(color="black", bgcolor="yellow"),
    State.LEADER: Style(color="black", bgcolor="green"),
    State.DEAD: Style(color="white", bgcolor="bright_black"),
}


def state_styles(console: Console) -> dict[State, Style]:
    """The style of a server's cells in each state, on this console.

    Where the terminal has 256 colours or more, the page's colours; with only
    the 16 standard ones, rich would turn those pale colours all into white,
    so plain named colours stand in. Followers keep the terminal's own
    background: the common case stays readable on dark and light themes.
    """
    if console.color_system in ("standard", "windows"):
        return {State.FOLLOWER: Style(), **_FEW_COLOURS}
    return {State.FOLLOWER: Style()} | {
        state: Style(color="black", bgcolor=STATE_COLOURS[STATE_CLASS[state]])
        for state in _FEW_COLOURS
    }


TEST_STYLE = Style(color="black", bgcolor="#e7f0ff", bold=True)
TIME_WIDTH = 10
TEST_WIDTH = 16
MIN_WIDTH = 6
BATCH = 500
"""Rows printed at once: few enough to start showing soon, many enough that
printing is not dominated by per-call overhead."""

_SEPARATOR = Text("│", style="dim")
_DIM = Style(dim=True)
_EMPTY = (Text(), Style())
_TERM_CHANGE = Style(color="red", bold=True)


def render_timeline(
    console: Console, timeline: Timeline, *, hide_heartbeats: bool = False
) -> None:
    """Print ``timeline`` to ``console``: a heading, a legend and the rows."""
    test = timeline.test
    console.rule(
        Text(
            f"{test.title} — {test.status} ({format_duration(test)}, "
            f"{len(timeline.servers)} servers, {len(timeline.rows)} lines)"
        )
    )
    styles = state_styles(console)
    legend = Text("states: ")
    for state, style in styles.items():
        legend.append(f" {state} ", style=style)
        legend.append(" ")
    legend.append("· tN = the server's term, a→b = term change · ms since start")
    console.print(legend)
    if not timeline.rows:
        console.print("This test logged no Raft lines.")
        return
    n = len(timeline.servers)
    # Every column is followed by a one-character separator. TEST lines are
    # short: its column gives way first when the window is narrow.
    spare = console.width - TIME_WIDTH - (n + 2)
    test_width = min(TEST_WIDTH, max(MIN_WIDTH, spare // (n + 1)))
    server_width = max(MIN_WIDTH, (spare - test_width) // n)
    widths = [TIME_WIDTH, test_width] + [server_width] * n
    header = ["ms", "TEST"] + [str(server) for server in timeline.servers]
    console.print(
        _line([(h, Style(bold=True)) for h in header], widths),
        no_wrap=True,
        overflow="crop",
    )
    batch = Text()
    lines = _row_lines(timeline, styles, widths, hide_heartbeats)
    for i, line in enumerate(lines):
        batch.append_text(line)
        batch.append("\n")
        if i % BATCH == BATCH - 1:
            console.print(batch, no_wrap=True, overflow="crop", end="")
            batch = Text()
    console.print(batch, no_wrap=True, overflow="crop", end="")


def _row_lines(
    timeline: Timeline,
    styles: dict[State, Style],
    widths: list[int],
    hide_heartbeats: bool,
) -> Iterator[Text]:
    column = {server: i for i, server in enumerate(timeline.servers)}
    for row in timeline.rows:
        if hide_heartbeats and row.heartbeat:
            continue
        entry = row.entry
        test_cell = (
            (_source(row) + entry.message, TEST_STYLE)
            if entry.server is None
            else _EMPTY
        )
        cells: list[tuple[Text, Style]] = [
            (Text(f"{row.ms:.3f}".rjust(TIME_WIDTH)), _DIM),
            test_cell,
        ]
        cells += [(Text(), styles[state]) for state in row.states]
        if entry.server is not None:
            i = column[entry.server]
            cells[i + 2] = (_message(row, i), styles[row.states[i]])
        wrapped = [
            _wrap(text, width) for (text, _), width in zip(cells, widths, strict=True)
        ]
        for k in range(max(len(lines) for lines in wrapped)):
            yield _line(
                [
                    (lines[k] if k < len(lines) else Text(), style)
                    for lines, (_, style) in zip(wrapped, cells, strict=True)
                ],
                widths,
            )


def _source(row: Row) -> Text:
    """Who logged the row, if not a CM or the harness (``kv``, ``client N``)."""
    if not row.entry.source:
        return Text()
    return Text(f"{row.entry.source} ", style="italic")


def _message(row: Row, i: int) -> Text:
    text = Text()
    if row.term_change is None:
        text.append(f"t{row.terms[i]} ", style=_DIM)
    else:
        old, new = row.term_change
        text.append(f"t{old}→{new} ", style=_TERM_CHANGE)
    text.append_text(_source(row))
    text.append(row.entry.message, style=_DIM if row.heartbeat else None)
    return text


def _wrap(text: Text, width: int) -> list[Text]:
    """Split ``text`` into lines of at most ``width`` characters."""
    if len(text) <= width:
        return [text]
    lines: list[Text] = []
    offset = 0
    for piece in textwrap.wrap(
        text.plain,
        width,
        expand_tabs=False,
        break_on_hyphens=False,
        drop_whitespace=False,
    ):
        lines.append(text[offset : offset + len(piece)])
        offset += len(piece)
    return lines


def _line(cells: list[tuple[Text | str, Style]], widths: list[int]) -> Text:
    """One screen line: each cell padded to its width in its style."""
    line = Text()
    for (content, style), width in zip(cells, widths, strict=True):
        cell = Text(content) if isinstance(content, str) else content.copy()
        cell.truncate(width, pad=True)
        # The base style: spans inside the cell (dim, red) stay on top of it.
        cell.style = style
        line.append_text(cell)
        line.append_text(_SEPARATOR)
    return line
