"""Take the README's screenshot of a running streamfeed.

Start the app first (``make run``), let the simulator send events for a
while, then run ``.venv/bin/python tools/screenshot.py [BASE_URL]``. It
writes docs/screenshot-watch.png with Debian's headless Chromium.
"""

import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "screenshot-watch.png"


def main(base_url: str = "http://localhost:5000") -> None:
    """Open the watch page of the demo channel and save what it shows."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--window-size=1500,850",
        f"--user-data-dir={tempfile.mkdtemp()}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        service=Service(executable_path="/usr/bin/chromedriver"), options=options
    )
    try:
        driver.get(f"{base_url}/watch/example_streamer")
        time.sleep(3)
        driver.save_screenshot(str(OUTPUT))
    finally:
        driver.quit()
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main(*sys.argv[1:])
