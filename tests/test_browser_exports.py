"""Exports and suggested cluster names in headless Chromium on a small real cats/dogs collection: a
cluster exported as a COCO file (read back by pycocotools), a result list exported as CSV, and a
suggested name accepted on the clusters page."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.helpers.browser import (  # noqa: F401 (fixtures)
    COLLECTION,
    SPACE,
    _no_js_errors,
    browser,
    by_testid,
    live,
    shot,
    wait,
)
from tests.helpers.downloads import allow_downloads, downloaded

pytestmark = [pytest.mark.browser, pytest.mark.model]

CAT_CLASSES = {"n02123045", "n02123159", "n02123394", "n02123597", "n02124075"}


def _rows(driver):
    return by_testid(driver, "cluster-row", many=True)


def test_accept_a_suggested_cluster_name_and_export_the_cluster(live, browser, tmp_path):
    folder = allow_downloads(browser, tmp_path / "downloads")
    browser.get(live.url + f"/c/{COLLECTION}/clusters?backbone={SPACE}&k=2")
    wait(browser, lambda d: len(_rows(d)) == 2, timeout=300, message="two clusters")
    data = live.get_json(f"/api/collections/{COLLECTION}/clusters?backbone={SPACE}&k=2")
    cats = next(c for c in data["clusters"] if c["labels"][0]["label"] == "cats")
    row = next(r for r in _rows(browser) if r.get_attribute("data-cluster") == str(cats["cluster"]))

    by_testid(row, "cluster-suggest").click()
    wait(browser, lambda d: by_testid(row, "name-suggestion", many=True), message="suggested names")
    chip = by_testid(row, "name-suggestion", many=True)[0]
    name = chip.get_attribute("data-name")
    suggested = live.get_json(f"/api/collections/{COLLECTION}/clusters/suggestions?backbone={SPACE}&k=2"
                              f"&cluster={cats['cluster']}")["suggestions"]
    assert name == suggested[0]["name"] and suggested[0]["wnid"] in CAT_CLASSES
    chip.click()
    assert by_testid(row, "cluster-name-input").get_attribute("value") == name
    shot(browser, "40-cluster-name-suggestions")
    by_testid(row, "cluster-rename").click()
    wait(browser, lambda d: any(t.text == name for t in by_testid(d, "cluster-title", many=True)), message="renamed")
    again = live.get_json(f"/api/collections/{COLLECTION}/clusters?backbone={SPACE}&k=2")
    assert next(c for c in again["clusters"] if c["cluster"] == cats["cluster"])["name"] == name

    row = next(r for r in _rows(browser) if r.get_attribute("data-cluster") == str(cats["cluster"]))
    by_testid(row, "cluster-export-coco").click()
    text = downloaded(folder, f"{COLLECTION}-cluster-{cats['cluster']}.coco.json")
    doc = json.loads(text)
    assert sorted(i["id"] for i in doc["images"]) == sorted(cats["members"])
    wait(browser, lambda d: "Exported" in by_testid(d, "cluster-action-status").text, message="export message")

    coco_api = pytest.importorskip("pycocotools.coco", reason="pycocotools (the dev extras) reads the COCO export")
    coco = coco_api.COCO(str(folder / f"{COLLECTION}-cluster-{cats['cluster']}.coco.json"))
    assert set(coco.getImgIds()) == set(cats["members"])
    assert set(coco.getImgIds(catIds=coco.getCatIds(catNms=["cats"]))) == {
        i["id"] for i in doc["images"] if i["file_name"].startswith("cats/")}


def test_export_the_search_results_as_csv(live, browser, tmp_path):
    folder = allow_downloads(browser, tmp_path / "downloads")
    first = live.get_json(f"/api/collections/{COLLECTION}/images?per_page=1")["images"][0]
    browser.get(live.url + f"/c/{COLLECTION}/search?image_id={first['id']}")
    wait(browser, lambda d: len(by_testid(d, "result", many=True)) > 0, timeout=300, message="results")
    shown = [int(t.get_attribute("data-id")) for t in by_testid(browser, "result", many=True)]
    by_testid(browser, "results-export-csv").click()
    rows = list(csv.DictReader(io.StringIO(downloaded(folder, f"{COLLECTION}-selection.csv"))))
    assert [int(r["id"]) for r in rows] == shown
