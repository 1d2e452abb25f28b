"""A generated page in a real browser: headless Chromium, driven by Selenium.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs
them); skipped, saying so, where they are missing (the ``browser`` fixture
is in conftest.py).

The tests save screenshots of what they look at, and print their paths and
how long the page took to load and to answer (``browser.time_page``). With
RAFT_VIZ_SCREENSHOTS=DIR they also copy the screenshots into DIR: that is
how docs/images/viz.png is made.
"""

from __future__ import annotations

import bisect
import io
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.tools.test_cluster import SNAPSHOT_LINES
from tools.raft_testlog_viz import browser as viz_browser
from tools.raft_testlog_viz.assets import (
    MARKER_COLOURS,
    MESSAGE_COLOURS,
    asset,
    colour_rules,
)
from tools.raft_testlog_viz.cli import main
from tools.raft_testlog_viz.cluster import History, LogOp, ServerView, build_history
from tools.raft_testlog_viz.messages import HEARTBEAT, REPLY, Message
from tools.raft_testlog_viz.pages import STATE_CLASS, jumps, opening_row, write_site
from tools.raft_testlog_viz.parse import RunLog, parse_log
from tools.raft_testlog_viz.timeline import State, Timeline, build_timeline

from .conftest import save_screenshot

if viz_browser.missing() is not None:
    pytest.skip(str(viz_browser.missing()), allow_module_level=True)

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.action_builder import (
    ActionBuilder,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

# Counts the rows the browser really displays, not what the page says.
DISPLAYED_ROWS = """
return Array.from(document.querySelectorAll('.chunk tr'))
    .filter((r) => r.getClientRects().length > 0).length;
"""


def count_text(driver: WebDriver) -> str:
    """What the page's row counter says."""
    return str(driver.find_element(By.ID, "count").text)


def test_controls_work_in_a_real_browser(
    browser: WebDriver, real_run: RunLog, tmp_path: Path
) -> None:
    site = write_site(real_run, tmp_path)
    test_index = 1  # the leader disconnect test: elections and a TEST action
    timeline = build_timeline(real_run.tests[test_index])
    rows = timeline.rows
    total = len(rows)
    from_0 = [r for r in rows if r.entry.server == 0]
    shown = [r for r in rows if r.entry.server != 0]
    quiet = [r for r in shown if not r.heartbeat]
    assert 0 < len(quiet) < len(shown) < total

    browser.get(site.pages[test_index].url)
    assert count_text(browser) == f"{total} of {total} rows shown"
    assert browser.execute_script(DISPLAYED_ROWS) == total

    browser.find_element(By.CSS_SELECTOR, "input[data-server='0']").click()
    assert count_text(browser) == f"{total - len(from_0)} of {total} rows shown"
    assert browser.execute_script(DISPLAYED_ROWS) == len(shown)
    server_0_head = browser.find_element(By.XPATH, "//div[@id='head']//th[3]")
    assert not server_0_head.is_displayed()
    assert "off" in str(browser.find_element(By.ID, "lane0").get_attribute("class"))

    browser.find_element(By.ID, "hb").click()
    assert count_text(browser) == f"{len(quiet)} of {total} rows shown"
    assert browser.execute_script(DISPLAYED_ROWS) == len(quiet)

    save_screenshot(browser, tmp_path / "raftviz-browser.png")

    # The text filter (it waits for typing to pause, hence the wait).
    matching = [r for r in quiet if "becomes" in r.entry.message]
    browser.find_element(By.ID, "filter").send_keys("becomes")
    WebDriverWait(browser, 5).until(
        lambda d: count_text(d) == f"{len(matching)} of {total} rows shown"
    )
    assert browser.execute_script(DISPLAYED_ROWS) == len(matching)
    # Erase it as a person would (WebDriver's clear() sends no input event).
    browser.find_element(By.ID, "filter").send_keys(Keys.CONTROL, "a", Keys.DELETE)
    WebDriverWait(browser, 5).until(
        lambda d: count_text(d) == f"{len(quiet)} of {total} rows shown"
    )

    # Clicking the overview strip near its end scrolls the table there.
    bar = browser.find_element(By.CSS_SELECTOR, "#overview .bar")
    ActionChains(browser).move_to_element_with_offset(
        bar, int(bar.size["width"] * 0.4), 0
    ).click().perform()
    flashed = browser.find_element(By.CSS_SELECTOR, "tr.flash")
    assert (
        float(flashed.find_element(By.TAG_NAME, "td").text) >= 0.85 * timeline.span_ms
    )
    assert browser.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return r.top >= 0 && r.bottom <= window.innerHeight;",
        flashed,
    )


def test_log_text_stays_text_in_a_real_browser(
    browser: WebDriver, tmp_path: Path
) -> None:
    run = parse_log(
        [
            "=== RUN test_a",
            "12:00:00.000000 [0] <script>window.pwned = 1</script>",
            "12:00:00.100000 [TEST] <img src=x onerror='window.pwned = 2'>",
            "--- PASS: test_a (0.10s)",
        ]
    )
    site = write_site(run, tmp_path)
    browser.get(site.pages[0].url)
    assert browser.execute_script("return window.pwned") is None
    cells = browser.find_elements(By.CSS_SELECTOR, ".chunk td")
    texts = [cell.text for cell in cells]
    assert "0<script>window.pwned = 1</script>" in texts
    assert "<img src=x onerror='window.pwned = 2'>" in texts


# The cluster panel as the page shows it: per server, its line in each of
# the three columns, and the index of the first log entry shown.
PANEL = """
const lines = (column) => Object.fromEntries(
  Array.from(document.querySelectorAll(
    "#cluster " + column + " .ln[data-s]:not(.cutline)"))
    .map((line) => [line.dataset.s, line]));
const who = lines(".who"), logs = lines(".logs"), peers = lines(".peers");
return Object.keys(who).map((s) => [Number(s), who[s].textContent,
  Number(logs[s].dataset.first),
  Array.from(logs[s].children).map((box) => [box.textContent, box.className]),
  peers[s].textContent]);
"""


# Per server with one, the boxes of the entries it just wrote over.
CUT_LINES = """
return Object.fromEntries(
  Array.from(document.querySelectorAll("#cluster .logs .cutline"))
    .map((line) => [line.dataset.s, Array.from(line.querySelectorAll("i"))
      .map((box) => [box.textContent, box.className])]));
"""


def expected_panel(
    server: int,
    view: ServerView,
    first: int,
    committed: list[int | None],
    cut: int | None,
) -> list[Any]:
    """What the panel must show for ``server``, from the Python history,
    if it shows the entries from ``first`` on, with the terms of the
    entries known to be committed; ``cut``: where the server just wrote
    over its entries, if it did."""
    boxes = []
    for k, term in enumerate(view.log):
        if k < first:
            continue
        if k < view.base:
            boxes.append(["", "s"])
            continue
        if k == view.base:
            done = " ci" if k == view.commit_index else ""
            boxes.append([str(view.base_term), f"t{view.base_term % 10} c{done} sb"])
            continue
        if term is None:
            boxes.append(["?", "q"])
            continue
        done = "c" if k < len(committed) and committed[k] == term else "u"
        if k == view.commit_index:
            done += " ci"
        if cut is not None and k >= cut:
            done += " n"
        boxes.append([str(term), f"t{term % 10} {done}"])
    peers = " · ".join(
        f"{peer}: {view.next_index[peer]}/{view.match_index[peer]}"
        for peer in sorted(view.next_index)
    )
    return [
        server,
        f"{server}{view.state}t{view.term} c{view.commit_index}",
        first,
        boxes,
        peers if STATE_CLASS[view.state] == "L" else "",
    ]


def check_panel(driver: WebDriver, history: History, row: int) -> None:
    """The panel shows the cluster after ``row`` as the history has it."""
    WebDriverWait(driver, 5).until(
        lambda d: d.find_element(By.ID, "at").text.startswith(f"after row {row + 1} ")
    )
    views = history.at(row)
    committed = history.committed_at(row)
    cuts = {t.server: t for t in history.truncations if t.row == row}
    shown = driver.execute_script(PANEL)
    # Short logs, here: the panel shows them whole.
    assert [line[2] for line in shown] == [0] * len(history.servers)
    assert shown == [
        expected_panel(
            server,
            views[server],
            0,
            committed,
            cuts[server].start if server in cuts else None,
        )
        for server in history.servers
    ]
    # Under a server that wrote over entries, the entries it lost.
    old = driver.execute_script(CUT_LINES)
    assert old == {
        str(server): [
            ["?", "q"] if term is None else [str(term), f"t{term % 10} x"]
            for term in cut.old
        ]
        for server, cut in cuts.items()
    }


SCROLL_TO = """
const done = arguments[arguments.length - 1];
arguments[0].scrollIntoView({block: "center"});
requestAnimationFrame(() => requestAnimationFrame(done));
"""

ON_TOP = """
const cell = arguments[0];
const box = cell.getBoundingClientRect();
const top = document.elementFromPoint(box.left + 5, box.top + box.height / 2);
return top !== null && cell.contains(top);
"""


def choose_row(driver: WebDriver, row: int) -> None:
    """Click the table's row ``row``, as a reader picks a moment."""
    cell = driver.find_elements(By.CSS_SELECTOR, ".chunk tr")[row].find_element(
        By.TAG_NAME, "td"
    )

    def scrolled_into_view(d: WebDriver) -> bool:
        # The page may still be laying itself out (after a resize, say) and
        # move the row again: scroll until nothing covers it.
        d.execute_async_script(SCROLL_TO, cell)
        return bool(d.execute_script(ON_TOP, cell))

    WebDriverWait(driver, 5).until(scrolled_into_view)
    cell.click()


def resize(driver: WebDriver, width: int, height: int) -> None:
    """Resize the window, and wait until the page has its new width."""
    driver.set_window_size(width, height)
    WebDriverWait(driver, 5).until(
        lambda d: d.execute_script("return window.outerWidth") == width
    )


def describe(timeline: Timeline, m: Message) -> str:
    """The tooltip of message ``m``, as the page must write it."""
    lines = [f"{m.id}: {m.kind} from {m.sender} to {m.receiver}"]
    for row in m.rows:
        entry = timeline.rows[row].entry
        lines.append(f"{timeline.rows[row].ms:.3f} [{entry.server}] {entry.message}")
    return "\n".join(lines)


def pointer(driver: WebDriver, x: float, y: float, click: bool = False) -> str:
    """Move the mouse to (x, y), and click there if ``click``; the tooltip's
    text then, "" if none shows."""
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(x), int(y))  # type: ignore[no-untyped-call]
    if click:
        actions.pointer_action.click()
    actions.perform()
    tip = driver.find_element(By.ID, "tip")
    return str(tip.text) if tip.is_displayed() else ""


def hover(driver: WebDriver, messages: list[Message], k: int) -> tuple[str, Any]:
    """Move the mouse onto the request arrow of message ``k`` (an index in
    the page's messages); the tooltip's text and the mouse's place.

    The page redraws the diagram once the browser has laid out the rows it
    scrolled to, a frame or two later: the tooltip is awaited, for a while.
    Where another arrow crosses that one, the tooltip may name the other.
    """
    deadline = time.monotonic() + 5
    while True:
        x, y = driver.execute_async_script(viz_browser.ARROW, k)
        text = pointer(driver, x, y)
        if text.startswith(messages[k].id + ":") or time.monotonic() > deadline:
            return text, (x, y)
        time.sleep(0.05)


# How many pixels of the diagram have each of the given colours (opaque).
PIXELS = """
const canvas = document.getElementById("arrows");
const pixels = canvas.getContext("2d")
  .getImageData(0, 0, canvas.width, canvas.height).data;
const counts = arguments[0].map(() => 0);
for (let i = 0; i < pixels.length; i += 4) {
  if (pixels[i + 3] < 250) continue;
  arguments[0].forEach(([r, g, b], k) => {
    const off = Math.abs(pixels[i] - r) + Math.abs(pixels[i + 1] - g)
      + Math.abs(pixels[i + 2] - b);
    if (off < 12) counts[k]++;
  });
}
return counts;
"""


def rgb(colour: str) -> list[int]:
    """``#rrggbb`` as [r, g, b]."""
    return [int(colour[i : i + 2], 16) for i in (1, 3, 5)]


# The number of server lines the diagram draws: columns of its pixels that
# are mostly the lines' grey.
SERVER_LINES = """
const canvas = document.getElementById("arrows");
const {width, height} = canvas;
const pixels = canvas.getContext("2d").getImageData(0, 0, width, height).data;
let lines = 0, inLine = false;
for (let x = 0; x < width; x++) {
  let grey = 0;
  for (let y = 0; y < height; y++) {
    const i = (y * width + x) * 4;
    if (Math.abs(pixels[i] - 0xce) + Math.abs(pixels[i + 1] - 0xd4) < 8
      && pixels[i + 3] > 200) grey++;
  }
  const line = grey > height / 2;
  if (line && !inLine) lines++;
  inLine = line;
}
return lines;
"""


@pytest.fixture(scope="module")
def replace_page(part3_run: RunLog, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The page of test_replace_multiple_log_entries, with its timeline and
    cluster history."""
    site = write_site(part3_run, tmp_path_factory.mktemp("pages"))
    name = "test_replace_multiple_log_entries"
    page = next(p for p in site.pages if p.test.name == name)
    timeline = build_timeline(page.test)
    return page, timeline, build_history(timeline)


def test_hover_and_click_an_arrow(
    browser: WebDriver, replace_page: Any, tmp_path: Path
) -> None:
    page, timeline, _ = replace_page
    timings = viz_browser.time_page(browser, page.url)
    print(f"{page.path.name}: {timings.summary()}")
    browser.get(page.url)
    messages = timeline.messages.messages
    # AppendEntries with entries, delivered and answered. Where two arrows
    # cross, the tooltip may name the other: the first few are tried.
    candidates = [
        k
        for k, m in enumerate(messages)
        if m.kind == "AppendEntries" and m.outcome == REPLY
    ]
    assert candidates
    shown = {}
    for k in candidates[:5]:
        shown[k], (x, y) = hover(browser, messages, k)
        if shown[k].startswith(messages[k].id + ":"):
            break
    assert shown[k] == describe(timeline, messages[k]), shown
    assert "send to" in shown[k]
    assert "AppendEntriesArgs(" in shown[k]
    assert "AppendEntriesReply(" in shown[k]
    save_screenshot(browser, tmp_path / "hover.png")
    # A click on the arrow scrolls the table to the message's lines.
    assert pointer(browser, x, y, click=True) == shown[k]
    rows = browser.find_elements(By.CSS_SELECTOR, ".chunk tr")
    flashed = [
        i for i, row in enumerate(rows) if "flash" in str(row.get_attribute("class"))
    ]
    assert flashed == messages[k].rows

    # Hidden heartbeats and hidden servers take their arrows and lines with
    # them. Counted in the diagram's pixels, near a heartbeat.
    beat = next(
        k for k, m in enumerate(messages) if m.kind == HEARTBEAT and m.outcome == REPLY
    )
    colours = [rgb(MESSAGE_COLOURS[kind]) for kind in ("heartbeat", "AppendEntries")]

    def toggle(box: str) -> None:
        # A click without scrolling the page up to the controls.
        element = browser.find_element(By.CSS_SELECTOR, box)
        browser.execute_script("arguments[0].click()", element)

    def drawn(check: Callable[[WebDriver], bool]) -> None:
        # The page redraws the diagram at the next animation frame, which
        # a loaded machine may delay.
        WebDriverWait(browser, 5).until(check)

    hover(browser, messages, beat)
    drawn(lambda d: d.execute_script(PIXELS, colours)[0] > 0)
    toggle("#hb")
    drawn(lambda d: d.execute_script(PIXELS, colours)[0] == 0)
    toggle("#hb")
    hover(browser, messages, beat)
    drawn(lambda d: d.execute_script(PIXELS, colours)[0] > 0)
    drawn(lambda d: d.execute_script(SERVER_LINES) == 3)
    toggle("input[data-server='1']")
    drawn(lambda d: d.execute_script(SERVER_LINES) == 2)
    toggle("input[data-server='1']")
    # Without the rpc lines in the table, the arrows stay. (The table
    # shrinks: the page redraws them once the browser has laid out the rows
    # now in view, a frame or more later.)
    toggle("#rp")
    WebDriverWait(browser, 5).until(lambda d: d.execute_script(PIXELS, colours)[0] > 0)


def test_the_slider_and_a_row_choose_the_moment(
    browser: WebDriver, replace_page: Any, tmp_path: Path
) -> None:
    page, timeline, history = replace_page
    browser.get(page.url)
    last = len(timeline.rows) - 1
    check_panel(browser, history, opening_row(timeline))
    # Drag the slider a third of the way: the panel shows the last row at
    # or before the time it points to.
    slider = browser.find_element(By.ID, "slider")
    ActionChains(browser).click_and_hold(slider).move_by_offset(
        -slider.size["width"] // 6, 0
    ).release().perform()
    value = float(slider.get_attribute("value") or 0)
    ms = [row.ms for row in timeline.rows]
    chosen = max(0, bisect.bisect_left(ms, value + 0.0005) - 1)
    assert chosen < last
    check_panel(browser, history, chosen)
    # The moment the old leader's divergent suffix is replaced, and the row
    # before it: the reader sees its entries go.
    replaced = [
        (server, op)
        for server in history.servers
        for op in history.ops[server]
        if isinstance(op, LogOp) and op.start < len(history.at(op.row - 1)[server].log)
    ]
    assert replaced
    server, op = replaced[-1]
    before, after = history.at(op.row - 1)[server], history.at(op.row)[server]
    assert before.log[op.start :] != after.log[op.start :]
    choose_row(browser, op.row - 1)
    check_panel(browser, history, op.row - 1)
    save_screenshot(browser, tmp_path / "replace-before.png")
    choose_row(browser, op.row)
    check_panel(browser, history, op.row)
    save_screenshot(browser, tmp_path / "replace-after.png")
    # The README's picture: that moment in a smaller window.
    size = browser.get_window_size()
    resize(browser, 1100, 700)
    try:
        choose_row(browser, op.row)
        check_panel(browser, history, op.row)
        save_screenshot(browser, tmp_path / "viz.png")
    finally:
        resize(browser, size["width"], size["height"])
    # The step buttons move one shown row.
    browser.find_element(By.ID, "prev").click()
    check_panel(browser, history, op.row - 1)


def moment(driver: WebDriver) -> int:
    """The row the page shows the cluster after."""
    found = re.match(r"after row (\d+) of", driver.find_element(By.ID, "at").text)
    assert found is not None
    return int(found[1]) - 1


def jump(driver: WebDriver, kind: str, step: int) -> bool:
    """Click a jump button (unless it is disabled); whether it was enabled."""
    button = driver.find_element(
        By.CSS_SELECTOR, f"button[data-jump={kind}][data-step='{step}']"
    )
    if not button.is_enabled():
        return False
    driver.execute_script("arguments[0].click()", button)
    return True


def test_the_page_opens_at_the_first_check_and_jumps_between_moments(
    browser: WebDriver, replace_page: Any
) -> None:
    page, timeline, history = replace_page
    browser.get(page.url)
    # Not at the last row, where every server is Dead: at the first check,
    # where a leader has been found.
    opening = opening_row(timeline)
    assert timeline.rows[opening].entry.message.startswith("check_single_leader -> ")
    assert moment(browser) == opening
    check_panel(browser, history, opening)
    assert State.LEADER in timeline.rows[opening].states
    # Each kind of jump goes through its rows, forward then back, and is
    # disabled past the last one.
    rows = jumps(timeline, history)
    assert all(rows[kind] for kind in ("test", "state", "commit", "cut"))
    for kind, listed in rows.items():
        forward = [r for r in listed if r > opening]
        visited = []
        while jump(browser, kind, 1):
            visited.append(moment(browser))
        assert visited == forward, kind
        check_panel(browser, history, visited[-1])
        back = []
        while jump(browser, kind, -1):
            back.append(moment(browser))
        assert back == listed[:-1][::-1], kind
        # Back to where it started, for the next kind.
        choose_row(browser, opening)
    # What each jump finds: the test's lines, state changes, commits and
    # truncations, as the history tells them.
    assert rows["test"] == [m.row for m in timeline.markers]
    assert rows["cut"] == sorted({t.row for t in history.truncations})
    assert rows["commit"] == sorted({first for first, _ in history.committed})


def test_the_log_boxes_show_commands_on_request(
    browser: WebDriver, replace_page: Any
) -> None:
    page, timeline, history = replace_page
    browser.get(page.url)
    last_commit = jumps(timeline, history)["commit"][-1]
    choose_row(browser, last_commit)
    browser.execute_script("arguments[0].click()", browser.find_element(By.ID, "cmds"))
    views = history.at(last_commit)
    for server, _, first, boxes, _ in browser.execute_script(PANEL):
        log = views[server].log
        assert [text for text, _ in boxes] == [
            history.commands[first + k, term] for k, term in enumerate(log[first:])
        ]


# The overview strip's marks of safety violations, and their colour.
VIOLATION_MARKS = """
return Array.from(document.querySelectorAll("#overview .mk.k-violation"))
  .map((mark) => getComputedStyle(mark).backgroundColor);
"""


def test_a_fail_page_says_why_at_the_top(
    browser: WebDriver, failing_log: str, tmp_path: Path
) -> None:
    run = parse_log(failing_log.splitlines())
    site = write_site(run, tmp_path)
    (test,) = run.tests
    timeline = build_timeline(test)
    history = build_history(timeline)
    violations = [m for m in timeline.markers if m.kind == "violation"]
    assert len(violations) >= 2
    browser.get(site.pages[0].url)
    why = browser.find_element(By.ID, "why")
    # At the top, in view without scrolling: the failure and its first
    # violation.
    assert why.location["y"] + why.size["height"] < 700
    assert why.text.startswith("Why it failed\npart3.harness.SafetyViolationError: ")
    assert "Leader Completeness: server" in why.text
    assert f"Safety violation, first of {len(violations)}" in why.text
    assert browser.find_element(By.CSS_SELECTOR, "p.doc").text.startswith(
        "Figure 8 of the paper, on servers that commit an entry of an earlier"
    )
    # Red marks on the strip, one per violation.
    red = "rgb({}, {}, {})".format(*rgb(MARKER_COLOURS["violation"]))
    assert browser.execute_script(VIOLATION_MARKS) == [red] * len(violations)
    save_screenshot(browser, tmp_path / "fail.png")
    # The link goes to the violation's row: the panel shows that moment.
    why.find_element(By.CSS_SELECTOR, "a[data-row]").click()
    assert moment(browser) == violations[0].row
    check_panel(browser, history, violations[0].row)
    flashed = browser.find_element(By.CSS_SELECTOR, "tr.flash")
    assert flashed.get_attribute("id") == f"r{violations[0].row}"
    assert "VIOLATION Leader Completeness" in flashed.text
    save_screenshot(browser, tmp_path / "fail-violation.png")


def test_a_page_draws_each_servers_snapshot_before_its_log(
    browser: WebDriver, tmp_path: Path
) -> None:
    run = parse_log(["=== RUN test_s", *SNAPSHOT_LINES, "--- PASS: test_s (1.00s)"])
    site = write_site(run, tmp_path)
    timeline = build_timeline(run.tests[0])
    history = build_history(timeline)
    browser.get(site.pages[0].url)
    last = len(timeline.rows) - 1
    choose_row(browser, last)
    check_panel(browser, history, last)
    views = history.at(last)
    assert [views[s].base for s in (0, 1, 2)] == [1, 1, 1]
    save_screenshot(browser, tmp_path / "snapshots.png")
    # Before the snapshots, no band.
    choose_row(browser, 0)
    check_panel(browser, history, 0)


def test_the_log_of_a_cluster_run_by_hand_opens_before_the_end(
    browser: WebDriver, hand_run_log: Path, tmp_path: Path
) -> None:
    run = parse_log(hand_run_log.read_text().splitlines())
    site = write_site(run, tmp_path)
    timeline = build_timeline(run.tests[0])
    browser.get(site.pages[0].url)
    # Ctrl-C stops every service: the page opens at the last moment before.
    opening = opening_row(timeline)
    assert set(timeline.rows[-1].states) == {State.DEAD}
    assert moment(browser) == opening < len(timeline.rows) - 1
    assert State.DEAD not in timeline.rows[opening].states
    assert timeline.rows[opening + 1].states.count(State.DEAD) == 1
    check_panel(browser, build_history(timeline), opening)


LIVE_PAGE = """<!doctype html><html><head><meta charset=utf-8>
<style>{style}</style></head><body><div id=panel></div>
<script>{script}</script><script>
// What a live page does: no log, only states it receives.
const panel = window.panel = window.RaftPanel.create(
  document.getElementById("panel"), {{
  servers: [0, 1, 2], hasLog: true,
  command: (index, term) => "cmd" + index + "/" + term,
}});
window.show = (views, hidden) => panel.show({{
  views: views.map((v) => ({{...v, peers: new Map(v.peers)}})),
  hidden: new Set(hidden),
  committed: (index, term) => index < 1 && term === 1,
}}, true);
</script></body></html>
"""


def test_the_cluster_panel_shows_states_it_is_given(
    browser: WebDriver, tmp_path: Path
) -> None:
    # One panel, one source: panel.js alone, driven without a log.
    page = tmp_path / "live.html"
    page.write_text(
        LIVE_PAGE.format(
            style=asset("panel.css") + colour_rules(), script=asset("panel.js")
        ),
        encoding="utf-8",
    )
    browser.get(page.as_uri())
    browser.execute_script(
        "window.show(arguments[0], arguments[1])",
        [
            {
                "state": "L",
                "term": 2,
                "log": [1, 2],
                "commit": 0,
                "peers": [[1, [2, 1]], [2, [1, 0]]],
                "cut": None,
            },
            {
                "state": "F",
                "term": 2,
                "log": [1, 2],
                "commit": 0,
                "peers": [],
                "cut": {"start": 1, "old": [1, 1]},
            },
            {
                "state": "D",
                "term": 1,
                "log": [1],
                "commit": -1,
                "peers": [],
                "cut": None,
            },
        ],
        [2],
    )
    shown = browser.execute_script(PANEL.replace("#cluster", "#panel"))
    assert shown == [
        [0, "0Leadert2 c0", 0, [["1", "t1 c ci"], ["2", "t2 u"]], "1: 2/1 · 2: 1/0"],
        [1, "1Followert2 c0", 0, [["1", "t1 c ci"], ["2", "t2 u n"]], ""],
    ]
    assert browser.execute_script(CUT_LINES.replace("#cluster", "#panel")) == {
        "1": [["1", "t1 x"], ["1", "t1 x"]]
    }
    # Commands instead of terms, for the live page too.
    browser.execute_script("window.panel.showCommands(true)")
    boxes = browser.execute_script(PANEL.replace("#cluster", "#panel"))[0][3]
    assert [text for text, _ in boxes] == ["cmd0/1", "cmd1/2"]
    browser.execute_script("window.panel.showCommands(false)")

    # Part 6: the snapshot of each server, a band up to its last entry (the
    # base), drawn before the log boxes after it.
    browser.execute_script(
        "window.show(arguments[0], arguments[1])",
        [
            {
                "state": "L",
                "term": 3,
                "log": [1, 1, 2, 3],
                "commit": 3,
                "peers": [[1, [4, 3]]],
                "cut": None,
                "base": 1,
                "baseTerm": 1,
            },
            {
                "state": "F",
                "term": 3,
                "log": [None, None, 2],
                "commit": 2,
                "peers": [],
                "cut": None,
                "base": 2,
                "baseTerm": 2,
            },
            {"state": "D", "term": 1, "log": [], "commit": -1, "peers": []},
        ],
        [2],
    )
    shown = browser.execute_script(PANEL.replace("#cluster", "#panel"))
    assert [line[3] for line in shown] == [
        [["", "s"], ["1", "t1 c sb"], ["2", "t2 u"], ["3", "t3 u ci"]],
        [["", "s"], ["", "s"], ["2", "t2 c ci sb"]],
    ]
    save_screenshot(browser, tmp_path / "panel-snapshots.png")
    # Hovered, a box of the band says whose snapshot it is in.
    title = browser.execute_script(
        """
        const box = document.querySelector("#panel .logs .ln[data-s='1'] i");
        box.dispatchEvent(new MouseEvent("mouseover", {bubbles: true}));
        return box.title;
        """
    )
    assert title == (
        "index 0: in server 1's snapshot, which covers every entry up to "
        "index 2 (term 2)"
    )


def test_the_benchmark_times_pages_in_the_browser(
    part3_log: str, tmp_path: Path
) -> None:
    log = tmp_path / "part3.log"
    log.write_text(part3_log, encoding="utf-8")
    out = io.StringIO()
    console = Console(file=out, width=300, color_system=None)
    status = main(
        [
            "--bench",
            str(log),
            "--repeat",
            "1",
            "--browser",
            "1",
            "--outdir",
            str(tmp_path),
        ],
        console,
    )
    assert status == 0
    timed = re.findall(
        r"(\S+\.html) \([\d.]+ MB\): load \d+ ms \(script done at \d+\); slider "
        r"median [\d.]+ ms, max [\d.]+; release median [\d.]+ ms, max [\d.]+; "
        r"hover median [\d.]+ ms, max [\d.]+",
        out.getvalue(),
    )
    assert len(timed) == 1, out.getvalue()
