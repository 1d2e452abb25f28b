"""The checker's HTML view in a real browser (headless Chromium, Selenium).

Skipped, saying so, where Chromium or selenium is missing. With
``LINCHECK_DOCS_IMAGE=docs/images/lincheck.png`` set, the screenshot of the
failing history is also saved there (the picture in docs/lincheck.md).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tools.lincheck_histories import failing_generated_history, op
from tools.lincheck import check, write_page
from tools.lincheck.view import ROW_HEIGHT

pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install -e .[test])"
)
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

DOCS_WINDOW = (1000, 690)
"""The window of the screenshot: small, so that the PNG stays small."""


@pytest.fixture
def small_window(browser: WebDriver) -> Iterator[WebDriver]:
    """The shared browser, with a smaller window for the test's duration."""
    size = browser.get_window_size()
    browser.set_window_size(*DOCS_WINDOW)
    try:
        yield browser
    finally:
        browser.set_window_size(size["width"], size["height"])


def ops_with(driver: WebDriver, selector: str) -> list[int]:
    """The operations (by index) of the elements matching ``selector``."""
    return sorted(
        int(str(el.get_attribute("data-op")))
        for el in driver.find_elements(By.CSS_SELECTOR, selector)
    )


def test_a_failing_history_in_a_real_browser(
    small_window: WebDriver, tmp_path: Path
) -> None:
    browser = small_window
    result = check(failing_generated_history())
    assert result.verdict == "not linearizable"
    (failed,) = result.failures
    page = write_page(result, tmp_path / "history.html")
    browser.get(page.as_uri())

    section = browser.find_element(By.CSS_SELECTOR, "section.bad")
    assert f"key '{failed.key}'" in section.find_element(By.TAG_NAME, "h2").text
    # The failed key's bars say which ops are in the prefix and which are
    # stuck after it, as the result does.
    blocked = [o.index for o in failed.blocked]
    assert ops_with(browser, "section.bad i.blocked") == blocked
    assert ops_with(browser, "section.bad i.prefix") == sorted(
        o.index for o in failed.order
    )
    assert ops_with(browser, ".hl") == []

    # Hovering a stuck op shows it and its answer, and lights up its bar
    # and its line in the list of ops that cannot come next.
    stuck = failed.blocked[0]
    selector = f"section.bad i[data-op='{stuck.index}']"
    bar = browser.find_element(By.CSS_SELECTOR, selector)
    ActionChains(browser).move_to_element(bar).perform()
    tip = browser.find_element(By.ID, "tip")
    assert tip.is_displayed()
    assert f"#{stuck.index} · client {stuck.client}" in tip.text
    assert stuck.describe() in tip.text
    assert f"answered: {stuck.describe_output()}" in tip.text
    assert "cannot come next: after the prefix it would answer" in tip.text
    lit = browser.find_elements(By.CSS_SELECTOR, ".hl")
    assert {el.tag_name for el in lit} == {"i", "li"}
    assert ops_with(browser, ".hl") == [stuck.index, stuck.index]
    assert bar.is_displayed()

    screenshot = tmp_path / "lincheck.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    print(f"screenshot: {screenshot}")
    docs_image = os.environ.get("LINCHECK_DOCS_IMAGE")
    if docs_image:
        shutil.copyfile(screenshot, docs_image)

    # Hovering a line of the prefix lights up its bar.
    first = failed.order[-1]
    line = section.find_element(By.CSS_SELECTOR, f"li[data-op='{first.index}']")
    ActionChains(browser).move_to_element(line).perform()
    assert ops_with(browser, ".hl") == [first.index, first.index]
    assert not tip.is_displayed()


def test_history_text_stays_text_in_a_real_browser(
    browser: WebDriver, tmp_path: Path
) -> None:
    evil = "<img src=x onerror='window.pwned = 1'>"
    history = [
        op(0, "put", 0, 1, None, key=evil, value="</script><script>window.pwned=2"),
        op(1, "get", 2, 3, "'\"&", key=evil),
    ]
    page = write_page(check(history), tmp_path / "history.html")
    browser.get(page.as_uri())
    assert browser.execute_script("return window.pwned") is None
    heading = browser.find_element(By.CSS_SELECTOR, "section h2").text
    assert evil in heading
    bar = browser.find_element(By.CSS_SELECTOR, "section i[data-op='1']")
    ActionChains(browser).move_to_element(bar).perform()
    tip = browser.find_element(By.ID, "tip").text
    assert "answered: '\\'\"&' (found)" in tip
    assert browser.execute_script("return window.pwned") is None


def test_the_time_axis_lines_up_with_the_bars(
    browser: WebDriver, tmp_path: Path
) -> None:
    # The first operation is called at 0 ms: its bar starts under the tick
    # "0". A client's name of several digits stays on one line.
    history = [op(12345, "put", 0, 1, None, value="1"), op(7, "get", 1, 2, "1")]
    page = write_page(check(history), tmp_path / "history.html")
    browser.get(page.as_uri())
    zero = browser.find_element(By.CSS_SELECTOR, ".axis u")
    assert zero.text == "0"
    bar = browser.find_element(By.CSS_SELECTOR, "i[data-op='0']")
    assert abs(bar.location["x"] - zero.location["x"]) <= 1
    labels = browser.find_elements(By.CSS_SELECTOR, ".who")
    assert [el.text for el in labels] == ["client 7", "client 12345"]
    assert max(el.size["height"] for el in labels) <= ROW_HEIGHT
