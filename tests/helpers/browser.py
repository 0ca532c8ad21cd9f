"""Browser tests: headless Chromium (Debian's chromium + chromium-driver) started one way for every
browser test, the app served by werkzeug on a free local port, the pets collection they share,
screenshots and WebDriverWait-based waiting.

Its fixtures (``browser``, ``live``, the autouse ``_no_js_errors``) are registered once for the
whole suite (``pytest_plugins`` in tests/conftest.py): a test module imports only the functions
and constants it uses from here, never the fixtures.

WebGL runs on SwiftShader (software) in headless Chromium, so the map is exercised for real.
Screenshots go to artifacts/screenshots/ (gitignored) for a human to look at."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, copy_subset, upgraded

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = ROOT / "artifacts" / "screenshots"
PER_CLASS = 12
COLLECTION = "pets"
SPACE = "efficientnet_lite0"
SPACE_MAX = "efficientnet_lite0@max"  # a second embedding space, for the comparison page
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--window-size=1366,900", "--force-device-scale-factor=1")


class LiveServer:
    def __init__(self, app):
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)
        self.thread.start()

    def get_json(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=60) as resp:
            return json.loads(resp.read())

    def stop(self):
        self.server.shutdown()
        self.thread.join(10)


@contextlib.contextmanager
def chromium():
    """A headless Chromium WebDriver on a throwaway profile; quit and removed on exit. Fails (not
    skips) without Debian's chromium and chromium-driver: CI installs them."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver: "
                    "apt-get install -y chromium chromium-driver")
    profile = tempfile.mkdtemp(prefix="simsearch-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_script_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def console_errors(driver) -> list:
    """The SEVERE browser-console entries since the last read (a missing favicon aside)."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]


@pytest.fixture(autouse=True)
def _no_js_errors(request):
    """Every test that drives the shared ``browser`` fails on an uncaught JavaScript error or a
    failed module load (autouse; a test without the ``browser`` fixture starts no browser)."""
    if "browser" not in request.fixturenames:
        yield
        return
    browser = request.getfixturevalue("browser")
    browser.get_log("browser")  # drop what earlier tests left
    yield
    severe = console_errors(browser)
    assert not severe, f"browser console errors: {severe}"


@pytest.fixture(scope="module")
def live(tmp_path_factory, weights_dir):
    """The app on a live server over a pets collection (PER_CLASS cats and dogs, in SPACE and SPACE_MAX)."""
    from simsearch.config import Settings
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.web import create_app, shutdown

    base = tmp_path_factory.mktemp("browser")
    home = base / "home"
    settings = upgraded(Settings.from_env(home=home, database_url=f"sqlite:///{home / 'simsearch.db'}", weights_path=weights_dir))
    app = create_app(settings)
    ctx = app.extensions["simsearch"]
    pets = copy_subset(base / "pets", PER_CLASS)
    files, ignored = files_from_folder(pets, labels="folders")
    report = Ingester(ctx, spaces=[SPACE, SPACE_MAX], batch_size=8).run(COLLECTION, files, source=str(pets), ignored=ignored)
    assert report.added == 2 * PER_CLASS
    server = LiveServer(app)
    server.app = app
    server.ctx = ctx
    server.base = base
    yield server
    server.stop()
    shutdown(app)


def shot(driver, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def wait(driver, condition, timeout=120, message=""):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(StaleElementReferenceException,)).until(condition, message)


def by_testid(driver, testid, many=False):
    from selenium.webdriver.common.by import By

    sel = f'[data-testid="{testid}"]'
    return driver.find_elements(By.CSS_SELECTOR, sel) if many else driver.find_element(By.CSS_SELECTOR, sel)


def visible(driver, testid):
    def check(d):
        els = by_testid(d, testid, many=True)
        return els[0] if els and els[0].is_displayed() else False
    return check


def map_ready(driver):
    """The number of points the map has drawn (0 until its first frame)."""
    return driver.execute_script("return window.simsearchMap && window.simsearchMap.frames > 0 ? window.simsearchMap.n : 0")
