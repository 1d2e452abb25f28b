"""What every page embeds: its style and its scripts, read from the package's
``.css`` and ``.js`` files, and the colours that the pages and the terminal
view share.

Pages are self-contained (no external scripts, fonts or styles, so they
open from ``file://``): the files are inlined. ``panel.js`` and
``panel.css`` are the cluster panel alone, which a page other than a
test's can show too.
"""

from __future__ import annotations

from tools.package_files import package_text

STATE_COLOURS = {
    "F": "#ffffff",
    "C": "#f7e39a",
    "L": "#b5e8c4",
    "D": "#c8c8c8",
}
"""Background of each state, by CSS class: Follower, Candidate, Leader, Dead
(the colours of the original visualizer, a little stronger)."""

MARKER_COLOURS = {
    "disconnect": "#d9480f",
    "reconnect": "#2b8a3e",
    "crash": "#343a40",
    "restart": "#1971c2",
    "submit": "#7048e8",
    "check": "#0c8599",
    "failed": "#e03131",
    "violation": "#e03131",
    "other": "#868e96",
}
"""Colour of each kind of TEST line on the overview strip: its actions,
its checks, a check that failed and a safety violation."""

MESSAGE_COLOURS = {
    "RequestVote": "#e8590c",
    "AppendEntries": "#1971c2",
    "heartbeat": "#adb5bd",
    "InstallSnapshot": "#c2255c",
    "other": "#7048e8",
}
"""Colour of each kind of message in the diagram (AppendEntries: with
entries; heartbeat: without; InstallSnapshot: part6's), in the order of
their codes in the page's data (pages.KIND_CODE)."""

TERM_COLOURS = [
    "#ffc9c9",
    "#a5d8ff",
    "#b2f2bb",
    "#ffec99",
    "#d0bfff",
    "#99e9f2",
    "#ffd8a8",
    "#eebefa",
    "#c0eb75",
    "#ced4da",
]
"""Background of a log entry by its term, modulo their number (panel.js
knows there are ten)."""


def asset(name: str) -> str:
    """The text of one of the package's files, such as ``page.js``."""
    return package_text(__package__, name)


def colour_rules() -> str:
    """The CSS rules of the colours above."""
    return "".join(
        [
            *(f".{cls}{{background:{c}}}" for cls, c in STATE_COLOURS.items()),
            *(f".k-{kind}{{background:{c}}}" for kind, c in MARKER_COLOURS.items()),
            *(f"i.t{k}{{background:{c}}}" for k, c in enumerate(TERM_COLOURS)),
        ]
    )


def page_style() -> str:
    """The style sheet of a page: the page's, the panel's and the colours."""
    return asset("page.css") + asset("panel.css") + colour_rules()


def page_scripts() -> list[str]:
    """The scripts of a test's page, in order: the panel, then the page."""
    return [asset("panel.js"), asset("page.js")]
