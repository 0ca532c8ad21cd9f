"""Search by a region in headless Chromium: drag a box on the query image of the search page, and
on an image in the viewer. Same live app and browser as tests/test_browser.py (its fixtures: a
collection of 12 cats and 12 dogs); screenshots go to artifacts/screenshots/ (``3x-*.png``).

The drags are real pointer input (WebDriver actions: pointerdown, pointermove, pointerup at
viewport coordinates), so the page's own handlers run as they do for a mouse."""

from __future__ import annotations

import pytest
from PIL import Image as PILImage

from tests.conftest import CATS_DOGS, DATASETS, dataset_files
from tests.helpers.browser import COLLECTION, by_testid, shot, visible, wait

pytestmark = [pytest.mark.browser, pytest.mark.model]


def _content_rect(driver, img) -> dict:
    """Where the image's pixels are on the screen (object-fit: contain leaves margins)."""
    return driver.execute_script("""
        const i = arguments[0]; const r = i.getBoundingClientRect();
        const s = Math.min(r.width / i.naturalWidth, r.height / i.naturalHeight);
        const fit = getComputedStyle(i).objectFit === 'contain';
        const w = fit ? i.naturalWidth * s : r.width, h = fit ? i.naturalHeight * s : r.height;
        return {left: r.left + (r.width - w) / 2, top: r.top + (r.height - h) / 2, width: w, height: h};""", img)


def _drag(driver, img, box) -> None:
    """Drag from the box's top-left to its bottom-right corner (fractions of the image's pixels)."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    driver.execute_script("arguments[0].scrollIntoView({block: 'center', inline: 'center'})", img)  # inside the viewport
    r = _content_rect(driver, img)
    x0, y0 = r["left"] + box[0] * r["width"], r["top"] + box[1] * r["height"]
    x1, y1 = r["left"] + box[2] * r["width"], r["top"] + box[3] * r["height"]
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(x0), int(y0)).pointer_down()
    actions.pointer_action.move_to_location(int((x0 + x1) / 2), int((y0 + y1) / 2))
    actions.pointer_action.move_to_location(int(x1), int(y1)).pointer_up()
    actions.perform()


def _overlay_matches(driver, img, overlay, box, tolerance=4) -> bool:
    r = _content_rect(driver, img)
    o = driver.execute_script("const b = arguments[0].getBoundingClientRect(); "
                              "return {left: b.left, top: b.top, right: b.right, bottom: b.bottom};", overlay)
    want = (r["left"] + box[0] * r["width"], r["top"] + box[1] * r["height"],
            r["left"] + box[2] * r["width"], r["top"] + box[3] * r["height"])
    return all(abs(a - b) <= tolerance for a, b in zip((o["left"], o["top"], o["right"], o["bottom"]), want))


def _loaded(driver, img):
    return driver.execute_script("const i = arguments[0]; return i.complete && i.naturalWidth > 0", img)


def _result_ids(driver) -> list[str]:
    """The result tiles' image ids, or [] while the grid is being replaced (stale elements)."""
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return [r.get_attribute("data-id") for r in by_testid(driver, "result", many=True)]
    except StaleElementReferenceException:
        return []


def test_drag_a_box_on_the_query_image_to_search_by_that_region(live, browser, tmp_path):
    # a cat of the collection pasted into a photo of Oxford: the photo as a whole is no cat
    cat = dataset_files(CATS_DOGS / "cats", 1, start=2)[0]
    cat_id = next(i["id"] for i in live.get_json(f"/api/collections/{COLLECTION}/images?per_page=100")["images"]
                  if i["path"].endswith(cat.name))
    with PILImage.open(dataset_files(DATASETS / "oxford-buildings" / "oxford", 1, start=7)[0]) as bg, PILImage.open(cat) as c:
        bg = bg.convert("RGB")
        w = int(bg.width * 0.4)
        h = int(w * c.height / c.width)
        x, y = int(bg.width * 0.5), int(bg.height * 0.3)
        bg.paste(c.convert("RGB").resize((w, h)), (x, y))
        box = (x / bg.width, y / bg.height, (x + w) / bg.width, (y + h) / bg.height)
        query = tmp_path / "cat-in-oxford.jpg"
        bg.save(query, quality=90)

    browser.get(live.url + f"/c/{COLLECTION}/search")
    by_testid(browser, "query-file").send_keys(str(query))
    wait(browser, lambda d: "most similar to cat-in-oxford.jpg" in d.find_element("id", "search-status").text,
         message="search by the whole photo")
    assert not by_testid(browser, "whole-image").is_displayed()
    img = by_testid(browser, "query-preview").find_element("css selector", "img")
    wait(browser, lambda d: _loaded(d, img), message="preview loaded")
    _drag(browser, img, box)
    wait(browser, lambda d: "the region of cat-in-oxford.jpg" in d.find_element("id", "search-status").text,
         message="search by the dragged region")
    # the grid may be rendered again just after the status line changes: read it until it holds still
    wait(browser, lambda d: _result_ids(d)[:1] == [str(cat_id)], message=f"the pasted cat (#{cat_id}) first")
    assert by_testid(browser, "query-box").is_displayed() and by_testid(browser, "whole-image").is_displayed()
    assert _overlay_matches(browser, img, by_testid(browser, "query-box"), box)
    shot(browser, "31-search-region")
    by_testid(browser, "whole-image").click()
    wait(browser, lambda d: "most similar to cat-in-oxford.jpg" in d.find_element("id", "search-status").text,
         message="back to the whole photo")
    assert not by_testid(browser, "query-box").is_displayed()


def test_drag_a_box_in_the_viewer_to_search_by_that_region(live, browser):
    browser.get(live.url + f"/c/{COLLECTION}")
    wait(browser, lambda d: len(by_testid(d, "tile", many=True)) > 0, message="browse grid")
    tile = by_testid(browser, "tile", many=True)[3]
    image_id = tile.get_attribute("data-id")
    tile.click()
    wait(browser, visible(browser, "viewer"), message="viewer open")
    img = by_testid(browser, "viewer-image")
    wait(browser, lambda d: _loaded(d, img), message="full image loaded")
    assert not by_testid(browser, "viewer-search-region").is_displayed()
    _drag(browser, img, (0.2, 0.15, 0.8, 0.9))
    wait(browser, visible(browser, "viewer-search-region"), message="'Search this region' offered")
    assert by_testid(browser, "viewer-region").is_displayed()
    wait(browser, lambda d: _overlay_matches(d, img, by_testid(d, "viewer-region"), (0.2, 0.15, 0.8, 0.9)),
         message="the box is drawn where it was dragged, over the image")
    shot(browser, "32-viewer-region")
    by_testid(browser, "viewer-search-region").click()
    wait(browser, lambda d: f"image_id={image_id}&box=" in d.current_url, message="search page with the box")
    wait(browser, lambda d: f"most similar to the region of image {image_id}" in d.find_element("id", "search-status").text,
         message="results for the region")
    ids = [r.get_attribute("data-id") for r in by_testid(browser, "result", many=True)]
    assert ids and image_id not in ids  # the image itself is left out
    assert by_testid(browser, "query-box").is_displayed()
    # the box from the URL was applied: the preview's box covers about 60% of the width
    frac = browser.execute_script("""
        const b = document.querySelector('[data-testid=query-box]').getBoundingClientRect();
        const i = document.querySelector('#query-preview img'); const r = i.getBoundingClientRect();
        const s = Math.min(r.width / i.naturalWidth, r.height / i.naturalHeight);
        return b.width / (i.naturalWidth * s);""")
    assert 0.5 < frac < 0.7, frac
