"""Kept originals of uploads (``SIMSEARCH_KEEP_ORIGINALS``): an upload's job end keeps the files
of the images it stored in ``<home>/originals/<hh>/<hash>``, ``GET /api/images/<id>/file`` serves
them after the upload folder is gone, and deleting the last image with that content removes them."""

from __future__ import annotations

import hashlib
import io
import shutil
import time
from pathlib import Path

from PIL import Image as PILImage

from tests.conftest import CATS_DOGS, dataset_files
from tests.helpers.api import assert_error, wait_job

SPACE = "efficientnet_lite0"


def kept_file(settings, data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    return settings.home / "originals" / digest[:2] / digest


def upload(client, collection: str, files: list[tuple[bytes, str]]) -> dict:
    resp = client.post(f"/api/collections/{collection}/ingest",
                       data={"files": [(io.BytesIO(data), name) for data, name in files]},
                       content_type="multipart/form-data")
    assert resp.status_code == 202, resp.get_data(as_text=True)[:500]
    job = wait_job(client, resp.get_json()["job_id"])
    assert job["status"] == "done", job
    folder = client.application.extensions["simsearch"].settings.home / "uploads" / str(job["id"])
    deadline = time.monotonic() + 30  # the job's end (just after 'done') keeps the originals, then deletes the upload
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not folder.exists()
    return job


def images(client, collection: str) -> dict[str, dict]:
    page = client.get(f"/api/collections/{collection}/images?per_page=100").get_json()
    return {Path(i["path"]).name: i for i in page["images"]}


def png_bytes(src: Path) -> bytes:
    out = io.BytesIO()
    PILImage.open(src).convert("RGB").save(out, format="PNG")
    return out.getvalue()


def test_upload_keeps_its_originals_and_serves_them(make_app, settings):
    cat, dog = dataset_files(CATS_DOGS / "cats", 1)[0], dataset_files(CATS_DOGS / "dogs", 1)[0]
    jpg, png = cat.read_bytes(), png_bytes(dog)
    app = make_app(settings)
    assert app.extensions["simsearch"].settings.keep_originals  # on by default
    client = app.test_client()
    upload(client, "kept", [(jpg, "cats/a.jpg"), (png, "dogs/b.png")])
    shown = images(client, "kept")
    for name, data, mime in (("a.jpg", jpg, "image/jpeg"), ("b.png", png, "image/png")):
        assert kept_file(settings, data).read_bytes() == data
        resp = client.get(f"/api/images/{shown[name]['id']}/file")
        assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
        assert resp.data == data and resp.mimetype == mime
        assert resp.headers["ETag"].strip('"') == hashlib.sha256(data).hexdigest()
        assert name in resp.headers["Content-Disposition"] and str(settings.home) not in resp.headers["Content-Disposition"]
    # a kept file that changed is refused like a changed source file: the hash is checked on every read
    kept_file(settings, jpg).write_bytes(png)
    err = assert_error(client.get(f"/api/images/{shown['a.jpg']['id']}/file"), 410, "gone", "image_id")
    assert str(settings.home) not in err["message"]


def test_without_keep_originals_uploads_are_gone(make_app, settings):
    cat = dataset_files(CATS_DOGS / "cats", 1)[0]
    client = make_app(settings.replace(keep_originals=False)).test_client()
    upload(client, "notkept", [(cat.read_bytes(), "cats/a.jpg")])
    image = images(client, "notkept")["a.jpg"]
    err = assert_error(client.get(f"/api/images/{image['id']}/file"), 410, "gone", "image_id")
    assert "SIMSEARCH_UPLOAD_RETENTION_HOURS" in err["message"] and "SIMSEARCH_KEEP_ORIGINALS" in err["message"]
    assert not kept_file(settings, cat.read_bytes()).exists()


def test_keep_originals_is_read_from_the_environment(monkeypatch, tmp_path):
    from simsearch.config import Settings

    monkeypatch.setenv("SIMSEARCH_KEEP_ORIGINALS", "false")
    assert Settings.from_env(home=tmp_path).keep_originals is False
    monkeypatch.delenv("SIMSEARCH_KEEP_ORIGINALS")
    assert Settings.from_env(home=tmp_path).keep_originals is True


def test_deleting_the_last_image_with_the_content_removes_the_original(make_app, settings):
    cat, dog = dataset_files(CATS_DOGS / "cats", 1)[0], dataset_files(CATS_DOGS / "dogs", 1)[0]
    client = make_app(settings).test_client()
    for coll in ("one", "two"):  # the same cat in two collections: one kept file
        upload(client, coll, [(cat.read_bytes(), "cats/a.jpg"), (dog.read_bytes(), "dogs/b.jpg")])
    cat_file, dog_file = kept_file(settings, cat.read_bytes()), kept_file(settings, dog.read_bytes())
    assert cat_file.is_file() and dog_file.is_file()
    one, two = images(client, "one"), images(client, "two")

    assert client.delete(f"/api/images/{one['a.jpg']['id']}").status_code == 200
    assert cat_file.is_file()  # collection two still has it
    resp = client.get(f"/api/images/{two['a.jpg']['id']}/file")
    assert resp.status_code == 200 and resp.data == cat.read_bytes()
    assert client.delete(f"/api/images/{two['a.jpg']['id']}").status_code == 200
    assert not cat_file.exists()

    assert client.delete("/api/collections/one").status_code == 200
    assert dog_file.is_file()  # collection two still has the dog
    assert client.get(f"/api/images/{two['b.jpg']['id']}/file").status_code == 200
    assert client.delete("/api/collections/two").status_code == 200
    assert not dog_file.exists()


def test_delete_succeeds_when_the_original_cannot_be_removed(make_app, settings, monkeypatch):
    cat = dataset_files(CATS_DOGS / "cats", 1)[0]
    client = make_app(settings).test_client()
    upload(client, "stuck", [(cat.read_bytes(), "cats/a.jpg")])
    image = images(client, "stuck")["a.jpg"]

    def refuse(self, missing_ok=False):
        raise PermissionError("read-only")

    monkeypatch.setattr(Path, "unlink", refuse)
    assert client.delete(f"/api/images/{image['id']}").status_code == 200
    monkeypatch.undo()
    assert client.get(f"/api/images/{image['id']}").status_code == 404
    assert kept_file(settings, cat.read_bytes()).is_file()  # left behind, logged


def test_sharded_upload_keeps_its_originals(ctx, tmp_path):
    from simsearch.jobs import shards
    from simsearch.jobs.execute import create_run
    from simsearch.jobs.manifest import run_folder, uploads_dir
    from simsearch.jobs.staging import StagedFile, Staging, new_staging_dir
    from simsearch.ops.originals import open_original
    from simsearch.store.models import Image

    staged = new_staging_dir(uploads_dir(ctx.settings))
    files, data = [], {}
    for cls in ("cats", "dogs"):
        (staged / cls).mkdir()
        for src in dataset_files(CATS_DOGS / cls, 3):
            shutil.copy(src, staged / cls / src.name)
            files.append(StagedFile(rel=f"{cls}/{src.name}", label=cls))
            data[hashlib.sha256(src.read_bytes()).hexdigest()] = src.read_bytes()
    job_id = create_run(ctx, "sharded", [SPACE], "upload", Staging(dir=staged, files=files))
    ids = shards.create_shards(ctx, job_id, 2)
    assert len(ids) == 3
    for shard_id in ids:
        shards.execute_shard(ctx, shard_id)
    assert not run_folder(ctx.settings, job_id).exists()
    with ctx.db.session() as s:
        rows = s.query(Image.id, Image.content_hash, Image.ingest_run_id).all()
    assert len(rows) == 6 and {run for _i, _h, run in rows} == set(ids)
    for image_id, digest, _run in rows:
        assert kept_file(ctx.settings, data[digest]).read_bytes() == data[digest]
        original = open_original(ctx, image_id)
        try:
            assert original.file.read() == data[digest] and original.mime_type == "image/jpeg"
        finally:
            original.file.close()


def test_embedding_with_another_backbone_reads_the_kept_originals(make_app, settings):
    cat, dog = dataset_files(CATS_DOGS / "cats", 1)[0], dataset_files(CATS_DOGS / "dogs", 1)[0]
    client = make_app(settings).test_client()
    upload(client, "reembed", [(cat.read_bytes(), "cats/a.jpg"), (dog.read_bytes(), "dogs/b.jpg")])
    resp = client.post("/api/collections/reembed/embed", json={"backbone": "efficientnet_lite0@max"})
    assert resp.status_code == 202, resp.get_data(as_text=True)[:300]
    body = resp.get_json()
    assert body["total"] == 2 and body["ignored"] == []
    job = wait_job(client, body["job_id"])
    assert job["status"] == "done" and job["failed"] == 0, job
    detail = client.get("/api/collections/reembed").get_json()
    assert detail["backbones"]["efficientnet_lite0@max"]["vectors_in_db"] == 2
    # the embed job read the kept files in place: they are still there, and the images keep their names
    assert kept_file(settings, cat.read_bytes()).is_file() and set(images(client, "reembed")) == {"a.jpg", "b.jpg"}
