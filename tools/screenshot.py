"""Take the README's screenshots of a running streamfeed's watch page.

Start the app first (``make run``), let the simulator send events for a
minute, then run ``.venv/bin/python tools/screenshot.py [BASE_URL]``. It
writes docs/screenshot-watch.png (a wide screen) and
docs/screenshot-watch-phone.png (a phone) with Debian's headless Chromium.
"""

import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

DOCS = Path(__file__).resolve().parent.parent / "docs"
# File name, window size, and whether to show a gift bomb's recipients.
SHOTS = (
    ("screenshot-watch.png", (1500, 850), True),
    ("screenshot-watch-phone.png", (390, 1500), False),
)
# Time for the feed's websocket, the channel state and Twitch's probe.
SETTLE_SECONDS = 3


def main(base_url: str = "http://localhost:5000") -> None:
    """Open the watch page of the demo channel at each size and save it."""
    driver = start_chromium()
    try:
        for name, size, with_gift in SHOTS:
            driver.set_window_size(*size)
            driver.get(f"{base_url}/watch/example_streamer")
            time.sleep(SETTLE_SECONDS)
            if with_gift:
                open_a_gift_bomb(driver)
            driver.save_screenshot(str(DOCS / name))
            print(f"wrote {DOCS / name}")
    finally:
        driver.quit()


def start_chromium():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--hide-scrollbars",
        f"--user-data-dir={tempfile.mkdtemp()}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(
        service=Service(executable_path="/usr/bin/chromedriver"), options=options
    )


def open_a_gift_bomb(driver) -> None:
    """Scroll the newest folded gift bomb to the top and list its recipients."""
    buttons = driver.find_elements(By.CSS_SELECTOR, "#feed .event-gift .disclosure")
    recipients = [button for button in buttons if button.text == "Recipients"]
    if recipients:
        card = recipients[0].find_element(By.XPATH, "./ancestor::li")
        driver.execute_script("arguments[0].scrollIntoView(true);", card)
        recipients[0].click()


if __name__ == "__main__":
    main(*sys.argv[1:])
