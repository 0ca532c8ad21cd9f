"""Browsing in headless Chromium: the home page's collection cards, then the browse grid filtered,
sorted, several images selected (a click, then a shift-click for the range) and labelled at once,
exported, and removed (after a confirmation); every page fits a 1280-px window.

Same live app and browser as tests/test_browser.py (its fixtures); screenshots go to
artifacts/screenshots/ (``5x-*.png``). The last test removes images: it runs last here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.browser import (  # noqa: F401 (fixtures)
    COLLECTION,
    PER_CLASS,
    _no_js_errors,
    browser,
    by_testid,
    live,
    shot,
    visible,
    wait,
)

pytestmark = [pytest.mark.browser, pytest.mark.model]


def overflow(driver, width: int = 1280) -> int:
    """How many pixels the page is wider than a ``width``-px window (0: no horizontal scroll)."""
    driver.set_window_size(width, 900)
    return driver.execute_script(
        "return Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - window.innerWidth")


def names(driver) -> list[str]:
    return [t.text for t in by_testid(driver, "tile-name", many=True)]


def grid_settled(driver, expected: int):
    """Waits for the grid to show ``expected`` tiles after a reload (the status says "of N images")."""
    return wait(driver, lambda d: f"of {expected} images" in by_testid(d, "browse-status").text
                and len(by_testid(d, "browse-item", many=True)) == expected, message=f"{expected} tiles")


def test_home_cards(live, browser):
    browser.get(live.url + "/")
    card = by_testid(browser, "collection-card")
    assert card.get_attribute("data-name") == COLLECTION
    counts = by_testid(browser, "card-counts").text
    assert f"{2 * PER_CLASS} images" in counts and "2 labels" in counts and f"{2 * PER_CLASS} files" in counts
    assert "EfficientNet-Lite0" in by_testid(browser, "card-space").text
    covers = by_testid(browser, "cover", many=True)
    assert len(covers) == 4
    wait(browser, lambda d: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", c)
                                for c in covers), message="cover thumbnails")
    assert overflow(browser) <= 0
    shot(browser, "50-home-cards")
    by_testid(browser, "card-link").click()
    wait(browser, lambda d: d.current_url.rstrip("/").endswith(f"/c/{COLLECTION}"), message="browse page")


def test_filter_sort_select_label_and_export(live, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.select import Select

    browser.get(live.url + f"/c/{COLLECTION}")
    grid_settled(browser, 2 * PER_CLASS)
    # every tile shows its file name (the first of its paths)
    assert sorted(names(browser)) == sorted([f"cat.{n}.jpg" for n in range(1, PER_CLASS + 1)]
                                            + [f"dog.{n}.jpg" for n in range(1, PER_CLASS + 1)])
    assert overflow(browser) <= 0

    # filter by path text: typed, sent to the server, kept in the URL
    by_testid(browser, "path-filter").send_keys("dog.1")
    grid_settled(browser, 4)  # dog.1, dog.10, dog.11, dog.12
    assert sorted(names(browser)) == ["dog.1.jpg", "dog.10.jpg", "dog.11.jpg", "dog.12.jpg"]
    assert "path=dog.1" in browser.current_url
    by_testid(browser, "path-filter").clear()
    by_testid(browser, "path-filter").send_keys(Keys.ENTER)
    grid_settled(browser, 2 * PER_CLASS)

    # filter by label, sort by path descending
    Select(by_testid(browser, "label-filter")).select_by_value("cats")
    grid_settled(browser, PER_CLASS)
    Select(by_testid(browser, "sort")).select_by_value("-path")
    wait(browser, lambda d: "sort=-path" in d.current_url and names(d) and names(d)[0] == "cat.9.jpg", message="sorted")
    shown = names(browser)
    assert shown == sorted(shown, reverse=True) and set(shown) == {f"cat.{n}.jpg" for n in range(1, PER_CLASS + 1)}
    # the size filter (in KB) narrows the grid to what the API says
    sizes = sorted(i["size"] for i in live.get_json(f"/api/collections/{COLLECTION}/images?label=cats&per_page=100")["images"])
    by_testid(browser, "more-filters").find_element("css selector", "summary").click()
    kb = sizes[len(sizes) // 2] // 1024 + 1
    min_kb = by_testid(browser, "min-kb")
    min_kb.send_keys(str(kb), Keys.TAB)
    expected = sum(1 for s in sizes if s >= kb * 1024)
    assert 0 < expected < PER_CLASS
    grid_settled(browser, expected)
    assert f"min_size={kb * 1024}" in browser.current_url
    assert overflow(browser) <= 0
    shot(browser, "51-browse-filtered")
    by_testid(browser, "clear-filters").click()
    grid_settled(browser, 2 * PER_CLASS)
    assert "label=" not in browser.current_url and "min_size" not in browser.current_url

    # select a range: click the 2nd box, shift-click the 5th -> 4 images; label them at once
    Select(by_testid(browser, "sort")).select_by_value("path")
    wait(browser, lambda d: "sort=path" in d.current_url and names(d)[0] == "cat.1.jpg", message="sorted by path")
    items = by_testid(browser, "browse-item", many=True)
    picked = [int(i.get_attribute("data-id")) for i in items[1:5]]
    items[1].find_element("css selector", "input.pick").click()
    ActionChains(browser).key_down(Keys.SHIFT).click(items[4].find_element("css selector", "input.pick")).key_up(Keys.SHIFT).perform()
    wait(browser, lambda d: by_testid(d, "selected-count").text == "4 images selected", message="range selected")
    assert [int(i.get_attribute("data-id")) for i in by_testid(browser, "browse-item", many=True)
            if "picked" in i.get_attribute("class")] == picked
    by_testid(browser, "bulk-label").send_keys("favourites")
    by_testid(browser, "bulk-set-label").click()
    wait(browser, lambda d: "4 images labelled “favourites”" in by_testid(d, "bulk-result").text, message="labelled")
    wait(browser, lambda d: sorted(int(t.get_attribute("data-id")) for t in by_testid(d, "tile", many=True)
                                   if t.get_attribute("data-label") == "favourites") == sorted(picked),
         message="tiles show the new label")
    api = live.get_json(f"/api/collections/{COLLECTION}/images?label=favourites&per_page=100")
    assert sorted(i["id"] for i in api["images"]) == sorted(picked)
    assert overflow(browser) <= 0
    shot(browser, "52-browse-selected-labelled")

    # export the selection: the page fetches the file and saves it (read back through a hook)
    browser.execute_script("""
      window.__exported = null;
      const orig = URL.createObjectURL;
      URL.createObjectURL = (blob) => { blob.text().then((t) => { window.__exported = t; }); return orig(blob); };""")
    by_testid(browser, "bulk-export-json").click()
    exported = wait(browser, lambda d: d.execute_script("return window.__exported"), message="export")
    import json

    rows = json.loads(exported)
    assert [r["id"] for r in rows] == picked or sorted(r["id"] for r in rows) == sorted(picked)
    assert all(r["label"] == "favourites" and r["files"] and Path(r["files"][0]["path"]).name == Path(r["path"]).name for r in rows)

    # the filter on the new label finds them; the selection is kept across filters
    Select(by_testid(browser, "label-filter")).select_by_value("favourites")
    grid_settled(browser, 4)
    assert by_testid(browser, "selected-count").text == "4 images selected"
    by_testid(browser, "clear-selection").click()
    wait(browser, lambda d: by_testid(d, "selected-count").text == "None selected", message="cleared")
    # give them their labels back (cats), for the other browser tests
    by_testid(browser, "select-page").click()
    by_testid(browser, "bulk-label").clear()
    by_testid(browser, "bulk-label").send_keys("cats")
    by_testid(browser, "bulk-set-label").click()
    wait(browser, lambda d: "4 images labelled “cats”" in by_testid(d, "bulk-result").text, message="relabelled")
    by_testid(browser, "clear-selection").click()


def test_remove_selected_images_after_confirming(live, browser):
    browser.get(live.url + f"/c/{COLLECTION}?path=dog.1&sort=-id")
    grid_settled(browser, 4)
    items = by_testid(browser, "browse-item", many=True)
    doomed = int(items[0].get_attribute("data-id"))
    items[0].find_element("css selector", "input.pick").click()
    wait(browser, lambda d: by_testid(d, "selected-count").text == "1 image selected", message="one selected")
    by_testid(browser, "bulk-remove").click()
    dialog = wait(browser, visible(browser, "remove-dialog"), message="confirmation")
    assert "files themselves stay" in dialog.text
    by_testid(browser, "remove-cancel").click()  # cancelled: nothing removed
    wait(browser, lambda d: not by_testid(d, "remove-dialog").is_displayed(), message="dialog closed")
    assert live.get_json(f"/api/images/{doomed}")["id"] == doomed
    by_testid(browser, "bulk-remove").click()
    wait(browser, visible(browser, "remove-dialog"), message="confirmation again")
    by_testid(browser, "remove-confirm").click()
    wait(browser, lambda d: "1 image removed" in by_testid(d, "bulk-result").text, message="removed")
    grid_settled(browser, 3)
    assert doomed not in [int(i.get_attribute("data-id")) for i in by_testid(browser, "browse-item", many=True)]
    total = live.get_json(f"/api/collections/{COLLECTION}")["images_ok"]
    assert total == 2 * PER_CLASS - 1
    assert all(Path(p).exists() for p in (live.base / "pets" / "dogs").iterdir())  # files on disk untouched
