"""An image's original file (``GET /api/images/<id>/file``), changing one image's label (``PATCH
/api/images/<id>``) and folder uploads whose multipart names carry the folder (``daisy/1.jpg``)."""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.conftest import CATS_DOGS, FLOWERS, copy_subset, dataset_files
from tests.helpers.api import assert_error, wait_job

SPACE = "efficientnet_lite0"


def ingest_folder(app, folder: Path, collection: str = "pets"):
    from simsearch.ingest import Ingester, files_from_folder

    files, _ = files_from_folder(folder, labels="folders")
    return Ingester(app.extensions["simsearch"], spaces=[SPACE]).run(collection, files, source=str(folder))


def images_by_name(client, collection: str = "pets") -> dict[str, dict]:
    page = client.get(f"/api/collections/{collection}/images?per_page=100").get_json()
    return {Path(i["path"]).name: i for i in page["images"]}


@pytest.fixture
def folder_app(make_app, tmp_path):
    """An app with a collection ingested from a folder on the server (the files stay there):
    2 cats, 2 dogs (JPEG) and one PNG of a cat."""
    app = make_app()
    root = copy_subset(tmp_path / "pets", 2)
    src = dataset_files(CATS_DOGS / "cats", 1, start=10)[0]
    PILImage.open(src).convert("RGB").save(root / "cats" / "as-png.png")
    report = ingest_folder(app, root)
    assert report.added == 5
    app.root = root
    return app


def test_file_streams_the_original_typed_by_its_format(folder_app):
    client = folder_app.test_client()
    images = images_by_name(client)
    jpg_name = next(n for n in images if n.endswith(".jpg"))
    jpg = images[jpg_name]
    detail = client.get(f"/api/images/{jpg['id']}").get_json()
    assert detail["file_url"] == f"/api/images/{jpg['id']}/file"
    resp = client.get(detail["file_url"])
    assert resp.status_code == 200
    assert resp.mimetype == "image/jpeg"
    original = (folder_app.root / jpg["label"] / jpg_name).read_bytes()
    assert resp.data == original  # byte for byte, larger than the thumbnail
    assert len(resp.data) > len(client.get(f"/api/images/{jpg['id']}/thumbnail").data)
    assert resp.headers["ETag"].strip('"') == hashlib.sha256(original).hexdigest()
    assert resp.headers["Content-Disposition"].startswith("inline") and jpg_name in resp.headers["Content-Disposition"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in resp.headers["Content-Security-Policy"]
    assert client.get(detail["file_url"], headers={"If-None-Match": resp.headers["ETag"]}).status_code == 304
    with PILImage.open(io.BytesIO(resp.data)) as im:
        assert im.size == (detail["width"], detail["height"]) and max(im.size) > 256

    png = images["as-png.png"]
    resp = client.get(f"/api/images/{png['id']}/file")
    assert resp.status_code == 200 and resp.mimetype == "image/png"
    assert resp.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_file_errors_name_the_reason(folder_app, tmp_path):
    client = folder_app.test_client()
    images = images_by_name(client)
    assert_error(client.get("/api/images/987654/file"), 404, "not_found", "image_id")
    assert_error(client.get("/api/images/0/file"), 404)
    assert_error(client.get("/api/images/1/file?x=1"), 400)

    names = sorted(n for n in images if n.endswith(".jpg"))
    # deleted from disk: 410, saying so
    gone = images[names[0]]
    (folder_app.root / gone["label"] / names[0]).unlink()
    err = assert_error(client.get(f"/api/images/{gone['id']}/file"), 410, "gone", "image_id")
    assert "no longer at the path" in err["message"] and str(folder_app.root) not in err["message"]
    # replaced by other content (or a link re-pointed elsewhere): never served, 410
    changed = images[names[1]]
    path = folder_app.root / changed["label"] / names[1]
    path.write_bytes(path.read_bytes() + b"x")
    err = assert_error(client.get(f"/api/images/{changed['id']}/file"), 410, "gone")
    assert "changed since it was ingested" in err["message"]
    linked = images[names[2]]
    path = folder_app.root / linked["label"] / names[2]
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    path.unlink()
    os.symlink(secret, path)
    resp = client.get(f"/api/images/{linked['id']}/file")
    assert_error(resp, 410, "gone")
    assert b"top secret" not in resp.data
    # a directory where the file was
    path.unlink()
    path.mkdir()
    assert_error(client.get(f"/api/images/{linked['id']}/file"), 410, "gone")


def test_file_of_imported_vectors_and_failed_images(make_app, tmp_path):
    from simsearch.ops.vectors_io import import_vectors

    app = make_app()
    ctx = app.extensions["simsearch"]
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    np.savez(tmp_path / "v.npz", vectors=x, keys=np.array(["/etc/passwd", "b.jpg", "c.jpg"]))
    import_vectors(ctx, tmp_path / "v.npz", "ext", "clip-test")
    client = app.test_client()
    page = client.get("/api/collections/ext/images").get_json()["images"]
    imported = next(i for i in page if i["path"].endswith("passwd"))
    err = assert_error(client.get(f"/api/images/{imported['id']}/file"), 404, "not_found", "image_id")
    assert "import-vectors" in err["message"]

    # a file that failed to decode at ingest: 409, with the decoder's reason
    folder = tmp_path / "bad" / "things"
    folder.mkdir(parents=True)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    ingest_folder(app, tmp_path / "bad", "bad")
    failed = client.get("/api/collections/bad/images?status=failed").get_json()["images"][0]
    err = assert_error(client.get(f"/api/images/{failed['id']}/file"), 409, "conflict", "image_id")
    assert "could not be decoded" in err["message"]


def test_uploaded_originals_are_gone_unless_kept(make_app, settings):
    cat = dataset_files(CATS_DOGS / "cats", 1)[0]
    for hours, expected in ((0, 410), (2, 200)):
        app = make_app(settings.replace(upload_retention_hours=hours, keep_originals=False))  # kept: test_originals_store
        client = app.test_client()
        coll = f"up{hours}"
        resp = client.post(f"/api/collections/{coll}/ingest", data={"files": [(io.BytesIO(cat.read_bytes()), "cats/a.jpg")]},
                           content_type="multipart/form-data")
        assert wait_job(client, resp.get_json()["job_id"], timeout=240)["status"] == "done"
        image = client.get(f"/api/collections/{coll}/images").get_json()["images"][0]
        resp = client.get(f"/api/images/{image['id']}/file")
        if expected == 410:
            deadline = time.monotonic() + 30  # the job's end deletes the upload
            while resp.status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.1)
                resp = client.get(f"/api/images/{image['id']}/file")
            err = assert_error(resp, 410, "gone")
            assert "SIMSEARCH_UPLOAD_RETENTION_HOURS" in err["message"] and str(settings.home) not in err["message"]
        else:
            assert resp.status_code == 200 and resp.data == cat.read_bytes() and resp.mimetype == "image/jpeg"
            assert "a.jpg" in resp.headers["Content-Disposition"] and str(settings.home) not in resp.headers["Content-Disposition"]


def test_patch_changes_one_label(folder_app):
    client = folder_app.test_client()
    image = next(iter(images_by_name(client).values()))
    url = f"/api/images/{image['id']}"
    resp = client.patch(url, json={"label": "  favourite  "})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["label"] == "favourite" and body["id"] == image["id"] and body["file_url"].endswith("/file")
    assert client.get(url).get_json()["label"] == "favourite"
    listed = client.get("/api/collections/pets/images?label=favourite").get_json()
    assert [i["id"] for i in listed["images"]] == [image["id"]]
    assert client.patch(url, json={"label": None}).get_json()["label"] is None
    assert_error(client.patch(url, json={}), 400, field="name")  # nothing to change
    both = client.patch(url, json={"name": "renamed.jpg", "label": "both"}).get_json()
    assert both["path"].endswith("renamed.jpg") and both["label"] == "both"
    assert_error(client.patch(url, json={"label": ""}), 400, field="label")
    assert_error(client.patch(url, json={"label": "x" * 201}), 400, field="label")
    assert_error(client.patch(url, json={"label": "a", "other": 1}), 400)
    assert_error(client.patch("/api/images/987654", json={"label": "a"}), 404, "not_found")


def test_api_keys_guard_the_label_and_the_file(make_app, settings, tmp_path):
    """With keys set, the original and the thumbnail need a key like every read (issue 19); changing
    a label is a write (a key, or a signed-in browser session with its CSRF token)."""
    app = make_app(settings.replace(api_keys=("key-one",)))
    ingest_folder(app, copy_subset(tmp_path / "pets", 1))
    client = app.test_client()
    reader = app.test_client()
    reader.environ_base["HTTP_X_API_KEY"] = "key-one"
    image = next(iter(images_by_name(reader).values()))
    for what in ("thumbnail", "file"):
        assert_error(client.get(f"/api/images/{image['id']}/{what}"), 401, "unauthorized")
    thumb = client.get(f"/api/images/{image['id']}/thumbnail", headers={"X-API-Key": "key-one"})
    original = client.get(f"/api/images/{image['id']}/file", headers={"X-API-Key": "key-one"})
    assert thumb.status_code == original.status_code == 200
    assert_error(client.patch(f"/api/images/{image['id']}", json={"label": "x"}), 401, "unauthorized")
    assert_error(client.patch(f"/api/images/{image['id']}", json={"label": "x"}, headers={"X-API-Key": "nope"}), 401)
    ok = client.patch(f"/api/images/{image['id']}", json={"label": "x"}, headers={"Authorization": "Bearer key-one"})
    assert ok.status_code == 200 and ok.get_json()["label"] == "x"
    # a browser without the session's CSRF token is refused even with a session
    assert_error(client.patch(f"/api/images/{image['id']}", json={"label": "y"}, headers={"Origin": "http://localhost"}),
                 403)


def test_folder_upload_names_give_labels_and_are_sanitised(make_app, settings, tmp_path):
    """What a browser's folder upload sends: each file's path inside the chosen folder as its
    multipart name. Hostile names are cut down to their safe parts inside the job's folder."""
    app = make_app(settings.replace(upload_retention_hours=1))
    client = app.test_client()
    daisy, tulip, rose, dandelion = (dataset_files(FLOWERS / name, 1)[0] for name in ("daisy", "tulip", "rose", "dandelion"))
    files = [(io.BytesIO(daisy.read_bytes()), "flowers/daisy/1.jpg"),
             (io.BytesIO(tulip.read_bytes()), "../../tulip/2.jpg"),
             (io.BytesIO(rose.read_bytes()), "/etc/rose/3.jpg"),
             (io.BytesIO(dandelion.read_bytes()), "C:\\Users\\me\\dandelion\\4.jpg")]
    resp = client.post("/api/collections/garden/ingest", data={"files": files, "labels": "folders"},
                       content_type="multipart/form-data")
    assert resp.status_code == 202, resp.get_json()
    job = wait_job(client, resp.get_json()["job_id"], timeout=240)
    assert job["status"] == "done" and job["added"] == 4, job
    got = {i["path"]: i["label"] for i in client.get("/api/collections/garden/images").get_json()["images"]}
    windows = got.pop("CUsersmedandelion4.jpg")  # a quoted-string's backslashes are escapes: one flat, safe name
    assert windows is None
    assert got == {"flowers/daisy/1.jpg": "daisy", "tulip/2.jpg": "tulip", "etc/rose/3.jpg": "rose"}, got
    uploads = settings.home / "uploads" / str(job["id"])
    stored = sorted(p.relative_to(uploads).as_posix() for p in uploads.rglob("*.jpg"))
    assert len(stored) == 4 and all(not p.startswith(("/", "..")) for p in stored)
    assert not (settings.home / "tulip").exists() and not (tmp_path / "tulip").exists()
    # the label option without folders: loose files get no label from it
    resp = client.post("/api/collections/loose/ingest", data={"files": [(io.BytesIO(daisy.read_bytes()), "1.jpg")],
                                                              "labels": "folders"}, content_type="multipart/form-data")
    assert wait_job(client, resp.get_json()["job_id"], timeout=240)["status"] == "done"
    assert client.get("/api/collections/loose/images").get_json()["images"][0]["label"] is None
