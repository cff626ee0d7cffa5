"""`nmt serve`'s web page in a real headless Chromium (Selenium, the system
chromedriver): typing sentences and pressing Translate shows what `nmt translate`
prints, and for a model with attention a heatmap of the alignment."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.serving import Server
from tests.test_serve import GOLDEN, LINES, translate

WAIT_S = 60
# Debian's /usr/bin/chromium is a wrapper script; the browser is beside the driver
BROWSERS = ["/usr/lib/chromium/chromium", "chromium", "chromium-browser",
            "google-chrome", "google-chrome-stable"]  # fmt: skip
DRIVERS = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver", "chromedriver"]


def _find(names: list[str]) -> str | None:
    for name in names:
        path = name if Path(name).is_file() else shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    binary, driver = _find(BROWSERS), _find(DRIVERS)
    if not binary or not driver:
        pytest.skip(
            "no Chromium and chromedriver found (apt-get install chromium "
            f"chromium-driver); looked for {BROWSERS} and {DRIVERS}"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-gpu", "--window-size=1200,900"):  # fmt: skip
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.set_page_load_timeout(WAIT_S)
    chrome.set_script_timeout(WAIT_S)
    try:
        yield chrome
    finally:
        chrome.quit()


def _translate_on_page(chrome, url: str, lines: list[str]) -> list[str]:
    """Open the page, type `lines`, press Translate; the output's lines."""
    chrome.get(url + "/")
    wait = WebDriverWait(chrome, WAIT_S)
    body = chrome.find_element(By.TAG_NAME, "body")
    wait.until(lambda c: body.get_attribute("data-ready") == "yes")  # /health came
    source = chrome.find_element(By.ID, "source")
    source.clear()
    source.send_keys("\n".join(lines))
    chrome.find_element(By.ID, "translate").click()
    output = chrome.find_element(By.ID, "output")
    try:
        wait.until(lambda c: output.get_attribute("data-state") in ("done", "error"))
    except TimeoutException:
        pytest.fail(f"no translation within {WAIT_S} s")
    error = chrome.find_element(By.ID, "error").text
    assert output.get_attribute("data-state") == "done", error
    # textContent: the text exactly, however it is laid out
    return output.get_attribute("textContent").split("\n")


@pytest.mark.parametrize("name", ["plain", "attention"])
def test_page_translates(browser, name):
    model = GOLDEN / name
    lines = [LINES[0], LINES[5]]
    want = translate(model, lines, None)
    with Server(model) as server:
        assert _translate_on_page(browser, server.url, lines) == [
            want[x] for x in lines
        ]
        maps = browser.find_elements(By.CSS_SELECTOR, "#heatmap table.heatmap")
        if name == "plain":
            assert maps == []
            return
        assert len(maps) == len(lines)
        _, amap = server.request("/translate", {"text": lines, "attention": True})
        for table, expected in zip(maps, amap["attention"]):
            rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
            assert len(rows) == len(expected["target"])
            cells = rows[0].find_elements(By.CSS_SELECTOR, "td.cell")
            assert len(cells) == len(expected["source"])
            assert "rgba" in cells[0].get_attribute("style")
