// The playground's page: a live cluster drawn as RaftScope draws one
// (servers on a ring, election timers running down around them, messages
// moving between them), its controls, the run's log as it comes, and the
// visualizer's cluster panel (panel.js) for the servers' logs.
//
// The server (tools/playground/web.py) runs the cluster on a virtual
// clock. The page asks it for the state (GET /api/state: a long poll that
// answers once something changed) and draws, at every animation frame,
// the moment the clock shows: the state says what the clock read when it
// was taken, how fast it runs, and until when nothing else happens (the
// next event), so the page moves the time on by itself in between.
// Everything the user does is a POST; the server checks it.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("config").textContent);
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const STATES = {F: "Follower", C: "Candidate", L: "Leader", D: "Dead"};
  const SPEEDS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1];
  const RADIUS = 175; // of the ring the servers sit on
  const BODY = 38; // a server's radius
  const TIMER = 46; // the election timer's ring
  const FLASH_MS = 300; // how long a reply, a drop or a loss is drawn
  const POLL_GAP_MS = 30; // between two polls: the page asks at most ~30/s
  const CUT_MS = 6000; // how long overwritten entries stay under their log
  const MAX_EVENTS = 300; // lines of the log kept on the page
  const RPC_LINE = /^\S+ \[\d+\] rpc /; // a line of the network layer

  let runId = -1;
  let version = -1;
  let state = null; // the last answer of /api/state
  let ids = []; // the servers' ids
  let positions = []; // their centres on the ring
  let panel = null;
  let lastLogs = []; // each server's log terms, at the last view
  let cuts = []; // entries each server just had written over
  const messages = new Map(); // id -> message (see addMessage)
  let nextLine = null; // the number of the next line of the log to come
  let base = {clock: 0, until: 0, wall: 0}; // the clock, when last told
  let changed = true; // something new to draw

  // --- Talking to the server -------------------------------------------

  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body || {}),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    return answer;
  }

  async function poll() {
    for (;;) {
      let answer = null;
      try {
        const response = await fetch(
          "/api/state?run=" + runId + "&since=" + version);
        answer = await response.json();
        if (!response.ok) throw new Error(answer.error);
      } catch (error) {
        $("status").textContent = "no answer from the playground (" + error.message
          + "): is it still running?";
        $("status").className = "bad";
        await sleep(2000);
        continue;
      }
      receive(answer);
      await sleep(answer.finished ? 1000 : POLL_GAP_MS);
    }
  }

  // Do an action on the cluster; say what came of it.
  async function act(action) {
    hideMenu();
    const started = performance.now();
    try {
      const answer = await post("/api/action", action);
      notice(answer.describe + " at " + answer.done.at.toFixed(6) + " s: "
        + answer.outcome, false, performance.now() - started);
    } catch (error) {
      notice(error.message, true);
    }
  }

  async function control(body) {
    try {
      await post("/api/control", body);
    } catch (error) {
      notice(error.message, true);
    }
  }

  // --- What the server tells ---------------------------------------------

  function receive(answer) {
    if (answer.run !== runId) startRun(answer);
    state = answer;
    version = answer.version;
    base = {clock: answer.clock, until: answer.until, wall: performance.now()};
    // A page that fell behind (a tab in the background) is sent every
    // message the server still follows: the others ended unseen.
    if (answer.allMessages) keepOnly(answer.messages);
    for (const m of answer.messages) addMessage(m);
    addEvents(answer.lines, answer.firstLine);
    for (const text of answer.notices) notice(text, /refused|stopped/.test(text));
    const caption = $("caption");
    caption.hidden = !answer.caption;
    caption.textContent = answer.caption;
    showStatus();
    if (answer.view) showView(answer.view);
    changed = true;
  }

  function startRun(answer) {
    runId = answer.run;
    const s = answer.session;
    ids = [...Array(s.servers).keys()];
    positions = ids.map((i) => {
      const angle = -Math.PI / 2 + 2 * Math.PI * i / ids.length;
      return ids.length === 1 ? [0, 0]
        : [RADIUS * Math.cos(angle), RADIUS * Math.sin(angle)];
    });
    lastLogs = ids.map(() => []);
    cuts = ids.map(() => null);
    messages.clear();
    nextLine = null;
    $("events").textContent = "";
    $("notices").textContent = "";
    $("what").textContent = "· " + s.part + " (" + s.lesson + ") · " + s.servers
      + " server" + (s.servers === 1 ? "" : "s") + " · seed " + s.seed + " · "
      + answer.source;
    document.title = "Raft playground · " + (s.title || s.part);
    $("about").textContent = s.about;
    $("about").hidden = !s.about;
    $("groups").innerHTML = ids.map((i) => "<label><input type=checkbox value="
      + i + ">" + i + "</label>").join(" ");
    showLegend(s);
    buildRing();
    panel = window.RaftPanel.create($("panel"), {
      servers: ids,
      hasLog: true,
      command: (index, term) => commandAt(index, term),
    });
    panel.showCommands($("cmds").checked);
  }

  function showStatus() {
    const running = state.mode === "running";
    $("run").textContent = running ? "Pause" : "Resume";
    $("speed").value = nearestSpeed(state.speed);
    $("speedText").textContent = speedText(state.speed);
    let text = running ? "running at " + speedText(state.speed)
      : state.atLine ? "paused at a log line"
        : state.held ? "paused" : "pausing…";
    if (state.finished) text = state.failure || "the run is over";
    $("status").textContent = text;
    $("status").className = state.failure ? "bad" : "";
    const view = state.view;
    const bad = view && view.violations.length
      ? "SAFETY VIOLATION: " + view.violations.join("; ") : "";
    if (bad) {
      $("status").textContent = bad;
      $("status").className = "bad";
    }
  }

  function showView(view) {
    const servers = view.servers;
    servers.forEach((v, i) => {
      const old = lastLogs[i];
      let k = 0;
      while (k < old.length && k < v.log.length && old[k] === v.log[k]) k++;
      if (k < old.length) {
        cuts[i] = {start: k, old: old.slice(k), left: CUT_MS};
      }
      lastLogs[i] = v.log;
    });
    drawServers(view);
    showPanel(view);
    if (!$("menu").hidden) showMenu(Number($("menu").dataset.s));
  }

  function showPanel(view) {
    const committed = view.committed;
    panel.show({
      views: view.servers.map((v, i) => ({
        state: v.state,
        term: v.term,
        log: v.log,
        base: v.base,
        baseTerm: v.baseTerm,
        commit: v.commit,
        peers: new Map(v.peers.map(([p, next, match]) => [p, [next, match]])),
        cut: cuts[i] && cuts[i].left > 0 ? cuts[i] : null,
      })),
      hidden: new Set(),
      committed: (index, term) => index < committed.length
        && committed[index] === term,
    }, true);
  }

  function commandAt(index, term) {
    if (!state || !state.view) return undefined;
    for (const v of state.view.servers) {
      if (v.log[index] === term) return v.commands[index];
    }
    return undefined;
  }

  // --- The ring -----------------------------------------------------------

  function svg(tag, attributes, parent) {
    const element = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) {
      element.setAttribute(name, value);
    }
    if (parent) parent.appendChild(element);
    return element;
  }

  let linkLines = new Map(); // "i-j" -> line
  let serverParts = []; // per server: its elements
  let msgLayer = null;

  function buildRing() {
    const ring = $("ring");
    ring.textContent = "";
    linkLines = new Map();
    const links = svg("g", {class: "links"}, ring);
    ids.forEach((i) => {
      ids.forEach((j) => {
        if (j <= i) return;
        const [x1, y1] = positions[i];
        const [x2, y2] = positions[j];
        linkLines.set(i + "-" + j, svg("line", {x1, y1, x2, y2}, links));
      });
    });
    msgLayer = svg("g", {class: "msgs"}, ring);
    serverParts = ids.map((i) => {
      const [x, y] = positions[i];
      const g = svg("g", {class: "srv", "data-s": i,
        transform: "translate(" + x + "," + y + ")", tabindex: 0}, ring);
      const parts = {
        g,
        track: svg("circle", {class: "track", r: TIMER}, g),
        timer: svg("path", {class: "timer"}, g),
        body: svg("circle", {class: "body", r: BODY}, g),
        id: svg("text", {class: "id", y: -2}, g),
        term: svg("text", {class: "term", y: 18}, g),
        cross: svg("path", {class: "cross",
          d: "M-26,-26L26,26M26,-26L-26,26"}, g),
        state: svg("text", {class: "state", y: y > 0 ? -BODY - 14 : BODY + 24}, g),
        vote: svg("text", {class: "vote", y: y > 0 ? -BODY - 28 : BODY + 38}, g),
      };
      parts.id.textContent = i;
      g.addEventListener("click", (event) => {
        event.stopPropagation();
        showMenu(i);
      });
      g.addEventListener("keydown", (event) => {
        if (event.key === "Enter") showMenu(i);
      });
      return parts;
    });
  }

  function drawServers(view) {
    view.servers.forEach((v, i) => {
      const parts = serverParts[i];
      parts.g.setAttribute("class", "srv " + v.state
        + (v.alive && !v.connected ? " cutoff" : ""));
      parts.body.style.fill = config.stateColours[v.state];
      parts.term.textContent = "term " + v.term;
      parts.state.textContent = !v.alive ? "crashed"
        : STATES[v.state] + (v.connected ? "" : ", cut off");
      parts.vote.textContent = v.alive && v.vote >= 0 && v.state !== "L"
        ? "voted for " + v.vote + " in term " + v.term : "";
    });
    for (const [key, line] of linkLines) {
      const [i, j] = key.split("-").map(Number);
      const a = view.servers[i];
      const b = view.servers[j];
      const ab = a.links.includes(j);
      const ba = b.links.includes(i);
      const both = a.alive && b.alive;
      line.setAttribute("class", ab && ba ? "up" : ab || ba ? "half"
        : both ? "cut" : "none");
    }
  }

  // The arc of a timer that has `fraction` of its time left, from the top,
  // clockwise.
  function arc(fraction) {
    if (fraction <= 0) return "";
    if (fraction >= 1) fraction = 0.9999;
    const angle = 2 * Math.PI * fraction;
    const x = TIMER * Math.sin(angle);
    const y = -TIMER * Math.cos(angle);
    return "M0," + (-TIMER) + "A" + TIMER + "," + TIMER + " 0 "
      + (fraction > 0.5 ? 1 : 0) + " 1 " + x.toFixed(2) + "," + y.toFixed(2);
  }

  function drawTimers(t) {
    if (!state || !state.view) return;
    state.view.servers.forEach((v, i) => {
      const parts = serverParts[i];
      const timer = v.timer;
      parts.track.style.display = timer ? "" : "none";
      if (!timer) {
        parts.timer.setAttribute("d", "");
        return;
      }
      const [reset, timeout] = timer;
      const left = Math.max(0, (reset + timeout - t) / timeout);
      parts.timer.setAttribute("d", arc(left));
      parts.timer.setAttribute("class", "timer" + (left < 0.25 ? " low" : ""));
    });
  }

  // --- Messages -------------------------------------------------------------

  // A message, as the server sends it: [id, from, to, kind, sent, arrive,
  // reached, ended, outcome]. Times are virtual seconds; `arrive`
  // is when it reaches the receiver (known while it travels: the network's
  // delay), `reached` "deliver" or "drop", `outcome` "reply" or "lost".
  function addMessage(m) {
    const [id, from, to, kind, sent, arrive, reached, ended, outcome] = m;
    const old = messages.get(id);
    messages.set(id, {from, to, kind, sent, arrive, reached, ended, outcome,
      flash: old ? old.flash : null, dot: old ? old.dot : null});
  }

  function keepOnly(fresh) {
    const kept = new Set(fresh.map((m) => m[0]));
    for (const [id, m] of messages) {
      if (kept.has(id)) continue;
      if (m.dot) m.dot.remove();
      messages.delete(id);
    }
  }

  function point(from, to, p) {
    const [x1, y1] = positions[from];
    const [x2, y2] = positions[to];
    const length = Math.hypot(x2 - x1, y2 - y1) || 1;
    const ux = (x2 - x1) / length;
    const uy = (y2 - y1) / length;
    const sx = x1 + ux * BODY;
    const sy = y1 + uy * BODY;
    const span = Math.max(0, length - 2 * BODY);
    return [sx + ux * span * p, sy + uy * span * p];
  }

  // Draw each message at time t (virtual); `now` is the wall clock, for
  // the flashes. Return whether something still moves.
  function drawMessages(t, now) {
    let anyMoving = false;
    for (const [id, m] of messages) {
      let shape = null; // [kind, p, from, to]
      if (t >= m.sent) {
        const done = m.arrive !== null ? m.arrive : m.ended;
        if (done === null || t < done) {
          const p = m.arrive === null ? 0
            : m.arrive > m.sent ? (t - m.sent) / (m.arrive - m.sent) : 1;
          shape = ["request", p];
          anyMoving = true;
        } else if (m.ended !== null && t >= m.ended || m.reached === "drop") {
          if (m.flash === null) m.flash = now;
          const f = (now - m.flash) / FLASH_MS;
          if (f < 1) {
            anyMoving = true;
            if (m.outcome === "reply") {
              shape = ["reply", 1 - f];
            } else {
              shape = ["lost", m.reached ? 1 : 0];
            }
          } else if (t - (m.ended === null ? m.arrive : m.ended) > 1) {
            if (m.dot) m.dot.remove();
            messages.delete(id);
          }
        }
      }
      if (!shape) {
        if (m.dot) m.dot.style.display = "none";
        continue;
      }
      if (!m.dot) m.dot = svg("g", {}, msgLayer);
      drawDot(m, shape[0], shape[1]);
    }
    return anyMoving;
  }

  function drawDot(m, shape, p) {
    const [x, y] = point(m.from, m.to, p);
    const colour = config.messageColours[m.kind] || config.messageColours.other;
    const dot = m.dot;
    dot.style.display = "";
    if (dot.dataset.shape !== shape) {
      dot.dataset.shape = shape;
      dot.textContent = "";
      if (shape === "lost") {
        svg("path", {class: "lost", d: "M-7,-7L7,7M7,-7L-7,7"}, dot);
      } else {
        svg("circle", {r: shape === "reply" ? 4 : 7, fill: colour,
          class: shape}, dot);
      }
    }
    dot.setAttribute("transform", "translate(" + x.toFixed(1) + ","
      + y.toFixed(1) + ")");
  }

  // --- The clock and the frames --------------------------------------------

  // The virtual time to show: the clock as last told, moved on at the
  // speed while running, but never past the next event the server knows
  // of (it will say what happens there).
  function displayTime(now) {
    if (!state) return 0;
    if (state.mode !== "running" || state.finished) return base.clock;
    const t = base.clock + (now - base.wall) / 1000 * state.speed;
    return base.until === null ? t : Math.min(t, Math.max(base.until, base.clock));
  }

  // Each frame draws the moment to show, when it moves: while running,
  // while a message moves or flashes, or when the server told something
  // new. Paused and still, a frame does nothing. The page counts its frames
  // and the time it spends drawing them (window.playgroundFrames, ...Ms).
  let lastFrame = 0;
  let moving = false;
  window.playgroundFrames = 0;
  window.playgroundDrawMs = 0;
  function frame(now) {
    const dt = lastFrame ? now - lastFrame : 0;
    lastFrame = now;
    const running = state !== null && state.mode === "running" && !state.finished;
    if (changed || running || moving) {
      const t = displayTime(now);
      $("clock").textContent = t.toFixed(running ? 3 : 6) + " s";
      drawTimers(t);
      moving = drawMessages(t, now);
      changed = false;
      window.playgroundFrames++;
      window.playgroundDrawMs += performance.now() - now;
    }
    if (running) expireCuts(dt);
    requestAnimationFrame(frame);
  }

  // Overwritten entries stay under their log for a while of running time.
  function expireCuts(dt) {
    let expired = false;
    for (const cut of cuts) {
      if (cut && cut.left > 0) {
        cut.left -= dt;
        expired = expired || cut.left <= 0;
      }
    }
    if (expired && state.view) showPanel(state.view);
  }

  // --- The log, as it comes --------------------------------------------------

  // Add the lines of the log from number `first` on. If the page fell
  // behind, a line before them says how many it missed (and it keeps room
  // for that line: of more lines than it keeps, only the latest).
  function addEvents(lines, first) {
    if (!lines.length) return;
    const box = $("events");
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    const fragment = document.createDocumentFragment();
    const extra = Math.max(0, lines.length - (MAX_EVENTS - 1));
    lines = lines.slice(extra);
    first += extra;
    if (nextLine !== null && first > nextLine) {
      const div = document.createElement("div");
      div.className = "ev missed";
      const missed = first - nextLine;
      div.textContent = "… " + missed + " line" + (missed === 1 ? "" : "s")
        + " not shown: the page fell behind (Open log has them all)";
      fragment.appendChild(div);
    }
    nextLine = first + lines.length;
    for (const [, server, text, heartbeat] of lines) {
      const div = document.createElement("div");
      div.className = "ev" + (server < 0 ? " test" : " s" + (server % 10))
        + (heartbeat ? " hb" : "") + (RPC_LINE.test(text) ? " rpc" : "");
      div.textContent = text;
      div.title = text; // the whole line, where it is cut short
      fragment.appendChild(div);
    }
    box.appendChild(fragment);
    while (box.childElementCount > MAX_EVENTS) box.firstElementChild.remove();
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  function notice(text, bad, ms) {
    const box = $("notices");
    const div = document.createElement("div");
    div.className = "notice" + (bad ? " bad" : "");
    div.textContent = text;
    if (ms !== undefined) div.dataset.ms = ms.toFixed(0);
    box.prepend(div);
    while (box.childElementCount > 4) box.lastElementChild.remove();
  }

  // --- The server menu ---------------------------------------------------------

  // The menu of server i, next to it. Redrawn only when what it offers
  // changes: a button replaced under the pointer would lose its click.
  function showMenu(i) {
    if (!state || !state.view) return;
    const v = state.view.servers[i];
    const s = state.session;
    const menu = $("menu");
    const item = (what, label) => "<button data-do=" + what + ">" + label
      + "</button>";
    const items = [];
    if (s.crashes) items.push(v.alive ? item("crash", "crash") : item("restart", "restart"));
    if (v.alive) {
      items.push(v.connected ? item("disconnect", "disconnect")
        : item("reconnect", "reconnect"));
      items.push(item("submit", "submit " + escapeHtml($("command").value)));
    }
    if (s.snapshots && v.alive) items.push(item("snapshot", "take a snapshot"));
    if (menu.hidden || menu.dataset.s !== String(i)) {
      const box = serverParts[i].body.getBoundingClientRect();
      const left = $("left").getBoundingClientRect();
      menu.style.left = (box.right - left.left + 6) + "px";
      menu.style.top = (box.top - left.top) + "px";
      menu.innerHTML = "<b></b><div></div>";
      menu.dataset.s = i;
    }
    menu.firstChild.textContent = "server " + i + " · " + (v.alive
      ? STATES[v.state] : "crashed") + ", term " + v.term;
    const buttons = items.join("");
    if (menu.lastChild.dataset.html !== buttons) {
      menu.lastChild.innerHTML = buttons;
      menu.lastChild.dataset.html = buttons;
    }
    menu.hidden = false;
  }

  function hideMenu() {
    $("menu").hidden = true;
  }

  const escapeHtml = (text) => String(text).replace(/[&<>"']/g,
    (c) => "&#" + c.charCodeAt(0) + ";");

  $("menu").addEventListener("click", (event) => {
    const what = event.target.dataset.do;
    if (!what) return;
    const server = Number($("menu").dataset.s);
    const action = {do: what, server};
    if (what === "submit") action.command = $("command").value;
    act(action);
  });
  document.addEventListener("click", (event) => {
    if (!$("menu").contains(event.target)) hideMenu();
  });

  // --- The controls ---------------------------------------------------------------

  const speedText = (speed) => speed >= 1 ? "1×"
    : "1/" + Math.round(1 / speed) + "×";
  function nearestSpeed(speed) {
    let best = 0;
    SPEEDS.forEach((s, k) => {
      if (Math.abs(Math.log(s / speed)) < Math.abs(Math.log(SPEEDS[best] / speed))) {
        best = k;
      }
    });
    return best;
  }
  $("speed").max = SPEEDS.length - 1;
  $("speed").addEventListener("input", () => {
    const speed = SPEEDS[Number($("speed").value)];
    $("speedText").textContent = speedText(speed);
    control({do: "speed", speed});
  });
  $("run").addEventListener("click", () => {
    control({do: state && state.mode === "running" ? "pause" : "resume"});
  });
  $("step").addEventListener("click", () => control({do: "step"}));
  document.addEventListener("keydown", (event) => {
    if (event.target.tagName === "INPUT" || event.target.tagName === "SELECT") return;
    if (event.key === " ") {
      event.preventDefault();
      $("run").click();
    } else if (event.key === "s") {
      $("step").click();
    }
  });

  $("submitter").addEventListener("submit", (event) => {
    event.preventDefault();
    const leader = currentLeader();
    if (leader === null) {
      notice("no leader now: wait for one, or click a server to submit to it",
        true);
      return;
    }
    act({do: "submit", server: leader, command: $("command").value});
  });

  // The leader of the highest term among the running servers.
  function currentLeader() {
    if (!state || !state.view) return null;
    let leader = null;
    for (const v of state.view.servers) {
      if (v.alive && v.state === "L" && (leader === null || v.term > leader.term)) {
        leader = v;
      }
    }
    return leader === null ? null : leader.id;
  }

  $("partition").addEventListener("click", () => {
    const boxes = Array.from($("groups").querySelectorAll("input"));
    const side = boxes.filter((b) => b.checked).map((b) => Number(b.value));
    const rest = boxes.filter((b) => !b.checked).map((b) => Number(b.value));
    if (!side.length || !rest.length) {
      notice("tick the servers of one side (not all of them) to partition", true);
      return;
    }
    act({do: "partition", groups: [side, rest]});
  });
  $("heal").addEventListener("click", () => act({do: "heal"}));

  $("save").addEventListener("click", async () => {
    try {
      const answer = await post("/api/save");
      notice("saved to " + answer.session + " (and its log beside it); replay: "
        + answer.replay, false);
    } catch (error) {
      notice(error.message, true);
    }
  });
  $("openlog").addEventListener("click", async () => {
    // Opened now, while the click counts: a window opened after waiting
    // would be taken for a pop-up.
    const tab = window.open("", "_blank");
    try {
      const answer = await post("/api/log");
      notice("log written to " + answer.log, false);
      if (tab) tab.location = answer.url;
    } catch (error) {
      if (tab) tab.close();
      notice(error.message, true);
    }
  });

  $("hb").addEventListener("change", () => {
    $("events").classList.toggle("nohb", $("hb").checked);
  });
  $("rpc").addEventListener("change", () => {
    $("events").classList.toggle("norpc", $("rpc").checked);
  });
  $("events").classList.toggle("nohb", $("hb").checked);
  $("cmds").addEventListener("change", () => {
    if (panel) panel.showCommands($("cmds").checked);
  });
  window.addEventListener("resize", () => {
    if (panel) panel.resize();
  });

  // --- Starting another run ----------------------------------------------------------

  async function loadScenarios() {
    const response = await fetch("/api/scenarios");
    const scenarios = await response.json();
    for (const s of scenarios) {
      const option = document.createElement("option");
      option.value = s.name;
      option.textContent = s.title + " (" + s.part + ")";
      option.title = s.about;
      $("scenario").appendChild(option);
    }
  }
  $("scenario").addEventListener("change", async () => {
    const name = $("scenario").value;
    if (!name) return;
    $("scenario").value = "";
    try {
      await post("/api/start", {scenario: name});
    } catch (error) {
      notice(error.message, true);
    }
  });
  $("start").addEventListener("submit", async (event) => {
    event.preventDefault();
    const seed = $("seed").value.trim();
    try {
      await post("/api/start", {
        part: $("part").value,
        servers: Number($("servers").value),
        // A seed that is not a number goes as it is: the server says why
        // it refuses it.
        seed: seed === "" ? null : /^\d+$/.test(seed) ? Number(seed) : seed,
      });
    } catch (error) {
      notice(error.message, true);
    }
  });
  for (const part of config.stages) {
    const option = document.createElement("option");
    option.textContent = part;
    $("part").appendChild(option);
  }
  $("part").value = config.defaultStage;

  // A colour and its name, kept on one line.
  const key = (colour, name) => "<span class=key><i class=sw style='background:"
    + colour + "'></i>" + name + "</span>";

  // The legend under the ring, for the stage of session s.
  function showLegend(s) {
    const kinds = ["RequestVote", "AppendEntries", "heartbeat"];
    if (s.snapshots) kinds.push("InstallSnapshot");
    const acts = [s.crashes ? "crash" : null, "disconnect", "submit to",
      s.snapshots ? "take a snapshot of" : null].filter((a) => a !== null);
    $("legend").innerHTML = "Each circle is a server, coloured by its state: "
      + Object.entries(STATES).map(([k, name]) => key(config.stateColours[k], name))
        .join(" ")
      + ". The ring around a follower or candidate is its election timer running"
      + " down: a heartbeat from the leader fills it again; when it runs out the"
      + " server starts an election. Dots are messages: "
      + kinds.map((k) => key(config.messageColours[k],
        k === "AppendEntries" ? "AppendEntries with entries" : k)).join(" ")
      + "; a small dot going back is a reply, a red × a message lost. Lines are"
      + " links (red dots: cut). Click a server to "
      + acts.slice(0, -1).join(", ") + " or " + acts[acts.length - 1] + " it.";
  }

  loadScenarios();
  poll();
  requestAnimationFrame(frame);
})();
