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

MESSAGE_COLOURS = {
    "RequestVote": "#e8590c",
    "AppendEntries": "#1971c2",
    "heartbeat": "#adb5bd",
    "other": "#7048e8",
}
"""Colour of each kind of message in the diagram (AppendEntries: with
entries; heartbeat: without)."""

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
"""Background of a log entry by its term, modulo their number."""

_STATE_RULES = "".join(
    f".{cls}{{background:{colour}}}" for cls, colour in STATE_COLOURS.items()
)
_MARKER_RULES = "".join(
    f".k-{kind}{{background:{colour}}}" for kind, colour in MARKER_COLOURS.items()
)
_TERM_RULES = "".join(
    f"i.t{k}{{background:{colour}}}" for k, colour in enumerate(TERM_COLOURS)
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
.chunk{content-visibility:auto;contain-intrinsic-size:auto 2500px}
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
.arrow{display:inline-block;width:1.4em;height:3px;margin:0 .3em 0 .7em;
 vertical-align:middle}
#top{position:sticky;top:0;z-index:2;background:#fff}
#moment{display:flex;align-items:center;gap:.3em;padding:.2em 0}
#slider{flex:1}
#at{font:12px monospace;white-space:nowrap}
#cluster{display:flex;font:12px/17px monospace;border:1px solid #ccc;
 max-height:35vh;overflow-y:auto}
#who,#peers{flex:none;white-space:nowrap;padding:0 .5em}
#who{border-right:1px solid #ccc}#peers{border-left:1px solid #ccc;color:#555}
#logs{flex:1;overflow-x:auto;white-space:nowrap}
#cluster .ln{height:17px}
#who .st{display:inline-block;width:5.5em;padding-left:.3em;margin:0 .3em}
#logs .ruler{position:relative;color:#888;font-size:10px}
#logs .ruler u{position:absolute;text-decoration:none;border-left:1px solid #bbb;
 padding-left:1px}
#logs i,.legend i.c,.legend i.u,.legend i.q{display:inline-block;width:15px;
 height:15px;margin:1px 1px 1px 0;box-sizing:border-box;font:9px/13px monospace;
 font-style:normal;text-align:center;vertical-align:top;color:#333;
 border:1px solid rgba(0,0,0,.4)}
#logs i.u,.legend i.u{opacity:.55;border-style:dashed}
#logs i.q,.legend i.q{background:#fff;color:#868e96;border-style:dotted}
#logs i.ci{box-shadow:2px 0 #c92a2a}
#head{display:flex}
#head>table{flex:1;min-width:0}
#mhead{flex:none;display:flex;background:#343a40;color:#fff;
 font:bold 12px/1.3 monospace;align-items:center}
#mhead>span{flex:1;text-align:center}
#body{display:flex;align-items:stretch}
#msgs{flex:none;position:relative;background:#fcfcfd;border-right:1px solid #ddd}
#arrows{position:sticky;top:0;display:block}
#rows{flex:1;min-width:0}
.log tr.now>td:first-child{background:#ffd8a8;color:#000}
#tip{position:fixed;z-index:5;max-width:60em;padding:.3em .5em;background:#fff;
 border:1px solid #868e96;border-radius:3px;box-shadow:0 2px 6px rgba(0,0,0,.2);
 font:12px/1.35 monospace;white-space:pre-wrap;overflow-wrap:anywhere;
 pointer-events:none}
"""
    + _STATE_RULES
    + _MARKER_RULES
    + _TERM_RULES
)
"""The page's style sheet (per-server rules are added by the page itself)."""

SCRIPT = """
"use strict";
(() => {
  const timeline = document.getElementById("timeline");
  const chunks = Array.from(timeline.querySelectorAll(".chunk"));
  const rows = Array.from(timeline.querySelectorAll(".chunk tr"));
  const data = JSON.parse(document.getElementById("data").textContent);
  // Per row: its time, the server whose column shows it (-1: TEST), and
  // whether it is heartbeat noise, an rpc line, or both: the low bits (1,
  // 2) of a digit.
  const ms = data.rows.ms;
  const source = data.rows.server;
  const flags = data.rows.flags;
  const column = new Map(data.servers.map((s, i) => [s, i]));
  let text = null; // lower-cased row texts, made on first use of the filter
  const hiddenServers = new Set();
  const hbBox = document.getElementById("hb");
  const rpBox = document.getElementById("rp");
  const filter = document.getElementById("filter");
  const count = document.getElementById("count");
  // nextShown[i]: the first shown row at or after row i (rows.length: none).
  let nextShown = new Int32Array(rows.length);

  function apply() {
    const needle = filter.value.trim().toLowerCase();
    if (needle && text === null) {
      text = rows.map((r) => r.textContent.toLowerCase());
    }
    let shown = 0;
    const shownInChunk = new Int32Array(chunks.length);
    const hide = (hbBox.checked ? 1 : 0) | (rpBox.checked ? 2 : 0);
    for (let i = 0; i < rows.length; i++) {
      const show = !hiddenServers.has(source[i])
        && !(hide & flags.charCodeAt(i))
        && (!needle || text[i].includes(needle));
      if (rows[i].hidden === show) rows[i].hidden = !show;
      if (show) {
        shown++;
        shownInChunk[Math.floor(i / data.chunk)]++;
      }
    }
    let next = rows.length;
    for (let i = rows.length - 1; i >= 0; i--) {
      if (!rows[i].hidden) next = i;
      nextShown[i] = next;
    }
    // A chunk with no row left must take no room, not its estimated height.
    chunks.forEach((chunk, c) => {
      chunk.hidden = shownInChunk[c] === 0;
    });
    count.textContent = shown + " of " + rows.length + " rows shown";
    renderCluster();
    draw();
  }

  function syncServer(box) {
    const id = box.dataset.server;
    const server = Number(id);
    if (box.checked) hiddenServers.delete(server); else hiddenServers.add(server);
    timeline.classList.toggle("x" + id, !box.checked);
    document.getElementById("lane" + id).classList.toggle("off", !box.checked);
  }

  // The shown row nearest row i: at or after it, else before it.
  function shownNear(i) {
    if (i < rows.length && nextShown[i] < rows.length) return nextShown[i];
    for (let j = Math.min(i, rows.length) - 1; j >= 0; j--) {
      if (!rows[j].hidden) return j;
    }
    return -1;
  }

  // The first row at or after `t` ms. Rows are in time order, give or
  // take a few microseconds.
  function firstRowAt(t) {
    let lo = 0, hi = rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ms[mid] < t) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  function flash(indices) {
    for (const old of timeline.querySelectorAll("tr.flash")) {
      old.classList.remove("flash");
    }
    for (const i of indices) rows[i].classList.add("flash");
  }

  function scrollToRow(i) {
    const j = shownNear(i);
    if (j >= 0) rows[j].scrollIntoView({block: "center"});
  }

  // --- The messages: a space-time diagram beside the table -------------
  const canvas = document.getElementById("arrows");
  const msgsColumn = document.getElementById("msgs");
  const top = document.getElementById("top");
  const tip = document.getElementById("tip");
  // Fields of a message in data.msgs.
  const ID = 0, FROM = 1, TO = 2, KIND = 3, SEND = 4, DELIVER = 5, DROP = 6,
    END = 7, OUTCOME = 8, NEVER_SENT = 9;
  const KINDS = ["RequestVote", "AppendEntries", "heartbeat", "other"];
  const REPLY = 1, LOST = 2;
  const msgs = data.msgs;
  const lastRow = rows.length - 1;
  // The messages whose arrows cross each chunk of rows.
  const buckets = chunks.map(() => []);
  msgs.forEach((m, k) => {
    const end = m[OUTCOME] ? Math.max(m[SEND], m[DELIVER], m[DROP], m[END])
      : lastRow;
    for (let c = Math.floor(m[SEND] / data.chunk);
      c <= Math.floor(end / data.chunk); c++) {
      buckets[c].push(k);
    }
  });
  const drawnAt = new Uint32Array(msgs.length);
  let drawing = 0;
  let segments = []; // [x1, y1, x2, y2, message] of the arrows drawn
  let hovered = -1;
  let moment = lastRow;

  // The browser lays out only the chunks near the viewport (it says which
  // as it goes); the rows of the others have no true position yet.
  const laidOut = new Set();
  chunks.forEach((chunk, c) => {
    chunk.addEventListener("contentvisibilityautostatechange", (event) => {
      if (event.skipped) laidOut.delete(c); else laidOut.add(c);
      scheduleDraw();
    });
  });

  // The y of row i's first line, in client coordinates; a hidden row is
  // where the next shown one is. In a chunk that is not laid out, rows are
  // spread evenly over the chunk's estimated height.
  function rowY(i) {
    const j = shownNear(i);
    if (j < 0) return 0;
    const c = Math.floor(j / data.chunk);
    if (!laidOut.has(c)) {
      const box = chunks[c].getBoundingClientRect();
      const first = c * data.chunk;
      const count = Math.min(data.chunk, rows.length - first);
      return box.top + box.height * (j - first + (j < i ? 1 : 0.5)) / count;
    }
    const box = rows[j].getBoundingClientRect();
    return j < i ? box.bottom : box.top + Math.min(8, box.height / 2);
  }

  function serverX(width) {
    const shown = data.servers.filter((s) => !hiddenServers.has(s));
    // On a pixel's middle, a line of one pixel is sharp.
    return new Map(shown.map(
      (s, i) => [s, Math.round((i + 0.5) * width / shown.length) + 0.5]));
  }

  function visibleChunks(from, to) {
    // Chunks are in page order: find the first whose bottom is below `from`.
    let lo = 0, hi = chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const box = chunks[mid].getBoundingClientRect();
      if (box.height === 0 || box.bottom < from) lo = mid + 1; else hi = mid;
    }
    const visible = [];
    for (let c = Math.max(0, lo - 1); c < chunks.length; c++) {
      const box = chunks[c].getBoundingClientRect();
      if (box.height && box.top > to) break;
      visible.push(c);
    }
    return visible;
  }

  function draw() {
    if (!canvas || !rows.length) return;
    const ratio = window.devicePixelRatio || 1;
    const width = msgsColumn.clientWidth;
    const height = Math.min(window.innerHeight, msgsColumn.clientHeight);
    if (canvas.width !== Math.round(width * ratio)
      || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
      canvas.style.width = width + "px";
      canvas.style.height = height + "px";
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const origin = canvas.getBoundingClientRect().top;
    const x = serverX(width);
    ctx.strokeStyle = "#ced4da";
    ctx.lineWidth = 1;
    ctx.setLineDash([]);
    ctx.beginPath();
    for (const xs of x.values()) {
      ctx.moveTo(xs, 0);
      ctx.lineTo(xs, height);
    }
    ctx.stroke();
    const y = (i) => rowY(i) - origin;
    const from = Math.max(origin, top.getBoundingClientRect().bottom);
    segments = [];
    drawing++;
    for (const c of visibleChunks(from, origin + height)) {
      for (const k of buckets[c]) {
        if (drawnAt[k] === drawing) continue;
        drawnAt[k] = drawing;
        drawMessage(ctx, k, x, y, false);
      }
    }
    if (hovered >= 0 && drawnAt[hovered] === drawing) {
      drawMessage(ctx, hovered, x, y, true);
    }
    if (moment >= 0) {
      const ym = y(moment);
      ctx.strokeStyle = "#f08c00";
      ctx.lineWidth = 2;
      ctx.setLineDash([]);
      ctx.beginPath();
      ctx.moveTo(0, ym);
      ctx.lineTo(width, ym);
      ctx.stroke();
    }
  }

  let drawPending = false;
  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      draw();
    });
  }

  function drawMessage(ctx, k, x, y, highlight) {
    const m = msgs[k];
    if (m[KIND] === 2 && hbBox.checked) return;
    const xs = x.get(m[FROM]), xr = x.get(m[TO]);
    if (xs === undefined || xr === undefined) return;
    const colour = highlight ? "#000" : data.colours[m[KIND]];
    const ys = y(m[SEND]);
    const toward = (a, b, f) => a + (b - a) * f;
    if (m[NEVER_SENT]) {
      const xe = xs + Math.sign(xr - xs) * 10;
      line(ctx, k, xs, ys, xe, ys, colour, highlight ? 3 : 1.5, false);
      ctx.beginPath();
      ctx.moveTo(xe, ys - 4);
      ctx.lineTo(xe, ys + 4);
      ctx.stroke();
      return;
    }
    const delivered = m[DELIVER] >= 0;
    let xe = xr, ye, dashed = false, cross = false;
    if (delivered) {
      ye = y(m[DELIVER]);
    } else if (m[DROP] >= 0) {
      xe = toward(xs, xr, 0.75);
      ye = y(m[DROP]);
      cross = true;
    } else if (m[OUTCOME] === LOST) {
      xe = toward(xs, xr, 0.5);
      ye = y(m[END]);
      cross = true;
    } else {
      ye = y(lastRow);
      dashed = true;
    }
    line(ctx, k, xs, ys, xe, ye, colour, highlight ? 3 : 1.6, dashed);
    if (cross) drawCross(ctx, xe, ye);
    else if (!dashed) arrowHead(ctx, xs, ys, xe, ye);
    if (!delivered) return;
    if (m[OUTCOME] === REPLY) {
      const yr = y(m[END]);
      line(ctx, k, xr, ye, xs, yr, colour, highlight ? 2.5 : 1, false);
      arrowHead(ctx, xr, ye, xs, yr);
    } else if (m[OUTCOME] === LOST) {
      const xl = toward(xr, xs, 0.5), yl = y(m[END]);
      line(ctx, k, xr, ye, xl, yl, colour, highlight ? 2.5 : 1, false);
      drawCross(ctx, xl, yl);
    } else {
      line(ctx, k, xr, ye, xs, y(lastRow), colour, highlight ? 2.5 : 1, true);
    }
  }

  function line(ctx, k, x1, y1, x2, y2, colour, width, dashed) {
    ctx.strokeStyle = colour;
    ctx.fillStyle = colour;
    ctx.lineWidth = width;
    ctx.setLineDash(dashed ? [4, 3] : []);
    ctx.beginPath();
    ctx.moveTo(x1, y1);
    ctx.lineTo(x2, y2);
    ctx.stroke();
    ctx.setLineDash([]);
    segments.push([x1, y1, x2, y2, k]);
  }

  function arrowHead(ctx, x1, y1, x2, y2) {
    const angle = Math.atan2(y2 - y1, x2 - x1);
    ctx.beginPath();
    ctx.moveTo(x2, y2);
    ctx.lineTo(x2 - 6 * Math.cos(angle - 0.4), y2 - 6 * Math.sin(angle - 0.4));
    ctx.lineTo(x2 - 6 * Math.cos(angle + 0.4), y2 - 6 * Math.sin(angle + 0.4));
    ctx.closePath();
    ctx.fill();
  }

  function drawCross(ctx, xc, yc) {
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(xc - 4, yc - 4);
    ctx.lineTo(xc + 4, yc + 4);
    ctx.moveTo(xc + 4, yc - 4);
    ctx.lineTo(xc - 4, yc + 4);
    ctx.stroke();
  }

  // The message whose arrow passes within 5 px of (px, py), or -1.
  function messageNear(px, py) {
    let best = -1, bestDistance = 25;
    for (const [x1, y1, x2, y2, k] of segments) {
      const dx = x2 - x1, dy = y2 - y1;
      const f = dx || dy
        ? Math.max(0, Math.min(1, ((px - x1) * dx + (py - y1) * dy)
          / (dx * dx + dy * dy)))
        : 0;
      const ex = x1 + f * dx - px, ey = y1 + f * dy - py;
      const distance = ex * ex + ey * ey;
      if (distance < bestDistance) {
        best = k;
        bestDistance = distance;
      }
    }
    return best;
  }

  // What row i logged, without the term the page adds before it (nor the
  // line break that ends a row).
  function logged(i) {
    const col = column.get(source[i]);
    const cell = rows[i].cells[col === undefined ? 1 : col + 2];
    const term = cell.querySelector("b");
    const all = cell.textContent.trimEnd();
    return term ? all.slice(term.textContent.length) : all;
  }

  function describe(k) {
    const m = msgs[k];
    const lines = [m[ID] + ": " + KINDS[m[KIND]] + " from " + m[FROM] + " to "
      + m[TO]];
    const at = [m[SEND], m[DROP], m[DELIVER], m[END]]
      .filter((r) => r >= 0).sort((a, b) => a - b);
    for (const r of at) {
      const who = source[r] < 0 ? "TEST" : source[r];
      lines.push(ms[r].toFixed(3) + " [" + who + "] " + logged(r));
    }
    if (!m[OUTCOME]) lines.push("(still in flight when the test ended)");
    return lines.join("\\n");
  }

  function showTip(k, event) {
    if (k < 0) {
      tip.hidden = true;
      return;
    }
    tip.textContent = describe(k);
    tip.hidden = false;
    const room = window.innerWidth - event.clientX;
    tip.style.left = (room > 520 ? event.clientX + 14 : 8) + "px";
    tip.style.top = Math.min(event.clientY + 14,
      window.innerHeight - tip.offsetHeight - 8) + "px";
  }

  canvas.addEventListener("mousemove", (event) => {
    const box = canvas.getBoundingClientRect();
    const k = messageNear(event.clientX - box.left, event.clientY - box.top);
    if (k !== hovered) {
      hovered = k;
      draw();
    }
    showTip(k, event);
  });
  canvas.addEventListener("mouseleave", () => {
    hovered = -1;
    tip.hidden = true;
    draw();
  });
  canvas.addEventListener("click", () => {
    if (hovered < 0) return;
    const m = msgs[hovered];
    flash([m[SEND], m[DROP], m[DELIVER], m[END]].filter((r) => r >= 0));
    scrollToRow(m[SEND]);
  });
  window.addEventListener("scroll", scheduleDraw, {passive: true});
  window.addEventListener("resize", () => {
    if (cluster && data.hasLog && moment >= 0) renderLogs();
    scheduleDraw();
  });

  // --- The cluster at a moment ------------------------------------------
  const slider = document.getElementById("slider");
  const at = document.getElementById("at");
  const cluster = document.getElementById("cluster");
  const who = document.getElementById("who");
  const logs = document.getElementById("logs");
  const peers = document.getElementById("peers");
  const STATES = {F: "Follower", C: "Candidate", L: "Leader", D: "Dead"};
  const BOX = 16; // px per log entry: its width and margin

  // Every server after row r: its operations replayed from the start.
  function clusterAt(r) {
    return data.ops.map((ops) => {
      const view = {state: "F", term: 0, log: [], commit: -1, peers: new Map()};
      for (const op of ops) {
        if (op[0] > r) break;
        switch (op[1]) {
          case "s": view.state = op[2]; view.term = op[3]; break;
          case "l":
            view.log.length = op[2];
            for (const t of op[3]) view.log.push(t);
            break;
          case "c": view.commit = op[2]; break;
          case "p": view.peers.set(op[2], [op[3], op[4]]); break;
        }
      }
      return view;
    });
  }

  // The boxes of entries first..last-1 of a server's log.
  function boxes(view, first, last) {
    const html = [];
    for (let i = first; i < Math.min(last, view.log.length); i++) {
      const t = view.log[i];
      if (t === null) {
        html.push("<i class=q>?</i>");
        continue;
      }
      const done = i <= view.commit ? (i === view.commit ? "c ci" : "c") : "u";
      html.push("<i class='t" + (t % 10) + " " + done + "'>" + t + "</i>");
    }
    return html.join("");
  }

  let views = [];
  let shown = []; // indices (in data.servers) of the servers shown
  function renderCluster() {
    if (!cluster || moment < 0) return;
    views = clusterAt(moment);
    shown = [];
    data.servers.forEach((s, i) => {
      if (!hiddenServers.has(s)) shown.push(i);
    });
    const w = ["<div class=ln>server, state, term" + (data.hasLog ? ", commit"
      : "") + "</div>"];
    const p = ["<div class=ln>as leader: next/match</div>"];
    for (const i of shown) {
      const v = views[i];
      w.push("<div class=ln data-s=" + data.servers[i] + "><b>" + data.servers[i]
        + "</b><span class='st " + v.state + "'>" + STATES[v.state] + "</span>t"
        + v.term + (data.hasLog ? " c" + v.commit : "") + "</div>");
      const next = [];
      if (v.state === "L") {
        for (const [peer, [n, m]] of [...v.peers].sort((a, b) => a[0] - b[0])) {
          next.push(peer + ": " + n + "/" + m);
        }
      }
      p.push("<div class=ln data-s=" + data.servers[i] + ">" + next.join(" · ")
        + "</div>");
    }
    who.innerHTML = w.join("");
    if (data.hasLog) {
      peers.innerHTML = p.join("");
      renderLogs();
    }
  }

  // The logs show only the entries in view (a log may hold thousands),
  // after a margin as wide as the entries before them. Unless the reader
  // scrolls them, they show where the servers' logs stop agreeing (a
  // divergent suffix, a server that lags), or else their ends.
  let following = true;
  let shownRange = {first: 0, last: 0, end: 0, scrollLeft: 0};
  function firstDifference(end) {
    const shownLogs = shown.map((i) => views[i].log);
    for (let k = 0; k < end; k++) {
      const t = shownLogs[0][k];
      if (t === null || shownLogs.some((log) => log[k] !== t)) return k;
    }
    return end;
  }

  function renderLogs() {
    const end = Math.max(0, ...shown.map((i) => views[i].log.length));
    const fits = Math.ceil(logs.clientWidth / BOX) + 1;
    const from = following ? firstDifference(end) - 3
      : Math.floor(logs.scrollLeft / BOX);
    const first = Math.max(0, Math.min(from, end - fits + 1));
    const last = Math.min(end, first + fits + 1);
    const l = ["<div class='ln ruler' style='width:" + end * BOX + "px'>"];
    for (let k = Math.ceil(first / 10) * 10; k < last; k += 10) {
      l.push("<u style='left:" + k * BOX + "px'>" + k + "</u>");
    }
    l.push("</div>");
    for (const i of shown) {
      l.push("<div class=ln data-s=" + data.servers[i] + " data-first=" + first
        + " style='padding-left:" + first * BOX + "px'>" + boxes(views[i], first,
        last) + "</div>");
    }
    logs.innerHTML = l.join("");
    if (following) logs.scrollLeft = first * BOX;
    shownRange = {first, last, end, scrollLeft: logs.scrollLeft};
  }

  if (cluster && !data.hasLog) {
    logs.hidden = true;
    peers.hidden = true;
  }
  if (logs) {
    logs.addEventListener("scroll", () => {
      if (Math.abs(logs.scrollLeft - shownRange.scrollLeft) < 1) return; // ours
      following = false;
      const first = Math.floor(logs.scrollLeft / BOX);
      const fits = Math.ceil(logs.clientWidth / BOX) + 1;
      if (first < shownRange.first
        || Math.min(shownRange.end, first + fits) > shownRange.last) {
        renderLogs();
      }
    });
    // A log entry tells what it is when hovered.
    logs.addEventListener("mouseover", (event) => {
      const box = event.target;
      if (box.tagName !== "I" || box.title) return;
      const line = box.parentElement;
      const view = views[column.get(Number(line.dataset.s))];
      const index = Number(line.dataset.first)
        + Array.prototype.indexOf.call(line.children, box);
      const term = view.log[index];
      if (term === null) {
        box.title = "index " + index + ": unknown (the log does not tell)";
        return;
      }
      const command = data.cmds[index + ":" + term];
      box.title = "index " + index + ", term " + term + ", "
        + (index <= view.commit ? "committed" : "not committed")
        + (command === undefined ? "" : ", command " + command);
    });
  }

  function setMoment(i, scroll) {
    if (i < 0 || i >= rows.length) return;
    if (moment >= 0) rows[moment].classList.remove("now");
    moment = i;
    following = true;
    rows[i].classList.add("now");
    at.textContent = "after row " + (i + 1) + " of " + rows.length + ", "
      + ms[i].toFixed(3) + " ms";
    renderCluster();
    if (scroll) scrollToRow(i);
    scheduleDraw();
  }

  if (slider) {
    // While the slider moves, the panel follows it; when it stops (it is
    // let go, or moved by a key), the table scrolls to the moment too.
    slider.addEventListener("input", () => {
      // The last row at or before the slider's time.
      const t = parseFloat(slider.value);
      setMoment(Math.max(0, firstRowAt(t + 0.0005) - 1), false);
    });
    slider.addEventListener("change", () => {
      scrollToRow(moment);
      scheduleDraw();
    });
    const step = (direction) => {
      let i = moment + direction;
      while (i >= 0 && i < rows.length && rows[i].hidden) i += direction;
      if (i < 0 || i >= rows.length) return;
      slider.value = ms[i];
      setMoment(i, true);
    };
    document.getElementById("prev").addEventListener("click", () => step(-1));
    document.getElementById("next").addEventListener("click", () => step(1));
  }

  document.getElementById("rows").addEventListener("click", (event) => {
    const row = event.target.closest("tr");
    // Selecting text is not choosing a moment.
    if (row === null || String(window.getSelection())) return;
    const i = rows.indexOf(row);
    slider.value = ms[i];
    setMoment(i, false);
  });

  for (const box of document.querySelectorAll("input[data-server]")) {
    // A reload may bring back the boxes as they were: start from them.
    syncServer(box);
    box.addEventListener("change", () => {
      syncServer(box);
      apply();
    });
  }
  hbBox.addEventListener("change", apply);
  rpBox.addEventListener("change", apply);
  let pending = 0;
  filter.addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(apply, 150);
  });

  const overview = document.getElementById("overview");
  if (overview !== null) {
    const span = parseFloat(overview.dataset.span);
    const bar = overview.querySelector(".bar");
    overview.addEventListener("click", (event) => {
      const box = bar.getBoundingClientRect();
      const where = (event.clientX - box.left) / box.width;
      if (where < 0 || where > 1) return;
      const i = shownNear(firstRowAt(where * span));
      if (i < 0) return;
      flash([i]);
      slider.value = ms[i];
      setMoment(i, true);
    });
  }
  apply();
  if (rows.length) setMoment(moment, false);
  window.raftvizReadyMs = performance.now();
})();
"""
"""The page's behaviour: server toggles, heartbeat filter, text filter and
the row count; the messages diagram with its tooltips; the cluster panel for
the moment chosen with the slider, the step buttons, a click on a row or on
the overview strip."""
