"""Jobs on Redis: a unique queue per test, ``simsearch worker --burst`` as a subprocess, queued
server-path runs and an application context that sends its jobs to a queue."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

REDIS_URL = os.environ.get("SIMSEARCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def rq_queue():
    redis = pytest.importorskip("redis")
    from rq import Queue

    conn = redis.Redis.from_url(REDIS_URL)
    conn.ping()  # fail, not skip, when Redis is down: the worker path must be covered
    name = f"simsearch-test-{uuid.uuid4().hex[:10]}"
    yield name
    Queue(name, connection=conn).delete(delete_jobs=True)
    for key in conn.scan_iter(f"*{name}*"):
        conn.delete(key)


def run_worker_process(settings, queue: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``simsearch worker --burst`` with ``settings`` in its environment."""
    env = dict(os.environ, SIMSEARCH_HOME=str(settings.home), SIMSEARCH_DATABASE_URL=settings.database_url,
               SIMSEARCH_WEIGHTS_DIR=str(settings.weights_dir), SIMSEARCH_REDIS_URL=REDIS_URL, TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-c", "from simsearch.cli import main; main()", "worker", "--burst", "--queue", queue]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def rq_ctx(settings, queue_name):
    from simsearch.context import AppContext

    return AppContext.open(settings.replace(redis_url=REDIS_URL, queue=queue_name, jobs="rq"))


def queue_folder(ctx, folder, collection: str) -> int:
    """A queued server-path job over ``folder`` (as ops.ingest.from_server_path makes it)."""
    from simsearch.ingest import files_from_folder
    from simsearch.jobs.execute import create_run
    from simsearch.jobs.manifest import ManifestFile, uploads_dir
    from simsearch.jobs.staging import Staging, new_staging_dir

    files, _ = files_from_folder(folder, labels="folders")
    staging = Staging(dir=new_staging_dir(uploads_dir(ctx.settings)), ignored=[])
    kept = [ManifestFile(path=str(f.path), name=f.name, label=f.label) for f in files]
    return create_run(ctx, collection, ["efficientnet_lite0"], str(folder), staging, absolute_files=kept)
