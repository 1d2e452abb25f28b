// The cluster panel: every server's state, term, log and commit index, and
// for a leader its next and match index of each peer, at one moment.
//
// It knows nothing of where the moment comes from. A test's page replays
// its log to a row and shows the result; a live page can show the states
// it receives. Either way:
//
//   const panel = RaftPanel.create(element, {
//     servers: [0, 1, 2],       // the servers' ids, in display order
//     hasLog: true,             // false: states and terms only (part 1)
//     command: (index, term) => "x=1",  // an entry's command, if known
//   });
//   panel.show(snapshot, true);  // true: a new moment (see show)
//
// A snapshot holds, in the order of `servers`, one view per server:
//   {state: "F" | "C" | "L" | "D", term, log: [term or null, ...],
//    commit, peers: Map(peer -> [nextIndex, matchIndex]),
//    cut: null or {start, old: [term, ...]}, base, baseTerm}
// (`null` in a log is an entry whose term is unknown; `cut` the entries
// just overwritten from index `start` on; `base`, if the server took a
// snapshot (part 6), the last index it covers, of term `baseTerm`: the log
// is indexed from 0 all the same, and the entries up to the base are
// drawn as the snapshot, not one by one), plus
//   hidden: a Set of the ids of servers not to show, and
//   committed(index, term): whether that entry is known to be committed.
"use strict";

window.RaftPanel = (() => {
  const STATES = {F: "Follower", C: "Candidate", L: "Leader", D: "Dead"};
  const TERM_COLOURS = 10; // classes t0 .. t9 colour a term, modulo 10

  const esc = (text) => String(text).replace(/[&<>"']/g,
    (c) => "&#" + c.charCodeAt(0) + ";");

  function create(root, options) {
    root.classList.add("raftpanel");
    root.innerHTML = "<div class=legend>log entries by index, coloured by "
      + "term: <i class='t1 c'>1</i> solid: committed (known to the cluster)"
      + " · <i class='t1 u'>1</i> pale: not (yet) · <i class=q>?</i> unknown"
      + " · <i class='t1 c ci'>1</i> red edge: the server's own commit index,"
      + " c (-1 after a restart, until a leader tells it) · "
      + "<i class='t1 u n'>1</i> written over <i class='t1 x'>1</i> · "
      + "<i class=s></i><i class='t1 c sb'>1</i> a snapshot, up to its last "
      + "entry (part 6)</div>"
      + "<div class=body><div class=who></div>"
      + "<div class=logs></div><div class=peers></div></div>";
    const legend = root.querySelector(".legend");
    const who = root.querySelector(".who");
    const logs = root.querySelector(".logs");
    const peers = root.querySelector(".peers");
    if (!options.hasLog) {
      legend.hidden = true;
      logs.hidden = true;
      peers.hidden = true;
    }
    let snapshot = null;
    let shown = []; // indices (in servers) of the servers shown
    let commands = false; // boxes show commands, not terms
    // Unless the reader scrolls the logs, they show where the servers'
    // logs stop agreeing (a divergent suffix, a server that lags), or else
    // their ends.
    let following = true;
    let range = {first: 0, last: 0, end: 0, scrollLeft: 0};

    const boxWidth = () => (commands ? 48 : 16); // px: box and margin

    function show(moment, newMoment) {
      snapshot = moment;
      if (newMoment) following = true;
      shown = [];
      options.servers.forEach((s, i) => {
        if (!snapshot.hidden.has(s)) shown.push(i);
      });
      const w = ["<div class=ln>server, state, term"
        + (options.hasLog ? ", commit" : "") + "</div>"];
      const p = ["<div class=ln>as leader: next/match</div>"];
      for (const i of shown) {
        const v = snapshot.views[i];
        const id = options.servers[i];
        w.push("<div class=ln data-s=" + id + "><b>" + id + "</b><span class='st " + v.state
          + "'>" + STATES[v.state] + "</span>t" + v.term
          + (options.hasLog ? " c" + v.commit : "") + "</div>");
        const next = [];
        if (v.state === "L") {
          for (const [peer, [n, m]] of [...v.peers].sort((a, b) => a[0] - b[0])) {
            next.push(peer + ": " + n + "/" + m);
          }
        }
        p.push("<div class=ln data-s=" + id + ">" + next.join(" · ") + "</div>");
        if (v.cut) {
          w.push("<div class='ln cutline'>&#9986; written over</div>");
          p.push("<div class=ln></div>");
        }
      }
      who.innerHTML = w.join("");
      if (options.hasLog) {
        peers.innerHTML = p.join("");
        renderLogs();
      }
    }

    const base = (v) => (v.base === undefined ? -1 : v.base);

    // The box of entry k (of term t) of view v; `old`: an entry just
    // written over. The entries of a snapshot are one band, ending with its
    // last entry, whose term the snapshot keeps.
    function box(v, k, t, old) {
      if (!old && k < base(v)) return "<i class=s></i>";
      if (!old && k === base(v)) {
        return "<i class='t" + (v.baseTerm % TERM_COLOURS) + " c"
          + (k === v.commit ? " ci" : "") + " sb'>" + label(k, v.baseTerm)
          + "</i>";
      }
      if (t === null) return "<i class=q>?</i>";
      let cls = "t" + (t % TERM_COLOURS);
      if (old) {
        cls += " x";
      } else {
        cls += snapshot.committed(k, t) ? " c" : " u";
        if (k === v.commit) cls += " ci";
        if (v.cut && k >= v.cut.start) cls += " n";
      }
      return "<i class='" + cls + "'>" + label(k, t) + "</i>";
    }

    function label(k, t) {
      if (!commands) return t;
      const command = options.command(k, t);
      return command === undefined ? "" : esc(command);
    }

    function boxes(v, entries, offset, first, last, old) {
      const html = [];
      const from = Math.max(first, offset);
      const to = Math.min(last, offset + entries.length);
      for (let k = from; k < to; k++) html.push(box(v, k, entries[k - offset], old));
      return html.join("");
    }

    // The first index where the logs shown differ, or one is unknown;
    // entries in a snapshot are left out (they are committed).
    function firstDifference(end) {
      const views = shown.map((i) => snapshot.views[i]);
      for (let k = 0; k < end; k++) {
        const terms = views.filter((v) => k > base(v)).map((v) => v.log[k]);
        if (terms.some((t) => t === null || t !== terms[0])) return k;
      }
      return end;
    }

    // The logs show only the entries in view (a log may hold thousands),
    // after a margin as wide as the entries before them.
    function renderLogs() {
      const width = boxWidth();
      const length = (v) => Math.max(v.log.length,
        v.cut ? v.cut.start + v.cut.old.length : 0);
      const end = Math.max(0, ...shown.map((i) => length(snapshot.views[i])));
      const fits = Math.ceil(logs.clientWidth / width) + 1;
      const from = following ? firstDifference(end) - 3
        : Math.floor(logs.scrollLeft / width);
      const first = Math.max(0, Math.min(from, end - fits + 1));
      const last = Math.min(end, first + fits + 1);
      const line = (s, extra) => "<div class='ln" + extra + "' data-s=" + s
        + " data-first=" + first + " style='padding-left:" + first * width
        + "px'>";
      const l = ["<div class='ln ruler' style='width:" + end * width + "px'>"];
      const step = commands ? 5 : 10;
      for (let k = Math.ceil(first / step) * step; k < last; k += step) {
        l.push("<u style='left:" + k * width + "px'>" + k + "</u>");
      }
      l.push("</div>");
      for (const i of shown) {
        const v = snapshot.views[i];
        const s = options.servers[i];
        l.push(line(s, "") + boxes(v, v.log, 0, first, last, false) + "</div>");
        if (v.cut) {
          // The overwritten entries, under their replacements.
          const pad = Math.max(0, v.cut.start - first);
          l.push(line(s, " cutline") + "<span style='display:inline-block;width:"
            + pad * width + "px'></span>"
            + boxes(v, v.cut.old, v.cut.start, first, last, true) + "</div>");
        }
      }
      logs.innerHTML = l.join("");
      if (following) logs.scrollLeft = first * width;
      range = {first, last, end, scrollLeft: logs.scrollLeft};
    }

    logs.addEventListener("scroll", () => {
      if (Math.abs(logs.scrollLeft - range.scrollLeft) < 1) return; // ours
      following = false;
      const width = boxWidth();
      const first = Math.floor(logs.scrollLeft / width);
      const fits = Math.ceil(logs.clientWidth / width) + 1;
      if (first < range.first || Math.min(range.end, first + fits) > range.last) {
        renderLogs();
      }
    });

    // A log entry tells what it is when hovered.
    logs.addEventListener("mouseover", (event) => {
      const target = event.target;
      const line = target.parentElement;
      if (target.tagName !== "I" || target.title || !line.dataset.s) return;
      const i = options.servers.indexOf(Number(line.dataset.s));
      const v = snapshot.views[i];
      const old = line.classList.contains("cutline");
      const entries = old ? v.cut.old : v.log;
      const offset = old ? v.cut.start : 0;
      const before = Array.prototype.filter.call(
        line.children, (child) => child.tagName === "I");
      const index = Math.max(Number(line.dataset.first), offset)
        + before.indexOf(target);
      const term = entries[index - offset];
      if (!old && index <= base(v)) {
        target.title = "index " + index + ": in server " + line.dataset.s
          + "'s snapshot, which covers every entry up to index " + v.base
          + " (term " + v.baseTerm + ")";
        return;
      }
      if (term === null) {
        target.title = "index " + index + ": unknown (the log does not tell)";
        return;
      }
      const command = options.command(index, term);
      const what = old ? "written over by the entry above"
        : snapshot.committed(index, term) ? "committed" : "not committed (yet)";
      target.title = "index " + index + ", term " + term + ", " + what
        + (command === undefined ? "" : ", command " + command)
        + (old ? "" : "\nserver " + line.dataset.s + "'s commit index: "
          + v.commit);
    });

    return {
      show,
      // Boxes show their entry's command instead of its term, or back.
      showCommands(on) {
        commands = on;
        root.classList.toggle("cmds", on);
        if (snapshot && options.hasLog) renderLogs();
      },
      // The panel's width changed.
      resize() {
        if (snapshot && options.hasLog) renderLogs();
      },
    };
  }

  return {create};
})();
