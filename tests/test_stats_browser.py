"""Browser tests of the stats page: Chart.js draws the known data set.

Headless Chromium opens the page of the ``live_server`` fixture after the
fixed data set of tests/test_reports.py is stored, and reads back what each
chart holds through Chart.js itself.
"""

import csv
import io
import os

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from test_browser import CHROMEDRIVER
from test_browser import CHROMIUM
from test_browser import WAIT_SECONDS
from test_browser import headless_chromium
from test_reports import DATA
from test_reports import event_of
from test_stats import store

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
RANGE = "since=2026-03-14&until=2026-03-15"
# Chart.getChart is Chart.js's own registry of drawn charts.
READ_CHARTS = """
return Array.from(document.querySelectorAll("canvas[data-chart]"), (canvas) => {
  const chart = Chart.getChart(canvas);
  return {
    report: canvas.closest("section").id.replace("panel-", ""),
    type: chart.config.type,
    labels: chart.data.labels,
    datasets: chart.data.datasets.map((d) => ({ label: d.label, data: d.data })),
  };
});
"""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
        reason=f"needs {CHROMIUM} and {CHROMEDRIVER} (apt install chromium-driver)",
    ),
]


@pytest.fixture
def driver():
    """A headless Chromium that keeps its console messages."""
    with headless_chromium("browser") as browser:
        yield browser


def open_stats(driver, url: str) -> dict[str, dict]:
    """Open a stats page, wait until stats.js has drawn, return its charts."""
    driver.get(url)
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda browser: (
            browser.execute_script("return document.readyState") == "complete"
        )
    )
    return {chart["report"]: chart for chart in driver.execute_script(READ_CHARTS)}


def console_problems(driver) -> list[str]:
    """Console warnings and errors, CSP violations included."""
    entries = driver.get_log("browser")
    return [e["message"] for e in entries if e["level"] in ("WARNING", "SEVERE")]


def test_charts_show_the_known_data_set(driver, live_server):
    store(live_server.app, DATA)
    charts = open_stats(driver, f"{live_server.url}/stats/example_streamer?{RANGE}")

    assert charts["events-by-day"]["labels"] == ["2026-03-14", "2026-03-15"]
    assert charts["events-by-day"]["datasets"] == [
        {"label": "Follows", "data": [2, 1]},
        {"label": "Subscriptions", "data": [1, 2]},
        {"label": "Bits", "data": [2, 2]},
    ]
    assert charts["top-cheerers"]["labels"] == [
        "Pixel_Pioneer",
        "Anonymous",
        "Viewer_One",
    ]
    assert charts["top-gifters"]["datasets"][0]["data"] == [7, 1]


def test_page_draws_without_console_errors_or_csp_violations(driver, live_server):
    """Guards against a chart library that needs inline styles or scripts."""
    store(live_server.app, DATA)
    charts = open_stats(driver, f"{live_server.url}/stats/example_streamer")

    assert len(charts) == 4
    assert console_problems(driver) == []


def test_csv_link_downloads_the_chart_numbers(driver, live_server):
    store(live_server.app, DATA)
    open_stats(driver, f"{live_server.url}/stats/example_streamer?{RANGE}")
    link = driver.find_element(By.CSS_SELECTOR, "#panel-top-cheerers a[download]")

    response = requests.get(link.get_attribute("href"), timeout=5)
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert list(csv.reader(io.StringIO(response.text)))[1:] == [
        ["Pixel_Pioneer", "300", "1"],
        ["Anonymous", "250", "1"],
        ["Viewer_One", "150", "2"],
    ]


def test_range_without_events_says_so_instead_of_a_chart(driver, live_server):
    store(live_server.app, DATA)
    charts = open_stats(driver, f"{live_server.url}/stats/example_streamer")
    driver.find_element(By.ID, "since").send_keys("04/01/2026")
    driver.find_element(By.CSS_SELECTOR, ".stats-range button").click()

    empty = WebDriverWait(driver, WAIT_SECONDS).until(
        lambda browser: browser.find_element(
            By.CSS_SELECTOR, "#panel-events-by-day .stats-empty"
        )
    )
    assert (len(charts), empty.text) == (4, "No events in this range.")
    assert "since=2026-04-01" in driver.current_url
    assert driver.find_elements(By.TAG_NAME, "canvas") == []


def test_supporter_name_with_markup_is_drawn_as_text(driver, live_server):
    """Guards against a Twitch display name being parsed as HTML (stored XSS)."""
    when = DATA[0][1]
    store(
        live_server.app, [event_of("channel.cheer.v1", when, ("1", "x", HOSTILE_NAME))]
    )
    charts = open_stats(driver, f"{live_server.url}/stats/example_streamer")

    assert charts["top-cheerers"]["labels"] == [HOSTILE_NAME]
    assert driver.find_elements(By.CSS_SELECTOR, "main img") == []
