"""Browser tests of the pages: the live feed, its controls, layout and safety.

Headless Chromium, driven by Selenium, opens pages of the ``live_server``
fixture while the tests post signed EventSub messages to it the way Twitch
does. One Chromium serves every test; each test gets a fresh server, so a
fresh origin with empty storage.
"""

import contextlib
import copy
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from test_ingest import make_consumer

from app.fanout import Frame
from app.ingest import dead_letter_stream
from conftest import load_sample
from conftest import make_test_app
from conftest import serve
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
WIDE = (1400, 900)
PHONE = (390, 844)
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


@contextlib.contextmanager
def headless_chromium(log: str) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a throwaway profile, keeping ``log`` entries
    ("performance" for network events, "browser" for the console)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {log: "ALL"})
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


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for every test here."""
    with headless_chromium("performance") as browser:
        yield browser


@pytest.fixture
def driver(chromium):
    """The shared Chromium, as a fresh test expects to find it."""
    chromium.set_window_size(*WIDE)
    chromium.execute_cdp_cmd("Network.enable", {})
    chromium.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
    chromium.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    chromium.get_log("performance")  # drops what earlier tests left
    yield chromium
    # Closes the page's websocket before its server goes away.
    chromium.get("about:blank")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> datetime:
    return datetime.now(UTC)


def subscription_for(subscription_type: str, version: str, status: str) -> dict:
    # One subscription per type, as on Twitch: a challenge and a revocation
    # of the same type name the same one.
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, subscription_type)),
        "status": status,
        "type": subscription_type,
        "version": version,
        "cost": 0,
        "condition": {"broadcaster_user_id": STREAMER["broadcaster_user_id"]},
        "transport": {"method": "webhook", "callback": "https://example.com/"},
        "created_at": rfc3339(now()),
    }


def post_message(
    server_url: str,
    secret: str,
    message_type: str,
    body: dict,
    sent_at: datetime | None = None,
) -> requests.Response:
    """Sign and POST one EventSub message as Twitch would."""
    message_id = str(uuid.uuid4())
    timestamp = rfc3339(sent_at or now())
    raw = json.dumps(body, separators=(",", ":")).encode()
    subscription = body["subscription"]
    headers = {
        "Content-Type": "application/json",
        "Twitch-Eventsub-Message-Id": message_id,
        "Twitch-Eventsub-Message-Retry": "0",
        "Twitch-Eventsub-Message-Type": message_type,
        "Twitch-Eventsub-Message-Timestamp": timestamp,
        "Twitch-Eventsub-Subscription-Type": subscription["type"],
        "Twitch-Eventsub-Subscription-Version": subscription["version"],
        "Twitch-Eventsub-Message-Signature": sign(secret, message_id, timestamp, raw),
    }
    response = requests.post(
        server_url + "/webhooks/eventsub", data=raw, headers=headers, timeout=5
    )
    assert response.status_code in (200, 204), response.text
    response.message_id = message_id
    return response


def post_notification(
    server_url: str,
    secret: str,
    subscription_type: str,
    version: str,
    event: dict,
    sent_at: datetime | None = None,
) -> str:
    """Sign and POST one notification; return its message id."""
    subscription = subscription_for(subscription_type, version, "enabled")
    body = {"subscription": subscription, "event": event}
    return post_message(server_url, secret, "notification", body, sent_at).message_id


def post_verification(server_url: str, secret: str, subscription_type: str) -> None:
    """Answer a challenge for a new subscription, which enables it."""
    pending = "webhook_callback_verification_pending"
    body = {
        "challenge": "challenge-" + uuid.uuid4().hex,
        "subscription": subscription_for(subscription_type, "1", pending),
    }
    post_message(server_url, secret, "webhook_callback_verification", body)


def post_revocation(
    server_url: str, secret: str, subscription_type: str, reason: str
) -> None:
    body = {"subscription": subscription_for(subscription_type, "1", reason)}
    post_message(server_url, secret, "revocation", body)


def sample_event(name: str, **fields) -> dict:
    """The event of a sample body, with some fields replaced."""
    event = copy.deepcopy(load_sample(name)["event"])
    event.update(fields)
    return event


def post_follow(
    server_url: str, secret: str, name: str, followed_at: datetime | None = None
) -> str:
    event = {
        "user_id": "2000101",
        "user_login": name.lower(),
        "user_name": name,
        **STREAMER,
        "followed_at": rfc3339(followed_at or now()),
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


def wait_until(driver, check, seconds: float = WAIT_SECONDS):
    return WebDriverWait(driver, seconds).until(lambda browser: check())


def wait_for_status(driver, state: str) -> None:
    def has_state() -> bool:
        status = driver.find_element(By.ID, "feed-status")
        return status.get_attribute("data-state") == state

    wait_until(driver, has_state)


def open_watch_page(driver, server_url: str, login: str = "example_streamer"):
    driver.get(f"{server_url}/watch/{login}")
    wait_for_status(driver, "connected")


def feed_item_selector(message_id: str) -> str:
    return f'#feed > li[data-message-id="{message_id}"]'


def wait_for_item(driver, message_id: str):
    selector = feed_item_selector(message_id)
    return WebDriverWait(driver, WAIT_SECONDS).until(
        lambda browser: browser.find_element(By.CSS_SELECTOR, selector)
    )


def part_text(driver, message_id: str, selector: str) -> str:
    """The text of a part of a card, found afresh: a changed card is rebuilt."""
    found = driver.find_elements(
        By.CSS_SELECTOR, f"{feed_item_selector(message_id)} {selector}"
    )
    return found[0].text if found else ""


def count_items(driver, message_id: str) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, feed_item_selector(message_id)))


def feed_items(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#feed > li")


def socket_urls(driver) -> list[str]:
    """The URLs of the websockets the page opened, from Chromium's log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.webSocketCreated":
            urls.append(message["params"]["url"])
    return urls


def feed_order(driver) -> list[str]:
    return [item.get_attribute("data-message-id") for item in feed_items(driver)]


def open_types_panel(driver):
    driver.find_element(By.ID, "types-toggle").click()
    return driver.find_element(By.ID, "types-panel")


def type_checkbox(driver, pref: str, subscription_type: str):
    selector = f'input[data-pref="{pref}"][data-type="{subscription_type}"]'
    return driver.find_element(By.CSS_SELECTOR, selector)


def type_status(driver, subscription_type: str) -> str:
    selector = f'.type-status[data-type="{subscription_type}"]'
    return driver.find_element(By.CSS_SELECTOR, selector).get_attribute("textContent")


# The feed


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

    wait_for_status(driver, "connected")
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
    time = item.find_element(By.TAG_NAME, "time")
    assert order.index(recent) < order.index(earlier)
    assert time.text == "1 h ago"
    assert str(ninety_minutes_ago.year) in time.get_attribute("title")


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


def test_event_details_show_every_field_as_text(driver, live_server, eventsub_secret):
    """Guards against payload fields reaching the page as markup."""
    open_watch_page(driver, live_server.url)
    event = sample_event(
        "channel.channel_points_custom_reward_redemption.add.v1",
        user_input=HOSTILE_MESSAGE,
        redeemed_at=rfc3339(now()),
    )
    message_id = post_notification(
        live_server.url,
        eventsub_secret,
        "channel.channel_points_custom_reward_redemption.add",
        "1",
        event,
    )

    item = wait_for_item(driver, message_id)
    item.find_element(By.CSS_SELECTOR, ".disclosure").click()
    details = item.find_element(By.CSS_SELECTOR, ".event-details")
    terms = [term.text for term in details.find_elements(By.TAG_NAME, "dt")]
    assert {"user_input", "reward", "title", "cost", "redeemed_at"} <= set(terms)
    assert HOSTILE_MESSAGE in details.text
    assert event["reward"]["title"] in details.text
    assert driver.find_elements(By.CSS_SELECTOR, "#feed img") == []


# Folding


def post_gift_bomb(server_url: str, secret: str, total: int) -> tuple[str, list]:
    gift = sample_event("channel.subscription.gift.v1", total=total, tier="1000")
    gift_id = post_notification(
        server_url, secret, "channel.subscription.gift", "1", gift
    )
    recipients = []
    for index in range(total):
        name = f"Gifted_Viewer_{index:02}"
        event = sample_event(
            "channel.subscribe.v1",
            user_id=str(2100000 + index),
            user_login=name.lower(),
            user_name=name,
            tier="1000",
            is_gift=True,
        )
        post_notification(server_url, secret, "channel.subscribe", "1", event)
        recipients.append(name)
    return gift_id, recipients


def test_gift_bomb_of_50_arrives_as_one_card(driver, live_server, eventsub_secret):
    open_watch_page(driver, live_server.url)
    gift_id, recipients = post_gift_bomb(live_server.url, eventsub_secret, 50)

    wait_until(
        driver,
        lambda: part_text(driver, gift_id, ".event-progress") == "50 recipients",
    )
    card = wait_for_item(driver, gift_id)
    card.find_element(By.XPATH, ".//button[text()='Recipients']").click()
    names = card.find_elements(By.CSS_SELECTOR, ".recipient-list li")

    assert len(feed_items(driver)) == 1
    assert sorted(name.text for name in names) == recipients


def test_a_gift_bomb_split_across_pages_of_history_folds_too(
    driver, live_server, eventsub_secret
):
    """Guards against gifted subs shown one by one when their gift is older.

    The page opens with the latest 50 events: 49 of the gifted subs and a
    follow. The gift and its first recipient only come with "Load older".
    """
    gift_id, _ = post_gift_bomb(live_server.url, eventsub_secret, 50)
    post_follow(live_server.url, eventsub_secret, "After_The_Gifts")
    open_watch_page(driver, live_server.url)
    wait_until(driver, lambda: len(feed_items(driver)) == 50)

    driver.find_element(By.ID, "load-older").click()
    card = wait_for_item(driver, gift_id)

    progress = card.find_element(By.CSS_SELECTOR, ".event-progress").text
    assert (progress, len(feed_items(driver))) == ("50 recipients", 2)


def post_poll(server_url: str, secret: str, kind: str, poll_id: str) -> str:
    event = sample_event(f"channel.poll.{kind}.v1", id=poll_id)
    for key in ("started_at", "ended_at"):
        if key in event:
            event[key] = rfc3339(now())
    return post_notification(server_url, secret, f"channel.poll.{kind}", "1", event)


def test_a_polls_progress_updates_one_card(driver, live_server, eventsub_secret):
    open_watch_page(driver, live_server.url)
    poll_id = str(uuid.uuid4())
    first = post_poll(live_server.url, eventsub_secret, "begin", poll_id)
    for _ in range(3):
        post_poll(live_server.url, eventsub_secret, "progress", poll_id)
    post_poll(live_server.url, eventsub_secret, "end", poll_id)

    wait_until(
        driver, lambda: part_text(driver, first, ".event-updates") == "5 updates"
    )
    card = wait_for_item(driver, first)
    assert len(feed_items(driver)) == 1
    assert card.find_element(By.CSS_SELECTOR, ".event-summary").text.startswith(
        "Poll ended"
    )


# Filters, pause, highlight and sound


def test_filters_survive_a_reload(driver, live_server, eventsub_secret):
    follow = post_follow(live_server.url, eventsub_secret, "Filtered_Follower")
    cheer = post_cheer(live_server.url, eventsub_secret, "still shown")
    open_watch_page(driver, live_server.url)
    open_types_panel(driver)
    type_checkbox(driver, "show", "channel.follow").click()
    assert not wait_for_item(driver, follow).is_displayed()

    open_watch_page(driver, live_server.url)
    wait_for_item(driver, cheer)

    assert not type_checkbox(driver, "show", "channel.follow").is_selected()
    assert not driver.find_element(
        By.CSS_SELECTOR, feed_item_selector(follow)
    ).is_displayed()
    assert driver.find_element(
        By.CSS_SELECTOR, feed_item_selector(cheer)
    ).is_displayed()


def test_pause_holds_new_events_and_resume_loses_none(
    driver, live_server, eventsub_secret
):
    open_watch_page(driver, live_server.url)
    before = post_follow(live_server.url, eventsub_secret, "Before_Pause")
    wait_for_item(driver, before)
    driver.find_element(By.ID, "pause").click()

    held = [
        post_follow(live_server.url, eventsub_secret, f"Held_{index}")
        for index in range(5)
    ]
    badge = driver.find_element(By.ID, "new-badge")
    wait_until(driver, lambda: badge.text == "5 new")
    assert feed_order(driver) == [before]

    badge.click()
    assert [count_items(driver, message_id) for message_id in held] == [1] * 5
    assert not badge.is_displayed()
    assert driver.find_element(By.ID, "pause").text == "Pause"


def test_highlight_marks_only_the_chosen_types(driver, live_server, eventsub_secret):
    open_watch_page(driver, live_server.url)
    open_types_panel(driver)
    type_checkbox(driver, "highlight", "channel.follow").click()

    follow = post_follow(live_server.url, eventsub_secret, "Bright_Follower")
    cheer = post_cheer(live_server.url, eventsub_secret, "plain cheer")

    assert "is-highlighted" in wait_for_item(driver, follow).get_attribute("class")
    assert "is-highlighted" not in wait_for_item(driver, cheer).get_attribute("class")


def chimes(driver) -> int:
    return driver.execute_script("return window.streamfeedDebug.chimesPlayed();")


def test_sound_stays_muted_until_the_viewer_turns_it_on(
    driver, live_server, eventsub_secret
):
    open_watch_page(driver, live_server.url)
    open_types_panel(driver)
    type_checkbox(driver, "sound", "channel.follow").click()

    muted = post_follow(live_server.url, eventsub_secret, "Quiet_Follower")
    wait_for_item(driver, muted)
    assert chimes(driver) == 0

    driver.find_element(By.ID, "sound").click()
    loud = post_follow(live_server.url, eventsub_secret, "Loud_Follower")
    wait_for_item(driver, loud)
    assert chimes(driver) == 1


# History


def test_load_older_pages_back_through_the_history(
    driver, live_server, eventsub_secret
):
    start = now() - timedelta(minutes=30)
    for index in range(60):
        moment = start + timedelta(seconds=index)
        post_follow(live_server.url, eventsub_secret, f"Old_{index:02}", moment)
    open_watch_page(driver, live_server.url)
    wait_until(driver, lambda: len(feed_items(driver)) == 50)

    driver.find_element(By.ID, "load-older").click()
    wait_until(driver, lambda: len(feed_items(driver)) == 60)

    assert "Old_00" in feed_items(driver)[-1].text
    assert driver.find_element(By.ID, "history-end").is_displayed()
    assert not driver.find_element(By.ID, "load-older").is_displayed()


# The channel: live types, status, title


def test_page_says_which_types_are_live_and_why_not(
    driver, live_server, eventsub_secret
):
    post_follow(live_server.url, eventsub_secret, "Makes_The_Id_Known")
    post_verification(live_server.url, eventsub_secret, "stream.online")
    open_watch_page(driver, live_server.url)

    assert type_status(driver, "stream.online") == "Live"
    assert type_status(driver, "stream.offline") == "not subscribed yet"
    assert type_status(driver, "channel.cheer").startswith(
        "the streamer has not connected streamfeed"
    )

    post_verification(live_server.url, eventsub_secret, "channel.follow")
    post_revocation(
        live_server.url, eventsub_secret, "channel.cheer", "authorization_revoked"
    )
    open_watch_page(driver, live_server.url)
    assert type_status(driver, "channel.subscribe").startswith("not subscribed yet")
    assert type_status(driver, "channel.cheer").startswith(
        "the streamer withdrew streamfeed's access"
    )
    assert "Live here: 2 of" in driver.find_element(By.ID, "availability").text


def post_stream_event(server_url, secret, kind: str, sent_at: datetime) -> str:
    event = sample_event(f"stream.{kind}.v1")
    if kind == "online":
        event["started_at"] = rfc3339(sent_at)
    return post_notification(server_url, secret, f"stream.{kind}", "1", event, sent_at)


def badge_text(driver) -> str:
    return driver.find_element(By.ID, "stream-status").text


def test_status_starts_from_the_server_and_ignores_a_late_offline(
    driver, live_server, eventsub_secret
):
    """Guards against a stream.offline delivered late flipping a live badge."""
    url, secret = live_server.url, eventsub_secret
    post_stream_event(url, secret, "online", now() - timedelta(minutes=1))
    update = sample_event("channel.update.v2", title="Speedrun night")
    post_notification(url, secret, "channel.update", "2", update)
    open_watch_page(driver, url)
    assert badge_text(driver).lower() == "live"
    assert driver.find_element(By.ID, "stream-title").text == "Speedrun night"

    late = post_stream_event(url, secret, "offline", now() - timedelta(minutes=2))
    wait_for_item(driver, late)
    assert badge_text(driver).lower() == "live"

    post_stream_event(url, secret, "offline", now())
    wait_until(driver, lambda: badge_text(driver).lower() == "offline")


# Layout, themes, embeds and keyboard


def box(driver, selector: str) -> dict:
    return driver.find_element(By.CSS_SELECTOR, selector).rect


def test_three_columns_on_a_wide_screen_stacked_on_a_phone(driver, live_server):
    open_watch_page(driver, live_server.url)
    player, chat, feed = (box(driver, s) for s in (".player", ".chat", ".feed-panel"))
    assert player["x"] < chat["x"] < feed["x"]
    assert player["y"] == chat["y"] == feed["y"]

    driver.set_window_size(*PHONE)
    player, chat, feed = (box(driver, s) for s in (".player", ".chat", ".feed-panel"))
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth"
        " - document.documentElement.clientWidth;"
    )
    assert player["y"] < chat["y"] < feed["y"]
    assert overflow == 0


def test_the_watch_page_links_to_the_streamers_stats(driver, live_server):
    open_watch_page(driver, live_server.url)
    driver.find_element(By.CSS_SELECTOR, ".stats-link").click()
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda browser: browser.current_url.endswith("/stats/example_streamer")
    )


def test_the_connected_notice_keeps_the_columns_in_the_window(driver, live_server):
    def overflow() -> int:
        return driver.execute_script(
            "return document.documentElement.scrollHeight - window.innerHeight;"
        )

    driver.get(f"{live_server.url}/watch/example_streamer?connected=1")
    wait_for_status(driver, "connected")
    notice = box(driver, ".connected-notice")
    player, feed = box(driver, ".player"), box(driver, ".feed-panel")
    assert notice["y"] + notice["height"] <= player["y"] == feed["y"]
    assert overflow() == 0

    open_watch_page(driver, live_server.url)
    assert driver.find_elements(By.CSS_SELECTOR, ".connected-notice") == []
    assert overflow() == 0


def background(driver) -> str:
    return driver.execute_script(
        "return getComputedStyle(document.body).backgroundColor;"
    )


def test_theme_follows_the_system_setting(driver, live_server):
    def emulate(scheme: str) -> None:
        features = [{"name": "prefers-color-scheme", "value": scheme}]
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": features})

    open_watch_page(driver, live_server.url)
    emulate("light")
    light = background(driver)
    emulate("dark")
    dark = background(driver)

    assert light == "rgb(246, 246, 248)"
    assert dark == "rgb(19, 19, 22)"


def test_without_internet_the_embeds_say_so_instead_of_a_broken_frame(
    driver, live_server
):
    # Blocked like a machine without internet access, even where there is one.
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*twitch.tv*"]})
    open_watch_page(driver, live_server.url)

    notes = driver.find_elements(By.CSS_SELECTOR, ".embed-offline")
    wait_until(driver, lambda: all(note.is_displayed() for note in notes))
    assert len(notes) == 2
    assert "needs internet access" in notes[0].text
    assert driver.find_elements(By.TAG_NAME, "iframe") == []


def test_keyboard_reaches_the_feed_and_its_controls(driver, live_server):
    open_watch_page(driver, live_server.url)
    body = driver.find_element(By.TAG_NAME, "body")

    body.send_keys(Keys.TAB)
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    assert driver.switch_to.active_element.get_attribute("id") == "feed-panel"

    driver.switch_to.active_element.send_keys(Keys.TAB)
    pause = driver.switch_to.active_element
    pause.send_keys(Keys.SPACE)
    assert (pause.get_attribute("id"), pause.text) == ("pause", "Resume")
    feed = driver.find_element(By.ID, "feed")
    assert feed.get_attribute("aria-live") == "polite"


# Sign-in


def test_sign_in_through_the_simulated_twitch_reaches_the_watch_page(
    driver, twitch_server
):
    driver.get(f"{twitch_server.url}/")
    driver.find_element(By.LINK_TEXT, "Sign in with Twitch").click()
    driver.find_element(By.CSS_SELECTOR, "button[data-login=viewer_one]").click()
    wait_until(driver, lambda: driver.find_elements(By.ID, "favorite"))

    field = driver.find_element(By.ID, "favorite")
    field.send_keys("example_streamer", Keys.ENTER)
    wait_for_status(driver, "connected")
    account = driver.find_element(By.CLASS_NAME, "account-name").text

    assert driver.current_url == f"{twitch_server.url}/watch/example_streamer"
    assert account == "Viewer_One"


def test_a_page_told_to_resync_reconnects_from_its_last_cursor(
    driver, sqlite_url, eventsub_secret
):
    """A page that fell behind is told so, and comes back missing nothing."""
    redis_url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    stream = f"test-{uuid.uuid4().hex[:12]}:ingest"
    live, server = serve(
        lambda url: make_test_app(
            sqlite_url, REDIS_URL=redis_url, INGEST_STREAM=stream, FEED_QUEUE=1
        )
    )
    relay = live.app.extensions["fanout"].get()
    # With Redis the webhook only buffers; an ingest consumer stores and
    # publishes, as `cli.py ingest` does in production.
    consumer = make_consumer(live.app, stream)
    ingest = threading.Thread(target=consumer.run, daemon=True)
    ingest.start()
    try:
        open_watch_page(driver, live.url)
        shown = [post_follow(live.url, eventsub_secret, f"Early_{n}") for n in range(3)]
        for message_id in shown:
            wait_for_item(driver, message_id)
        driver.get_log("performance")  # forget the first websocket

        # Fill the page's one-frame queue faster than it drains: the relay
        # replaces it with a resync, as it does for a page that reads slowly.
        (feed,) = relay.feeds_of("example_streamer")
        empty = Frame.parse(json.dumps({"kind": "events", "events": []}))
        for _ in range(100_000):
            if not feed.offer(empty):
                break
        assert feed.overflowed

        wait_until(driver, lambda: any("after=" in url for url in socket_urls(driver)))
        wait_for_status(driver, "connected")
        later = post_follow(live.url, eventsub_secret, "After_Resync")
        wait_for_item(driver, later)
        assert [count_items(driver, m) for m in [*shown, later]] == [1, 1, 1, 1]
    finally:
        driver.get("about:blank")
        consumer.stop.set()
        ingest.join(5)
        consumer.redis.delete(stream, dead_letter_stream(stream))
        server.shutdown()
        relay.stop()
        live.app.extensions["db"].engine.dispose()


def test_a_backfilled_follow_is_labelled_as_such(driver, live_server, eventsub_secret):
    from app.events import build_row
    from app.store import store_events
    from jobs.backfill import message_id as backfill_id

    subscription = subscription_for("channel.follow", "2", "enabled")
    event = sample_event("channel.follow.v2", user_name="Old_Follower")
    row = build_row(
        backfill_id(STREAMER["broadcaster_user_id"], "42"),
        subscription,
        event,
        now(),
        now(),
    )
    row["payload"]["backfilled"] = True
    with live_server.app.app_context():
        session = live_server.app.extensions["db"].session()
        store_events(session, [row])
        session.commit()
        session.close()
    live = post_follow(live_server.url, eventsub_secret, "New_Follower")

    open_watch_page(driver, live_server.url)

    wait_for_item(driver, row["message_id"])
    assert part_text(driver, row["message_id"], ".event-backfilled") == "backfilled"
    wait_for_item(driver, live)
    assert part_text(driver, live, ".event-backfilled") == ""
