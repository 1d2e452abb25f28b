"""The HTML view of a checked history.

One section per key, failed keys first. In each, one row per client, and
each operation a bar from its call to its return; an operation whose answer
never came is drawn open-ended, fading out towards the client's next call.
Hovering a bar (or a line of the lists) shows the operation, its answer and
its place in the verdict, and lights up both.

* A linearizable key lists the linearization found, and each bar carries
  its position in it.
* A key that is not linearizable shows the longest linearizable prefix
  found (green) and the operations none of which can come next (red), each
  with what the model says it would have answered there.

The page's style and script are the package's ``view.css`` and
``view.js``, inlined: the page is one self-contained file (no fonts or
images either), so it opens from ``file://``. Every piece of text from the
history is HTML-escaped: keys and values are any strings.
"""

from __future__ import annotations

import heapq
import math
from html import escape
from pathlib import Path

from tools.package_files import package_text

from .check import PartResult, Result
from .history import Operation, counted, describe_output

ROW_HEIGHT = 20
"""Pixels per lane of a client's row."""

MIN_WIDTH = 800
MAX_WIDTH = 40_000
PX_PER_OP = 16
"""A timeline is about this many pixels per operation of its busiest
client, within MIN_WIDTH and MAX_WIDTH."""

_ORDER = {"not linearizable": 0, "unknown": 1, "ok": 2}


def write_page(result: Result, path: Path) -> Path:
    """Write the view of ``result`` to ``path`` (its folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page(result), encoding="utf-8")
    return path


def render_page(result: Result) -> str:
    """The HTML page of a checked history."""
    ops = result.history
    start = min((op.call for op in ops), default=0.0)
    finish = max((op.ret if op.ret is not None else op.call for op in ops), default=0.0)
    span = max(finish - start, 1e-9)
    clients = len({op.client for op in ops})
    parts = sorted(result.parts, key=lambda p: (_ORDER[p.verdict], p.key))
    verdict = escape(result.verdict)
    style = package_text(__package__, "view.css")
    body = [
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>",
        f"<title>lincheck: {verdict}</title><style>{style}</style></head><body>\n",
        f"<h1>History check: <span class='verdict {_css(result.verdict)}'>",
        f"{verdict}</span></h1>\n",
        f"<p class=meta>{counted(len(ops), 'operation')} · "
        f"{counted(clients, 'client')} · {counted(len(parts), 'key')} · "
        f"model: {escape(result.model)} · time in ms from "
        "the first call · hover an operation for details</p>\n",
        LEGEND,
    ]
    for n, part in enumerate(parts):
        body.append(_section(n, part, start, span))
    body.append("<div id=tip hidden></div>\n")
    script = package_text(__package__, "view.js")
    body.append(f"<script>{script}</script>\n</body></html>\n")
    return "".join(body)


def _css(verdict: str) -> str:
    return {"ok": "ok", "not linearizable": "bad"}.get(verdict, "unknown")


def _section(n: int, part: PartResult, start: float, span: float) -> str:
    place = {op.index: k for k, op in enumerate(part.order, start=1)}
    blocked = {
        op.index: out for op, out in zip(part.blocked, part.expected, strict=True)
    }
    head = (
        f"<h2>key {escape(repr(part.key))} · <span class='verdict "
        f"{_css(part.verdict)}'>{escape(part.verdict)}</span> · "
        f"{counted(len(part.ops), 'operation')}</h2>\n"
    )
    summary = _summary(part)
    timeline = _timeline(part, place, blocked, start, span)
    lists = _lists(part, start)
    open_ = " open" if not part.ok else ""
    return (
        f"<section id=part{n} class='part {_css(part.verdict)}'>{head}{summary}"
        f"{timeline}<details{open_}><summary>{_list_title(part)}</summary>"
        f"{lists}</details></section>\n"
    )


def _summary(part: PartResult) -> str:
    if part.verdict == "ok":
        used = sum(op.unknown for op in part.order)
        skipped = sum(op.unknown for op in part.ops) - used
        extra = (
            f"; of the operations without an answer, {used} took effect and "
            f"{skipped} did not (or after everything else)"
            if used or skipped
            else ""
        )
        return (
            f"<p>Linearizable: the numbers on the bars give an order of the "
            f"{counted(len(part.order), 'operation')} that took effect"
            f"{escape(extra)}.</p>\n"
        )
    if part.verdict == "unknown":
        return (
            "<p>Undecided: the timeout ran out after "
            f"{counted(part.steps, 'search step')}. Green: the longest "
            f"linearizable prefix found ({counted(len(part.order), 'operation')})."
            "</p>\n"
        )
    return (
        "<p>Not linearizable. Green: the longest linearizable prefix found "
        f"({counted(len(part.order), 'operation')}), after which the key holds "
        f"<code>{escape(part.state)}</code>. Red: the operations that could "
        "come next, none of which can follow the prefix.</p>\n"
    )


def _timeline(
    part: PartResult,
    place: dict[int, int],
    blocked: dict[int, tuple[str, bool]],
    start: float,
    span: float,
) -> str:
    by_client: dict[int, list[Operation]] = {}
    for op in sorted(part.ops, key=_by_call):
        by_client.setdefault(op.client, []).append(op)
    busiest = max(len(mine) for mine in by_client.values())
    width = min(max(MIN_WIDTH, busiest * PX_PER_OP), MAX_WIDTH)
    scale = width / span
    rows = []
    for client, mine in sorted(by_client.items()):
        bars, lanes = _bars(mine, part, place, blocked, start, span, scale)
        rows.append(
            f"<div class=row style=height:{lanes * ROW_HEIGHT}px>"
            f"<span class=who>client {client}</span>"
            f"<div class=lane style=width:{width}px>{''.join(bars)}</div></div>"
        )
    return (
        f"<div class=scroll><div class=axis style=width:{width}px>"
        f"{_ticks(span, scale)}</div>{''.join(rows)}</div>\n"
    )


def _by_call(op: Operation) -> tuple[float, int]:
    return op.call, op.index


def _bars(
    mine: list[Operation],
    part: PartResult,
    place: dict[int, int],
    blocked: dict[int, tuple[str, bool]],
    start: float,
    span: float,
    scale: float,
) -> tuple[list[str], int]:
    # Lanes: an operation goes into the first lane free at its call, so that
    # bars of one client never cover each other (a client that gave up on
    # an operation goes on with the next while the first may still act).
    # Operations come in call order: a lane that is free stays free.
    lanes = 0
    free: list[int] = []  # heaps: the free lanes, and the busy ones by end
    busy: list[tuple[float, int]] = []
    bars = []
    for k, op in enumerate(mine):
        if op.output is not None and op.ret is not None:
            until = op.ret
        elif k + 1 < len(mine):
            until = mine[k + 1].call
        else:
            until = start + span
        while busy and busy[0][0] <= op.call:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lane = heapq.heappop(free)
        else:
            lane, lanes = lanes, lanes + 1
        heapq.heappush(busy, (until, lane))
        left = (op.call - start) * scale
        bar_width = max((until - op.call) * scale, 3.0)
        classes, label, note = _status(op, part, place, blocked)
        tip = _tip(op, start, note)
        bars.append(
            f"<i class='{classes}' data-op={op.index} style='left:{left:.1f}px;"
            f"width:{bar_width:.1f}px;top:{lane * ROW_HEIGHT}px' "
            f"data-tip='{escape(tip)}'>{label}</i>"
        )
    return bars, max(lanes, 1)


def _status(
    op: Operation,
    part: PartResult,
    place: dict[int, int],
    blocked: dict[int, tuple[str, bool]],
) -> tuple[str, str, str]:
    """The bar's classes, its label and the tooltip's verdict line."""
    classes = "op unk" if op.unknown else "op"
    if op.index in blocked:
        expected = describe_output(blocked[op.index])
        note = (
            f"cannot come next: after the prefix it would answer {expected}"
            if blocked[op.index] != op.output
            else "could come next, but every way on from it is a dead end"
        )
        return f"{classes} blocked", "✗", note
    if op.index in place:
        n = place[op.index]
        if part.ok:
            return f"{classes} lin", str(n), f"number {n} of the linearization"
        return f"{classes} prefix", str(n), f"number {n} of the linearizable prefix"
    if part.ok and op.unknown:
        return classes, "?", "no answer, and the linearization did without it"
    return f"{classes} rest", "", "not reached by the prefix"


def _tip(op: Operation, start: float, note: str) -> str:
    called = f"called {_ms(op.call - start)} ms"
    if op.output is None:
        timing = f"{called}, no answer: it may take effect at any time after, or never"
    else:
        timing = f"{called}, returned {_ms((op.ret or op.call) - start)} ms"
    return (
        f"#{op.index} · client {op.client}\n{op.describe()}\n"
        f"answered: {op.describe_output()}\n{timing}\n{note}"
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def _ticks(span: float, scale: float) -> str:
    # A round step in ms (1, 2 or 5 times a power of ten) about 100 px apart.
    span_ms = span * 1000
    raw = 100 / (scale / 1000)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    count = int(span_ms // step) + 1
    return "".join(
        f"<u style=left:{k * step / 1000 * scale:.1f}px>{k * step:g}</u>"
        for k in range(count)
    )


def _list_title(part: PartResult) -> str:
    ops = counted(len(part.order), "operation")
    if part.ok:
        return f"The linearization ({ops})"
    return f"The longest linearizable prefix found ({ops})"


def _lists(part: PartResult, start: float) -> str:
    items = "".join(
        f"<li data-op={op.index}>{escape(str(op))} <span class=t>"
        f"[{_ms(op.call - start)}, {_end(op, start)}]</span>"
        for op in part.order
    )
    listing = f"<ol class=order>{items}</ol>" if items else "<p>(empty)</p>"
    if part.ok or not part.blocked:
        return listing
    stuck = "".join(
        f"<li data-op={op.index}>{escape(str(op))}: "
        + escape(
            f"after the prefix it would answer {describe_output(out)}"
            if out != op.output
            else "possible, but every way on from it is a dead end"
        )
        for op, out in zip(part.blocked, part.expected, strict=True)
    )
    return (
        f"{listing}<p class=nexthead>None of these can come next:</p>"
        f"<ul class=stuck>{stuck}</ul>"
    )


def _end(op: Operation, start: float) -> str:
    return "no answer" if op.output is None else f"{_ms((op.ret or op.call) - start)}"


LEGEND = (
    "<p class=legend><i class='op lin'>n</i> n-th in the linearization "
    "<i class='op prefix'>n</i> n-th in the longest prefix "
    "<i class='op blocked'>✗</i> cannot come next "
    "<i class='op rest'></i> after the prefix "
    "<i class='op unk'>?</i> no answer</p>\n"
)
