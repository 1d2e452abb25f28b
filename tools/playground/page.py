"""The playground's page: one self-contained HTML file.

``page.html`` is the skeleton; ``playground.js`` and ``playground.css``
draw the live cluster and its controls, and the cluster panel below it is
the visualizer's own (``panel.js``, ``panel.css``: one panel, one source).
All of it is inlined, with the colours the visualizer uses, so the page
needs nothing else from the server but its JSON API.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from tools.package_files import package_text
from tools.raft_testlog_viz.assets import (
    MESSAGE_COLOURS,
    STATE_COLOURS,
    asset,
    colour_rules,
)

from .stages import DEFAULT_STAGE, STAGES


def _own(name: str) -> str:
    return package_text(__package__, name)


@functools.cache
def render_page() -> str:
    """The page (the same for every run: it asks the server for the rest)."""
    config: dict[str, Any] = {
        "messageColours": MESSAGE_COLOURS,
        "stateColours": STATE_COLOURS,
        "stages": list(STAGES),
        "defaultStage": DEFAULT_STAGE,
    }
    parts = {
        "{{style}}": asset("panel.css") + colour_rules() + _own("playground.css"),
        "{{config}}": json.dumps(config).replace("</", "<\\/"),
        "{{panel}}": asset("panel.js"),
        "{{script}}": _own("playground.js"),
    }
    html = _own("page.html")
    for placeholder, text in parts.items():
        if "</script" in text or "</style" in text:
            raise ValueError(f"{placeholder} would end its element early")
        html = html.replace(placeholder, text)
    return html
