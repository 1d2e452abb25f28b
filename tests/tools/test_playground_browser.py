"""The playground in a real browser: headless Chromium, driven by Selenium,
against ``python -m tools.playground`` run as a reader runs it.

A 5-server part3 cluster elects a leader; the test crashes it from its
menu and sees another server lead within 2 s of virtual time; it splits
the cluster 2 | 3 with the new leader on the small side and submits to it:
nothing commits there. It saves the session, opens the log in the
visualizer, replays the session in a second playground, and compares the
two logs byte for byte. It prints what it measured (frames per second at
1x, the time from a click to the page showing its effect).

A 3-server part6 cluster takes a snapshot from the leader's menu, and the
page draws its base; a follower that was down while the leader compacted
its log gets the snapshot in an InstallSnapshot, drawn in its own colour,
and the page draws the follower's base too.

Both save screenshots; with RAFT_VIZ_SCREENSHOTS=DIR they are copied
there, which is how docs/images/playground.png and playground-snapshot.png
are made.

Needs Debian's ``chromium`` and ``chromium-driver``; skipped, saying so,
where they are missing.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.raft_testlog_viz import browser as viz_browser

from .conftest import ROOT, save_screenshot, sigint_by_default

if viz_browser.missing() is not None:
    pytest.skip(str(viz_browser.missing()), allow_module_level=True)

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

CLICK_TO_CRASHED = """
const done = arguments[arguments.length - 1];
const server = arguments[0];
const label = document.querySelector(".srv[data-s='" + server + "'] .state");
const start = performance.now();
document.querySelector("#menu button[data-do=crash]").click();
(function look() {
  if (label.textContent === "crashed") done(performance.now() - start);
  else requestAnimationFrame(look);
})();
"""
"""Click the open menu's "crash" and return the milliseconds until the page
shows server ``arguments[0]`` crashed."""

FRAMES = """
const done = arguments[arguments.length - 1];
const frames = window.playgroundFrames, spent = window.playgroundDrawMs;
const start = performance.now();
setTimeout(() => done([
  (window.playgroundFrames - frames) * 1000 / (performance.now() - start),
  (window.playgroundDrawMs - spent) / Math.max(1, window.playgroundFrames - frames),
]), arguments[0]);
"""
"""Frames the page drew per second over ``arguments[0]`` ms, and the
milliseconds each took to draw."""


HOLD_POLLS = """
const fetch = window.fetch;
let release = null;
const released = new Promise((done) => {
  release = done;
});
window.fetch = (url, ...rest) => String(url).startsWith("/api/state")
  ? released.then(() => fetch(url, ...rest))
  : fetch(url, ...rest);
window.releasePolls = () => {
  window.fetch = fetch;
  release();
};
"""
"""Hold the page's polls until ``window.releasePolls()``, as a browser
holds those of a tab in the background."""

WATCH_DOTS = """
window.dotColours = new Set();
new MutationObserver((changes) => {
  for (const change of changes) {
    for (const node of change.addedNodes) {
      if (node.tagName === "circle") window.dotColours.add(node.getAttribute("fill"));
    }
  }
}).observe(document.querySelector("#ring .msgs"), {childList: true, subtree: true});
"""
"""Note from now on the colour of every message dot the page draws
(``window.dotColours``)."""

SNAPSHOT_DRAWN = """
const row = document.querySelector(`#panel .logs .ln[data-s='${arguments[0]}']`);
return row && [row.querySelectorAll("i.s").length, row.querySelectorAll("i.sb").length];
"""
"""How server ``arguments[0]``'s log row in the panel draws a snapshot: the
boxes of its band (one per entry before the base), and of its base."""

EVENTS = """
return Array.from(document.querySelectorAll("#events .ev"),
  (e) => [e.textContent, e.getClientRects().length > 0]);
"""
"""The lines of the page's log, each with whether the browser displays it."""


class Process:
    """``python -m tools.playground`` with ``args``, on a free port."""

    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "tools.playground", "--no-browser"]
        self.popen = subprocess.Popen(
            [*command, "--port", "0", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=sigint_by_default,
        )
        assert self.popen.stdout is not None
        self.title = self.popen.stdout.readline()
        self.url = self.popen.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.title + self.url

    def state(self) -> dict[str, Any]:
        """The playground's state now, as the page gets it."""
        with urllib.request.urlopen(self.url + "api/state?since=-1", timeout=30) as r:
            state: dict[str, Any] = json.loads(r.read())
        return state

    def stop(self) -> None:
        """Ctrl-C: it must end cleanly."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
        out, err = self.popen.communicate(timeout=60)
        assert self.popen.returncode == 0, err
        assert out.endswith("stopped.\n"), out
        assert err == ""


@pytest.fixture
def start() -> Iterator[Callable[..., Process]]:
    """Start playgrounds; stop them after the test, also when it fails."""
    started: list[Process] = []

    def run(*args: str) -> Process:
        started.append(Process(*args))
        return started[-1]

    yield run
    for process in started:
        if process.popen.poll() is None:
            process.popen.send_signal(signal.SIGINT)
            try:
                process.popen.communicate(timeout=60)
            finally:
                # Whatever went wrong, no playground outlives its test.
                if process.popen.poll() is None:
                    process.popen.kill()
                    process.popen.communicate()


def wait_for(condition: Callable[[], Any], what: str, seconds: float = 60) -> Any:
    """Wait until ``condition()`` is true; return it. Fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)
    return value


def servers(driver: WebDriver) -> list[tuple[str, str]]:
    """Each server's class (``srv L``...) and state label, as drawn."""
    found: list[tuple[str, str]] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#ring .srv')).map((g) =>"
        " [g.getAttribute('class'), g.querySelector('.state').textContent]);"
    )
    return found


def leaders(driver: WebDriver) -> list[int]:
    """The servers the page draws as leaders."""
    return [
        i for i, (cls, _) in enumerate(servers(driver)) if cls.split()[1:2] == ["L"]
    ]


def notice(driver: WebDriver, start: str) -> str:
    """The latest notice that starts with ``start`` ("" if none). Read in
    one go: the page replaces its notices as new ones come."""
    texts: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#notices .notice'),"
        " (n) => n.textContent);"
    )
    return next((text for text in texts if text.startswith(start)), "")


def submit_to(driver: WebDriver, server: int, command: str) -> None:
    """Submit ``command`` to ``server`` from its menu."""
    field = driver.find_element(By.ID, "command")
    field.clear()
    field.send_keys(command)
    driver.find_element(By.CSS_SELECTOR, f"#ring .srv[data-s='{server}']").click()
    driver.find_element(By.CSS_SELECTOR, "#menu button[data-do=submit]").click()


def log_length(playground: Process) -> int:
    """How many lines the playground's run has logged."""
    state = playground.state()
    return int(state["firstLine"] or 0) + len(state["lines"])


def at(line: str) -> float:
    """A log line's virtual time, in seconds."""
    hours, minutes, seconds = line[:15].split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def test_drive_a_cluster_crash_partition_save_and_replay(
    browser: WebDriver, start: Callable[..., Process], tmp_path: Path
) -> None:
    live = start(
        "--part",
        "part3",
        "-n",
        "5",
        "--seed",
        "7",
        "--speed",
        "1/2",
        "--outdir",
        str(tmp_path / "live"),
    )
    assert "part3 (persistence), 5 servers, seed 7" in live.title
    browser.get(live.url)
    (leader,) = wait_for(lambda: leaders(browser), "the page shows a leader")
    save_screenshot(browser, tmp_path / "playground-leader.png")

    # Crash the leader from its menu.
    browser.find_element(By.CSS_SELECTOR, f"#ring .srv[data-s='{leader}']").click()
    click_ms = browser.execute_async_script(CLICK_TO_CRASHED, leader)
    crashed = wait_for(lambda: notice(browser, f"crash {leader} at "), "a notice")
    print(f"click to crashed on the page: {click_ms:.0f} ms; {crashed}")
    new = wait_for(
        lambda: [s for s in leaders(browser) if s != leader], "another leader"
    )
    (new_leader,) = new
    save_screenshot(browser, tmp_path / "playground-new-leader.png")

    # Restart the crashed server, then split the cluster 2 | 3 with the new
    # leader on the small side, and submit to it: nothing commits there.
    browser.find_element(By.CSS_SELECTOR, f"#ring .srv[data-s='{leader}']").click()
    browser.find_element(By.CSS_SELECTOR, "#menu button[data-do=restart]").click()
    wait_for(lambda: servers(browser)[leader][1] == "Follower", "the restart")
    small = sorted([new_leader, (new_leader + 1) % 5])
    big = [s for s in range(5) if s not in small]
    for box in browser.find_elements(By.CSS_SELECTOR, "#groups input"):
        if int(box.get_attribute("value") or -1) in small:
            box.click()
    browser.find_element(By.ID, "partition").click()
    wait_for(lambda: notice(browser, "partition "), "the partition is done")
    submit_to(browser, new_leader, "p=1")
    submitted = wait_for(
        lambda: notice(browser, f"submit 'p=1' to {new_leader} at "), "the submit"
    )
    index = int(re.search(r"at index (\d+)$", submitted)[1])  # type: ignore[index]
    # The big side elects a leader of a later term, which commits q=2.
    (third,) = wait_for(
        lambda: [s for s in leaders(browser) if s in big], "a leader on the big side"
    )
    submit_to(browser, third, "q=2")
    wait_for(
        lambda: (v := live.state()["view"]) and len(v["committed"]) > index,
        "q=2 is committed on the big side",
    )
    time.sleep(1)  # a negative check: p=1 must stay uncommitted
    view = live.state()["view"]
    minority = view["servers"][new_leader]
    assert minority["commands"][index] == "p=1"
    assert minority["commit"] < index
    assert view["committed"][index] != minority["log"][index]
    assert view["servers"][third]["commands"][index] == "q=2"
    drawn = browser.execute_script(
        "return document.querySelectorAll(`#panel .logs .ln[data-s='${arguments[0]}']"
        " i`)[arguments[1]].className;",
        new_leader,
        index,
    )
    assert "u" in drawn.split()  # drawn pale: not committed
    save_screenshot(browser, tmp_path / "playground.png")

    # The log's filter hides the network layer's lines, and only them.
    browser.find_element(By.ID, "hb").click()  # heartbeats shown
    browser.find_element(By.ID, "rpc").click()  # rpc lines hidden
    lines = browser.execute_script(EVENTS)
    rpc = re.compile(r"\S+ \[\d+\] rpc ")
    assert any(rpc.match(text) for text, _ in lines)
    assert all(shown != bool(rpc.match(text)) for text, shown in lines)
    browser.find_element(By.ID, "rpc").click()
    browser.find_element(By.ID, "hb").click()

    # Frames per second at 1x, with the page busy: 5 servers, a partition.
    browser.find_element(By.ID, "speed").send_keys("\ue010")  # End: 1x
    wait_for(lambda: live.state()["speed"] == 1.0, "the speed is 1x")
    fps, draw_ms = browser.execute_async_script(FRAMES, 3000)
    print(f"page at 1x, 5 servers: {fps:.1f} frames/s, {draw_ms:.2f} ms to draw each")

    # A page that falls behind the run says how many lines it missed.
    browser.execute_script(HOLD_POLLS)
    held_at = log_length(live)
    wait_for(lambda: log_length(live) > held_at + 500, "the page falls behind")
    browser.find_element(By.ID, "run").click()  # pause: the page stays behind
    wait_for(lambda: live.state()["held"], "the run stands still")
    browser.execute_script("window.releasePolls();")
    missed = wait_for(
        lambda: browser.execute_script(
            "const m = document.querySelector('#events .missed');"
            "return m && m.textContent;"
        ),
        "the page says it missed lines",
    )
    assert re.fullmatch(r"… \d+ lines not shown: the page fell behind .*", missed)
    browser.find_element(By.ID, "run").click()  # resume

    # Save, then open the log in the visualizer.
    browser.find_element(By.ID, "save").click()
    saved = wait_for(lambda: notice(browser, "saved to "), "the save")
    session_path = Path(re.search(r"saved to (\S+) ", saved)[1])  # type: ignore[index]
    log_path = session_path.with_suffix(".log")
    tabs = browser.window_handles
    browser.find_element(By.ID, "openlog").click()
    wait_for(lambda: len(browser.window_handles) > len(tabs), "a new tab")
    browser.switch_to.window(browser.window_handles[-1])
    wait_for(lambda: "playground part3" in browser.title, "the visualizer's page")
    save_screenshot(browser, tmp_path / "playground-log.png")
    browser.close()
    browser.switch_to.window(tabs[0])

    # Within 2 s of virtual time after the crash, another server led.
    log = log_path.read_text()
    crash = next(line for line in log.splitlines() if f"[TEST] Crash {leader}" in line)
    elected = next(
        line
        for line in log.splitlines()
        if f"[{new_leader}] becomes Leader" in line and at(line) > at(crash)
    )
    assert at(elected) - at(crash) < 2.0, (crash, elected)
    live.stop()

    # Replay the session: it pauses at its end with the same log.
    replay = start(
        "--replay",
        str(session_path),
        "--speed",
        "1",
        "--outdir",
        str(tmp_path / "replay"),
    )
    browser.get(replay.url)
    wait_for(lambda: notice(browser, "the session's end"), "the replay's end", 120)
    browser.find_element(By.ID, "openlog").click()
    written = wait_for(lambda: notice(browser, "log written to "), "the replay's log")
    browser.switch_to.window(browser.window_handles[-1])
    browser.close()
    browser.switch_to.window(browser.window_handles[0])
    replayed = Path(written.removeprefix("log written to "))
    save_screenshot(browser, tmp_path / "playground-replay.png")
    assert replayed.read_bytes() == log_path.read_bytes()
    replay.stop()


def act_on(driver: WebDriver, server: int, what: str) -> None:
    """Click ``server``, then its menu's ``what`` (crash, snapshot...)."""
    driver.find_element(By.CSS_SELECTOR, f"#ring .srv[data-s='{server}']").click()
    driver.find_element(By.CSS_SELECTOR, f"#menu button[data-do={what}]").click()


def test_take_a_snapshot_and_see_a_lagging_follower_install_it(
    browser: WebDriver, start: Callable[..., Process], tmp_path: Path
) -> None:
    live = start(
        "--part",
        "part6",
        "-n",
        "3",
        "--seed",
        "3",
        "--speed",
        "1",
        "--outdir",
        str(tmp_path),
    )
    assert "part6 (log compaction), 3 servers, seed 3" in live.title
    browser.get(live.url)
    (leader,) = wait_for(lambda: leaders(browser), "the page shows a leader")
    legend = browser.find_element(By.ID, "legend").text
    assert "InstallSnapshot" in legend
    assert "or take a snapshot of it" in legend
    follower = (leader + 1) % 3

    # The follower is down while the leader commits two commands with the
    # third server, then snapshots them.
    act_on(browser, follower, "crash")
    wait_for(lambda: notice(browser, f"crash {follower} at "), "the crash")
    submit_to(browser, leader, "x=1")
    wait_for(lambda: notice(browser, f"submit 'x=1' to {leader} at "), "x=1 is in")
    submit_to(browser, leader, "y=2")
    wait_for(lambda: notice(browser, f"submit 'y=2' to {leader} at "), "y=2 is in")
    wait_for(
        lambda: live.state()["view"]["servers"][leader]["commit"] == 1,
        "both are committed",
    )
    assert browser.execute_script(SNAPSHOT_DRAWN, leader) == [0, 0]
    act_on(browser, leader, "snapshot")
    taken = wait_for(lambda: notice(browser, f"snapshot {leader} at "), "the snapshot")
    assert taken.endswith(
        f"server {leader}'s snapshot covers its log up to index 1 (term 1)"
    )
    # Index 0 is in the band, index 1 is the base.
    wait_for(
        lambda: browser.execute_script(SNAPSHOT_DRAWN, leader) == [1, 1],
        "the leader's snapshot is drawn",
    )
    assert browser.execute_script(SNAPSHOT_DRAWN, follower) == [0, 0]

    # The follower restarts: the entries it lacks are in the leader's
    # snapshot, which the leader sends it.
    browser.execute_script(WATCH_DOTS)
    act_on(browser, follower, "restart")
    wait_for(
        lambda: browser.execute_script(SNAPSHOT_DRAWN, follower) == [1, 1],
        "the follower's snapshot is drawn",
    )
    view = live.state()["view"]["servers"][follower]
    assert (view["base"], view["log"]) == (1, [1, 1])
    colours = browser.execute_script("return Array.from(window.dotColours);")
    assert "#c2255c" in colours  # an InstallSnapshot (or its reply), in pink
    save_screenshot(browser, tmp_path / "playground-snapshot.png")
    live.stop()
