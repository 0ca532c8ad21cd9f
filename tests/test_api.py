"""The JSON API through Flask's test client, on SQLite and PostgreSQL: every endpoint and its
documented errors, the OpenAPI document (valid, and every documented path answers as documented),
uploads (413, bad images, decompression bombs), zip safety, API keys and CSRF."""

from __future__ import annotations

import gzip
import io
import json
import re
import struct
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image as PILImage

from conftest import CATS_DOGS, copy_subset, dataset_files

from simsearch.web import create_app, shutdown
from tests.helpers.job_rows import failed_clusters_job, queued_job
from tests.helpers.api import (
    a_derived_space,
    analysis_result,
    assert_error,
    ingest_folder,
    png_header_only,
    wait_job,
)

SPACE = "efficientnet_lite0"


# ---- helpers ---------------------------------------------------------------------------------

@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def pets(app, tmp_path):
    """A collection 'pets' with 6 cats and 6 dogs (labels from folders); returns {path name: id}."""
    ingest_folder(app, copy_subset(tmp_path / "pets", 6))
    client = app.test_client()
    images = client.get("/api/collections/pets/images?per_page=100").get_json()["images"]
    return {Path(i["path"]).name: i["id"] for i in images}


def jpeg_bytes(path: Path | None = None, size=(64, 48), color=(200, 30, 30)) -> bytes:
    if path is not None:
        return path.read_bytes()
    buf = io.BytesIO()
    PILImage.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


def zip_bytes(entries: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


# ---- basics: health, backbones, errors -------------------------------------------------------

def test_health_and_backbones(client, settings):
    h = client.get("/api/health")
    assert h.status_code == 200
    assert h.get_json()["status"] == "ok" and h.get_json()["jobs"] == "thread"
    assert h.get_json()["database"] in ("sqlite", "postgresql")
    rows = client.get("/api/backbones").get_json()["backbones"]
    lite = next(r for r in rows if r["name"] == SPACE)
    assert lite["weights_available"] is True and lite["dim"] == 1280 and lite["default"] is True


def test_error_shape_for_http_errors(client, app):
    assert_error(client.get("/api/no/such/route"), 404, "not_found")
    err = assert_error(client.put("/api/collections", json={}), 405, "method_not_allowed")
    assert "GET" in err["message"] and "POST" in err["message"]
    assert_error(client.post("/api/collections", data="{not json", content_type="application/json"), 400, "invalid_input", "body")
    assert_error(client.post("/api/collections", data="name=x", content_type="application/x-www-form-urlencoded"), 400, "invalid_input")
    assert_error(client.post("/api/collections", json=["a", "list"]), 400, "invalid_input", "body")


def test_unexpected_errors_are_500_without_traceback(settings):
    app = create_app({"SETTINGS": settings, "TESTING": False, "PROPAGATE_EXCEPTIONS": False})
    try:
        def boom():
            raise RuntimeError("secret internal detail /etc/passwd")

        app.add_url_rule("/api/boom", "boom", boom)
        resp = app.test_client().get("/api/boom")
        err = assert_error(resp, 500, "internal_error")
        text = resp.get_data(as_text=True)
        assert "secret internal detail" not in text and "Traceback" not in text and "RuntimeError" not in err["message"]
    finally:
        shutdown(app)


def test_too_large_request_is_413_in_the_error_shape(make_app):
    app = make_app(MAX_CONTENT_LENGTH=10_000)
    c = app.test_client()
    resp = c.post("/api/collections/pets/search", data={"image": (io.BytesIO(b"\xff" * 50_000), "big.jpg")},
                  content_type="multipart/form-data")
    err = assert_error(resp, 413, "payload_too_large")
    assert "limit" in err["message"]
    resp = c.post("/api/collections/pets/ingest", data={"files": [(io.BytesIO(b"x" * 20_000), "a.jpg")]},
                  content_type="multipart/form-data")
    assert_error(resp, 413, "payload_too_large")


def test_create_app_accepts_settings_or_dict_and_keeps_secret_key(settings, tmp_path):
    a = create_app(settings)
    b = create_app({"SIMSEARCH_HOME": str(settings.home), "SIMSEARCH_DATABASE_URL": settings.database_url,
                    "SIMSEARCH_API_KEYS": "k1, k2", "MAX_CONTENT_LENGTH": 1234})
    try:
        assert a.extensions["simsearch"].settings is settings
        assert b.extensions["simsearch"].settings.api_keys == ("k1", "k2")
        assert b.config["MAX_CONTENT_LENGTH"] == 1234 and a.config["MAX_CONTENT_LENGTH"] == 64 * 1024 * 1024
        # one secret key per data directory, so sessions survive restarts and span workers
        assert a.config["SECRET_KEY"] == b.config["SECRET_KEY"]
        assert (settings.home / "secret_key").stat().st_mode & 0o077 == 0
        assert "/api/collections" in {r.rule for r in a.url_map.iter_rules()}
    finally:
        shutdown(a)
        shutdown(b)


# ---- collections -----------------------------------------------------------------------------

def test_collections_create_list_get_delete(client, app, pets):
    resp = client.post("/api/collections", json={"name": "holiday", "description": "Summer 2024"})
    assert resp.status_code == 201 and resp.headers["Location"].endswith("/api/collections/holiday")
    assert resp.get_json()["description"] == "Summer 2024"
    assert_error(client.post("/api/collections", json={"name": "holiday"}), 409, "conflict", "name")
    assert_error(client.post("/api/collections", json={"name": "../etc"}), 400, "invalid_input", "name")  # the body field at fault
    assert_error(client.post("/api/collections", json={}), 400, "invalid_input")
    rows = {c["name"]: c for c in client.get("/api/collections").get_json()["collections"]}
    assert set(rows) == {"holiday", "pets"}
    assert rows["pets"]["images_ok"] == 12 and rows["pets"]["images_failed"] == 0
    assert rows["pets"]["backbones"][SPACE]["vectors_in_db"] == 12
    detail = client.get("/api/collections/pets").get_json()
    assert {(l["label"], l["count"]) for l in detail["labels"]} == {("cats", 6), ("dogs", 6)}
    assert detail["recent_jobs"][0]["status"] == "done"
    assert_error(client.get("/api/collections/nope"), 404, "not_found", "collection")

    svc = app.extensions["simsearch"]
    coll_id = rows["pets"]["id"]
    index_dir = svc.indexes.path_for(coll_id, SPACE).parent
    assert index_dir.exists() and svc.indexes.cached(coll_id, SPACE) is not None
    resp = client.delete("/api/collections/pets")
    assert resp.status_code == 200 and resp.get_json() == {"deleted": "pets", "images": 12}
    assert not index_dir.exists() and svc.indexes.cached(coll_id, SPACE) is None
    assert_error(client.get("/api/collections/pets"), 404)
    assert_error(client.delete("/api/collections/pets"), 404)
    assert [c["name"] for c in client.get("/api/collections").get_json()["collections"]] == ["holiday"]


def test_images_paging_and_filters(client, app, pets):
    page1 = client.get("/api/collections/pets/images?per_page=5").get_json()
    assert page1["total"] == 12 and page1["pages"] == 3 and len(page1["images"]) == 5
    page3 = client.get("/api/collections/pets/images?per_page=5&page=3").get_json()
    assert len(page3["images"]) == 2
    ids = [i["id"] for p in (1, 2, 3) for i in client.get(f"/api/collections/pets/images?per_page=5&page={p}").get_json()["images"]]
    assert ids == sorted(ids) and len(set(ids)) == 12
    cats = client.get("/api/collections/pets/images?label=cats").get_json()
    assert cats["total"] == 6 and all(i["label"] == "cats" for i in cats["images"])
    assert client.get("/api/collections/pets/images?status=failed").get_json()["total"] == 0
    # free-form metadata filter (meta.<key>=<value>), on both databases
    from simsearch.store.models import Image

    svc = app.extensions["simsearch"]
    with svc.db.session() as s:
        s.get(Image, ids[0]).meta = {"photographer": "Ann", "year": "2020"}
        s.get(Image, ids[1]).meta = {"photographer": "Bob", "year": "2020"}
    ann = client.get("/api/collections/pets/images?meta.photographer=Ann").get_json()
    assert [i["id"] for i in ann["images"]] == [ids[0]] and ann["images"][0]["meta"]["year"] == "2020"
    assert client.get("/api/collections/pets/images?meta.year=2020").get_json()["total"] == 2
    assert client.get("/api/collections/pets/images?meta.year=2020&meta.photographer=Bob").get_json()["total"] == 1
    assert client.get("/api/collections/pets/images?meta[year]=2020&meta[photographer]=Bob").get_json()["total"] == 1
    assert client.get("/api/collections/pets/images?meta.year=1999").get_json()["total"] == 0
    assert_error(client.get("/api/collections/pets/images?meta.bad\"key=1"), 400, "invalid_input")
    assert_error(client.get("/api/collections/pets/images?page=0"), 400, "invalid_input", "page")
    assert_error(client.get("/api/collections/pets/images?per_page=501"), 400, "invalid_input", "per_page")
    assert_error(client.get("/api/collections/pets/images?per_page=abc"), 400, "invalid_input", "per_page")
    assert_error(client.get("/api/collections/pets/images?status=weird"), 400, "invalid_input", "status")
    assert_error(client.get("/api/collections/nope/images"), 404, "not_found")


def test_image_get_thumbnail_delete(client, app, pets):
    image_id = pets["cat.1.jpg"]
    img = client.get(f"/api/images/{image_id}").get_json()
    assert img["label"] == "cats" and img["collection"] == "pets" and img["backbones"] == [SPACE]
    assert img["width"] > 0 and img["status"] == "ok"
    thumb = client.get(img["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg" and thumb.data[:3] == b"\xff\xd8\xff"
    assert "max-age" in thumb.headers["Cache-Control"] and thumb.headers["ETag"]
    again = client.get(img["thumbnail_url"], headers={"If-None-Match": thumb.headers["ETag"]})
    assert again.status_code == 304
    assert_error(client.get("/api/images/999999"), 404, "not_found", "image_id")
    assert_error(client.get("/api/images/999999/thumbnail"), 404, "not_found")
    # deleting takes the image out of listings, results and the index
    other = pets["cat.2.jpg"]
    before = [h["image_id"] for h in client.get(f"/api/images/{other}/similar?k=11").get_json()["results"]]
    assert image_id in before
    assert client.delete(f"/api/images/{image_id}").get_json() == {"deleted": image_id}
    assert_error(client.get(f"/api/images/{image_id}"), 404)
    assert_error(client.get(f"/api/images/{image_id}/thumbnail"), 404)
    after = [h["image_id"] for h in client.get(f"/api/images/{other}/similar?k=11").get_json()["results"]]
    assert image_id not in after and len(after) == 10
    coll_id = client.get("/api/collections/pets").get_json()["id"]
    assert app.extensions["simsearch"].indexes.cached(coll_id, SPACE).ntotal == 11
    assert_error(client.delete(f"/api/images/{image_id}"), 404)


@pytest.mark.parametrize("path", [
    "/api/images/..%2F..%2Fetc%2Fpasswd/thumbnail",
    "/api/images/../../etc/passwd",
    "/api/images/1%2F..%2F..%2Fsecret_key/thumbnail",
    "/api/images/-1/thumbnail",
    "/assets/../../../etc/passwd",
    "/assets/..%2F..%2Fapi.py",
    "/api/images/%2e%2e/thumbnail",
])
def test_path_traversal_on_file_routes_is_404(client, path):
    resp = client.get(path)
    assert resp.status_code == 404
    assert b"root:" not in resp.data and b"import" not in resp.data


# ---- search ----------------------------------------------------------------------------------

def test_similar_by_id(client, pets):
    cat = pets["cat.1.jpg"]
    data = client.get(f"/api/images/{cat}/similar?k=5").get_json()
    assert data["backbone"] == SPACE and data["query"]["image_id"] == cat and len(data["results"]) == 5
    scores = [h["score"] for h in data["results"]]
    assert scores == sorted(scores, reverse=True) and cat not in [h["image_id"] for h in data["results"]]
    assert sum(h["label"] == "cats" for h in data["results"]) >= 4
    assert all(h["thumbnail_url"] == f"/api/images/{h['image_id']}/thumbnail" for h in data["results"])
    dogs = client.get(f"/api/images/{cat}/similar?k=10&label=dogs").get_json()["results"]
    assert dogs and all(h["label"] == "dogs" for h in dogs)
    assert_error(client.get(f"/api/images/{cat}/similar?k=0"), 400, "invalid_input", "k")
    assert_error(client.get(f"/api/images/{cat}/similar?k=lots"), 400, "invalid_input", "k")
    assert_error(client.get(f"/api/images/{cat}/similar?backbone=non%20sense"), 400, "invalid_input", "backbone")
    assert_error(client.get(f"/api/images/{cat}/similar?backbone=nonsense"), 404, "not_found", "backbone")  # imported vectors' name?
    assert_error(client.get(f"/api/images/{cat}/similar?backbone=resnet50"), 404, "not_found", "backbone")
    assert_error(client.get("/api/images/424242/similar"), 404, "not_found", "image_id")


def test_search_by_upload(client, pets):
    query = dataset_files(CATS_DOGS / "cats", 1, start=150)[0]
    resp = client.post("/api/collections/pets/search", data={"image": (io.BytesIO(query.read_bytes()), query.name), "k": "6"},
                       content_type="multipart/form-data")
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()
    assert data["backbone"] == SPACE and len(data["results"]) == 6 and data["query"]["filename"] == query.name
    assert sum(h["label"] == "cats" for h in data["results"][:3]) >= 2
    resp = client.post("/api/collections/pets/search?label=dogs", data={"image": (io.BytesIO(query.read_bytes()), "q.jpg")},
                       content_type="multipart/form-data")
    assert all(h["label"] == "dogs" for h in resp.get_json()["results"])


def test_search_with_the_image_as_the_request_body(client, pets):
    query = dataset_files(CATS_DOGS / "cats", 1, start=150)[0].read_bytes()
    multipart = client.post("/api/collections/pets/search", data={"image": (io.BytesIO(query), "q.jpg"), "k": "5"},
                            content_type="multipart/form-data").get_json()
    resp = client.post("/api/collections/pets/search?k=5&filename=held-out.jpg", data=query, content_type="image/jpeg")
    assert resp.status_code == 200, resp.get_json()
    raw = resp.get_json()
    assert raw["query"] == {"filename": "held-out.jpg", "bytes": len(query)} and raw["k"] == 5
    assert [h["image_id"] for h in raw["results"]] == [h["image_id"] for h in multipart["results"]]
    resp = client.post("/api/collections/pets/search?label=dogs", data=query, content_type="application/octet-stream")
    assert resp.status_code == 200 and {h["label"] for h in resp.get_json()["results"]} == {"dogs"}
    assert resp.get_json()["query"]["filename"] is None
    err = assert_error(client.post("/api/collections/pets/search?filename=notes.jpg", data=b"plain text, not a photo",
                                   content_type="image/jpeg"), 400, "bad_image", "image")
    assert err["details"]["file"] == "notes.jpg"
    assert_error(client.post("/api/collections/pets/search", data=b"", content_type="image/png"), 400, "invalid_input", "image")
    assert_error(client.post("/api/collections/pets/search?k=0", data=query, content_type="image/jpeg"), 400, "invalid_input", "k")
    assert_error(client.post("/api/collections/nope/search", data=query, content_type="image/jpeg"), 404, "not_found", "collection")
    assert_error(client.post("/api/collections/pets/search", data=query, content_type="text/plain"), 400, "invalid_input", "image")


def test_search_refuses_bad_uploads(client, pets):
    def post(data, name="q.jpg", **fields):
        return client.post("/api/collections/pets/search", data={"image": (io.BytesIO(data), name), **fields},
                           content_type="multipart/form-data")

    err = assert_error(post(b"this is not an image at all"), 400, "bad_image", "image")
    assert err["details"]["file"] == "q.jpg" and "not" in err["details"]["reason"]
    err = assert_error(post(png_header_only(30000, 30000), "bomb.png"), 400, "bad_image", "image")
    assert "pixels" in err["details"]["reason"] and "limit" in err["details"]["reason"]
    assert_error(post(b""), 400, "bad_image")
    assert_error(post(jpeg_bytes()[:200]), 400, "bad_image")
    assert_error(post(jpeg_bytes(), k="0"), 400, "invalid_input", "k")
    assert_error(post(jpeg_bytes(), backbone="nope"), 400, "invalid_input", "backbone")
    assert_error(client.post("/api/collections/pets/search", data={"k": "3"}, content_type="multipart/form-data"),
                 400, "invalid_input", "image")
    assert_error(client.post("/api/collections/nope/search", data={"image": (io.BytesIO(jpeg_bytes()), "q.jpg")},
                             content_type="multipart/form-data"), 404, "not_found", "collection")


# ---- labels ----------------------------------------------------------------------------------

def test_save_labels_for_a_selection(client, pets):
    chosen = [pets["cat.1.jpg"], pets["dog.1.jpg"], pets["dog.2.jpg"]]
    resp = client.post("/api/collections/pets/labels", json={"image_ids": chosen, "label": "lasso-1"})
    assert resp.status_code == 200 and resp.get_json() == {"collection": "pets", "label": "lasso-1", "updated": 3}
    listed = client.get("/api/collections/pets/images?label=lasso-1").get_json()
    assert sorted(i["id"] for i in listed["images"]) == sorted(chosen)
    # the label filter of similar-by-id sees it at once
    hits = client.get(f"/api/images/{pets['cat.2.jpg']}/similar?label=lasso-1").get_json()["results"]
    assert sorted(h["image_id"] for h in hits) == sorted(chosen)
    assert client.post("/api/collections/pets/labels", json={"image_ids": chosen[:1], "label": None}).get_json()["updated"] == 1
    assert client.get(f"/api/images/{chosen[0]}").get_json()["label"] is None
    err = assert_error(client.post("/api/collections/pets/labels", json={"image_ids": [chosen[1], 987654], "label": "x"}),
                       404, "not_found", "image_ids")
    assert err["details"]["missing"] == [987654]
    assert client.get(f"/api/images/{chosen[1]}").get_json()["label"] == "lasso-1"  # nothing half-applied
    assert_error(client.post("/api/collections/pets/labels", json={"image_ids": [], "label": "x"}), 400, field="image_ids")
    assert_error(client.post("/api/collections/pets/labels", json={"image_ids": ["1"], "label": "x"}), 400, field="image_ids")
    assert_error(client.post("/api/collections/pets/labels", json={"image_ids": chosen}), 400, field="label")
    assert_error(client.post("/api/collections/pets/labels", json={"image_ids": chosen, "label": "x" * 201}), 400, field="label")
    assert_error(client.post("/api/collections/nope/labels", json={"image_ids": chosen, "label": "x"}), 404)


# ---- ingest uploads and zip safety ----------------------------------------------------------

def test_ingest_upload_files_runs_in_background(client, app, settings):
    cats = dataset_files(CATS_DOGS / "cats", 3)
    files = [(io.BytesIO(p.read_bytes()), f"cats/{p.name}") for p in cats] + [(io.BytesIO(b"not an image"), "broken.jpg")]
    resp = client.post("/api/collections/uploads/ingest", data={"files": files, "labels": "folders"},
                       content_type="multipart/form-data")
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "queued" and body["total"] == 4 and resp.headers["Location"] == body["status_url"]
    job = wait_job(client, body["job_id"])
    assert job["status"] == "done", job
    assert (job["total"], job["processed"], job["added"], job["failed"]) == (4, 4, 3, 1)
    assert job["errors"][0]["file"].endswith("broken.jpg") and job["rate"] > 0 and job["eta_seconds"] == 0
    assert job["started_at"] and job["finished_at"] and job["collection"] == "uploads"
    staged = settings.home / "uploads" / str(body["job_id"])
    deadline = time.monotonic() + 30
    while staged.exists() and time.monotonic() < deadline:  # removed as the job ends (retention 0)
        time.sleep(0.1)
    assert not staged.exists()
    listed = client.get("/api/collections/uploads/images?label=cats").get_json()
    assert listed["total"] == 3
    assert sorted(i["path"] for i in listed["images"]) == sorted(f"cats/{p.name}" for p in cats)  # as uploaded
    # the new index is used at once
    hits = client.get(f"/api/images/{listed['images'][0]['id']}/similar?k=2").get_json()["results"]
    assert len(hits) == 2
    # the same content again adds no image (content hashes); its uploaded name is kept as a path of the image
    resp = client.post("/api/collections/uploads/ingest", data={"files": [(io.BytesIO(cats[0].read_bytes()), "again.jpg")]},
                       content_type="multipart/form-data")
    job = wait_job(client, resp.get_json()["job_id"])
    assert (job["status"], job["added"], job["skipped"], job["duplicates"]) == ("done", 0, 0, 1)
    first = next(i for i in listed["images"] if i["path"] == f"cats/{cats[0].name}")
    assert [f["path"] for f in client.get(f"/api/images/{first['id']}").get_json()["files"]] == [first["path"], "again.jpg"]
    jobs = client.get("/api/jobs?collection=uploads").get_json()["jobs"]
    assert [j["id"] for j in jobs] == sorted((j["id"] for j in jobs), reverse=True) and len(jobs) == 2
    assert_error(client.get("/api/jobs/99999"), 404, "not_found", "job_id")


def test_ingest_zip_with_folder_labels(client, settings):
    entries = {f"pets/{cls}/{p.name}": p.read_bytes() for cls in ("cats", "dogs") for p in dataset_files(CATS_DOGS / cls, 2)}
    entries["pets/README.txt"] = b"hello"
    entries["__MACOSX/pets/._cat.1.jpg"] = b"junk"
    resp = client.post("/api/collections/zipped/ingest",
                       data={"archive": (io.BytesIO(zip_bytes(entries)), "pets.zip"), "labels": "folders"},
                       content_type="multipart/form-data")
    assert resp.status_code == 202, resp.get_json()
    assert resp.get_json()["total"] == 4 and resp.get_json()["ignored"] == ["pets/README.txt"]
    job = wait_job(client, resp.get_json()["job_id"])
    assert job["status"] == "done" and job["added"] == 4, job
    labels = {(l["label"], l["count"]) for l in client.get("/api/collections/zipped").get_json()["labels"]}
    assert labels == {("cats", 2), ("dogs", 2)}
    # staging folders never linger after a refused upload
    assert not [p for p in (settings.home / "uploads").iterdir() if p.name.startswith(".staging")]


def _zip_with_symlink() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link.jpg")
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def _zip_lying_about_size(real: bytes, claimed: int) -> bytes:
    """A zip whose headers claim ``claimed`` bytes for an entry that really inflates to ``len(real)``."""
    data = bytearray(zip_bytes({"a.bmp": real}))
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = data.find(sig)
        data[pos + offset:pos + offset + 4] = struct.pack("<I", claimed)
    return bytes(data)


@pytest.mark.parametrize("case", ["dotdot", "absolute", "backslash", "symlink", "ratio", "entries", "total", "lying", "not_zip", "empty"])
def test_ingest_refuses_unsafe_zip(make_app, settings, case):
    app = make_app(SIMSEARCH_ZIP_MAX_ENTRIES=50, SIMSEARCH_ZIP_MAX_BYTES=30 << 20)
    client = app.test_client()
    img = jpeg_bytes()
    archive = {
        "dotdot": lambda: zip_bytes({"ok.jpg": img, "../../evil.jpg": img}),
        "absolute": lambda: zip_bytes({"/tmp/evil.jpg": img}),
        "backslash": lambda: zip_bytes({"..\\..\\evil.jpg": img}),
        "symlink": _zip_with_symlink,
        "ratio": lambda: zip_bytes({"bomb.bmp": b"\x00" * (20 << 20)}),  # 20 MB of zeros: ~1000:1
        "entries": lambda: zip_bytes({f"{i}.jpg": img for i in range(51)}),
        "total": lambda: zip_bytes({f"{i}.bmp": bytes(range(256)) * (40_000 + i) for i in range(4)}, compression=zipfile.ZIP_STORED),
        "lying": lambda: _zip_lying_about_size(b"\x00" * (3 << 20), 1000),
        "not_zip": lambda: b"PK but not really a zip",
        "empty": lambda: zip_bytes({"notes.txt": b"no images here"}),
    }[case]()
    resp = client.post("/api/collections/z/ingest", data={"archive": (io.BytesIO(archive), "x.zip")},
                       content_type="multipart/form-data")
    err = assert_error(resp, 400, "invalid_input", "archive")
    reason = (err.get("details") or {}).get("reason", "")
    expected = {"dotdot": "path traversal", "absolute": "absolute path", "backslash": "path traversal", "symlink": "symlink",
                "ratio": "zip bomb", "entries": "zip bomb", "total": "zip bomb", "lying": None, "not_zip": None, "empty": None}[case]
    if expected:
        assert reason == expected, err
    if case == "lying":
        assert "zip bomb" in err["message"] or "cannot be extracted" in err["message"], err
    # nothing was written outside (or left inside) the uploads folder, and no job was created
    assert not (settings.home / "evil.jpg").exists() and not (settings.home.parent / "evil.jpg").exists()
    uploads = settings.home / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())
    assert client.get("/api/jobs").get_json()["jobs"] == []


def test_ingest_option_errors(client):
    def post(**data):
        return client.post("/api/collections/c/ingest", data=data, content_type="multipart/form-data")

    img = jpeg_bytes()
    assert_error(post(), 400, "invalid_input", "files")
    assert_error(post(files=[(io.BytesIO(img), "a.jpg")], backbone="no_such_net"), 400, "invalid_input", "backbone")
    assert_error(post(files=[(io.BytesIO(img), "a.jpg")], labels="filenames"), 400, "invalid_input", "labels")
    assert_error(post(files=[(io.BytesIO(img), "a.jpg")], batch_size="0"), 400, "invalid_input", "batch_size")
    assert_error(post(files=[(io.BytesIO(img), "a.jpg")], archive=(io.BytesIO(img), "b.zip")), 400, "invalid_input", "archive")
    assert_error(client.post("/api/collections/bad name!/ingest", data={"files": [(io.BytesIO(img), "a.jpg")]},
                             content_type="multipart/form-data"), 400, "invalid_input", "collection")
    assert_error(client.post("/api/collections/c/ingest", data=b"raw", content_type="application/octet-stream"), 400)
    assert client.get("/api/jobs").get_json()["jobs"] == []


def test_ingest_server_path_needs_admin_opt_in(make_app, tmp_path):
    folder = copy_subset(tmp_path / "allowed" / "pets", 2)
    outside = copy_subset(tmp_path / "outside", 1)
    (folder / "cats" / "escape.jpg").symlink_to(next((outside / "cats").iterdir()))

    plain = make_app().test_client()
    assert_error(plain.post("/api/collections/srv/ingest", json={"server_path": str(folder)}), 403, "forbidden", "server_path")

    client = make_app(SIMSEARCH_ALLOW_SERVER_PATHS=str(tmp_path / "allowed")).test_client()
    assert_error(client.post("/api/collections/srv/ingest", json={"server_path": str(outside)}), 403, "forbidden")
    assert_error(client.post("/api/collections/srv/ingest", json={"server_path": "../outside"}), 403, "forbidden")
    assert_error(client.post("/api/collections/srv/ingest", json={"server_path": str(tmp_path / "allowed" / "nope")}), 400)
    assert_error(client.post("/api/collections/srv/ingest", json={"server_path": 42}), 400, field="server_path")
    resp = client.post("/api/collections/srv/ingest", json={"server_path": "pets", "labels": "folders"})
    assert resp.status_code == 202, resp.get_json()
    assert resp.get_json()["total"] == 4 and any("escape.jpg" in i for i in resp.get_json()["ignored"])
    job = wait_job(client, resp.get_json()["job_id"])
    assert job["status"] == "done" and job["added"] == 4
    paths = [i["path"] for i in client.get("/api/collections/srv/images").get_json()["images"]]
    assert sorted(p.split("/")[0] for p in paths) == ["cats", "cats", "dogs", "dogs"]  # inside the folder, not absolute


# ---- analysis --------------------------------------------------------------------------------

def test_round_significant_and_compact_map():
    from simsearch.web.api.analysis import compact_map, round_significant

    assert round_significant([12.345678, -3.14159, 0.000123]) == [12.35, -3.14, 0.0]
    assert round_significant([0.0123456, 0.5]) == [0.0123, 0.5]  # 4 digits relative to the largest value
    assert round_significant([]) == []
    assert round_significant([float("nan"), 1.23456]) == [None, 1.235]
    out = compact_map({"ids": [1, 2], "x": [1.234567, 2.0], "y": [-0.5, 9.87654], "labels": ["a", None], "n": 2})
    assert out == {"ids": [1, 2], "x": [1.235, 2.0], "y": [-0.5, 9.877], "labels": ["a", None], "n": 2}


def test_analysis_endpoints(client, pets):
    cl = analysis_result(client, "/api/collections/pets/clusters?k=2").get_json()
    assert cl["k"] == 2 and sum(c["size"] for c in cl["clusters"]) == 12
    assert analysis_result(client, "/api/collections/pets/clusters").get_json()["backbone"] == SPACE
    resp = analysis_result(client, "/api/collections/pets/map", headers={"Accept-Encoding": "gzip"})
    raw = gzip.decompress(resp.data) if resp.headers.get("Content-Encoding") == "gzip" else resp.data
    m = json.loads(raw)
    assert len(m["ids"]) == len(m["x"]) == len(m["y"]) == len(m["labels"]) == 12
    assert all(len(repr(v).replace("-", "").replace(".", "").lstrip("0")) <= 5 for v in m["x"] + m["y"])
    # the same map as typed arrays: ids, labels and clusters exact, coordinates to 1/65,535 of the range
    import numpy as np

    from simsearch.web import map_binary

    binary = analysis_result(client, "/api/collections/pets/map.bin", headers={"Accept-Encoding": "gzip"})
    assert binary.mimetype == "application/octet-stream" and binary.headers["Content-Encoding"] == "gzip"
    b = map_binary.decode(gzip.decompress(binary.data))
    assert b["n"] == 12 and b["ids"].tolist() == m["ids"] and b["labels"] == m["labels"]
    assert b["clusters"].tolist() == m["clusters"] and b["backbone"] == SPACE
    for axis in ("x", "y"):
        span = max(m[axis]) - min(m[axis])
        assert np.abs(b[axis] - np.array(m[axis])).max() <= span * 1e-3  # JSON is rounded to 4 digits
    raw = gzip.decompress(binary.data)
    head_end = 12 + int.from_bytes(raw[8:12], "little")
    assert len(raw) - (head_end + (-head_end) % 8) == 12 * 12  # 12 bytes a point
    assert_error(client.get("/api/collections/pets/map.bin?backbone=resnet50"), 404, "not_found", "backbone")
    ev = analysis_result(client, "/api/collections/pets/evaluation").get_json()
    assert ev["backbone"] == SPACE and ev["n_images"] == 12
    assert_error(client.get("/api/collections/pets/clusters?k=1"), 400, "invalid_input", "k")
    assert_error(client.get("/api/collections/pets/clusters?k=many"), 400, "invalid_input", "k")
    assert_error(client.get("/api/collections/pets/map?backbone=no%20pe"), 400, "invalid_input", "backbone")
    assert_error(client.get("/api/collections/pets/map?backbone=nope"), 404, "not_found", "backbone")  # could be imported vectors' name
    assert_error(client.get("/api/collections/pets/map?backbone=resnet50"), 404, "not_found", "backbone")
    assert_error(client.get("/api/collections/nope/evaluation"), 404, "not_found", "collection")
    own = analysis_result(client, "/api/collections/pets/comparison").get_json()  # default: the collection's own backbones
    assert [p["backbone"] for p in own["backbones"]] == [SPACE] and own["backbones"][0]["available"] is True
    assert_error(client.get("/api/collections/pets/comparison?backbones=efficientnet_lite0,no%20pe"), 400, field="backbones")  # the query parameter at fault
    assert_error(client.get("/api/collections/pets/comparison?backbones=efficientnet_lite0,nope"), 404, field="backbones")  # could be a derived space
    cmp = analysis_result(client, "/api/collections/pets/comparison?backbones=efficientnet_lite0,efficientnet_lite0@max").get_json()
    panels = {p["backbone"]: p for p in cmp["backbones"]}
    assert panels[SPACE]["available"] is True and panels["efficientnet_lite0@max"]["available"] is False


def test_large_json_is_gzipped_when_accepted(client, pets):
    plain = client.get("/api/collections/pets/images?per_page=100")
    zipped = client.get("/api/collections/pets/images?per_page=100", headers={"Accept-Encoding": "gzip, deflate"})
    assert "Content-Encoding" not in plain.headers and zipped.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(zipped.data)) == plain.get_json()
    assert "Accept-Encoding" in zipped.headers["Vary"]


# ---- API keys and CSRF -----------------------------------------------------------------------

@pytest.fixture
def keyed(make_app, settings):
    return make_app(settings.replace(api_keys=("key-one", "key-two"))).test_client()


def test_api_keys_guard_every_write(keyed):
    assert keyed.get("/api/collections").status_code == 401  # reads need a key too (tests/test_security_access.py)
    assert keyed.get("/api/health").status_code == 200
    writes = [("post", "/api/collections", {"json": {"name": "a"}}),
              ("delete", "/api/collections/a", {}),
              ("post", "/api/collections/a/labels", {"json": {"image_ids": [1], "label": "x"}}),
              ("post", "/api/collections/a/ingest", {"json": {"server_path": "/"}}),
              ("post", "/api/collections/a/search", {"data": {}}),
              ("delete", "/api/images/1", {})]
    for method, url, kw in writes:
        assert_error(getattr(keyed, method)(url, **kw), 401, "unauthorized")
        resp = getattr(keyed, method)(url, headers={"Authorization": "Bearer wrong"}, **kw)
        assert_error(resp, 401, "unauthorized")
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert keyed.post("/api/collections", json={"name": "a"}, headers={"Authorization": "Bearer key-one"}).status_code == 201
    assert keyed.post("/api/collections", json={"name": "b"}, headers={"X-API-Key": "key-two"}).status_code == 201
    assert keyed.delete("/api/collections/a", headers={"X-API-Key": "key-one"}).status_code == 200


def _token_from(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_browser_writes_need_the_csrf_token(client):
    # A browser session (it has our cookie) must send the token; so must any request with an Origin.
    page = client.get("/login")
    assert page.status_code == 200
    token = _token_from(page.get_data(as_text=True))
    err = assert_error(client.post("/api/collections", json={"name": "a"}), 403, "csrf_failed")
    assert "CSRF" in err["message"]
    assert_error(client.post("/api/collections", json={"name": "a"}, headers={"X-CSRF-Token": "forged"}), 403, "csrf_failed")
    assert client.post("/api/collections", json={"name": "a"}, headers={"X-CSRF-Token": token}).status_code == 201
    # a form post carries it as a field
    resp = client.post("/api/collections/a/search", data={"csrf_token": token}, content_type="multipart/form-data")
    assert_error(resp, 400, "invalid_input", "image")  # got past CSRF, to the missing image
    assert_error(client.post("/api/collections/a/search", data={"csrf_token": "nope"}, content_type="multipart/form-data"),
                 403, "csrf_failed")


def test_cross_site_requests_are_refused(app):
    fresh = app.test_client()  # no cookie at all: a cross-site form post from another page
    resp = fresh.post("/api/collections", json={"name": "a"}, headers={"Origin": "https://evil.example"})
    assert_error(resp, 403, "csrf_failed")
    resp = fresh.post("/api/collections/a/ingest", data={"files": [(io.BytesIO(jpeg_bytes()), "a.jpg")]},
                      content_type="multipart/form-data", headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert_error(resp, 403, "csrf_failed")  # same origin, but no token
    # programs (no Origin, no cookie) need nothing when no API keys are configured
    assert fresh.post("/api/collections", json={"name": "a"}).status_code == 201


def test_login_with_api_key_then_session_writes(keyed):
    token = _token_from(keyed.get("/login").get_data(as_text=True))
    assert_error(keyed.post("/api/collections", json={"name": "a"}, headers={"X-CSRF-Token": token}), 401, "unauthorized")
    resp = keyed.post("/login", data={"key": "wrong", "csrf_token": token})
    assert resp.status_code == 401
    refused = keyed.post("/login", data={"key": "key-one"})  # the login form is CSRF-protected too (an HTML page)
    assert refused.status_code == 403 and b"CSRF" in refused.data
    resp = keyed.post("/login", data={"key": "key-one", "csrf_token": token, "next": "//evil.example/x"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
    with keyed.session_transaction() as sess:
        assert "key-one" not in json.dumps(dict(sess))  # the session keeps a digest, never the key
        token = sess["csrf_token"]  # rotated at login
    assert keyed.post("/api/collections", json={"name": "a"}, headers={"X-CSRF-Token": token}).status_code == 201
    assert_error(keyed.post("/api/collections", json={"name": "b"}), 403, "csrf_failed")
    keyed.post("/logout", data={"csrf_token": token})
    with keyed.session_transaction() as sess:
        token = sess["csrf_token"]
    assert_error(keyed.post("/api/collections", json={"name": "c"}, headers={"X-CSRF-Token": token}), 401)


# ---- the OpenAPI document ---------------------------------------------------------------------

def _validator(spec: dict, schema: dict):
    from jsonschema import Draft202012Validator

    return Draft202012Validator({"$schema": "https://json-schema.org/draft/2020-12/schema",
                                 "components": spec["components"], "allOf": [schema]})


def check_documented(spec: dict, path: str, method: str, resp) -> None:
    op = spec["paths"][path][method]
    documented = op["responses"].get(str(resp.status_code))
    assert documented is not None, f"{method.upper()} {path} answered {resp.status_code}, not documented: {resp.get_data(as_text=True)[:300]}"
    content = documented.get("content")
    if not content:
        return
    assert resp.mimetype in content, (path, method, resp.mimetype)
    if resp.mimetype == "application/json":
        body = json.loads(gzip.decompress(resp.data) if resp.headers.get("Content-Encoding") == "gzip" else resp.data)
        errors = sorted(_validator(spec, content["application/json"]["schema"]).iter_errors(body), key=str)
        assert not errors, f"{method.upper()} {path}: {errors[0].message} at {list(errors[0].absolute_path)}"


def test_openapi_document_is_valid_and_rendered(client):
    from openapi_spec_validator import validate

    spec = client.get("/api/openapi.json").get_json()
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["schemas"]["Error"]["required"] == ["error"]
    app_rules = {r.rule.replace("<int:", "{").replace("<", "{").replace(">", "}") for r in client.application.url_map.iter_rules()}
    for path in spec["paths"]:
        assert path in app_rules, f"documented path {path} has no route"
    api_rules = {r for r in app_rules if r.startswith("/api/")}
    assert api_rules <= set(spec["paths"]), f"undocumented routes: {api_rules - set(spec['paths'])}"
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and docs.mimetype == "text/html"
    csp = docs.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "connect-src 'self'" in csp and "unsafe" not in csp
    html = docs.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html  # nothing from another origin
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all(not body.strip() for _attrs, body in scripts), "no inline script (the CSP forbids it)"
    linked = re.findall(r'(?:src|href)="(/api/docs/assets/[^"]+)"', html)
    assert "/api/docs/assets/swagger-ui-bundle.js" in linked and 'data-spec-url="/api/openapi.json"' in html
    for url in linked:
        asset = client.get(url)
        assert asset.status_code == 200 and asset.data, url
    assert_error(client.get("/api/docs/assets/..%2Fdocs.py"), 404, "not_found")
    assert_error(client.get("/api/docs/assets/swagger-editor.js"), 404, "not_found", "name")


def vectors_npz() -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, vectors=np.eye(3, 8, dtype=np.float32), keys=np.array(["a", "b", "c"]))
    return buf.getvalue()


def test_every_documented_path_answers_as_documented(client, app, pets):
    spec = client.get("/api/openapi.json").get_json()
    cat, dog = pets["cat.1.jpg"], pets["dog.3.jpg"]
    query = (CATS_DOGS / "cats" / "cat.1.jpg").read_bytes()
    job_id = client.get("/api/collections/pets").get_json()["recent_jobs"][0]["id"]
    requests = {
        ("/api/health", "get"): lambda: client.get("/api/health"),
        ("/api/backbones", "get"): lambda: client.get("/api/backbones"),
        ("/api/collections", "get"): lambda: client.get("/api/collections"),
        ("/api/collections", "post"): lambda: client.post("/api/collections", json={"name": "tmp", "description": "d"}),
        ("/api/collections/{name}", "get"): lambda: client.get("/api/collections/pets"),
        ("/api/collections/{name}", "patch"): lambda: client.patch("/api/collections/tmp", json={"name": "tmp2"}),
        ("/api/collections/{name}", "delete"): lambda: client.delete("/api/collections/tmp2"),
        ("/api/collections/{name}/images", "get"): lambda: client.get("/api/collections/pets/images?label=cats&page=1&per_page=3"),
        ("/api/collections/{name}/labels", "post"): lambda: client.post("/api/collections/pets/labels",
                                                                       json={"image_ids": [dog], "label": "dogs"}),
        ("/api/collections/{name}/search", "post"): lambda: client.post(
            "/api/collections/pets/search", data={"image": (io.BytesIO(query), "q.jpg"), "k": "3"},
            content_type="multipart/form-data"),
        ("/api/collections/{name}/search/examples", "post"): lambda: client.post(
            "/api/collections/pets/search/examples", json={"like": [cat], "unlike": [dog], "k": 3}),
        ("/api/collections/{name}/ingest", "post"): lambda: client.post(
            "/api/collections/pets/ingest", data={"files": [(io.BytesIO(query), "again.jpg")]}, content_type="multipart/form-data"),
        ("/api/jobs", "get"): lambda: client.get("/api/jobs?collection=pets&limit=5"),
        ("/api/jobs/{job_id}", "get"): lambda: client.get(f"/api/jobs/{job_id}"),
        ("/api/jobs/{job_id}/cancel", "post"): lambda: client.post(f"/api/jobs/{queued_job(app, 'pets')}/cancel"),
        ("/api/jobs/{job_id}/retry", "post"): lambda: client.post(f"/api/jobs/{failed_clusters_job(app, 'pets')}/retry"),
        ("/api/images/{image_id}", "get"): lambda: client.get(f"/api/images/{cat}"),
        ("/api/images/{image_id}", "patch"): lambda: client.patch(f"/api/images/{dog}", json={"name": "dog-renamed.jpg"}),
        ("/api/images/{image_id}", "delete"): lambda: client.delete(f"/api/images/{dog}"),
        ("/api/images/{image_id}/file", "get"): lambda: client.get(f"/api/images/{cat}/file"),
        ("/api/collections/{name}/clusters/name", "post"): lambda: analysis_result(
            client, "/api/collections/pets/clusters?k=2") and client.post(
            "/api/collections/pets/clusters/name", json={"k": 2, "cluster": 0, "name": "first"}),
        ("/api/collections/{name}/clusters/label", "post"): lambda: analysis_result(
            client, "/api/collections/pets/clusters?k=2") and client.post(
            "/api/collections/pets/clusters/label", json={"k": 2, "cluster": 1, "label": "second"}),
        ("/api/images/{image_id}/thumbnail", "get"): lambda: client.get(f"/api/images/{cat}/thumbnail"),
        ("/api/images/{image_id}/similar", "get"): lambda: client.get(f"/api/images/{cat}/similar?k=3&label=cats"),
        ("/api/collections/{name}/clusters", "get"): lambda: client.get("/api/collections/pets/clusters?k=auto"),
        ("/api/collections/{name}/map", "get"): lambda: client.get("/api/collections/pets/map",
                                                                  headers={"Accept-Encoding": "gzip"}),
        ("/api/collections/{name}/map.bin", "get"): lambda: client.get("/api/collections/pets/map.bin"),
        ("/api/collections/{name}/evaluation", "get"): lambda: client.get("/api/collections/pets/evaluation"),
        ("/api/collections/{name}/duplicates", "get"): lambda: client.get("/api/collections/pets/duplicates?tier=near"),
        ("/api/collections/{name}/duplicates/export", "get"): lambda: client.get(
            "/api/collections/pets/duplicates/export?tier=exact&format=csv"),
        ("/api/collections/{name}/duplicates/resolve", "post"): lambda: analysis_result(
            client, "/api/collections/pets/duplicates?tier=exact") and client.post(
            "/api/collections/pets/duplicates/resolve", json={"tier": "exact", "keep": "oldest"}),
        ("/api/collections/{name}/atlas/{space}/{tile}", "get"): lambda: (  # needs the map computed
            analysis_result(client, "/api/collections/pets/map"),
            client.get("/api/collections/pets/atlas/efficientnet_lite0/0-0-0"))[1],
        ("/api/collections/{name}/clusters/suggestions", "get"): lambda: (  # needs the clusters computed
            analysis_result(client, "/api/collections/pets/clusters?k=2"),
            client.get("/api/collections/pets/clusters/suggestions?k=2&cluster=0"))[1],
        ("/api/collections/{name}/selection", "post"): lambda: client.post(
            "/api/collections/pets/selection", json={"image_ids": [cat, dog], "format": "json"}),
        ("/api/collections/{name}/images/remove", "post"): lambda: client.post(
            "/api/collections/pets/images/remove", json={"image_ids": [pets["cat.6.jpg"]]}),
        ("/api/collections/{name}/embed", "post"): lambda: client.post(
            "/api/collections/pets/embed", json={"backbone": "efficientnet_lite0@max"}),
        ("/api/collections/{name}/reembed", "post"): lambda: client.post(
            "/api/collections/pets/reembed", json={"spaces": ["efficientnet_lite0@gem3"]}),
        ("/api/collections/{name}/features", "post"): lambda: client.post(
            "/api/collections/pets/features", json={"shard_size": 2}),
        ("/api/collections/{name}/comparison", "get"): lambda: client.get(
            "/api/collections/pets/comparison?backbones=efficientnet_lite0,mobilenet_v2"),
        ("/api/collections/{name}/vectors", "post"): lambda: client.post(
            "/api/collections/vec/vectors?backbone=clip-vit-b32", data=vectors_npz(), content_type="application/octet-stream"),
        ("/api/collections/{name}/vectors", "get"): lambda: client.get("/api/collections/pets/vectors"),
        ("/api/collections/{name}/tune", "post"): lambda: client.post(
            "/api/collections/pets/tune", json={"folds": 2, "variants": False, "set_default": False}),
        ("/api/collections/{name}/spaces", "get"): lambda: client.get("/api/collections/pets/spaces"),
        ("/api/collections/{name}/default-space", "put"): lambda: client.put(
            "/api/collections/pets/default-space", json={"space": "efficientnet_lite0"}),
        ("/api/collections/{name}/spaces/{space}", "delete"): lambda: client.delete(
            f"/api/collections/pets/spaces/{a_derived_space(app, 'pets')}"),
        ("/api/openapi.json", "get"): lambda: client.get("/api/openapi.json"),
        # another client: the page puts a CSRF token in a session cookie, which makes the client a browser
        ("/api/docs", "get"): lambda: app.test_client().get("/api/docs"),
        ("/api/docs/assets/{name}", "get"): lambda: client.get("/api/docs/assets/swagger-init.js"),
    }
    documented = {(p, m) for p, ops in spec["paths"].items() for m in ops}
    assert documented == set(requests), documented ^ set(requests)
    order = sorted(requests, key=lambda pm: pm[1] == "delete")  # deletions last
    for path, method in order:
        resp = requests[(path, method)]()
        assert resp.status_code < 300, (path, method, resp.status_code, resp.get_data(as_text=True)[:300])
        check_documented(spec, path, method, resp)
    for job in client.get("/api/jobs").get_json()["jobs"]:  # the ingest and the analyses started above
        wait_job(client, job["id"])
    # the analysis endpoints' 200 answers (their jobs done; recomputed since an image was deleted)
    for path in ("clusters", "map", "evaluation", "comparison"):
        args = "?backbones=efficientnet_lite0,mobilenet_v2" if path == "comparison" else ""
        resp = analysis_result(client, f"/api/collections/pets/{path}{args}")
        check_documented(spec, f"/api/collections/{{name}}/{path}", "get", resp)
    # and the documented errors answer in the documented shape
    errors = [
        ("/api/collections/{name}", "get", client.get("/api/collections/nope")),
        ("/api/collections", "post", client.post("/api/collections", json={"name": "pets"})),
        ("/api/collections", "post", client.post("/api/collections", json={"name": ""})),
        ("/api/collections/{name}/images", "get", client.get("/api/collections/pets/images?page=-1")),
        ("/api/images/{image_id}", "get", client.get("/api/images/77777")),
        ("/api/images/{image_id}/file", "get", client.get("/api/images/77777/file")),
        ("/api/collections/{name}/clusters/name", "post", client.post("/api/collections/pets/clusters/name",
                                                                      json={"k": 9, "cluster": 0, "name": "x"})),
        ("/api/collections/{name}/clusters/label", "post", client.post("/api/collections/pets/clusters/label",
                                                                       json={"k": 2, "cluster": 5, "label": "x"})),
        ("/api/images/{image_id}", "patch", client.patch(f"/api/images/{cat}", json={"name": "../x.jpg"})),
        ("/api/images/{image_id}", "patch", client.patch("/api/images/77777", json={"name": "x.jpg"})),
        ("/api/collections/{name}", "patch", client.patch("/api/collections/pets", json={"name": "vec"})),
        ("/api/collections/{name}", "patch", client.patch("/api/collections/nope", json={"name": "x"})),
        ("/api/images/{image_id}/thumbnail", "get", client.get("/api/images/77777/thumbnail")),
        ("/api/images/{image_id}/similar", "get", client.get(f"/api/images/{cat}/similar?k=99999")),
        ("/api/jobs/{job_id}", "get", client.get("/api/jobs/77777")),
        ("/api/collections/{name}/search", "post", client.post(
            "/api/collections/pets/search", data={"image": (io.BytesIO(b"nope"), "q.jpg")}, content_type="multipart/form-data")),
        ("/api/collections/{name}/ingest", "post", client.post("/api/collections/pets/ingest", json={"server_path": "/"})),
        ("/api/collections/{name}/labels", "post", client.post("/api/collections/pets/labels", json={"image_ids": [77777], "label": "x"})),
        ("/api/collections/{name}/clusters", "get", client.get("/api/collections/pets/clusters?k=0")),
        ("/api/collections/{name}/map", "get", client.get("/api/collections/pets/map?backbone=resnet50")),
        ("/api/collections/{name}/map.bin", "get", client.get("/api/collections/pets/map.bin?backbone=resnet50")),
        ("/api/collections/{name}/evaluation", "get", client.get("/api/collections/nope/evaluation")),
        ("/api/collections/{name}/comparison", "get", client.get("/api/collections/pets/comparison?backbones=x,y")),
        ("/api/collections/{name}/vectors", "post", client.post("/api/collections/vec/vectors?backbone=clip-vit-b32",
                                                                data=b"nope", content_type="application/octet-stream")),
        ("/api/collections/{name}/vectors", "get", client.get("/api/collections/nope/vectors")),
    ]
    for path, method, resp in errors:
        assert resp.status_code >= 400
        check_documented(spec, path, method, resp)
