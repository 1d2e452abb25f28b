"""Pages in a real browser: headless Chromium, driven by Selenium.

The visualizer's browser test and its benchmark (``--bench --browser``)
both open pages here and time them with the browser's own clock
(``performance.now()``): how long a page takes to load, how long the page
takes to answer a move of the moment slider and a hover over an arrow.

Needs the ``selenium`` package and Debian's ``chromium`` and
``chromium-driver``.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def missing() -> str | None:
    """What is missing to drive Chromium here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e .[test])"
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        return "needs Chromium and its driver: apt-get install chromium chromium-driver"
    return None


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[WebDriver]:
    """A headless Chromium with a window of ``width`` x ``height``, with the
    flags it needs to run as root in a container."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory() as profile:
        for flag in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(
            service=webdriver.ChromeService(executable_path=CHROMEDRIVER),
            options=options,
        )
        try:
            yield driver
        finally:
            driver.quit()


LOAD_TIMES = """
const navigation = performance.getEntriesByType("navigation")[0];
return [navigation.loadEventEnd, window.raftvizReadyMs];
"""
"""The page's load time and the moment its script was done, in ms since
the navigation started."""

MOVE_SLIDER = """
const done = arguments[arguments.length - 1];
const slider = document.getElementById("slider");
const start = performance.now();
slider.value = arguments[0];
slider.dispatchEvent(new Event("input"));
// Two animation frames later, the page has been painted.
requestAnimationFrame(() => requestAnimationFrame(() => {
  const moved = performance.now() - start;
  const released = performance.now();
  slider.dispatchEvent(new Event("change"));
  requestAnimationFrame(() => requestAnimationFrame(() => done(
    [moved, performance.now() - released, document.getElementById("at").textContent]
  )));
}));
"""
"""Move the slider to ``arguments[0]`` ms as a user's drag does (an input
event), then let it go (a change event); return how long until the page was
painted after each (the panel follows the move; the table scrolls on the
release), and what the page says of the moment."""

ARROW = """
const done = arguments[arguments.length - 1];
const k = arguments[0];
const data = JSON.parse(document.getElementById("data").textContent);
const m = data.msgs[k];
const rows = document.querySelectorAll(".chunk tr");
rows[m[4]].scrollIntoView({block: "center"});
// Let the page lay the rows out and redraw the diagram.
setTimeout(() => requestAnimationFrame(() => requestAnimationFrame(() => {
  const labels = document.querySelectorAll("#mhead span");
  const x = (server) => {
    const box = labels[data.servers.indexOf(server)].getBoundingClientRect();
    return box.left + box.width / 2;
  };
  const y = (row) => {
    const box = rows[row].getBoundingClientRect();
    return box.top + Math.min(8, box.height / 2);
  };
  const [xs, ys, xr, yr] = [x(m[1]), y(m[4]), x(m[2]), y(m[5])];
  // The middle of the arrow, or the point nearest it that is in view.
  const top = document.getElementById("top").getBoundingClientRect().bottom;
  const at = Math.max(top + 4, Math.min(window.innerHeight - 4, (ys + yr) / 2));
  const f = yr === ys ? 0.5 : (at - ys) / (yr - ys);
  done([xs + f * (xr - xs), ys + f * (yr - ys)]);
})), 50);
"""
"""Scroll to message ``arguments[0]`` (an index into the page's messages,
one that was delivered) and return a point of its request's arrow in view
(its middle if it can), in the window's coordinates."""

HOVER = """
const canvas = document.getElementById("arrows");
const start = performance.now();
canvas.dispatchEvent(new MouseEvent("mousemove",
  {clientX: arguments[0], clientY: arguments[1], bubbles: true}));
const tip = document.getElementById("tip");
const shown = tip.hidden ? "" : tip.textContent;
return [performance.now() - start, shown];
"""
"""Move the mouse to (``arguments[0]``, ``arguments[1]``) over the diagram;
return how long the page took to answer (hit test, tooltip, redraw, all
synchronous) and the tooltip's text."""


def delivered_messages(driver: WebDriver) -> list[int]:
    """Indices of the page's messages that reached their receiver."""
    found: list[int] = driver.execute_script(
        "const data = JSON.parse(document.getElementById('data').textContent);"
        "return data.msgs.flatMap((m, k) => m[5] >= 0 && m[8] === 1 ? [k] : []);"
    )
    return found


@dataclass(frozen=True)
class PageTimings:
    """What one page took in the browser, in milliseconds."""

    load: float
    """From the start of navigation to the end of the load event."""
    script_done: float
    """From the start of navigation to the end of the page's script."""
    slider: list[float]
    """Each move of the slider, until the page showed the new moment."""
    release: list[float]
    """Each release of the slider, until the table had scrolled to it."""
    hover: list[float]
    """Each hover over an arrow, until the page showed its tooltip."""

    def summary(self) -> str:
        """The figures on one line."""
        return (
            f"load {self.load:.0f} ms (script done at {self.script_done:.0f}); "
            f"slider {_spread(self.slider)}; release {_spread(self.release)}; "
            f"hover {_spread(self.hover)}"
        )


def _spread(times: list[float]) -> str:
    if not times:
        return "not measured"
    return f"median {statistics.median(times):.1f} ms, max {max(times):.1f}"


def time_page(driver: WebDriver, url: str, moves: int = 10) -> PageTimings:
    """Load ``url`` and time it, ``moves`` slider moves spread over the
    test's time, and a hover over the arrows of ``moves`` messages."""
    driver.get(url)
    load, script_done = driver.execute_script(LOAD_TIMES)
    span = float(driver.find_element("id", "slider").get_attribute("max") or 0)
    slider: list[float] = []
    release: list[float] = []
    for k in range(moves):
        moved, released, _ = driver.execute_async_script(
            MOVE_SLIDER, span * (k + 0.5) / moves
        )
        slider.append(moved)
        release.append(released)
    hover: list[float] = []
    delivered = delivered_messages(driver)
    for k in delivered[:: max(1, len(delivered) // moves)][:moves]:
        x, y = driver.execute_async_script(ARROW, k)
        spent, _ = driver.execute_script(HOVER, x, y)
        hover.append(spent)
    return PageTimings(load, script_done, slider, release, hover)
