"""Browser tests of the pages: the live feed, its safety and its reconnects.

Headless Chromium, driven by Selenium, opens pages of the ``live_server``
fixture while the tests post signed EventSub notifications to it the way
Twitch does.
"""

import json
import os
import tempfile
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from webhooks.signature import sign

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
)
WAIT_SECONDS = 5

STREAMER = {
    "broadcaster_user_id": "1000001",
    "broadcaster_user_login": "example_streamer",
    "broadcaster_user_name": "Example_Streamer",
}
HOSTILE_MESSAGE = "<img src=x onerror=alert(1)>"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
        reason=f"needs {CHROMIUM} and {CHROMEDRIVER} (apt install chromium-driver)",
    ),
]


@pytest.fixture
def driver():
    """A headless Chromium with a throwaway profile."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    for argument in CHROMIUM_ARGUMENTS:
        options.add_argument(argument)

    with tempfile.TemporaryDirectory(prefix="streamfeed-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        browser = webdriver.Chrome(
            options=options, service=Service(executable_path=CHROMEDRIVER)
        )
        try:
            yield browser
        finally:
            browser.quit()


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def post_notification(
    server_url: str,
    secret: str,
    subscription_type: str,
    version: str,
    event: dict,
) -> str:
    """Sign and POST one notification as Twitch would; return its message id."""
    message_id = str(uuid.uuid4())
    timestamp = rfc3339(datetime.now(UTC))
    subscription = {
        "id": str(uuid.uuid4()),
        "status": "enabled",
        "type": subscription_type,
        "version": version,
        "cost": 0,
        "condition": {"broadcaster_user_id": STREAMER["broadcaster_user_id"]},
        "transport": {"method": "webhook", "callback": "https://example.com/"},
        "created_at": timestamp,
    }
    body = json.dumps(
        {"subscription": subscription, "event": event}, separators=(",", ":")
    ).encode()

    headers = {
        "Content-Type": "application/json",
        "Twitch-Eventsub-Message-Id": message_id,
        "Twitch-Eventsub-Message-Retry": "0",
        "Twitch-Eventsub-Message-Type": "notification",
        "Twitch-Eventsub-Message-Timestamp": timestamp,
        "Twitch-Eventsub-Subscription-Type": subscription_type,
        "Twitch-Eventsub-Subscription-Version": version,
        "Twitch-Eventsub-Message-Signature": sign(secret, message_id, timestamp, body),
    }
    response = requests.post(
        server_url + "/webhooks/eventsub", data=body, headers=headers, timeout=5
    )
    assert response.status_code == 204, response.text
    return message_id


def post_follow(
    server_url: str, secret: str, name: str, followed_at: datetime | None = None
) -> str:
    event = {
        "user_id": "2000101",
        "user_login": name.lower(),
        "user_name": name,
        **STREAMER,
        "followed_at": rfc3339(followed_at or datetime.now(UTC)),
    }
    return post_notification(server_url, secret, "channel.follow", "2", event)


def post_cheer(server_url: str, secret: str, message: str) -> str:
    event = {
        "is_anonymous": False,
        "user_id": "2000102",
        "user_login": "cheer_tester",
        "user_name": "Cheer_Tester",
        **STREAMER,
        "message": message,
        "bits": 100,
    }
    return post_notification(server_url, secret, "channel.cheer", "1", event)


def wait_for_status(driver, state: str) -> None:
    def has_state(browser) -> bool:
        status = browser.find_element(By.ID, "feed-status")
        return status.get_attribute("data-state") == state

    WebDriverWait(driver, WAIT_SECONDS).until(has_state)


def open_watch_page(driver, server_url: str, login: str = "example_streamer"):
    driver.get(f"{server_url}/watch/{login}")
    wait_for_status(driver, "live")


def feed_item_selector(message_id: str) -> str:
    return f'#feed li[data-message-id="{message_id}"]'


def wait_for_item(driver, message_id: str):
    selector = feed_item_selector(message_id)
    return WebDriverWait(driver, WAIT_SECONDS).until(
        lambda browser: browser.find_element(By.CSS_SELECTOR, selector)
    )


def count_items(driver, message_id: str) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, feed_item_selector(message_id)))


def socket_urls(driver) -> list[str]:
    """The URLs of the websockets the page opened, from Chromium's log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.webSocketCreated":
            urls.append(message["params"]["url"])
    return urls


def feed_order(driver) -> list[str]:
    items = driver.find_elements(By.CSS_SELECTOR, "#feed li")
    return [item.get_attribute("data-message-id") for item in items]


def test_follow_posted_while_page_is_open_appears_in_feed(
    driver, live_server, eventsub_secret
):
    open_watch_page(driver, live_server.url)
    message_id = post_follow(live_server.url, eventsub_secret, "Feed_Tester")

    item = wait_for_item(driver, message_id)
    assert "Feed_Tester" in item.text
    assert "type-channel-follow" in item.get_attribute("class").split()


def test_cheer_message_with_markup_is_shown_as_text(
    driver, live_server, eventsub_secret
):
    """Guards against rendering viewer text as HTML (stored XSS in the feed).

    The page's Content-Security-Policy would block the inline handler anyway,
    so the missing <img> element is what proves the text was never parsed.
    """
    open_watch_page(driver, live_server.url)
    driver.execute_script("window.alert = () => { window.alerted = true; };")
    message_id = post_cheer(live_server.url, eventsub_secret, HOSTILE_MESSAGE)

    item = wait_for_item(driver, message_id)
    assert HOSTILE_MESSAGE in item.text
    assert driver.find_elements(By.CSS_SELECTOR, "#feed img") == []
    assert driver.execute_script("return window.alerted === true;") is False


def test_events_posted_while_disconnected_appear_once_after_reconnect(
    driver, live_server, eventsub_secret
):
    """Guards against losing or repeating events across a dropped websocket.

    The page must reconnect with the last cursor it saw: without it, events
    stored meanwhile that fall outside the server's latest 50 are lost.
    """
    open_watch_page(driver, live_server.url)
    before = post_follow(live_server.url, eventsub_secret, "Before_Drop")
    wait_for_item(driver, before)

    driver.execute_script("window.streamfeedDebug.dropConnection(3000);")
    wait_for_status(driver, "reconnecting")
    during = [
        post_follow(live_server.url, eventsub_secret, "During_Drop"),
        post_cheer(live_server.url, eventsub_secret, "sent while the page was away"),
    ]
    status = driver.find_element(By.ID, "feed-status").get_attribute("data-state")
    assert status == "reconnecting"

    wait_for_status(driver, "live")
    for message_id in during:
        wait_for_item(driver, message_id)
    counts = [count_items(driver, message_id) for message_id in [before, *during]]
    assert counts == [1, 1, 1]
    assert "after=" in socket_urls(driver)[-1]


def test_late_event_that_happened_earlier_is_placed_below_newer_ones(
    driver, live_server, eventsub_secret
):
    open_watch_page(driver, live_server.url)
    recent = post_follow(live_server.url, eventsub_secret, "Recent_Follower")
    ninety_minutes_ago = datetime.now(UTC) - timedelta(minutes=90)
    earlier = post_follow(
        live_server.url, eventsub_secret, "Late_Follower", ninety_minutes_ago
    )

    item = wait_for_item(driver, earlier)
    order = feed_order(driver)
    assert order.index(recent) < order.index(earlier)
    assert item.find_element(By.TAG_NAME, "time").text == "1 h ago"


def test_feed_of_streamer_without_events_says_so(driver, live_server):
    open_watch_page(driver, live_server.url, "quiet_channel")

    empty_line = driver.find_element(By.ID, "feed-empty")
    assert empty_line.is_displayed()
    assert empty_line.text == "No events yet for quiet_channel"


def test_home_form_with_invalid_login_shows_the_rule(driver, live_server):
    driver.get(live_server.url + "/")
    field = driver.find_element(By.NAME, "login")
    field.send_keys("x y")
    field.submit()

    error = WebDriverWait(driver, WAIT_SECONDS).until(
        lambda browser: browser.find_element(By.CSS_SELECTOR, "[role=alert]")
    )
    assert "4 to 25 letters, digits or underscores" in error.text
    assert driver.find_element(By.NAME, "login").get_attribute("value") == "x y"
