"""End to end in headless Chromium: upload a JSRT image, see the result, download the zip.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; skips
with the reason otherwise. The server listens on 127.0.0.1 only. The screenshot goes to
the test's tmp dir and, when ``CHEXMASK_ARTIFACTS`` is set, to that folder too.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
        reason="headless browser test needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
    ),
]


@pytest.fixture(scope="module")
def server(tiny_weights):
    """The demo app served by uvicorn on a free loopback port, in a thread."""
    uvicorn = pytest.importorskip("uvicorn", reason="the web demo needs the [app] extra")
    from chexmask.app.server import create_app
    from chexmask.inference.segmenter import Segmenter

    web = create_app(Segmenter(tiny_weights, uncertainty=4, batch_size=1))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(web, log_level="warning", ws="none", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the demo server did not start within 30 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1200,1400"):
        options.add_argument(flag)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.downloads = downloads
    yield driver
    driver.quit()


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def _save_artifact(path: Path) -> None:
    folder = os.environ.get("CHEXMASK_ARTIFACTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)


def test_upload_jsrt_image_shows_result_and_downloads_zip(server, browser, jsrt_dir, tmp_path):
    from selenium.webdriver.common.by import By

    image = jsrt_dir / "images" / "JPCLN001.png"
    browser.get(server + "/")
    _wait(lambda: "Limits:" in browser.find_element(By.ID, "limits").text, 15, "the limits line")

    # A bad file first: a clear message on the page, and the server goes on.
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    browser.find_element(By.ID, "file").send_keys(str(bad))
    browser.find_element(By.ID, "submit").click()
    error = browser.find_element(By.ID, "error")
    _wait(error.is_displayed, 30, "the error message")
    assert "notes.png: not a PNG, JPEG or DICOM file" in error.text

    browser.find_element(By.ID, "file").send_keys(str(image))
    browser.find_element(By.ID, "submit").click()
    _wait(browser.find_element(By.ID, "result").is_displayed, 60, "the result")
    overlay = browser.find_element(By.ID, "overlay")
    _wait(lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", overlay),
          30, "the overlay image")
    assert browser.execute_script("return arguments[0].naturalWidth", overlay) == 1024
    assert not error.is_displayed()
    assert browser.find_element(By.ID, "image-id").text == "JPCLN001.png"  # segment's id for a lone file
    assert browser.find_element(By.ID, "size").text == "1024 x 1024 px (PNG)"
    assert browser.find_element(By.ID, "flag").text in {"good", "review"}
    assert "right lung" in browser.find_element(By.ID, "uncertainty").text
    assert "CTR" in browser.find_element(By.ID, "measures").text and "lengths in pixels only" in browser.find_element(By.ID, "measures").text

    shot = tmp_path / "demo_jsrt_result.png"
    browser.save_screenshot(str(shot))
    assert cv2.imread(str(shot)) is not None
    _save_artifact(shot)

    browser.find_element(By.ID, "download").click()
    target = browser.downloads / "JPCLN001_chexmask.zip"
    _wait(lambda: target.exists() and not list(browser.downloads.glob("*.crdownload")), 30, "the download")
    zf = zipfile.ZipFile(io.BytesIO(target.read_bytes()))
    assert {"landmarks.csv", "result.json", "chexmask.csv", "right_lung.png", "left_lung.png", "heart.png"} <= set(
        zf.namelist()
    )
    for organ in ("right_lung", "left_lung", "heart"):
        mask = cv2.imdecode(np.frombuffer(zf.read(f"{organ}.png"), np.uint8), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (1024, 1024) and set(np.unique(mask)) <= {0, 255}
