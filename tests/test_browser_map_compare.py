"""The map's thumbnails and selection export, and the comparison page's embedding job, in headless
Chromium on a small real cats/dogs collection (the app, server and browser of test_browser.py).

Screenshots go to artifacts/screenshots/ (gitignored) for a human to look at.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.helpers.browser import COLLECTION, PER_CLASS, SPACE, SPACE_MAX, by_testid, map_ready, shot, visible, wait
from tests.helpers.downloads import allow_downloads, downloaded

pytestmark = [pytest.mark.browser, pytest.mark.model]


SPRITE_PIXELS = """
    const c = document.querySelector('#map-sprites'), g = c.getContext('2d');
    const px = g.getImageData(0, 0, c.width, c.height).data;
    let painted = 0; const colours = new Set();
    for (let i = 0; i < px.length; i += 4) {
      if (px[i + 3] < 250) continue;
      painted++;
      colours.add((px[i] >> 3) << 10 | (px[i + 1] >> 3) << 5 | (px[i + 2] >> 3));
    }
    return [painted, colours.size];"""


def test_map_draws_the_thumbnails_when_zoomed_in(live, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

    browser.get(live.url + f"/c/{COLLECTION}/map")
    n = wait(browser, map_ready, timeout=300, message="map drawn")
    assert n == 2 * PER_CLASS
    canvas = by_testid(browser, "map-overlay")
    w, h = canvas.size["width"], canvas.size["height"]
    # zoomed far out: dots only, no sprite drawn, the sprite layer is blank
    browser.execute_script("window.simsearchMap.zoomAt(arguments[0], arguments[1], 0.05)", w / 2, h / 2)
    # a frame drawn at this zoom chose no level and drew no sprite (it clears the layer first)
    wait(browser, lambda d: d.execute_script("const s = window.simsearchMap.sprites; return s.level === -1 && s.drawn === 0"),
         message="dots when zoomed out")
    assert browser.execute_script(SPRITE_PIXELS)[0] == 0
    shot(browser, "20-map-zoomed-out-dots")

    # zoom in with the mouse wheel: the images appear, from atlases of the tiles in view
    for _ in range(8):
        if browser.execute_script("return window.simsearchMap.sprites.size") >= 40:
            break
        frames = browser.execute_script("return window.simsearchMap.frames")
        ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, -400).perform()
        wait(browser, lambda d: d.execute_script("return window.simsearchMap.frames") > frames, timeout=30,
             message="a frame at the new zoom")
    wait(browser, lambda d: d.execute_script("return window.simsearchMap.sprites.drawn") > 0, message="sprites drawn")
    sprites = browser.execute_script("return window.simsearchMap.sprites")
    assert sprites["requests"] >= 1 and sprites["level"] >= 0
    atlas = browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name).filter((u) => u.includes('/atlas/'))")
    assert atlas and all(f"/api/collections/{COLLECTION}/atlas/{SPACE}/" in u and "?v=" in u for u in atlas), atlas
    # only the tiles in view: at this zoom not every tile of the level
    painted, colours = browser.execute_script(SPRITE_PIXELS)
    # photographs: many pixels in many colours (dots are one flat colour each, on another canvas)
    assert painted > sprites["drawn"] * 16 * 16 and colours > 300, (painted, colours)
    shot(browser, "21-map-zoomed-in-thumbnails")

    # at the whole-map view of this small collection the images are big enough to show as well
    browser.find_element("id", "map-reset").click()
    wait(browser, lambda d: d.execute_script("return window.simsearchMap.sprites.drawn") == n, message="every image drawn")
    shot(browser, "22-map-thumbnails-fit")
    # the option turns them off: dots again
    by_testid(browser, "map-images").click()
    wait(browser, lambda d: d.execute_script("return window.simsearchMap.sprites.drawn") == 0, message="images off")
    assert browser.execute_script(SPRITE_PIXELS)[0] == 0
    by_testid(browser, "map-images").click()


def test_map_lasso_then_export_the_selection(live, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    downloads = allow_downloads(browser, tmp_path / "downloads")
    browser.get(live.url + f"/c/{COLLECTION}/map")
    n = wait(browser, map_ready, timeout=300, message="map drawn")
    canvas = by_testid(browser, "map-overlay")
    w, h = canvas.size["width"], canvas.size["height"]
    coords = browser.execute_script("const m = window.simsearchMap; return Array.from({length: m.n}, (_, i) => m.toScreen(i));")
    ids = browser.execute_script("return window.simsearchMap.ids")
    # a lasso (pointer events from the WebDriver) around the upper half of the points
    ys = sorted(c[1] for c in coords)
    gap = max(range(n // 4, 3 * n // 4), key=lambda i: ys[i + 1] - ys[i])  # split where no point is near the edge
    split = round((ys[gap] + ys[gap + 1]) / 2)
    left, right = round(min(c[0] for c in coords) - 10), round(max(c[0] for c in coords) + 10)
    top = round(min(ys) - 10)
    expected = sorted(ids[i] for i, (cx, cy) in enumerate(coords) if top < cy < split and left < cx < right)
    assert 0 < len(expected) < n
    browser.find_element("css selector", '[data-testid="tool-lasso"]').click()
    corners = [(left, top), (right, top), (right, split), (left, split)]
    chain = ActionChains(browser).move_to_element_with_offset(canvas, int(corners[0][0] - w / 2), int(corners[0][1] - h / 2)).click_and_hold()
    for cx, cy in corners[1:] + corners[:1]:
        chain = chain.move_to_element_with_offset(canvas, int(cx - w / 2), int(cy - h / 2))
    chain.release().perform()
    wait(browser, visible(browser, "selection"), message="selection panel")
    assert sorted(browser.execute_script("return window.simsearchMap.selectedIds")) == expected
    shot(browser, "23-map-lasso-thumbnails")

    labels = {img["id"]: img for img in live.get_json(f"/api/collections/{COLLECTION}/images?per_page=100")["images"]}
    by_testid(browser, "export-csv").click()
    rows = list(csv.reader(io.StringIO(downloaded(downloads, f"{COLLECTION}-selection.csv"))))
    assert rows[0][:3] == ["id", "path", "label"]  # then first,group,width,... (a line per file: one here)
    assert sorted(int(r[0]) for r in rows[1:]) == expected
    for image_id, path, label in (r[:3] for r in rows[1:]):
        img = labels[int(image_id)]
        assert path == img["path"] and label == img["label"] and path.split("/")[0] == label  # cats/cat.3.jpg
    wait(browser, lambda d: "Exported" in by_testid(d, "export-result").text, message="export message")

    by_testid(browser, "export-json").click()
    import json

    got = json.loads(downloaded(downloads, f"{COLLECTION}-selection.json"))
    assert sorted(r["id"] for r in got) == expected and all(r["label"] == labels[r["id"]]["label"] for r in got)


def test_compare_page_embeds_a_missing_backbone_and_shows_it(live, browser, tmp_path):
    new = "efficientnet_lite1"
    downloads = allow_downloads(browser, tmp_path / "downloads")
    browser.get(live.url + f"/c/{COLLECTION}/compare")
    wait(browser, lambda d: len(by_testid(d, "compare-row", many=True)) == 2, timeout=300, message="comparison table")
    # one short line per missing backbone, with its action: a button, or the command that gets the weights
    missing = {li.get_attribute("data-backbone"): li for li in by_testid(browser, "unavailable-backbone", many=True)}
    assert new in missing and "resnet50" in missing and SPACE not in missing
    assert missing[new].find_elements("css selector", "button.embed")
    assert missing["resnet50"].get_attribute("data-weights") == "missing"
    assert "simsearch compare -c pets --backbones" in missing["resnet50"].text
    assert all(len(li.text) < 200 for li in missing.values()), [li.text for li in missing.values()]
    assert "--embed" not in browser.page_source  # the old hint named options that do not exist
    shot(browser, "24-compare-before-embedding")

    browser.execute_script("""
        window.__embedNotes = [];
        const li = document.querySelector('li[data-backbone="efficientnet_lite1"]');
        new MutationObserver(() => window.__embedNotes.push(li.querySelector('.embed-status').textContent))
          .observe(li, { childList: true, characterData: true, subtree: true, attributes: true });""")
    missing[new].find_element("css selector", "button.embed").click()
    wait(browser, lambda d: "Done" in d.find_element("css selector", f'li[data-backbone="{new}"] .embed-status').text,
         timeout=300, message="embedding job done")
    notes = browser.execute_script("return window.__embedNotes")
    assert any(n.startswith(("Embedding", "Waiting")) for n in notes), notes  # progress was shown while it ran
    assert f"{2 * PER_CLASS} images embedded" in browser.find_element("css selector", f'li[data-backbone="{new}"] .embed-status').text
    # the new backbone joins the comparison: its metrics, maps, neighbours, per-label precision, table
    wait(browser, lambda d: len(by_testid(d, "compare-row", many=True)) == 3, timeout=300, message="the new backbone's metrics")
    rows = {r.get_attribute("data-backbone"): r for r in by_testid(browser, "compare-row", many=True)}
    cells = [c.text for c in rows[new].find_elements("css selector", "td")]
    assert cells[0] == "1280" and cells[1] == str(2 * PER_CLASS)
    assert 0.5 < float(cells[6]) <= 1  # precision@10, cats vs dogs
    wait(browser, lambda d: len([f for f in by_testid(d, "compare-map", many=True) if f.get_attribute("data-ready")]) == 3,
         timeout=300, message="three maps")
    wait(browser, lambda d: len(by_testid(d, "neighbour-row", many=True)) == 3, message="neighbours per backbone")
    for row in by_testid(browser, "neighbour-row", many=True):
        assert len(row.find_elements("css selector", '[data-testid="neighbour"]')) == 8
    per_label = {r.get_attribute("data-label"): r for r in by_testid(browser, "per-label-row", many=True)}
    assert set(per_label) == {"cats", "dogs"} and len(per_label["cats"].find_elements("css selector", "td")) == 1 + 3
    tables = by_testid(browser, "contingency", many=True)
    assert {t.get_attribute("data-backbone") for t in tables} == {SPACE, SPACE_MAX, new}
    for t in tables:
        counts = [int(td.text) for td in t.find_elements("css selector", "tbody td")]
        assert sum(counts) == 2 * PER_CLASS
    # clicking a point of a map makes it the query of every backbone
    from selenium.webdriver.common.action_chains import ActionChains

    fig = by_testid(browser, "compare-map", many=True)[0]
    space = fig.get_attribute("data-backbone")
    ids = browser.execute_script("return window.simsearchCompare.ids(arguments[0])", space)
    k = next(i for i in range(len(ids)) if str(ids[i]) != browser.find_element("id", "query-id").get_attribute("value"))
    x, y = browser.execute_script("return window.simsearchCompare.point(arguments[0], arguments[1])", space, k)
    c = fig.find_element("css selector", "canvas")
    ActionChains(browser).move_to_element_with_offset(c, int(x - c.size["width"] / 2), int(y - c.size["height"] / 2)).click().perform()
    wait(browser, lambda d: by_testid(d, "neighbour-query").get_attribute("data-id") == str(ids[k]), message="query from the map")
    wait(browser, lambda d: len(by_testid(d, "neighbour-row", many=True)) == 3, message="neighbours of the new query")
    # charts: every silhouette point inside the plot (the axis reaches the maximum), legends not cut
    checks = browser.execute_script("""
        const curves = document.querySelector('[data-testid=compare-curves] svg');
        const grid = [...curves.querySelectorAll('.axes line.gridline, .axes line.zero')].map((l) => +l.getAttribute('y1'));
        const top = Math.min(...grid);
        const inside = [...curves.querySelectorAll('circle[data-k]')].every((c) => +c.getAttribute('cy') >= top - 0.01);
        const fits = (svg) => { const w = svg.viewBox.baseVal.width;
          return [...svg.querySelectorAll('.legend text')].every((t) => t.getBBox().x + t.getBBox().width <= w + 0.5); };
        const bars = document.querySelector('[data-testid=compare-bars] svg');
        return { inside, curvesLegend: fits(curves), barsLegend: fits(bars), legendItems: bars.querySelectorAll('.legend text').length };""")
    assert checks == {"inside": True, "curvesLegend": True, "barsLegend": True, "legendItems": 3}, checks
    shot(browser, "25-compare-after-embedding")

    by_testid(browser, "compare-csv").click()
    rows = list(csv.DictReader(io.StringIO(downloaded(downloads, f"{COLLECTION}-comparison.csv"))))
    assert [r["backbone"] for r in rows] == [SPACE, SPACE_MAX, new] or sorted(r["backbone"] for r in rows) == sorted([SPACE, SPACE_MAX, new])
    assert {r["backbone"]: r["space"] for r in rows}[SPACE_MAX] == "EfficientNet-Lite0, max pooling"  # in words too
    for r in rows:
        assert r["available"] == "true" and int(r["images"]) == 2 * PER_CLASS
        assert 0.5 < float(r["knn_precision"]) <= 1 and "precision[cats]" in r and float(r["precision[dogs]"]) > 0
