"""The curator's pages in headless Chromium: folder uploads that keep their labels, the full image
viewer (browse and search) and the clusters page's label make-up, names and "save as label".

Same live app and browser as tests/test_browser.py (its fixtures); screenshots go to
artifacts/screenshots/ (``2x-*.png``).

How folder uploads are driven without the native folder dialog:

- the folder picker (``<input type=file webkitdirectory>``): ChromeDriver's file upload
  (``send_keys`` with a folder's path, DevTools ``DOM.setFileInputFiles``) fills the input as the
  dialog would: Chromium itself walks the folder and gives each File its ``webkitRelativePath``.
  The page's code then runs unchanged (the ``change`` event, the names it sends), so this is the
  real path of a user picking a folder;
- drag and drop: a script dispatches ``dragenter``/``dragover``/``drop`` with a DataTransfer of
  Files carrying ``webkitRelativePath``. A DataTransfer made by a script has no file-system
  entries (``webkitGetAsEntry()`` is null), so this covers the page's handler, its fallback to
  the files' relative paths and everything after it, but not the walk through dropped directory
  entries, which only a real drag from the desktop produces.
"""

from __future__ import annotations

import base64
import shutil

import pytest

from tests.conftest import CATS_DOGS, FLOWERS, dataset_files
from tests.helpers.browser import COLLECTION, PER_CLASS, by_testid, shot, visible, wait

pytestmark = [pytest.mark.browser, pytest.mark.model]


def _images(live, collection: str) -> list[dict]:
    return live.get_json(f"/api/collections/{collection}/images?per_page=100")["images"]


def test_folder_upload_keeps_labels(live, browser):
    root = live.base / "garden-src" / "flowers"
    for species in ("daisy", "rose"):
        (root / species).mkdir(parents=True)
        for f in dataset_files(FLOWERS / species, 2):
            shutil.copy(f, root / species / f.name)
    (root / "notes.txt").write_text("not an image")
    loose = dataset_files(FLOWERS / "tulip", 2)

    browser.get(live.url + "/ingest")
    by_testid(browser, "ingest-collection").send_keys("garden")
    box = by_testid(browser, "ingest-labels")
    assert box.is_enabled() and box.is_selected()
    # loose files: the folder option is switched off, and the page says why
    by_testid(browser, "ingest-files").send_keys("\n".join(str(p) for p in loose))
    wait(browser, lambda d: not by_testid(d, "ingest-labels").is_enabled(), message="label option disabled")
    assert not box.is_selected()
    assert "carry no folder" in by_testid(browser, "labels-hint").text
    assert "2 images, picked loose" in by_testid(browser, "ingest-selection").text
    shot(browser, "21-ingest-loose-files")

    # a folder (the picker, filled by ChromeDriver as the dialog would)
    by_testid(browser, "ingest-folder").send_keys(str(root))
    wait(browser, lambda d: by_testid(d, "ingest-labels").is_enabled(), message="label option enabled")
    assert box.is_selected()
    selection = by_testid(browser, "ingest-selection").text
    assert "4 images in 2 folders: daisy (2), rose (2)" in selection and "1 other file left out" in selection
    assert browser.execute_script("return document.querySelector('#ingest-files').files.length") == 0
    shot(browser, "22-ingest-folder-picked")
    by_testid(browser, "ingest-submit").click()
    wait(browser, visible(browser, "ingest-summary"), timeout=300, message="folder ingest summary")
    assert by_testid(browser, "summary-added").text == "4"
    got = {i["path"]: i["label"] for i in _images(live, "garden")}
    assert sorted(got.values()) == ["daisy", "daisy", "rose", "rose"]
    assert all(path.startswith(f"flowers/{label}/") for path, label in got.items())

    # drag and drop of files carrying their folder (see the module docstring)
    files = [(f"cats/{p.name}", p) for p in dataset_files(CATS_DOGS / "cats", 2, start=60)]
    files += [(f"dogs/{p.name}", p) for p in dataset_files(CATS_DOGS / "dogs", 1, start=60)]
    browser.get(live.url + "/ingest")
    by_testid(browser, "ingest-collection").send_keys("dropped")
    browser.execute_script("""
        const dt = new DataTransfer();
        for (const [rel, b64] of arguments[0]) {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const file = new File([bytes], rel.split('/').pop(), { type: 'image/jpeg' });
          Object.defineProperty(file, 'webkitRelativePath', { value: rel });
          dt.items.add(file);
        }
        const zone = document.querySelector('[data-testid=ingest-dropzone]');
        for (const type of ['dragenter', 'dragover', 'drop']) {
          zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""", [[rel, base64.b64encode(p.read_bytes()).decode()] for rel, p in files])
    wait(browser, lambda d: "3 images in 2 folders" in by_testid(d, "ingest-selection").text, message="dropped files")
    assert by_testid(browser, "ingest-labels").is_selected()
    by_testid(browser, "ingest-submit").click()
    wait(browser, visible(browser, "ingest-summary"), timeout=300, message="dropped ingest summary")
    assert sorted(i["label"] for i in _images(live, "dropped")) == ["cats", "cats", "dogs"]
    shot(browser, "23-ingest-dropped-folders")


def _natural(browser, img):
    return browser.execute_script(
        "const i = arguments[0]; return i.complete && i.naturalWidth ? [i.naturalWidth, i.naturalHeight, i.clientWidth] : null", img)


def test_full_image_viewer_in_browse_and_search(live, browser):
    browser.get(live.url + f"/c/{COLLECTION}")
    wait(browser, lambda d: len(by_testid(d, "tile", many=True)) == 2 * PER_CLASS, message="browse grid")
    first = by_testid(browser, "tile", many=True)[0]
    image_id, old_label = int(first.get_attribute("data-id")), first.get_attribute("data-label")
    detail = live.get_json(f"/api/images/{image_id}")
    first.click()
    viewer = wait(browser, visible(browser, "viewer"), message="viewer open")
    img = by_testid(browser, "viewer-image")
    size = wait(browser, lambda d: _natural(d, img), message="full image loaded")
    assert img.get_attribute("src").endswith(f"/api/images/{image_id}/file")
    assert size[:2] == [detail["width"], detail["height"]] and max(size[:2]) > 256  # larger than the thumbnail
    assert viewer.get_attribute("data-image-id") == str(image_id)
    wait(browser, lambda d: old_label in by_testid(d, "viewer-meta").text, message="metadata")
    assert f"{detail['width']} × {detail['height']} px" in by_testid(browser, "viewer-meta").text
    shot(browser, "24-viewer-fit")
    by_testid(browser, "viewer-zoom").click()  # 100 %: shown at its natural size
    wait(browser, lambda d: _natural(d, img)[2] == detail["width"], message="natural size")
    shot(browser, "25-viewer-actual-size")

    # edit the label: saved, and the tile behind shows it
    field = by_testid(browser, "viewer-label-input")
    field.clear()
    field.send_keys("favourite")
    by_testid(browser, "viewer-label-save").click()
    wait(browser, lambda d: "Saved" in by_testid(d, "viewer-label-status").text, message="label saved")
    assert live.get_json(f"/api/images/{image_id}")["label"] == "favourite"
    assert "favourite" in by_testid(browser, "viewer-meta").text
    tile = browser.find_element("css selector", f'[data-testid=tile][data-id="{image_id}"]')
    assert tile.get_attribute("data-label") == "favourite"
    shot(browser, "26-viewer-label-edited")
    field.clear()
    field.send_keys(old_label)  # put it back for the other tests
    by_testid(browser, "viewer-label-save").click()
    wait(browser, lambda d: f"“{old_label}”" in by_testid(d, "viewer-label-status").text, message="label restored")
    assert live.get_json(f"/api/images/{image_id}")["label"] == old_label

    # search from this image: the search page, similar-by-id
    by_testid(browser, "viewer-search").click()
    wait(browser, lambda d: d.current_url.endswith(f"/c/{COLLECTION}/search?image_id={image_id}"), message="search page")
    wait(browser, lambda d: len(by_testid(d, "result", many=True)) >= 10, message="similar results")
    assert all(r.get_attribute("data-id") != str(image_id) for r in by_testid(browser, "result", many=True))

    # on the search page: a result's ⤢ opens the viewer; its search button searches from it in place
    target = by_testid(browser, "result", many=True)[2].get_attribute("data-id")
    by_testid(browser, "result-view", many=True)[2].click()
    wait(browser, lambda d: by_testid(d, "viewer").get_attribute("data-image-id") == target, message="viewer on a result")
    wait(browser, lambda d: _natural(d, by_testid(d, "viewer-image")), message="result's full image")
    shot(browser, "27-viewer-from-search")
    by_testid(browser, "viewer-search").click()
    wait(browser, lambda d: f"image_id={target}" in d.current_url, message="searched from the viewed result")
    assert not by_testid(browser, "viewer").is_displayed()
    wait(browser, lambda d: by_testid(d, "result", many=True)
         and all(r.get_attribute("data-id") != target for r in by_testid(d, "result", many=True)), message="new results")


def test_clusters_show_makeup_and_can_be_named_and_saved_as_labels(live, browser):
    browser.get(live.url + f"/c/{COLLECTION}/clusters?k=3")
    wait(browser, lambda d: len(by_testid(d, "cluster-row", many=True)) == 3, timeout=300, message="cluster rows")
    rows = by_testid(browser, "cluster-row", many=True)
    for row in rows:
        size = int(row.find_element("css selector", ".cluster-head").get_attribute("aria-label").split(":")[1].split()[0])
        items = row.find_elements("css selector", '[data-testid="makeup-item"]')
        assert items and sum(int(i.get_attribute("data-count")) for i in items) == size
        assert {i.get_attribute("data-label") for i in items} <= {"cats", "dogs", ""}
    chart = by_testid(browser, "silhouette-chart")
    assert chart.find_elements("css selector", 'g.series[data-name="ARI vs labels"] polyline')
    marker = chart.find_element("css selector", "g.marker")
    assert marker.get_attribute("data-x") == "2" and "2 labels" in marker.text  # cats and dogs
    assert "ARI (green)" in browser.find_element("id", "silhouette-note").text
    shot(browser, "28-clusters-makeup")

    # rename: shown at once, and kept (a reload serves it from the cache)
    row = rows[0]
    name = row.find_element("css selector", '[data-testid="cluster-name-input"]')
    name.send_keys("Fluffy ones")
    row.find_element("css selector", '[data-testid="cluster-rename"]').click()
    wait(browser, lambda d: by_testid(d, "cluster-title", many=True)[0].text == "Fluffy ones", message="renamed")
    assert "now “Fluffy ones”" in by_testid(browser, "cluster-action-status").text
    browser.refresh()
    wait(browser, lambda d: len(by_testid(d, "cluster-title", many=True)) == 3
         and by_testid(d, "cluster-title", many=True)[0].text == "Fluffy ones", timeout=120, message="name kept")

    # save as label: asks first; "cancel" changes nothing, "OK" labels every image of the cluster
    row = by_testid(browser, "cluster-row", many=True)[0]
    size = int(row.find_element("css selector", ".cluster-head").get_attribute("aria-label").split(":")[1].split()[0])
    members = live.get_json(f"/api/collections/{COLLECTION}/clusters?k=3")["clusters"][0]["members"]
    row.find_element("css selector", '[data-testid="cluster-save-label"]').click()
    alert = wait(browser, lambda d: d.switch_to.alert, message="confirmation")
    assert f"all {size} images" in alert.text and "Fluffy ones" in alert.text
    alert.dismiss()
    wait(browser, lambda d: "Nothing was changed" in by_testid(d, "cluster-action-status").text, message="cancelled")
    assert not live.get_json(f"/api/collections/{COLLECTION}/images?label=Fluffy%20ones")["total"]
    row.find_element("css selector", '[data-testid="cluster-save-label"]').click()
    wait(browser, lambda d: d.switch_to.alert, message="confirmation").accept()
    wait(browser, lambda d: "Saved" in by_testid(d, "cluster-action-status").text, timeout=300, message="saved as label")
    assert f"{size} image" in by_testid(browser, "cluster-action-status").text
    page = live.get_json(f"/api/collections/{COLLECTION}/images?label=Fluffy%20ones&per_page=100")
    assert sorted(i["id"] for i in page["images"]) == sorted(members)
    row = by_testid(browser, "cluster-row", many=True)[0]  # redrawn with the new make-up, name kept
    items = row.find_elements("css selector", '[data-testid="makeup-item"]')
    assert [(i.get_attribute("data-label"), int(i.get_attribute("data-count"))) for i in items] == [("Fluffy ones", size)]
    assert by_testid(browser, "cluster-title", many=True)[0].text == "Fluffy ones"
    marker = by_testid(browser, "silhouette-chart").find_element("css selector", "g.marker")
    # 3 labels now, unless one of cats/dogs is all in it
    wait(browser, lambda d: marker.get_attribute("data-x") in ("2", "3"), timeout=30, message="the marker at the labels' count")
    shot(browser, "29-clusters-saved-as-label")
