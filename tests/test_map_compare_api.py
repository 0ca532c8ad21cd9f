"""The map's thumbnail atlases and selection export, and the comparison page's API: embedding a
collection with another backbone as a job, per-label precision and the cluster/label table.
Flask's test client over a small real cats/dogs collection (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from conftest import copy_subset
from tests.helpers.api import analysis_result, assert_error, ingest_folder, wait_job

SPACE = "efficientnet_lite0"
PER_CLASS = 6


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def pets(app, tmp_path):
    ingest_folder(app, copy_subset(tmp_path / "pets", PER_CLASS))
    client = app.test_client()
    images = client.get("/api/collections/pets/images?per_page=100").get_json()["images"]
    return {Path(i["path"]).name: i for i in images}


def _map(client):
    from simsearch.web import map_binary

    resp = analysis_result(client, "/api/collections/pets/map.bin", headers={"Accept-Encoding": "gzip"})
    return map_binary.decode(gzip.decompress(resp.data))


def _cells(resp) -> dict[int, PILImage.Image]:
    """image id -> its cell of an atlas response."""
    ids = [int(i) for i in resp.headers["X-Atlas-Ids"].split(",") if i]
    cols, cell = int(resp.headers["X-Atlas-Columns"]), int(resp.headers["X-Atlas-Cell"])
    sheet = PILImage.open(io.BytesIO(resp.data)).convert("RGB")
    assert sheet.size == (cols * cell, -(-len(ids) // cols) * cell)
    return {i: sheet.crop(((k % cols) * cell, (k // cols) * cell, (k % cols + 1) * cell, (k // cols + 1) * cell))
            for k, i in enumerate(ids)}


def test_atlas_tiles_hold_the_thumbnails_of_their_points(client, app, pets):
    m = _map(client)
    n = len(m["ids"])
    assert n == 2 * PER_CLASS and len(m["generation"]) == 20
    url = f"/api/collections/pets/atlas/{SPACE}"
    whole = client.get(f"{url}/0-0-0")
    assert whole.status_code == 200 and whole.mimetype == "image/jpeg"
    assert int(whole.headers["X-Atlas-Points"]) == n
    cells = _cells(whole)
    assert sorted(cells) == sorted(m["ids"].tolist())  # every point has its thumbnail, once
    assert "no-cache" in whole.headers["Cache-Control"] and whole.headers["ETag"]
    # each cell really is that image's thumbnail (its mean colour, against the stored thumbnail's)
    for image_id, cell in cells.items():
        thumb = PILImage.open(io.BytesIO(client.get(f"/api/images/{image_id}/thumbnail").data)).convert("RGB")
        thumb.thumbnail((64, 64))
        ours = np.asarray(cell, np.float32)
        box = ours[(64 - thumb.height) // 2:(64 - thumb.height) // 2 + thumb.height,
                   (64 - thumb.width) // 2:(64 - thumb.width) // 2 + thumb.width]
        assert np.abs(box.mean(axis=(0, 1)) - np.asarray(thumb, np.float32).mean(axis=(0, 1))).max() < 12, image_id

    # the tiles of level z split the points exactly as the browser computes it from the payload
    from simsearch.ops.atlas import quantise

    qx, _ = quantise(m["x"])
    qy, _ = quantise(m["y"])
    for z in (1, 2):
        seen = []
        for tx in range(2**z):
            for ty in range(2**z):
                resp = client.get(f"{url}/{z}-{tx}-{ty}?v={m['generation']}")
                want = [int(i) for i, a, b in zip(m["ids"], qx, qy) if a >> (16 - z) == tx and b >> (16 - z) == ty]
                if not want:
                    assert resp.status_code == 204 and resp.headers["X-Atlas-Ids"] == ""
                    continue
                assert resp.status_code == 200 and [int(i) for i in resp.headers["X-Atlas-Ids"].split(",")] == want
                assert "immutable" in resp.headers["Cache-Control"] and "max-age=31536000" in resp.headers["Cache-Control"]
                seen += want
        assert sorted(seen) == sorted(m["ids"].tolist())

    # HTTP caching: the same atlas again is a 304
    again = client.get(f"{url}/0-0-0?v={m['generation']}", headers={"If-None-Match": whole.headers["ETag"]})
    assert again.status_code == 304

    # an image without a thumbnail (as imported vectors have) gets no cell: the page draws a dot
    from sqlalchemy import update

    from simsearch.store.models import Image

    gone = int(m["ids"][0])
    with app.extensions["simsearch"].db.session() as s:
        s.execute(update(Image).where(Image.id == gone).values(thumbnail_hash=None))
    resp = client.get(f"{url}/0-0-0?v={m['generation']}", headers={"Cache-Control": "no-cache"})
    assert gone not in [int(i) for i in resp.headers["X-Atlas-Ids"].split(",")]
    assert int(resp.headers["X-Atlas-Points"]) == n


def test_atlas_errors_name_the_field(client, pets):
    url = f"/api/collections/pets/atlas/{SPACE}"
    assert_error(client.get(f"{url}/0-0-0"), 409, "conflict", "space")  # the map is not computed yet
    m = _map(client)
    for tile in ("0-0", "a-b-c", "9-0-0", "1-2-0", "2-0-4"):
        assert_error(client.get(f"{url}/{tile}"), 400, "invalid_input", "tile")
    assert_error(client.get(f"{url}/0-0-0?v=nothex"), 400, "invalid_input", "v")
    assert_error(client.get(f"{url}/0-0-0?v={'0' * 20}"), 409, "conflict", "v")  # another generation
    assert_error(client.get(f"{url}/0-0-0?size=3"), 400, "invalid_input", "size")
    assert_error(client.get(f"/api/collections/pets/atlas/resnet50/0-0-0"), 404, "not_found")
    assert_error(client.get(f"/api/collections/pets/atlas/no%20pe/0-0-0"), 400, "invalid_input", "space")
    assert_error(client.get(f"/api/collections/nope/atlas/{SPACE}/0-0-0"), 404, "not_found", "collection")
    assert client.get(f"{url}/0-0-0?v={m['generation']}").status_code == 200


def test_selection_export_as_csv_and_json(client, pets):
    ids = [pets["cat.1.jpg"]["id"], pets["dog.2.jpg"]["id"], pets["cat.3.jpg"]["id"]]
    resp = client.post("/api/collections/pets/selection", json={"image_ids": ids})
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert 'filename="pets-selection.csv"' in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    assert rows[0][:3] == ["id", "path", "label"]  # then first,group,width,... (tests/test_exports.py)
    assert [(int(r[0]), Path(r[1]).name, r[2]) for r in rows[1:]] == [
        (ids[0], "cat.1.jpg", "cats"), (ids[1], "dog.2.jpg", "dogs"), (ids[2], "cat.3.jpg", "cats")]
    assert not any(r[1].startswith("/") for r in rows[1:])  # paths as the API shows them, not the server's
    got = client.post("/api/collections/pets/selection", json={"image_ids": ids, "format": "json"})
    assert got.mimetype == "application/json"
    assert [(r["id"], r["label"]) for r in got.get_json()] == [(ids[0], "cats"), (ids[1], "dogs"), (ids[2], "cats")]
    assert_error(client.post("/api/collections/pets/selection", json={"image_ids": []}), 400, "invalid_input", "image_ids")
    assert_error(client.post("/api/collections/pets/selection", json={"image_ids": ids, "format": "xml"}), 400, "invalid_input", "format")
    err = assert_error(client.post("/api/collections/pets/selection", json={"image_ids": [ids[0], 999999]}), 404, "not_found", "image_ids")
    assert err["details"]["missing"] == [999999]
    assert_error(client.post("/api/collections/nope/selection", json={"image_ids": ids}), 404, "not_found", "collection")


def test_embed_a_missing_backbone_as_a_job(client, app, pets, tmp_path):
    other = "efficientnet_lite1"
    resp = client.post("/api/collections/pets/embed", json={"backbone": other})
    assert resp.status_code == 202, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["total"] == 2 * PER_CLASS and body["ignored"] == [] and resp.headers["Location"] == body["status_url"]
    assert body["estimate"]["images"] == 2 * PER_CLASS  # said before it starts
    job = wait_job(client, body["job_id"])
    assert job["status"] == "done" and job["processed"] == 2 * PER_CLASS, job
    assert job["kind"] == "reembed" and job["added"] == 2 * PER_CLASS  # a re-embedding: vectors only
    detail = client.get("/api/collections/pets").get_json()
    assert detail["backbones"][other]["vectors_in_db"] == 2 * PER_CLASS
    assert detail["images_ok"] == 2 * PER_CLASS
    # and the comparison now evaluates it, with per-label precision and the cluster/label table
    cmp = analysis_result(client, f"/api/collections/pets/comparison?backbones={SPACE},{other}").get_json()
    panels = {p["backbone"]: p for p in cmp["backbones"]}
    assert panels[other]["available"] is True
    for p in panels.values():
        lab = p["labels"]
        per = {r["label"]: r for r in lab["per_label"]}
        assert set(per) == {"cats", "dogs"} and all(r["n"] == PER_CLASS for r in per.values())
        mean = sum(r["precision"] * r["n"] for r in per.values()) / (2 * PER_CLASS)
        assert abs(mean - lab["knn_precision_at_10"]) < 1e-9
        table = lab["contingency"]
        assert table["k"] == 2 and table["labels"] == ["cats", "dogs"]
        assert [sum(row) for row in table["counts"]] == [PER_CLASS, PER_CLASS]
    # all embedded now: nothing to do
    assert_error(client.post("/api/collections/pets/embed", json={"backbone": other}), 409, "conflict", "backbone")
    assert_error(client.post("/api/collections/pets/embed", json={"backbone": "nope"}), 400, "invalid_input", "backbone")
    assert_error(client.post("/api/collections/pets/embed", json={}), 400, "invalid_input", "backbone")
    assert_error(client.post("/api/collections/nope/embed", json={"backbone": other}), 404, "not_found", "collection")


def test_embed_job_skips_files_that_are_gone(client, app, pets, tmp_path):
    from sqlalchemy import update

    from simsearch.store.models import Image

    gone = pets["cat.1.jpg"]["id"]
    with app.extensions["simsearch"].db.session() as s:
        s.execute(update(Image).where(Image.id == gone).values(source_path=str(tmp_path / "moved" / "cat.1.jpg")))
    resp = client.post("/api/collections/pets/embed", json={"backbone": "efficientnet_lite0@max"})
    assert resp.status_code == 202
    body = resp.get_json()
    assert body["total"] == 2 * PER_CLASS - 1 and body["ignored"] == ["cat.1.jpg (its source file is gone)"]
    assert wait_job(client, body["job_id"])["status"] == "done"
    # only the image whose file is gone is left: nothing can be embedded, the reason says what to do
    err = assert_error(client.post("/api/collections/pets/embed", json={"backbone": "efficientnet_lite0@max"}),
                       409, "conflict", "backbone")
    assert "gone" in err["message"] and "simsearch ingest" in err["message"]
