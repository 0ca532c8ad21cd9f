"""Take the screenshots of docs/tour.md: every page of the web app, in headless Chromium, over a real
small collection: photos of five kinds of flowers from ../shared/datasets/flowers (128 x 128 px),
the first 20 of each, 100 in all.

    python docs/images/make_tour.py                     # writes docs/images/tour-*.jpg
    python docs/images/make_tour.py --per-class 40      # more photos (slower)

It needs what the browser tests need: Debian's chromium and chromium-driver, selenium, and the
datasets in ../shared/datasets. It starts the app the way tests/test_browser.py does (create_app on
a fresh SQLite database in a temporary SIMSEARCH_HOME, served by werkzeug on a free local port),
ingests the photos in two spaces (efficientnet_lite0 and efficientnet_lite1, for the comparison
page), then drives every page as a person would: uploads a query photo and drags a box on it, opens
the viewer, waits for the clusters, the map and the comparison to be computed, adds two edited
copies of a photo through the "Add images" page (so that the duplicates page has something to show),
and runs a tuning from the Spaces page. For each page it prints the /api calls the page made.

Each screenshot is the 1280 x 900 viewport, saved as a JPEG under 150 KB.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATASET = (ROOT.parent / "shared" / "datasets" / "flowers").resolve()
KINDS = ["daisy", "dandelion", "rose", "sunflower", "tulip"]
OXFORD = (ROOT.parent / "shared" / "datasets" / "oxford-buildings" / "oxford").resolve()
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
COLLECTION = "flowers"
SPACES = ["efficientnet_lite0", "efficientnet_lite1"]
WIDTH, HEIGHT = 1280, 900
MAX_BYTES = 150_000


def _sorted_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: (len(p.name), p.name))


def copy_subset(dataset: Path, dest: Path, per_class: int) -> Path:
    """The first ``per_class`` photos of each kind (fewer where the kind has fewer), in dest/<kind>/."""
    for kind in KINDS:
        (dest / kind).mkdir(parents=True, exist_ok=True)
        for f in _sorted_files(dataset / kind)[:per_class]:
            shutil.copy(f, dest / kind / f.name)
    return dest


def make_query(dest: Path) -> tuple[Path, tuple[float, float, float, float]]:
    """A street photo of Oxford with a sunflower of the collection pasted into it, and the box
    (fractions of the width and height) around the sunflower."""
    from PIL import Image

    flower = _sorted_files(DATASET / "sunflower")[2]
    with Image.open(_sorted_files(OXFORD)[7]) as bg, Image.open(flower) as fl:
        bg = bg.convert("RGB")
        w = int(bg.width * 0.3)
        h = int(w * fl.height / fl.width)
        x, y = int(bg.width * 0.6), int(bg.height * 0.35)
        bg.paste(fl.convert("RGB").resize((w, h)), (x, y))
        path = dest / "oxford-with-a-sunflower.jpg"
        bg.save(path, quality=90)
    return path, (x / bg.width, y / bg.height, (x + w) / bg.width, (y + h) / bg.height)


def make_copies(folder: Path, dest: Path) -> list[Path]:
    """Two edited copies of one photo: the same pixels as a PNG (the "exact" tier: identical pixels,
    other bytes) and a smaller, recompressed JPEG (the "near" tier)."""
    from PIL import Image

    dest.mkdir(parents=True, exist_ok=True)
    src = _sorted_files(folder / "tulip")[0]
    with Image.open(src) as im:
        im = im.convert("RGB")
        im.save(dest / "tulip-as-png.png")
        im.resize((im.width * 3 // 4, im.height * 3 // 4)).save(dest / "tulip-smaller.jpg", quality=60)
    return [dest / "tulip-as-png.png", dest / "tulip-smaller.jpg"]


class LiveServer:
    def __init__(self, app):
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line for every thumbnail
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(10)


def start_browser(attempts: int = 3):
    """Headless Chromium at a 1280 x 900 viewport. On a loaded machine its start can pass
    selenium's 120 s: it is tried again."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from urllib3.exceptions import ReadTimeoutError

    for attempt in range(1, attempts + 1):
        profile = tempfile.mkdtemp(prefix="simsearch-tour-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                     "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                     f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}", "--force-device-scale-factor=1"):
            opts.add_argument(flag)
        service = Service(CHROMEDRIVER)
        try:
            driver = webdriver.Chrome(service=service, options=opts)
        except (WebDriverException, ReadTimeoutError) as exc:
            service.stop()
            shutil.rmtree(profile, ignore_errors=True)
            if attempt == attempts:
                raise
            print(f"chromium did not start ({type(exc).__name__}); trying again", flush=True)
            continue
        driver.set_script_timeout(120)
        inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        driver.set_window_size(2 * WIDTH - inner[0], 2 * HEIGHT - inner[1])  # the viewport, not the window, is 1280 x 900
        return driver, profile


def wait(driver, condition, timeout=300, message=""):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.25,
                         ignored_exceptions=(StaleElementReferenceException,)).until(condition, message)


def testid(driver, name, many=False):
    sel = f'[data-testid="{name}"]'
    return driver.find_elements("css selector", sel) if many else driver.find_element("css selector", sel)


def visible(name):
    def check(d):
        els = testid(d, name, many=True)
        return els[0] if els and els[0].is_displayed() else False
    return check


def loaded(driver, img) -> bool:
    return driver.execute_script("const i = arguments[0]; return i.complete && i.naturalWidth > 0", img)


def in_view_loaded(driver) -> bool:
    """Every image inside the viewport has been decoded (thumbnails further down load lazily)."""
    return driver.execute_script("""
        return Array.from(document.images).every(i => {
            const r = i.getBoundingClientRect();
            const shown = r.bottom > 0 && r.top < innerHeight && r.width > 0;
            return !shown || (i.complete && i.naturalWidth > 0); });""")


def drag_box(driver, img, box) -> None:
    """Drag over ``img`` from the box's top-left to its bottom-right corner (fractions of its pixels)."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    r = driver.execute_script("""
        const i = arguments[0]; const r = i.getBoundingClientRect();
        const s = Math.min(r.width / i.naturalWidth, r.height / i.naturalHeight);
        const fit = getComputedStyle(i).objectFit === 'contain';
        const w = fit ? i.naturalWidth * s : r.width, h = fit ? i.naturalHeight * s : r.height;
        return {left: r.left + (r.width - w) / 2, top: r.top + (r.height - h) / 2, width: w, height: h};""", img)
    x0, y0 = r["left"] + box[0] * r["width"], r["top"] + box[1] * r["height"]
    x1, y1 = r["left"] + box[2] * r["width"], r["top"] + box[3] * r["height"]
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(x0), int(y0)).pointer_down()
    actions.pointer_action.move_to_location(int((x0 + x1) / 2), int((y0 + y1) / 2))
    actions.pointer_action.move_to_location(int(x1), int(y1)).pointer_up()
    actions.perform()


def save_jpeg(driver, path: Path) -> int:
    """The viewport as a JPEG of at most MAX_BYTES (the quality is lowered until it fits)."""
    from PIL import Image

    png = driver.get_screenshot_as_png()
    with Image.open(io.BytesIO(png)) as im:
        im = im.convert("RGB")
        if im.width != WIDTH:
            im = im.resize((WIDTH, round(im.height * WIDTH / im.width)), Image.LANCZOS)
        for quality in range(85, 30, -5):
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=quality, optimize=True, progressive=True)
            if buf.tell() <= MAX_BYTES:
                break
        else:
            raise RuntimeError(f"{path.name}: still over {MAX_BYTES} bytes at quality {quality}")
    path.write_bytes(buf.getvalue())
    return quality


class Tour:
    def __init__(self, driver, server, out: Path, calls: list):
        self.driver, self.url, self.out, self.calls = driver, server.url, out, calls

    def open(self, path: str):
        self.calls.clear()
        self.driver.get(self.url + path)

    def shot(self, name: str):
        time.sleep(0.5)  # let transitions (progress bars fading, thumbnails decoding) settle before the picture
        quality = save_jpeg(self.driver, self.out / f"tour-{name}.jpg")
        size = (self.out / f"tour-{name}.jpg").stat().st_size
        api = sorted({c for c in self.calls if "/api/" in c and "/thumbnail" not in c and "/file" not in c})
        print(f"tour-{name}.jpg: {size // 1000} KB (quality {quality}); API calls: {', '.join(api) or 'none'}", flush=True)

    # ---- the pages, in the order of docs/tour.md ---------------------------------------------------
    def home(self):
        self.open("/")
        wait(self.driver, lambda d: testid(d, "collection-card", many=True), message="collection cards")
        wait(self.driver, in_view_loaded, message="cover thumbnails")
        self.shot("home")

    def browse_and_viewer(self):
        d = self.driver
        self.open(f"/c/{COLLECTION}")
        wait(d, lambda d: len(testid(d, "tile", many=True)) >= 20, message="browse grid")
        wait(d, in_view_loaded, message="thumbnails")
        self.shot("browse")
        self.calls.clear()
        testid(d, "tile", many=True)[7].click()
        wait(d, visible("viewer"), message="viewer open")
        img = testid(d, "viewer-image")
        wait(d, lambda d: loaded(d, img), message="full image")
        drag_box(d, img, (0.2, 0.15, 0.8, 0.85))
        wait(d, visible("viewer-search-region"), message="'Search this region' offered")
        self.shot("viewer")

    def search(self, query: Path, box):
        d = self.driver
        self.open(f"/c/{COLLECTION}/search")
        testid(d, "query-file").send_keys(str(query))
        wait(d, lambda d: f"most similar to {query.name}" in d.find_element("id", "search-status").text, message="search")
        img = testid(d, "query-preview").find_element("css selector", "img")
        wait(d, lambda d: loaded(d, img), message="preview")
        drag_box(d, img, box)
        wait(d, lambda d: f"the region of {query.name}" in d.find_element("id", "search-status").text, message="region search")
        wait(d, lambda d: len(testid(d, "result", many=True)) >= 10, message="results")
        wait(d, in_view_loaded, message="result thumbnails")
        self.shot("search")

    def map(self):
        d = self.driver
        self.open(f"/c/{COLLECTION}/map")
        wait(d, lambda d: d.execute_script("return window.simsearchMap && window.simsearchMap.frames > 0"),
             timeout=900, message="map drawn")
        testid(d, "colour-label").click()
        time.sleep(1)
        self.shot("map")

    def clusters(self):
        d = self.driver
        self.open(f"/c/{COLLECTION}/clusters")
        wait(d, lambda d: len(testid(d, "cluster-row", many=True)) >= 2, timeout=900, message="cluster rows")
        self.shot("clusters")

    def compare(self):
        d = self.driver
        self.open(f"/c/{COLLECTION}/compare")
        wait(d, lambda d: len(testid(d, "compare-row", many=True)) == len(SPACES), timeout=900, message="comparison")
        self.shot("compare")

    def add_images(self, copies: list[Path]):
        d = self.driver
        self.open(f"/c/{COLLECTION}/ingest")
        testid(d, "ingest-files").send_keys("\n".join(str(p) for p in copies))
        testid(d, "ingest-submit").click()
        wait(d, visible("ingest-summary"), timeout=600, message="ingest summary")
        self.shot("add-images")

    def duplicates(self):
        d = self.driver
        self.open(f"/c/{COLLECTION}/duplicates")
        wait(d, lambda d: testid(d, "dup-group", many=True) or testid(d, "dups-none", many=True), timeout=600,
             message="duplicate groups")
        # the groups are below the tiers' explanation and the "keep one" form: show them with the form
        d.execute_script("document.querySelector('[data-testid=dups-resolve]').scrollIntoView({block: 'start'});"
                         "window.scrollBy(0, -110);")
        wait(d, in_view_loaded, message="group thumbnails")
        self.shot("duplicates")

    def spaces_and_tune(self, variants: bool):
        d = self.driver
        self.open(f"/c/{COLLECTION}/spaces")
        wait(d, lambda d: len(testid(d, "space-row", many=True)) >= 1, message="spaces table")
        self.shot("spaces")
        self.calls.clear()
        if not variants and testid(d, "tune-variants").is_selected():
            testid(d, "tune-variants").click()
        testid(d, "tune-start").click()
        ended = lambda d: (testid(d, "tune-status").text.startswith("done")  # noqa: E731
                           or "error" in (testid(d, "tune-status").get_attribute("class") or "").split())
        wait(d, ended, timeout=3600, message="tuning")
        self.shot("tune")
        if not testid(d, "tune-status").text.startswith("done"):
            print(f"the tuning failed: {testid(d, 'tune-status').text}", flush=True)

    def api_docs(self):
        self.open("/api/docs")
        wait(self.driver, lambda d: d.find_elements("css selector", "h2"), message="API docs")
        self.shot("api-docs")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=20, help="photos of each of the 5 flowers (default 20)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="where the JPEGs go")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the data folder here (kept between runs: the photos are ingested once); "
                             "default: a temporary folder, removed at the end")
    parser.add_argument("--tune-variants", action="store_true",
                        help="let the tuning try GeM pooling and flip / multi-scale views (embeds again: slower)")
    parser.add_argument("--only", choices=["api-docs"], default=None,
                        help="only this picture (api-docs: no collection needed, no ingest)")
    args = parser.parse_args(argv)
    for need in (CHROMIUM, CHROMEDRIVER, DATASET, OXFORD):
        if not Path(need).exists():
            print(f"error: {need} is missing (see the docstring)", file=sys.stderr)
            return 2

    # fp32 vectors on every CPU (as the test suite pins it): `auto` would mean bf16 on CPUs with AMX,
    # and the images added through the page must land in the same spaces as the ones ingested here
    os.environ["SIMSEARCH_PRECISION"] = "fp32"
    from flask import request

    from simsearch.config import Settings
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.store.db import Database
    from simsearch.web import create_app, shutdown

    base = args.work.resolve() if args.work else Path(tempfile.mkdtemp(prefix="simsearch-tour-"))
    home = base / "home"
    settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'simsearch.db'}")
    settings.ensure_dirs()
    db = Database.from_settings(settings)
    db.upgrade()  # what `simsearch db upgrade` does
    db.dispose()
    app = create_app(settings)
    calls: list[str] = []

    @app.after_request
    def record(resp):  # which API calls each page makes, printed beside its screenshot
        calls.append(f"{request.method} {request.path}")
        return resp

    driver, profile = start_browser()  # first: a browser starting next to an ingest is slow to answer
    if args.only == "api-docs":
        server = LiveServer(app)
        try:
            Tour(driver, server, args.out, calls).api_docs()
        finally:
            driver.quit()
            server.stop()
            shutdown(app)
            shutil.rmtree(profile, ignore_errors=True)
        return 0
    folder = copy_subset(DATASET, base / COLLECTION, args.per_class)
    files, ignored = files_from_folder(folder, labels="folders")
    t0 = time.perf_counter()
    report = Ingester(app.extensions["simsearch"], spaces=SPACES, batch_size=16).run(
        COLLECTION, files, source=str(folder), ignored=ignored)
    print(f"ingested {report.added} new images ({report.skipped} already there) in {SPACES} "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)
    query, box = make_query(base)
    copies = make_copies(folder, base / "copies")

    server = LiveServer(app)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        tour = Tour(driver, server, args.out, calls)
        tour.home()
        tour.browse_and_viewer()
        tour.search(query, box)
        tour.map()
        tour.clusters()
        tour.compare()
        tour.add_images(copies)
        tour.duplicates()
        tour.spaces_and_tune(args.tune_variants)
        tour.api_docs()
    finally:
        driver.quit()
        server.stop()
        shutdown(app)
        shutil.rmtree(profile, ignore_errors=True)
        if not args.work:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
