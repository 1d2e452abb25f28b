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
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tools.raft_testlog_viz import browser as viz_browser
from tools.raft_testlog_viz.assets import MESSAGE_COLOURS
from tools.raft_testlog_viz.cli import main
from tools.raft_testlog_viz.cluster import History, LogOp, ServerView, build_history
from tools.raft_testlog_viz.messages import HEARTBEAT, REPLY, Message
from tools.raft_testlog_viz.pages import STATE_CLASS, write_site
from tools.raft_testlog_viz.parse import RunLog, parse_log
from tools.raft_testlog_viz.timeline import Timeline, build_timeline

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


def save_screenshot(driver: WebDriver, path: Path) -> None:
    """Save what the window shows to ``path`` (and to RAFT_VIZ_SCREENSHOTS)."""
    assert driver.save_screenshot(str(path))
    assert path.read_bytes().startswith(b"\x89PNG")
    print(f"screenshot: {path} ({path.stat().st_size // 1000} kB)")
    copies = os.environ.get("RAFT_VIZ_SCREENSHOTS")
    if copies:
        Path(copies).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(copies) / path.name)


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
  Array.from(document.querySelectorAll(column + " .ln[data-s]"))
    .map((line) => [line.dataset.s, line]));
const who = lines("#who"), logs = lines("#logs"), peers = lines("#peers");
return Object.keys(who).map((s) => [Number(s), who[s].textContent,
  Number(logs[s].dataset.first),
  Array.from(logs[s].children).map((box) => [box.textContent, box.className]),
  peers[s].textContent]);
"""


def expected_panel(server: int, view: ServerView, first: int) -> list[Any]:
    """What the panel must show for ``server``, from the Python history,
    if it shows the entries from ``first`` on."""
    boxes = []
    for k, term in enumerate(view.log):
        if k < first:
            continue
        if term is None:
            boxes.append(["?", "q"])
            continue
        done = "u" if k > view.commit_index else "c"
        if k == view.commit_index:
            done = "c ci"
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
    shown = driver.execute_script(PANEL)
    # Short logs, here: the panel shows them whole.
    assert [line[2] for line in shown] == [0] * len(history.servers)
    assert shown == [
        expected_panel(server, views[server], 0) for server in history.servers
    ]


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

    hover(browser, messages, beat)
    assert browser.execute_script(PIXELS, colours)[0] > 0
    toggle("#hb")
    assert browser.execute_script(PIXELS, colours)[0] == 0
    toggle("#hb")
    hover(browser, messages, beat)
    assert browser.execute_script(PIXELS, colours)[0] > 0
    assert browser.execute_script(SERVER_LINES) == 3
    toggle("input[data-server='1']")
    assert browser.execute_script(SERVER_LINES) == 2
    toggle("input[data-server='1']")
    # Without the rpc lines in the table, the arrows stay.
    toggle("#rp")
    assert browser.execute_script(PIXELS, colours)[0] > 0


def test_the_slider_and_a_row_choose_the_moment(
    browser: WebDriver, replace_page: Any, tmp_path: Path
) -> None:
    page, timeline, history = replace_page
    browser.get(page.url)
    last = len(timeline.rows) - 1
    check_panel(browser, history, last)
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
    # The README's picture: that moment in a smaller window.
    size = browser.get_window_size()
    resize(browser, 1100, 700)
    try:
        choose_row(browser, op.row - 1)
        check_panel(browser, history, op.row - 1)
        save_screenshot(browser, tmp_path / "viz.png")
    finally:
        resize(browser, size["width"], size["height"])
    choose_row(browser, op.row)
    check_panel(browser, history, op.row)
    save_screenshot(browser, tmp_path / "replace-after.png")
    # The step buttons move one shown row.
    browser.find_element(By.ID, "prev").click()
    check_panel(browser, history, op.row - 1)


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
