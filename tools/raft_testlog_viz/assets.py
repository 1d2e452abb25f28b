"""The style sheet and script every page embeds (pages must be self-contained:
no external scripts, fonts or styles, so they open from file://)."""

from __future__ import annotations

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
    "crash": "#c92a2a",
    "restart": "#1971c2",
    "submit": "#7048e8",
    "other": "#868e96",
}
"""Colour of each kind of TEST action on the overview strip."""

_STATE_RULES = "".join(
    f".{cls}{{background:{colour}}}" for cls, colour in STATE_COLOURS.items()
)
_MARKER_RULES = "".join(
    f".k-{kind}{{background:{colour}}}" for kind, colour in MARKER_COLOURS.items()
)

STYLE = (
    """
body{font:14px/1.35 system-ui,sans-serif;margin:0 1em 2em;color:#222}
h1{font-size:1.3em;margin:.6em 0 .2em}
.status{padding:0 .4em;border-radius:3px;color:#fff;background:#868e96}
.status.PASS{background:#2b8a3e}.status.FAIL,.status.UNFINISHED{background:#c92a2a}
.meta{margin:.2em 0;color:#555}
.legend span{display:inline-block;padding:0 .5em;margin-right:.3em;
 border:1px solid #bbb;border-radius:3px}
.key{display:inline-block;width:.7em;height:.7em;margin:0 .2em 0 .6em}
#overview{position:relative;margin:.6em 0;cursor:crosshair;user-select:none}
.lane{display:flex;align-items:center;height:18px;margin:2px 0}
.lane>span{width:4em;box-sizing:border-box;flex:none;font:12px monospace;
 text-align:right;padding-right:.5em}
.bar{position:relative;flex:1;height:100%;border:1px solid #999;
 background:#fff}
.bar>i{position:absolute;top:0;bottom:0;border-right:1px solid rgba(0,0,0,.15);
 overflow:hidden;white-space:nowrap;font:10px/16px monospace;font-style:normal;
 color:#555;text-indent:2px}
.lane.off{opacity:.3}
.marks{height:14px}.marks .bar{border:0;background:none}
.mk{position:absolute;top:0;bottom:0;width:3px;margin-left:-1px}
.axis{height:14px}.axis .bar{border:0;background:none}
.axis u{position:absolute;font:11px monospace;text-decoration:none;
 border-left:1px solid #999;padding-left:2px;color:#555}
.axis u:last-child{border-left:0;border-right:1px solid #999;padding:0 2px 0 0;
 transform:translateX(-100%)}
#guides{position:absolute;top:0;bottom:0;left:4em;right:0;pointer-events:none}
#guides i{position:absolute;top:0;bottom:0;width:1px;opacity:.55}
#controls{margin:.5em 0;padding:.4em;background:#f1f3f5;border-radius:4px}
#controls label{margin-right:.8em;white-space:nowrap}
#count{float:right;font-weight:bold}
#head{position:sticky;top:0;z-index:1}
.chunk{content-visibility:auto;contain-intrinsic-size:auto 5000px}
.log{border-collapse:collapse;table-layout:fixed;width:100%;
 font:12px/1.3 monospace}
.log th{background:#343a40;color:#fff;padding:3px}
.log td{border:1px solid #ddd;padding:1px 4px;vertical-align:top;
 overflow-wrap:anywhere}
.log td:first-child{text-align:right;color:#555;white-space:nowrap}
.log td>b{font-weight:normal;color:#888;margin-right:.5em}
.log td.tc{box-shadow:inset 3px 0 #c92a2a}
.log td.tc>b{font-weight:bold;color:#c92a2a}
.log td.X{background:#e7f0ff;font-weight:bold}
.log tr.hb td{color:#888}
.log tr.flash td{outline:2px solid #1971c2}
details{margin:.4em 0}
"""
    + _STATE_RULES
    + _MARKER_RULES
)
"""The page's style sheet (per-server rules are added by the page itself)."""

SCRIPT = """
"use strict";
(() => {
  const timeline = document.getElementById("timeline");
  const chunks = Array.from(timeline.querySelectorAll(".chunk"));
  const rows = Array.from(timeline.querySelectorAll(".chunk tr"));
  // Each row's class starts with s<id> (s<server> or sT for TEST).
  const source = rows.map((r) => r.className.split(" ")[0].slice(1));
  const heartbeat = rows.map((r) => r.classList.contains("hb"));
  const ms = rows.map((r) => parseFloat(r.cells[0].textContent));
  let text = null; // lower-cased row texts, made on first use of the filter
  const hiddenServers = new Set();
  const hbBox = document.getElementById("hb");
  const filter = document.getElementById("filter");
  const count = document.getElementById("count");

  function apply() {
    const needle = filter.value.trim().toLowerCase();
    if (needle && text === null) {
      text = rows.map((r) => r.textContent.toLowerCase());
    }
    let shown = 0;
    for (let i = 0; i < rows.length; i++) {
      const show = !hiddenServers.has(source[i])
        && !(hbBox.checked && heartbeat[i])
        && (!needle || text[i].includes(needle));
      if (rows[i].hidden === show) rows[i].hidden = !show;
      if (show) shown++;
    }
    // A chunk with no row left must take no room, not its estimated height.
    for (const chunk of chunks) {
      chunk.hidden = chunk.querySelector("tr:not([hidden])") === null;
    }
    count.textContent = shown + " of " + rows.length + " rows shown";
  }

  function syncServer(box) {
    const id = box.dataset.server;
    if (box.checked) hiddenServers.delete(id); else hiddenServers.add(id);
    timeline.classList.toggle("x" + id, !box.checked);
    document.getElementById("lane" + id).classList.toggle("off", !box.checked);
  }
  for (const box of document.querySelectorAll("input[data-server]")) {
    // A reload may bring back the boxes as they were: start from them.
    syncServer(box);
    box.addEventListener("change", () => {
      syncServer(box);
      apply();
    });
  }
  hbBox.addEventListener("change", apply);
  let pending = 0;
  filter.addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(apply, 150);
  });

  // The first shown row at or after `t` ms (else the last shown one).
  // Rows are in time order, give or take a few microseconds.
  function rowAt(t) {
    let lo = 0, hi = rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ms[mid] < t) lo = mid + 1; else hi = mid;
    }
    for (let i = lo; i < rows.length; i++) if (!rows[i].hidden) return rows[i];
    for (let i = lo - 1; i >= 0; i--) if (!rows[i].hidden) return rows[i];
    return null;
  }

  const overview = document.getElementById("overview");
  if (overview !== null) {
    const span = parseFloat(overview.dataset.span);
    const bar = overview.querySelector(".bar");
    overview.addEventListener("click", (event) => {
      const box = bar.getBoundingClientRect();
      const at = (event.clientX - box.left) / box.width;
      if (at < 0 || at > 1) return;
      const row = rowAt(at * span);
      if (row === null) return;
      for (const old of timeline.querySelectorAll("tr.flash")) {
        old.classList.remove("flash");
      }
      row.classList.add("flash");
      row.scrollIntoView({block: "center"});
    });
  }
  apply();
})();
"""
"""The page's behaviour: server toggles, heartbeat filter, text filter, the
row count, and scrolling the table to where the overview strip is clicked."""
