"""A generated page in a real browser: headless Chromium, driven by Selenium.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs
them); skipped, saying so, where they are missing (the ``browser`` fixture
is in conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.raft_testlog_viz.pages import write_site
from tools.raft_testlog_viz.parse import RunLog, parse_log
from tools.raft_testlog_viz.timeline import build_timeline

pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install -e .[test])"
)
from selenium.webdriver.common.action_chains import ActionChains
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

    screenshot = tmp_path / "raftviz-browser.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    print(f"screenshot: {screenshot}")

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
