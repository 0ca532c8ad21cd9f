"""Exports of a selection: the serialisers (CSV a line per file, JSON, COCO read back by pycocotools'
own loader), the API (ids, groups, a cluster; errors naming the field) over a small real cats/dogs
collection, and ``simsearch export-selection``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.conftest import copy_subset
from tests.helpers.api import analysis_result, assert_error, ingest_folder
from tests.helpers.cli import env, imported, run  # noqa: F401 (fixtures)

ROWS = [
    {"id": 7, "path": "cats/a.jpg", "label": "cats", "width": 40, "height": 30, "group": 1,
     "files": [{"path": "cats/a.jpg", "size": 100, "mtime": "2026-12-01T00:00:00Z"},
               {"path": "copies/a.jpg", "size": 100, "mtime": None}]},
    {"id": 3, "path": "dogs/b.jpg", "label": "dogs", "width": 20, "height": 10, "group": 2,
     "files": [{"path": "dogs/b.jpg", "size": 50, "mtime": None}]},
    {"id": 9, "path": "x, \"odd\".jpg", "label": None, "width": None, "height": None, "group": None,
     "files": [{"path": "x, \"odd\".jpg", "size": None, "mtime": None}]},
]


def test_csv_has_a_line_per_file_and_survives_commas_and_quotes():
    from simsearch.ops.export_formats import CSV_COLUMNS, to_csv

    rows = list(csv.reader(io.StringIO(to_csv(ROWS))))
    assert rows[0] == CSV_COLUMNS
    assert [r[:5] for r in rows[1:]] == [["7", "cats/a.jpg", "cats", "yes", "1"], ["7", "copies/a.jpg", "cats", "no", "1"],
                                         ["3", "dogs/b.jpg", "dogs", "yes", "2"], ["9", 'x, "odd".jpg', "", "yes", ""]]
    assert rows[1][5:] == ["40", "30", "100", "2026-12-01T00:00:00Z"]


def test_json_keeps_the_rows_in_order():
    from simsearch.ops.export_formats import to_json

    assert json.loads(to_json(ROWS)) == ROWS


def test_coco_loads_with_pycocotools(tmp_path):
    coco_api = pytest.importorskip("pycocotools.coco", reason="pycocotools (the dev extras) reads the COCO export")
    from simsearch.ops.export_formats import to_coco

    path = tmp_path / "labels.json"
    path.write_text(to_coco(ROWS, description="test", version="0.1.0", created="2026-12-06T00:00:00Z"))
    coco = coco_api.COCO(str(path))
    assert sorted(coco.getImgIds()) == [3, 7, 9]
    cats = {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())}
    assert set(cats) == {"cats", "dogs"}
    assert coco.getImgIds(catIds=[cats["cats"]]) == [7] and coco.getImgIds(catIds=[cats["dogs"]]) == [3]
    [img] = coco.loadImgs([7])
    assert (img["file_name"], img["width"], img["height"]) == ("cats/a.jpg", 40, 30)
    assert img["simsearch_paths"] == ["cats/a.jpg", "copies/a.jpg"] and img["simsearch_group"] == 1
    [ann] = coco.loadAnns(coco.getAnnIds(imgIds=[7]))
    assert ann["bbox"] == [0, 0, 40, 30] and ann["area"] == 1200 and ann["category_id"] == cats["cats"]
    assert coco.getAnnIds(imgIds=[9]) == []  # no label: no annotation


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def pets(app, tmp_path):
    ingest_folder(app, copy_subset(tmp_path / "pets", 4))
    images = app.test_client().get("/api/collections/pets/images?per_page=100").get_json()["images"]
    return {Path(i["path"]).name: i for i in images}


def _post(client, body):
    return client.post("/api/collections/pets/selection", json=body)


def test_export_api_ids_groups_and_formats(app, pets, tmp_path):
    client = app.test_client()
    ids = [pets["cat.1.jpg"]["id"], pets["dog.2.jpg"]["id"], pets["cat.3.jpg"]["id"]]
    resp = _post(client, {"groups": [{"group": 5, "image_ids": [ids[0]]}, {"group": 6, "image_ids": [ids[1], ids[2]]}]})
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert 'filename="pets-selection.csv"' in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [(int(r["id"]), Path(r["path"]).name, r["label"], r["group"], r["first"]) for r in rows] == [
        (ids[0], "cat.1.jpg", "cats", "5", "yes"), (ids[1], "dog.2.jpg", "dogs", "6", "yes"),
        (ids[2], "cat.3.jpg", "cats", "6", "yes")]
    assert not any(r["path"].startswith("/") for r in rows)  # paths as the API shows them, not the server's
    assert all(int(r["width"]) > 0 and int(r["size"]) > 0 for r in rows)

    got = _post(client, {"image_ids": ids, "format": "json"})
    assert got.mimetype == "application/json"
    assert [(r["id"], r["label"], len(r["files"])) for r in got.get_json()] == [
        (ids[0], "cats", 1), (ids[1], "dogs", 1), (ids[2], "cats", 1)]

    coco = _post(client, {"image_ids": ids, "format": "coco"})
    assert 'filename="pets-selection.coco.json"' in coco.headers["Content-Disposition"]
    doc = coco.get_json()
    assert [i["id"] for i in doc["images"]] == ids and [c["name"] for c in doc["categories"]] == ["cats", "dogs"]
    coco_api = pytest.importorskip("pycocotools.coco", reason="pycocotools (the dev extras) reads the COCO export")
    (tmp_path / "pets.json").write_bytes(coco.data)
    loaded = coco_api.COCO(str(tmp_path / "pets.json"))
    cat_id = loaded.getCatIds(catNms=["cats"])
    assert sorted(loaded.getImgIds(catIds=cat_id)) == sorted([ids[0], ids[2]])


def test_export_api_a_cluster(app, pets):
    client = app.test_client()
    data = analysis_result(client, "/api/collections/pets/clusters?k=2").get_json()
    c = data["clusters"][0]
    ref = {"k": 2, "cluster": c["cluster"], "version": data["version"]}
    doc = _post(client, {"cluster": ref, "format": "json"}).get_json()
    assert sorted(r["id"] for r in doc) == sorted(c["members"]) and {r["group"] for r in doc} == {c["cluster"]}
    resp = _post(client, {"cluster": ref})
    assert f'filename="pets-cluster-{c["cluster"]}.csv"' in resp.headers["Content-Disposition"]
    assert_error(_post(client, {"cluster": {**ref, "version": "0" * 16}}), 409, "conflict", "version")
    assert_error(_post(client, {"cluster": {**ref, "cluster": 5}}), 404, "not_found", "cluster")


def test_export_api_errors_name_the_field(app, pets):
    client = app.test_client()
    ids = [pets["cat.1.jpg"]["id"]]
    assert_error(_post(client, {"image_ids": ids, "format": "xml"}), 400, "invalid_input", "format")
    assert_error(_post(client, {"image_ids": []}), 400, "invalid_input", "image_ids")
    assert_error(_post(client, {"image_ids": ["x"]}), 400, "invalid_input", "image_ids")
    assert_error(_post(client, {}), 400, "invalid_input", "image_ids")
    assert_error(_post(client, {"image_ids": ids, "cluster": {"cluster": 0}}), 400, "invalid_input", "image_ids")
    assert_error(_post(client, {"image_ids": None}), 400, "invalid_input", "image_ids")
    assert_error(_post(client, {"groups": [{"group": 1}]}), 400, "invalid_input", "groups")
    assert_error(_post(client, {"groups": [{"group": 1, "image_ids": ids}], "image_ids": ids}), 400, "invalid_input",
                 "image_ids")
    err = assert_error(_post(client, {"image_ids": [ids[0], 999999]}), 404, "not_found", "image_ids")
    assert err["details"]["missing"] == [999999]
    assert_error(client.post("/api/collections/nope/selection", json={"image_ids": ids}), 404, "not_found", "collection")


def test_cli_export_ids_and_a_cluster(run, imported, tmp_path):
    ids = sorted(imported.values())[:3]
    out = run("export-selection", "-c", "ext", "--ids", ",".join(map(str, ids)))
    rows = list(csv.DictReader(io.StringIO(out.output)))
    assert [int(r["id"]) for r in rows] == ids
    run("cluster", "-c", "ext", "-k", "2")
    target = tmp_path / "c.coco.json"
    done = run("export-selection", "-c", "ext", "--cluster", "1", "-k", "2", "--format", "coco", "-o", target)
    doc = json.loads(target.read_text())
    assert doc["images"] and {i["simsearch_group"] for i in doc["images"]} == {1}
    assert f"to {target}" in done.output
    bad = run("export-selection", "-c", "ext", "--ids", "1,x", code=2)
    assert "--ids" in bad.output
    assert "give one of" in run("export-selection", "-c", "ext", code=2).output
