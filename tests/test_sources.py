"""Ingest from beyond one disk: an S3-compatible bucket (a real moto server on 127.0.0.1, started
by tests/helpers/s3.py), http URLs (a static server thread on loopback) and CSV manifests;
directly and through `simsearch worker` processes; credentials never stored nor shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import CATS_DOGS, dataset_files
from tests.helpers.cli import env, run  # noqa: F401 (fixtures)
from tests.helpers.jobs import REDIS_URL, rq_ctx, rq_queue, run_worker_process  # noqa: F401 (fixtures)
from tests.helpers.s3 import SECRET_KEY, answers, aws_env, free_port, http_files, make_bucket, moto_server  # noqa: F401
from tests.helpers.waiting import wait_until

PER_CLASS = 12
BROKEN = b"\xff\xd8\xff\xe0 this is not a JPEG"


def pets_bucket(endpoint: str, bucket: str) -> dict:
    """``bucket`` with 12 cats under photos/cats/, 12 dogs under photos/dogs/, a broken 'JPEG'
    and a text file; returns {key: local file} of the images."""
    files = {f"photos/{cls}/{p.name}": p for cls in ("cats", "dogs")
             for p in dataset_files(CATS_DOGS / cls, PER_CLASS)}
    make_bucket(endpoint, bucket, {**files, "photos/cats/broken.jpg": BROKEN, "photos/README.txt": b"pets"})
    return files


def _labels(settings_env: dict, collection: str) -> dict[str, str | None]:
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ops import images as ops_images

    app = AppContext.open(Settings.from_env(home=settings_env["SIMSEARCH_HOME"],
                                            database_url=settings_env["SIMSEARCH_DATABASE_URL"]))
    try:
        page = ops_images.list_page(app, collection, per_page=200, status="ok")
    finally:
        app.close()
    return {img["path"]: img for img in page["images"]}


def _job_rows_text(database_url: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return "\n".join(repr(tuple(r)) for r in conn.execute(text("SELECT * FROM ingest_runs")))
    finally:
        engine.dispose()


def test_bucket_prefix_ingests_like_a_folder_with_folder_labels(aws_env, run, env):
    pets_bucket(aws_env, "pets-direct")
    out = run("ingest", "s3://pets-direct/photos", "-c", "pets", "--labels", "folders", "--json")
    report = json.loads(out.output)
    assert (report["total"], report["added"], report["failed"]) == (2 * PER_CLASS + 1, 2 * PER_CLASS, 1)
    assert report["ignored"] == ["README.txt"]
    [error] = report["errors"]
    assert error["file"] == "s3://pets-direct/photos/cats/broken.jpg"
    images = _labels(env, "pets")
    assert len(images) == 2 * PER_CLASS
    assert {p: i["label"] for p, i in images.items() if "/dogs/" in p} == {
        f"s3://pets-direct/photos/dogs/{p.name}": "dogs" for p in dataset_files(CATS_DOGS / "dogs", PER_CLASS)}
    assert {i["label"] for p, i in images.items() if "/cats/" in p} == {"cats"}
    # idempotent like a folder: the same prefix again adds nothing
    again = json.loads(run("ingest", "s3://pets-direct/photos", "-c", "pets", "--labels", "folders", "--json").output)
    assert (again["added"], again["skipped"]) == (0, 2 * PER_CLASS)
    jobs = run("jobs", "--json").output
    assert "s3://pets-direct/photos" in jobs
    rows = _job_rows_text(env["SIMSEARCH_DATABASE_URL"])
    assert "s3://pets-direct/photos" in rows
    for text in (out.output, jobs, rows):
        assert SECRET_KEY not in text and aws_env not in text.replace("s3://", "")


def test_manifest_of_s3_http_and_local_files_records_each_failure(aws_env, run, env, http_files, tmp_path):
    base_url, served = http_files
    cats = dataset_files(CATS_DOGS / "cats", 8, start=40)
    make_bucket(aws_env, "pets-manifest", {f"m/{p.name}": p for p in cats[:3]})
    (served / "kittens").mkdir()
    for p in cats[3:6]:
        (served / "kittens" / p.name).write_bytes(p.read_bytes())
    rows = [f"s3://pets-manifest/m/{p.name},cat,bucket" for p in cats[:3]]
    rows += [f"{base_url}/kittens/{p.name}?X-Amz-Signature=presigned-{SECRET_KEY},,http" for p in cats[3:6]]
    rows += [f"{cats[6]},kitten,", "s3://pets-manifest/m/missing.jpg,cat,bucket", f"{base_url}/gone.jpg,cat,http"]
    manifest = tmp_path / "files.csv"
    manifest.write_text("uri,label,origin\n" + "\n".join(rows) + "\n")
    out = run("ingest", "--manifest", manifest, "-c", "mixed", "--labels", "folders", "--json")
    report = json.loads(out.output)
    assert (report["total"], report["added"], report["failed"]) == (9, 7, 2)
    reasons = {e["file"]: e["reason"] for e in report["errors"]}
    assert "not found" in reasons["s3://pets-manifest/m/missing.jpg"]
    assert "not found" in reasons[f"{base_url}/gone.jpg"]
    images = _labels(env, "mixed")
    assert {images[f"s3://pets-manifest/m/{p.name}"]["label"] for p in cats[:3]} == {"cat"}
    # a URL is shown and stored without its query string (a presigned URL's signature)
    assert images[f"{base_url}/kittens/{cats[3].name}"]["meta"] == {"origin": "http"}
    assert images[f"{base_url}/kittens/{cats[3].name}"]["label"] == "kittens"  # no label: its folder, as asked
    assert images[str(cats[6])]["label"] == "kitten"
    assert SECRET_KEY not in out.output and SECRET_KEY not in _job_rows_text(env["SIMSEARCH_DATABASE_URL"])


def test_a_url_read_is_retried_after_a_transient_failure_and_a_missing_one_is_not(http_files):
    from simsearch.errors import ImageDecodeError
    from simsearch.ingest import remote

    base_url, served = http_files
    (served / "a.jpg").write_bytes(b"image bytes")
    assert remote.read_bytes(f"{base_url}/flaky/a.jpg") == b"image bytes"  # 503 first, then the file
    with pytest.raises(ImageDecodeError) as err:
        remote.read_bytes(f"http://user:{SECRET_KEY}@127.0.0.1:{base_url.rsplit(':', 1)[1]}/gone.jpg?sig={SECRET_KEY}")
    assert err.value.message == f"{base_url}/gone.jpg: not found"


def test_manifest_without_a_uri_column_names_the_file_and_the_column(run, tmp_path):
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label\na.jpg,cat\n")
    out = run("ingest", "--manifest", manifest, "-c", "x", code=2)
    assert f"{manifest}: the manifest has no 'uri' column (found: path, label)" in out.output
    assert len(out.output.strip().splitlines()) == 1


def test_missing_bucket_denied_access_and_unreachable_endpoint_are_one_line_errors(aws_env, run, monkeypatch):
    out = run("ingest", "s3://no-such-bucket/photos", "-c", "x", code=2)
    assert out.output.strip().splitlines() == [f"error: s3://no-such-bucket at {aws_env}: the bucket does not exist"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    out = run("ingest", "s3://pets/photos", "-c", "x", code=1)
    [line] = out.output.strip().splitlines()
    assert "s3://pets at http://127.0.0.1:" in line and "the endpoint is unreachable" in line
    assert SECRET_KEY not in out.output


@pytest.fixture
def locked_moto(monkeypatch):
    """A moto server that checks credentials (INITIAL_NO_AUTH_ACTION_COUNT=0): unknown keys are refused."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: answers(port), timeout=60, message="the moto server to listen")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_access_denied_is_a_one_line_error_without_the_secret(aws_env, locked_moto, run, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", locked_moto)
    out = run("ingest", "s3://pets/photos", "-c", "x", code=1)
    [line] = out.output.strip().splitlines()
    assert line.startswith(f"error: s3://pets at {locked_moto}: access denied"), line
    assert SECRET_KEY not in out.output


@pytest.mark.redis
def test_bucket_and_manifest_ingests_through_workers_in_shards(aws_env, settings, rq_queue, make_app, http_files,
                                                               tmp_path):
    from simsearch.ops import command_ingest
    from simsearch.store.models import IngestRun

    pets_bucket(aws_env, "pets-workers")
    base_url, served = http_files
    dogs = dataset_files(CATS_DOGS / "dogs", 3, start=60)
    for p in dogs:
        (served / p.name).write_bytes(p.read_bytes())
    manifest = tmp_path / "queued.csv"
    manifest.write_text("uri,label\n" + "".join(f"{base_url}/{p.name},dog\n" for p in dogs)
                        + "s3://pets-workers/photos/dogs/missing.jpg,dog\n")
    ctx = rq_ctx(settings.replace(shard_size=10), rq_queue)
    try:
        accepted = command_ingest.queue_folder(ctx, "fleet", "s3://pets-workers/photos", {"labels": "folders"})
        assert accepted["total"] == 2 * PER_CLASS + 1 and accepted["ignored"] == ["README.txt"]
        job_id = accepted["job_id"]
        with ctx.db.session() as s:
            shards = s.query(IngestRun).filter(IngestRun.parent_id == job_id).count()
        assert shards == 3  # 25 files in shards of at most 10
        listed = command_ingest.queue_folder(ctx, "fleet-urls", None, {}, manifest=manifest)
        assert listed["total"] == 4
    finally:
        ctx.close()
    proc = run_worker_process(settings, rq_queue)  # reads the bucket with its own (inherited) AWS environment
    assert proc.returncode == 0, proc.stderr[-3000:]
    app = make_app(settings)
    client = app.test_client()
    resp = client.get(f"/api/jobs/{job_id}")
    job = resp.get_json()
    assert job["status"] == "done", (job, proc.stderr[-3000:])
    assert (job["processed"], job["added"], job["failed"]) == (25, 24, 1)
    assert [e["file"] for e in job["errors"]] == ["s3://pets-workers/photos/cats/broken.jpg"]
    images = client.get("/api/collections/fleet/images?per_page=100&status=ok").get_json()["images"]
    assert sorted({i["label"] for i in images}) == ["cats", "dogs"] and len(images) == 24
    assert SECRET_KEY not in resp.get_data(as_text=True) and SECRET_KEY not in proc.stderr + proc.stdout
    assert SECRET_KEY not in _job_rows_text(settings.database_url)
    urls = client.get(f"/api/jobs/{listed['job_id']}").get_json()
    assert (urls["status"], urls["added"], urls["failed"]) == ("done", 3, 1), urls
    assert urls["errors"][0]["file"] == "s3://pets-workers/photos/dogs/missing.jpg"
    assert "not found" in urls["errors"][0]["reason"]
