"""The explorer served in the background and a headless Chromium to look at it: what the page's test
(tests/test_web.py) and the README's screenshot (benchmarks/pictures.py) both need.

The browser is Debian's chromium with its own chromedriver, driven by selenium (the test extra), so nothing
downloads a browser build; selenium and uvicorn are imported only when used.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# JavaScript: how many of the elements matching arguments[0] are images that have finished loading.
LOADED_IMAGES = "return [...document.querySelectorAll(arguments[0])].filter(i => i.complete && i.naturalWidth > 0).length"


def chromium_paths() -> tuple[str | None, str | None]:
    """The chromium binary and its chromedriver on PATH (None where missing)."""
    return shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")


@contextmanager
def explorer_in_background(folders: Sequence[str | Path]) -> Iterator[str]:
    """The explorer on `folders`, served by uvicorn in a thread on a free local port; yields its URL and stops it after."""
    import uvicorn

    from facegen.web.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(list(folders)), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def headless_chromium(width: int, height: int) -> Iterator:
    """A selenium driver of a headless Chromium with a window of width x height; quit after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = chromium_paths()
    if not (chromium and driver_path):
        raise RuntimeError("no chromium and chromedriver on PATH: install Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
