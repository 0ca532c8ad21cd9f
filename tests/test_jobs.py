"""Web ingest jobs off the request thread: the in-process runner, and the RQ queue consumed by a real
`simsearch worker --burst` subprocess against Redis on 127.0.0.1:6379 (unique queue per test)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CATS_DOGS, dataset_files, upgraded

from simsearch.store.models import Image, IngestRun
from tests.helpers.analysis import Gate
from tests.helpers.jobs import REDIS_URL, rq_queue, run_worker_process  # noqa: F401 (fixtures)


def upload(client, collection: str, files, **fields):
    data = {"files": [(io.BytesIO(p.read_bytes()), f"{p.parent.name}/{p.name}") for p in files], **fields}
    return client.post(f"/api/collections/{collection}/ingest", data=data, content_type="multipart/form-data")


def wait_job(client, job_id: int, timeout: float = 180, until=("done", "failed")) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/jobs/{job_id}").get_json()
        if job["status"] in until or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def pets_files(n: int) -> list:
    return dataset_files(CATS_DOGS / "cats", n) + dataset_files(CATS_DOGS / "dogs", n)


# ---- in-process runner -----------------------------------------------------------------------

def test_thread_runner_reports_progress_and_returns_at_once(make_app, settings, monkeypatch):
    import simsearch.jobs.runners as runners

    app = make_app()
    client = app.test_client()
    gate = Gate(monkeypatch, "execute_run", runners)  # the job is held on its thread until released
    resp = upload(client, "bg", pets_files(10), labels="folders", batch_size="4")
    assert resp.status_code == 202 and resp.get_json()["runner"] == "thread"
    job_id = resp.get_json()["job_id"]
    # the request answered while its job was held: it does not wait for the model, which runs elsewhere
    assert gate.entered.wait(60), "the job never started"
    assert gate.threads and all(t.startswith("simsearch-job") for t in gate.threads), gate.threads
    first = client.get(f"/api/jobs/{job_id}").get_json()
    assert first["status"] in ("queued", "running") and first["total"] == 20 and first["processed"] == 0
    gate.release.set()
    seen = set()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").get_json()
        seen.add((job["status"], job["processed"]))
        if job["status"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert job["status"] == "done", job
    assert (job["processed"], job["added"], job["failed"], job["skipped"]) == (20, 20, 0, 0)
    assert job["rate"] > 0 and job["eta_seconds"] == 0 and job["errors"] == [] and job["message"] is None
    assert job["backbones"] == ["efficientnet_lite0"]
    # the counters move batch by batch (batch_size 4), and the poller saw it happen
    assert any(s == "running" and 0 < p < 20 for s, p in seen), seen
    with app.extensions["simsearch"].db.session() as s:
        assert s.query(Image).filter(Image.label == "cats").count() == 10


def test_failed_job_is_marked_failed_with_the_reason(make_app, settings):
    from simsearch.jobs.execute import create_run, execute_run
    from simsearch.jobs.manifest import run_folder

    app = make_app()
    client = app.test_client()
    svc = app.extensions["simsearch"]
    # Stage a job by hand (as the API does) but lose its files before it runs.
    from simsearch.jobs.staging import Staging, new_staging_dir

    staging = Staging(dir=new_staging_dir(settings.home / "uploads"))
    run_id = create_run(svc, "lost", ["efficientnet_lite0"], "test", staging)
    (run_folder(settings, run_id) / "manifest.json").unlink()
    with pytest.raises(Exception):
        execute_run(svc, run_id)
    job = client.get(f"/api/jobs/{run_id}").get_json()
    assert job["status"] == "failed" and "manifest.json" in job["message"] and job["finished_at"]
    # a finished run is never run twice
    assert execute_run(svc, run_id) == {"run_id": run_id, "status": "failed"}


def test_backbone_without_weights_is_refused_before_queueing(make_app):
    client = make_app().test_client()
    resp = upload(client, "x", pets_files(1), backbone="resnet50")
    assert resp.status_code == 503
    assert resp.get_json()["error"]["code"] == "weights_unavailable"
    assert client.get("/api/jobs").get_json()["jobs"] == []


# ---- RQ + a separate worker process ------------------------------------------------------------


@pytest.mark.redis
def test_rq_job_runs_in_a_separate_worker_process(make_app, settings, rq_queue):
    app = make_app(settings.replace(redis_url=REDIS_URL), SIMSEARCH_QUEUE=rq_queue)
    client = app.test_client()
    assert client.get("/api/health").get_json()["jobs"] == "rq"
    resp = upload(client, "remote", pets_files(3), labels="folders")
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert body["runner"] == "rq"
    # nobody consumes it in this process: it waits on the Redis queue for a worker
    import redis
    from rq import Queue

    assert Queue(rq_queue, connection=redis.Redis.from_url(REDIS_URL)).count == 1
    assert client.get(body["status_url"]).get_json()["status"] == "queued"

    proc = run_worker_process(settings, rq_queue)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = client.get(body["status_url"]).get_json()
    assert job["status"] == "done", (job, proc.stderr[-3000:])
    assert (job["processed"], job["added"], job["failed"]) == (6, 6, 0)
    with app.extensions["simsearch"].db.session() as s:
        assert s.query(Image).filter(Image.status == "ok").count() == 6
        assert s.get(IngestRun, body["job_id"]).finished_at is not None
    # the web process picks up the index the worker wrote, without a restart
    images = client.get("/api/collections/remote/images").get_json()["images"]
    hits = client.get(f"/api/images/{images[0]['id']}/similar?k=5").get_json()
    assert len(hits["results"]) == 5


@pytest.mark.redis
def test_rq_failure_is_recorded_on_the_run(make_app, settings, rq_queue, tmp_path):
    """Also: the job carries the web app's settings, so a worker whose own environment names
    another data directory and database still records the failure where the app reads it."""
    from simsearch.jobs.manifest import run_folder

    app = make_app(settings.replace(redis_url=REDIS_URL), SIMSEARCH_QUEUE=rq_queue)
    client = app.test_client()
    resp = upload(client, "doomed", pets_files(1))
    job_id = resp.get_json()["job_id"]
    (run_folder(settings, job_id) / "manifest.json").unlink()
    decoy = upgraded(settings.replace(home=tmp_path / "elsewhere",
                                      database_url=f"sqlite:///{tmp_path / 'elsewhere' / 'other.db'}"))
    proc = run_worker_process(decoy, rq_queue)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = client.get(f"/api/jobs/{job_id}").get_json()
    assert job["status"] == "failed" and "manifest.json" in job["message"]


def test_redis_down_gives_503_and_no_stuck_job(make_app, settings):
    app = make_app(settings.replace(redis_url="redis://127.0.0.1:1/0"), SIMSEARCH_QUEUE="unused")
    client = app.test_client()
    resp = upload(client, "nowhere", pets_files(1))
    assert resp.status_code == 503 and resp.get_json()["error"]["code"] == "queue_unavailable"
    jobs = client.get("/api/jobs").get_json()["jobs"]
    assert len(jobs) == 1 and jobs[0]["status"] == "failed" and "enqueue" in jobs[0]["message"]
    health = client.get("/api/health")
    assert health.status_code == 503 and health.get_json()["error"]["code"] == "queue_unavailable"


def test_worker_command_needs_redis_url(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SIMSEARCH_REDIS_URL"}
    env["SIMSEARCH_HOME"] = str(tmp_path / "home")
    proc = subprocess.run([sys.executable, "-c", "from simsearch.cli import main; main()", "worker", "--burst"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "SIMSEARCH_REDIS_URL" in proc.stderr


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_jobs_of_a_stopped_process_are_resumed_once(make_app, settings):
    """A job whose in-process runner died half-way (simulated: the row says running, owned by a
    process that no longer exists, and some images are missing) is resumed by the next app on this
    host, on its first request, and only by one of several."""
    import socket

    from sqlalchemy import update

    from simsearch.jobs.runners import this_process

    kept = settings.replace(upload_retention_hours=24)  # the files outlive the job rewound below
    app = make_app(kept)
    client = app.test_client()
    job_id = upload(client, "resume", pets_files(4), labels="folders").get_json()["job_id"]
    assert wait_job(client, job_id)["status"] == "done"
    images = client.get("/api/collections/resume/images?per_page=100").get_json()["images"]
    for img in images[:3]:  # the part the dead process had not stored yet
        assert client.delete(f"/api/images/{img['id']}").status_code == 200
    host = socket.gethostname()
    svc = app.extensions["simsearch"]
    with svc.db.session() as s:
        s.execute(update(IngestRun).where(IngestRun.id == job_id).values(
            status="running", processed=5, owner=f"thread:{host}:{_dead_pid()}:0123456789ab"))
        # unfinished jobs that must be left alone: a live process's, and another machine's
        for source, owner in (("live", f"thread:{host}:{os.getppid()}:0123456789ab"),
                              ("elsewhere", "thread:elsewhere:1:0123456789ab")):
            s.add(IngestRun(collection_id=1, source=source, spaces=["efficientnet_lite0"], status="running", total=1,
                            owner=owner))

    other = make_app(kept)  # the restarted server: its first request resumes the job
    assert other.test_client().get("/api/health").status_code == 200
    job = wait_job(other.test_client(), job_id)
    assert job["status"] == "done", job
    assert (job["processed"], job["added"], job["skipped"], job["failed"]) == (8, 3, 5, 0)
    assert "resumed after the process running it stopped" in job["message"]
    assert len(client.get("/api/collections/resume/images?per_page=100").get_json()["images"]) == 8
    with svc.db.session() as s:
        runs = {r.source: r for r in s.query(IngestRun)}
    assert runs["live"].status == runs["elsewhere"].status == "running"
    assert runs["live"].owner.startswith(f"thread:{host}:{os.getppid()}:") and runs["elsewhere"].owner.startswith("thread:elsewhere:")
    assert runs[job["source"]].owner == this_process()
    assert other.extensions["simsearch_jobs"].recover() == []  # nothing left to take over
    assert app.extensions["simsearch_jobs"].recover() == []


def test_a_running_job_without_progress_for_ten_minutes_is_flagged_stale():
    from datetime import datetime, timedelta, timezone

    from simsearch.jobs.status import job_dict

    now = datetime.now(timezone.utc)
    live = IngestRun(id=1, collection_id=1, source="x", status="running", total=10, processed=3, added=3, skipped=0,
                     failed=0, errors=[], started_at=now - timedelta(minutes=30), updated_at=now - timedelta(seconds=20))
    assert job_dict(live, "c")["stale"] is False
    live.updated_at = now - timedelta(minutes=11)
    stale = job_dict(live, "c")
    assert stale["stale"] is True and "resumes when the web app restarts" in stale["message"]
    live.status = "done"
    assert job_dict(live, "c")["stale"] is False


def test_manifest_round_trips_and_resolves_relative_paths(tmp_path):
    from simsearch.errors import InvalidInput
    from simsearch.jobs.manifest import Manifest, ManifestFile

    manifest = Manifest(run_id=7, collection="c", batch_size=16, ignored=["notes.txt"],
                        files=[ManifestFile(path="cats/a.jpg", label="cats"),
                               ManifestFile(path="/data/b.png", name="b.png", meta={"camera": "x"})])
    manifest.write(tmp_path)
    again = Manifest.read(tmp_path)
    assert again == manifest
    files = again.source_files(tmp_path)
    assert [(f.path, f.name, f.label, f.meta) for f in files] == [
        (tmp_path / "cats" / "a.jpg", str(tmp_path / "cats" / "a.jpg"), "cats", {}),
        (Path("/data/b.png"), "b.png", None, {"camera": "x"})]
    (tmp_path / "manifest.json").write_text('{"run_id": 7}')
    with pytest.raises(InvalidInput, match="manifest is not valid"):
        Manifest.read(tmp_path)


def test_settings_travel_with_the_job_as_plain_data_without_secrets(settings):
    import json

    from simsearch.jobs.rq import settings_from_data, settings_to_data

    keyed = settings.replace(api_keys=("k1", "k2"), redis_url=REDIS_URL, max_pixels=1234)
    data = json.loads(json.dumps(settings_to_data(keyed)))
    assert "k1" not in json.dumps(data)  # API keys never sit in Redis with a job
    assert settings_from_data(data) == keyed.replace(api_keys=())


def test_frozen_redis_gives_503_not_a_hung_request(make_app, settings):
    """A Redis that accepts connections and never answers (frozen, or a dead host behind a live port):
    the queue client's socket timeouts turn the enqueue into 503 queue_unavailable, not a hang. (redis-py 8
    has 5-s defaults; older releases that pyproject admits had none, so jobs/rq.py sets them itself.)"""
    import socket
    import threading

    frozen = socket.socket()
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(16)  # the kernel completes the handshake; nothing ever reads or answers
    try:
        port = frozen.getsockname()[1]
        app = make_app(settings.replace(redis_url=f"redis://127.0.0.1:{port}/0"), SIMSEARCH_QUEUE="unused")
        client = app.test_client()
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("r", upload(client, "frozen", pets_files(1))), daemon=True)
        t.start()
        t.join(60)  # a hang detector, not a performance claim (the client timeout is 5 s)
        assert not t.is_alive(), "the upload hangs on a frozen Redis"
        resp = box["r"]
        assert resp.status_code == 503 and resp.get_json()["error"]["code"] == "queue_unavailable"
        assert resp.headers.get("Retry-After")
        jobs = client.get("/api/jobs").get_json()["jobs"]
        assert len(jobs) == 1 and jobs[0]["status"] == "failed"
    finally:
        frozen.close()
