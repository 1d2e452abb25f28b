// A test's page: the controls and filters of the timeline table, the
// messages diagram beside it, and the moment shown in the cluster panel
// (panel.js), chosen with the slider, the step and jump buttons, a click
// on a row, on the overview strip or on a link to a row.
//
// It draws from the JSON in <script id=data>, which pages.py writes.
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
  const nextShown = new Int32Array(rows.length);

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
    showCluster(false);
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

  // The first index of the sorted `values` whose value is at least `v`.
  function lowerBound(values, v) {
    let lo = 0, hi = values.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (values[mid] < v) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  // The first row at or after `t` ms. Rows are in time order, give or
  // take a few microseconds.
  const firstRowAt = (t) => lowerBound(ms, t);

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
  const KINDS = ["RequestVote", "AppendEntries", "heartbeat", "InstallSnapshot",
    "other"];
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
  let moment = -1;

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
      const inChunk = Math.min(data.chunk, rows.length - first);
      return box.top + box.height * (j - first + (j < i ? 1 : 0.5)) / inChunk;
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
    return lines.join("\n");
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

  // --- The cluster at a moment ------------------------------------------
  const slider = document.getElementById("slider");
  const at = document.getElementById("at");
  const panelRoot = document.getElementById("cluster");
  const panel = panelRoot && window.RaftPanel.create(panelRoot, {
    servers: data.servers,
    hasLog: data.hasLog,
    command: (index, term) => data.cmds[index + ":" + term],
  });

  // Every server after row r: its operations replayed from the start. A
  // log changed at row r over entries it held is a cut: the entries it
  // lost are kept, to be shown under their replacements. (A log is kept
  // from index 0; with a snapshot, `base` says where the log after it
  // starts.)
  function clusterAt(r) {
    return data.ops.map((ops) => {
      const view = {state: "F", term: 0, log: [], commit: -1, peers: new Map(),
        cut: null, base: -1, baseTerm: -1};
      for (const op of ops) {
        if (op[0] > r) break;
        switch (op[1]) {
          case "s": view.state = op[2]; view.term = op[3]; break;
          case "l":
            view.cut = op[0] === r && op[2] < view.log.length
              ? {start: op[2], old: view.log.slice(op[2])} : null;
            view.log.length = op[2];
            for (const t of op[3]) view.log.push(t);
            break;
          case "c": view.commit = op[2]; break;
          case "p": view.peers.set(op[2], [op[3], op[4]]); break;
          case "b": view.base = op[2]; view.baseTerm = op[3]; break;
        }
      }
      return view;
    });
  }

  // Whether entry `index` of `term` is known to be committed at the moment.
  function committed(index, term) {
    const known = data.committed[index];
    return known !== undefined && known[0] <= moment && known[1] === term;
  }

  function showCluster(newMoment) {
    if (!panel || moment < 0) return;
    panel.show({views: clusterAt(moment), hidden: hiddenServers, committed},
      newMoment);
  }

  window.addEventListener("resize", () => {
    if (panel) panel.resize();
    scheduleDraw();
  });

  // The jump buttons: to the previous or next row of a kind (data.jumps).
  const jumpButtons = Array.from(document.querySelectorAll("button[data-jump]"));

  function jumpTarget(kind, step) {
    const list = data.jumps[kind];
    const k = step > 0 ? lowerBound(list, moment + 1) : lowerBound(list, moment) - 1;
    return k >= 0 && k < list.length ? list[k] : -1;
  }

  function setMoment(i, scroll) {
    if (i < 0 || i >= rows.length) return;
    if (moment >= 0) rows[moment].classList.remove("now");
    moment = i;
    rows[i].classList.add("now");
    at.textContent = "after row " + (i + 1) + " of " + rows.length + ", "
      + ms[i].toFixed(3) + " ms";
    for (const button of jumpButtons) {
      button.disabled = jumpTarget(button.dataset.jump,
        Number(button.dataset.step)) < 0;
    }
    showCluster(true);
    if (scroll) scrollToRow(i);
    scheduleDraw();
  }

  // Go to row i, as a reader asked: the slider follows, the row flashes.
  function goTo(i) {
    slider.value = ms[i];
    flash([i]);
    setMoment(i, true);
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
    for (const button of jumpButtons) {
      button.addEventListener("click", () => {
        const i = jumpTarget(button.dataset.jump, Number(button.dataset.step));
        if (i >= 0) goTo(i);
      });
    }
    document.getElementById("cmds").addEventListener("change", (event) => {
      panel.showCommands(event.target.checked);
    });
  }

  // A link to a row (the first violation, a check) chooses that moment.
  for (const link of document.querySelectorAll("a[data-row]")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      goTo(Number(link.dataset.row));
    });
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
      if (i >= 0) goTo(i);
    });
  }
  apply();
  if (rows.length) setMoment(data.open, false);
  window.raftvizReadyMs = performance.now();
})();
