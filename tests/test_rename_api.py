"""Renaming through the API: ``PATCH /api/collections/<name>`` and ``PATCH /api/images/<id>``
(both databases; imported vectors, so no model runs)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.helpers.api import assert_error

SPACE = "ext-vectors"


@pytest.fixture
def client(make_app):
    from simsearch.ops.vectors_io import import_vectors

    app = make_app()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 8)).astype("float32")
    keys = np.array([f"/photos/set/img{i}.jpg" for i in range(11)] + ["no-folder-key"])
    buf = io.BytesIO()
    np.savez(buf, vectors=x, keys=keys)
    buf.seek(0)
    import_vectors(app.extensions["simsearch"], buf, "ext", SPACE)
    return app.test_client()


def _ids(client, name="ext") -> dict[str, int]:
    images = client.get(f"/api/collections/{name}/images?per_page=100").get_json()["images"]
    return {img["path"]: img["id"] for img in images}


def test_rename_collection(client):
    ids = _ids(client)
    resp = client.patch("/api/collections/ext", json={"name": "museum"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["name"] == "museum" and body["images_ok"] == 12 and body["backbones"][SPACE]["vectors_in_db"] == 12
    assert_error(client.get("/api/collections/ext"), 404, "not_found")
    assert _ids(client, "museum") == ids  # the same images, vectors and index
    similar = client.get(f"/api/images/{next(iter(ids.values()))}/similar?k=3").get_json()
    assert len(similar["results"]) == 3
    assert client.patch("/api/collections/museum", json={"name": "museum"}).status_code == 200  # a no-op
    client.post("/api/collections", json={"name": "taken"})
    assert_error(client.patch("/api/collections/museum", json={"name": "taken"}), 409, "conflict", "name")
    assert_error(client.patch("/api/collections/museum", json={"name": "bad name"}), 400, "invalid_input", "name")
    assert_error(client.patch("/api/collections/museum", json={}), 400, "invalid_input", "name")
    assert_error(client.patch("/api/collections/museum", json={"name": "x", "extra": 1}), 400, "invalid_input")
    assert_error(client.patch("/api/collections/nope", json={"name": "x"}), 404, "not_found")


def test_rename_collection_refused_while_a_job_is_queued(client, make_app):
    from simsearch.store.models import Collection, IngestRun

    ctx = client.application.extensions["simsearch"]
    with ctx.db.session() as s:
        coll_id = s.query(Collection.id).filter(Collection.name == "ext").scalar()
        s.add(IngestRun(collection_id=coll_id, source="x", spaces=[SPACE], status="queued", total=1))
    err = assert_error(client.patch("/api/collections/ext", json={"name": "y"}), 409, "conflict")
    assert "1 queued or running job:" in err["message"]


def test_rename_image(client):
    ids = _ids(client)
    image = ids["img3.jpg"]  # API responses show names, not server folders
    resp = client.patch(f"/api/images/{image}", json={"name": "kitten.jpg"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["id"] == image and body["path"].endswith("kitten.jpg") and body["similar_url"].endswith("/similar")
    assert body["backbones"] == [SPACE]
    assert client.get(f"/api/images/{image}").get_json()["path"] == body["path"]
    keyless = ids["no-folder-key"]
    assert client.patch(f"/api/images/{keyless}", json={"name": "named.jpg"}).get_json()["path"] == "named.jpg"
    for bad in ("../etc/passwd", "a/b.jpg", "a\\b.jpg", "..", ".", "  ", "", "x" * 256, "nul\u0000.jpg"):
        assert_error(client.patch(f"/api/images/{image}", json={"name": bad}), 400, "invalid_input", "name")
    assert_error(client.patch("/api/images/999999", json={"name": "a.jpg"}), 404, "not_found")


def test_renames_need_a_key_on_a_keyed_server(make_app, settings):
    keyed = make_app(settings.replace(api_keys=("k",))).test_client()
    assert_error(keyed.patch("/api/collections/ext", json={"name": "y"}), 401, "unauthorized")
    assert_error(keyed.patch("/api/images/1", json={"name": "y.jpg"}), 401, "unauthorized")
    assert_error(keyed.patch("/api/collections/ext", json={"name": "y"}, headers={"X-API-Key": "k"}), 404, "not_found")
