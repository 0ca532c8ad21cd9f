"""Real servers on 127.0.0.1: `simsearch serve` (werkzeug, threaded) and gunicorn with
`simsearch.web.wsgi:app`, over HTTP: health, a write, the error shape, 413 and gzip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
import requests
from tests.helpers.servers import free_port, wait_up


@pytest.fixture
def server_env(sqlite_settings):
    env = dict(os.environ, SIMSEARCH_HOME=str(sqlite_settings.home), SIMSEARCH_DATABASE_URL=sqlite_settings.database_url,
               SIMSEARCH_WEIGHTS_DIR=str(sqlite_settings.weights_dir), SIMSEARCH_MAX_UPLOAD_MB="1")
    env.pop("SIMSEARCH_REDIS_URL", None)
    env.pop("SIMSEARCH_API_KEYS", None)
    return env


def start(cmd: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def exercise(base: str) -> None:
    health = requests.get(f"{base}/api/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    created = requests.post(f"{base}/api/collections", json={"name": "served"}, timeout=10)
    assert created.status_code == 201, created.text
    listed = requests.get(f"{base}/api/collections", timeout=10).json()["collections"]
    assert [c["name"] for c in listed] == ["served"]
    missing = requests.get(f"{base}/api/collections/nope", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    # 2 MB against a 1 MB limit: refused with 413 in the error shape, not a dropped connection
    big = requests.post(f"{base}/api/collections/served/search", files={"image": ("big.jpg", b"\xff" * (2 << 20))}, timeout=30)
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    spec = requests.get(f"{base}/api/openapi.json", timeout=10)  # requests asks for gzip by default
    assert spec.headers.get("Content-Encoding") == "gzip" and spec.json()["openapi"].startswith("3.1")


def test_simsearch_serve(server_env):
    port = free_port()
    proc = start([sys.executable, "-c", "from simsearch.cli import main; main()", "serve", "--host", "127.0.0.1",
                  "--port", str(port)], server_env)
    try:
        wait_up(f"http://127.0.0.1:{port}/api/health", proc)
        exercise(f"http://127.0.0.1:{port}")
    finally:
        stop(proc)


def test_gunicorn_wsgi_app(server_env):
    gunicorn = shutil.which("gunicorn")
    assert gunicorn, "gunicorn is a dependency of simsearch"
    port = free_port()
    proc = start([gunicorn, "-w", "2", "-b", f"127.0.0.1:{port}", "--timeout", "120", "simsearch.web.wsgi:app"], server_env)
    try:
        wait_up(f"http://127.0.0.1:{port}/api/health", proc)
        exercise(f"http://127.0.0.1:{port}")
    finally:
        stop(proc)


@pytest.mark.model
def test_concurrent_first_searches_load_the_model_once(server_env, sqlite_settings, tmp_path):
    """The first requests of a fresh server arrive together: both import TensorFlow and build the
    model (concurrent TensorFlow imports used to fail with half-initialised modules: 500s)."""
    from concurrent.futures import ThreadPoolExecutor

    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.context import AppContext
    from tests.conftest import CATS_DOGS, copy_subset, dataset_files

    ctx = AppContext.open(sqlite_settings)
    try:
        files, _ = files_from_folder(copy_subset(tmp_path / "pets", 3), labels="folders")
        Ingester(ctx, spaces=["efficientnet_lite0"]).run("pets", files, source="pets")
    finally:
        ctx.close()
    query = dataset_files(CATS_DOGS / "cats", 1, start=150)[0].read_bytes()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start([sys.executable, "-c", "from simsearch.cli import main; main()", "serve", "--host", "127.0.0.1",
                  "--port", str(port)], server_env)
    try:
        wait_up(f"{base}/api/health", proc)

        def search(i: int):
            if i % 2:
                return requests.post(f"{base}/api/collections/pets/search?k=4", data=query,
                                     headers={"Content-Type": "image/jpeg"}, timeout=300)
            return requests.post(f"{base}/api/collections/pets/search", files={"image": ("q.jpg", query)},
                                 data={"k": "4"}, timeout=300)

        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(search, range(3)))
        assert [a.status_code for a in answers] == [200, 200, 200], [a.text[:300] for a in answers]
        assert len({tuple(h["image_id"] for h in a.json()["results"]) for a in answers}) == 1
    finally:
        stop(proc)


@pytest.mark.model
def test_an_ingest_job_killed_with_its_server_resumes_when_the_server_restarts(server_env):
    from tests.conftest import CATS_DOGS, dataset_files

    env = dict(server_env, SIMSEARCH_MAX_UPLOAD_MB="50")
    files = dataset_files(CATS_DOGS / "cats", 50) + dataset_files(CATS_DOGS / "dogs", 50)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-c", "from simsearch.cli import main; main()", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = start(cmd, env)
    try:
        wait_up(f"{base}/api/health", proc)
        upload = [("files", (f"{p.parent.name}/{p.name}", p.read_bytes())) for p in files]
        resp = requests.post(f"{base}/api/collections/killed/ingest", files=upload,
                             data={"labels": "folders", "batch_size": "4"}, timeout=120)
        assert resp.status_code == 202, resp.text
        job_url = f"{base}/api/jobs/{resp.json()['job_id']}"
        deadline = time.monotonic() + 300
        while (job := requests.get(job_url, timeout=10).json())["processed"] < 8:
            assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
            time.sleep(0.05)
        proc.kill()  # SIGKILL mid-job: no clean-up of any kind
        proc.wait()
    finally:
        stop(proc)
    proc = start(cmd, env)
    try:
        wait_up(f"{base}/api/health", proc)
        deadline = time.monotonic() + 300
        while (job := requests.get(job_url, timeout=10).json())["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["status"] == "done" and job["processed"] == 100 and job["failed"] == 0, job
        assert "resumed" in job["message"] and job["added"] + job["skipped"] == 100
        page = requests.get(f"{base}/api/collections/killed/images?per_page=500", timeout=30).json()
        assert page["total"] == 100 and len({i["path"] for i in page["images"]}) == 100
        assert {i["status"] for i in page["images"]} == {"ok"}
        hits = requests.post(f"{base}/api/collections/killed/search?k=3", data=files[0].read_bytes(),
                             headers={"Content-Type": "image/jpeg"}, timeout=60).json()["results"]
        assert hits[0]["score"] > 0.999  # the index holds the vectors of both runs
    finally:
        stop(proc)
