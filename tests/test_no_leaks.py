"""Responses and job records do not leak the server's files or SQL, zip archives are capped by
default, and staged uploads are deleted when their job ends (issue 8, "fail safely")."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import text

from tests.helpers.api import assert_error

SPACE = "efficientnet_lite0"


@pytest.fixture
def services(ctx):
    return ctx


def _add_run(services, collection: str, source: str, **fields) -> int:
    from simsearch.store import repo
    from simsearch.store.models import IngestRun

    with services.db.session() as s:
        coll = repo.get_or_create_collection(s, collection)
        run = IngestRun(collection_id=coll.id, source=source, spaces=[SPACE], **fields)
        s.add(run)
        s.flush()
        return run.id


def _add_image(services, collection: str, path: str, run_id: int, seed: int) -> int:
    from simsearch.store import repo
    from simsearch.store.models import Embedding, Image

    vec = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    vec /= np.linalg.norm(vec)
    with services.db.session() as s:
        coll = repo.get_or_create_collection(s, collection)
        img = Image(collection_id=coll.id, content_hash=f"{seed:064x}", source_path=path, width=4, height=4,
                    label="x", meta={}, status="ok", ingest_run_id=run_id)
        s.add(img)
        s.flush()
        s.add(Embedding(image_id=img.id, space=SPACE, dim=8, vector=vec.tobytes()))
        return img.id


@pytest.fixture
def leaky(make_app, settings, tmp_path):
    """An app with images ingested from a server folder, an upload and elsewhere (rows made
    directly: no model needed), and a failed job whose errors name staged files."""
    app = make_app(SIMSEARCH_ALLOW_SERVER_PATHS=str(tmp_path / "allowed"))
    svc = app.extensions["simsearch"]
    folder = str(tmp_path / "photos")
    uploads = settings.home / "uploads"
    run_cli = _add_run(svc, "c", folder, status="done")
    run_up = _add_run(svc, "c", "upload: 2 file(s)", status="done",
                      errors=[{"file": str(uploads / "7" / "cats" / "bad.jpg"), "reason": "truncated image data"}])
    run_srv = _add_run(svc, "c", str(tmp_path / "allowed" / "shared" / "pics"), status="failed",
                       message="database error (IntegrityError): UNIQUE constraint failed")
    ids = {
        "cli": _add_image(svc, "c", f"{folder}/dogs/d1.jpg", run_cli, 1),
        "upload": _add_image(svc, "c", str(uploads / str(run_up) / "cats" / "c1.jpg"), run_up, 2),
        "server": _add_image(svc, "c", str(tmp_path / "allowed" / "shared" / "pics" / "p1.jpg"), run_srv, 3),
        "other": _add_image(svc, "c", "/somewhere/else/x1.jpg", None, 4),
    }
    return app, ids, run_up, run_srv


EXPECTED = {"cli": "dogs/d1.jpg", "upload": "cats/c1.jpg", "server": "p1.jpg", "other": "x1.jpg"}


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_responses_show_no_absolute_server_paths(leaky, settings, tmp_path):
    app, ids, run_up, run_srv = leaky
    client = app.test_client()
    bodies = []
    listed = client.get("/api/collections/c/images?per_page=50").get_json()
    assert {i["id"]: i["path"] for i in listed["images"]} == {ids[k]: EXPECTED[k] for k in ids}
    bodies.append(listed)
    for key, image_id in ids.items():
        one = client.get(f"/api/images/{image_id}").get_json()
        assert one["path"] == EXPECTED[key]
        similar = client.get(f"/api/images/{image_id}/similar?k=3").get_json()
        assert similar["query"]["path"] == EXPECTED[key], similar
        assert {h["path"] for h in similar["results"]} <= set(EXPECTED.values()) and len(similar["results"]) == 3
        bodies += [one, similar]
    jobs = client.get("/api/jobs").get_json()["jobs"]
    by_id = {j["id"]: j for j in jobs}
    assert by_id[run_up]["errors"] == [{"file": "cats/bad.jpg", "reason": "truncated image data"}]
    assert by_id[run_srv]["source"] == "shared/pics"
    bodies += [jobs, client.get("/api/collections/c").get_json(), client.get("/api/backbones").get_json()]
    bodies.append(client.post("/api/collections/c/ingest", json={"server_path": "/etc"}).get_json())
    for body in bodies:
        for s in _strings(body):
            assert str(tmp_path) not in s and str(settings.home) not in s, s


def test_paths_are_shown_when_the_administrator_asks(make_app, settings, tmp_path):
    app = make_app(settings.replace(expose_paths=True))
    svc = app.extensions["simsearch"]
    run_id = _add_run(svc, "c", str(tmp_path / "photos"), status="done")
    image_id = _add_image(svc, "c", str(tmp_path / "photos" / "a.jpg"), run_id, 1)
    assert app.test_client().get(f"/api/images/{image_id}").get_json()["path"] == str(tmp_path / "photos" / "a.jpg")


def test_expose_paths_is_a_setting(monkeypatch, tmp_path):
    from simsearch.config import Settings

    assert Settings.from_env(home=tmp_path).expose_paths is False
    monkeypatch.setenv("SIMSEARCH_EXPOSE_PATHS", "1")
    assert Settings.from_env(home=tmp_path).expose_paths is True


# ---- job failures carry a reason, never SQL ----------------------------------------------------------

def _real_sql_error(services):
    from simsearch.store import repo

    with services.db.session() as s:
        repo.get_or_create_collection(s, "dup")
    try:
        with services.db.session() as s:
            s.execute(text("INSERT INTO collections (name, description, created_at) VALUES (:n, :d, :c)"),
                      {"n": "dup", "d": "secret-parameter-value", "c": datetime.now(timezone.utc)})
    except Exception as exc:  # IntegrityError, with the statement and its parameters in str()
        assert "INSERT INTO" in str(exc) and "secret-parameter-value" in str(exc)
        return exc
    raise AssertionError("expected an IntegrityError")


def test_failed_job_messages_carry_no_sql(services, monkeypatch):
    from simsearch.ingest import Ingester
    from simsearch.jobs.execute import create_run
    from simsearch.jobs.staging import Staging, new_staging_dir
    from simsearch.jobs.execute import execute_run

    error = _real_sql_error(services)
    staging = Staging(dir=new_staging_dir(services.settings.home / "uploads"))
    run_id = create_run(services, "jobs", [SPACE], "upload: 0 file(s)", staging)

    def boom(self, *a, **k):
        raise error

    monkeypatch.setattr(Ingester, "run", boom)
    with pytest.raises(type(error)):
        execute_run(services, run_id)
    from simsearch.store.models import IngestRun

    with services.db.session() as s:
        message = s.get(IngestRun, run_id).message
    assert message.startswith("database error (") and "INSERT" not in message and "secret" not in message, message
    assert len(message) < 400


def test_public_reason_keeps_the_reason_and_drops_the_rest(services, settings):
    from simsearch.errors import InvalidInput, public_reason

    reason = public_reason(_real_sql_error(services))
    assert "INSERT" not in reason and "secret" not in reason and ("UNIQUE" in reason or "unique" in reason), reason
    oserr = FileNotFoundError(2, "No such file or directory", str(settings.home / "uploads" / "3" / "passwd"))
    assert public_reason(oserr) == "FileNotFoundError: No such file or directory"
    assert public_reason(InvalidInput("bad label", field="label")) == "bad label"
    assert public_reason(ValueError(f"cannot read {settings.home}/x\nline two"), hide=(str(settings.home),)) == \
        "ValueError: cannot read <data>/x"


def test_ingest_records_per_file_failures_without_paths(services, tmp_path):
    from simsearch.ingest import Ingester, SourceFile

    gone = tmp_path / "secret-folder" / "gone.jpg"
    report = Ingester(services, spaces=[SPACE]).run("c", [SourceFile(name="gone.jpg", path=gone)], source="test")
    assert report.failed == 1
    reason = report.errors[0]["reason"]
    assert "secret-folder" not in reason, reason


# ---- zip totals -----------------------------------------------------------------------------------------

def test_zip_of_many_compressible_files_is_refused(make_app, settings):
    from simsearch.jobs.staging import ZipLimits

    assert ZipLimits().max_total_bytes <= 1 << 30
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(200):
            zf.writestr(f"img{i}.jpg", bytes(1 << 20))  # 1 MB of zeros each: under the per-entry floor
    assert len(buf.getvalue()) < 400_000
    client = make_app().test_client()
    resp = client.post("/api/collections/z/ingest", data={"archive": (io.BytesIO(buf.getvalue()), "bomb.zip")},
                       content_type="multipart/form-data")
    err = assert_error(resp, 400, "invalid_input", "archive")
    assert "zip bomb" in err["message"]
    uploads = settings.home / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())  # nothing left on disk


# ---- staged uploads are deleted ----------------------------------------------------------------------------

def test_staged_uploads_are_deleted_when_their_job_ends(services, monkeypatch):
    from simsearch.ingest import Ingester
    from simsearch.jobs.execute import create_run
    from simsearch.jobs.staging import Staging, StagedFile, new_staging_dir
    from simsearch.jobs.execute import execute_run
    from simsearch.jobs.manifest import run_folder

    staging = Staging(dir=new_staging_dir(services.settings.home / "uploads"))
    (staging.dir / "a.jpg").write_bytes(b"not really")
    staging.files.append(StagedFile(rel="a.jpg"))
    run_id = create_run(services, "jobs", [SPACE], "upload: 1 file(s)", staging)
    assert (run_folder(services.settings, run_id) / "a.jpg").exists()
    execute_run(services, run_id)  # the file fails to decode: the job is done, one failure
    assert not run_folder(services.settings, run_id).exists()

    staging = Staging(dir=new_staging_dir(services.settings.home / "uploads"))
    run_id = create_run(services, "jobs", [SPACE], "upload: 0 file(s)", staging)
    monkeypatch.setattr(Ingester, "run", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError):
        execute_run(services, run_id)
    assert not run_folder(services.settings, run_id).exists()  # failed jobs too


def test_upload_retention_keeps_files_for_a_while(settings, tmp_path):
    import os
    import time

    from simsearch.context import AppContext
    from simsearch.jobs.cleanup import release_uploads, sweep_uploads
    from simsearch.jobs.manifest import run_folder

    svc = AppContext.open(settings.replace(upload_retention_hours=2))
    try:
        now = datetime.now(timezone.utc)
        old = _add_run(svc, "r", "upload", status="done", finished_at=now - timedelta(hours=3))
        recent = _add_run(svc, "r", "upload", status="failed", finished_at=now - timedelta(hours=1))
        running = _add_run(svc, "r", "upload", status="running")
        for run_id in (old, recent, running, 999_999):
            (run_folder(svc.settings, run_id) / "x").mkdir(parents=True)
        staging = svc.settings.home / "uploads" / ".staging-abandoned"
        staging.mkdir()
        week_ago = time.time() - 7 * 24 * 3600
        for p in (run_folder(svc.settings, 999_999), staging):
            os.utime(p, (week_ago, week_ago))
        removed = sweep_uploads(svc)
        assert sorted(p.name for p in removed) == sorted([str(old), "999999", ".staging-abandoned"])
        assert run_folder(svc.settings, recent).exists() and run_folder(svc.settings, running).exists()
        release_uploads(svc, recent)  # retention 2 h: kept for now
        assert run_folder(svc.settings, recent).exists()
        assert sweep_uploads(svc, now=now + timedelta(hours=1, minutes=5))  # later: its time is up
        assert not run_folder(svc.settings, recent).exists()
    finally:
        svc.close()


def test_upload_retention_is_a_setting(monkeypatch, tmp_path):
    from simsearch.config import Settings

    assert Settings.from_env(home=tmp_path).upload_retention_hours == 0
    monkeypatch.setenv("SIMSEARCH_UPLOAD_RETENTION_HOURS", "12")
    assert Settings.from_env(home=tmp_path).upload_retention_hours == 12
