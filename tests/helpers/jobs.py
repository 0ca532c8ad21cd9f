"""Jobs on Redis: a unique queue per test, ``simsearch worker`` (``--burst``, or one to kill) and
other ``simsearch`` commands as subprocesses, queued server-path runs and an application context
that sends its jobs to a queue."""

from __future__ import annotations

import os
import signal
import socket
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


CLI = [sys.executable, "-c", "from simsearch.cli import main; main()"]  # `simsearch` in a subprocess


def cli_env(settings, queue: str | None = None, **extra: str) -> dict:
    """The environment of a ``simsearch`` subprocess with ``settings`` (home, database, weights): on
    the test's Redis and ``queue`` when one is given, else with no queue; ``extra``: more variables."""
    env = dict(os.environ, SIMSEARCH_HOME=str(settings.home), SIMSEARCH_DATABASE_URL=settings.database_url,
               SIMSEARCH_WEIGHTS_DIR=str(settings.weights_dir), TF_CPP_MIN_LOG_LEVEL="2", **extra)
    if queue is None:
        env.pop("SIMSEARCH_REDIS_URL", None)
    else:
        env.update(SIMSEARCH_REDIS_URL=REDIS_URL, SIMSEARCH_QUEUE=queue)
    return env


def run_worker_process(settings, queue: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``simsearch worker --burst`` with ``settings`` in its environment."""
    return subprocess.run(CLI + ["worker", "--burst", "--queue", queue], env=cli_env(settings, queue),
                          capture_output=True, text=True, timeout=timeout)


def start_worker(settings, queue: str, **extra: str) -> subprocess.Popen:
    """``simsearch worker --queue QUEUE`` running (stderr kept), in a session of its own, so that
    :func:`kill_group` kills it with its work horse; ``extra``: more environment variables."""
    return subprocess.Popen(CLI + ["worker", "--queue", queue], env=cli_env(settings, queue, **extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def dead_owner(kind: str = "cli") -> str:
    """A job owner (``KIND:HOST:PID:TOKEN``) naming a process of this host that has ended: what a
    killed command or runner leaves on its jobs."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return f"{kind}:{socket.gethostname()}:{dead.pid}:0123456789ab"


def kill_group(proc: subprocess.Popen | None) -> None:
    """SIGKILL ``proc`` and its process group (no clean-up of any kind), if it still runs."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def rq_ctx(settings, queue_name):
    from simsearch.context import AppContext

    return AppContext.open(settings.replace(redis_url=REDIS_URL, queue=queue_name, jobs="rq"))


@pytest.fixture
def pg_rq_ctx(postgres_url, weights_dir, tmp_path, rq_queue):
    """An application context on PostgreSQL (migrated; what a real worker fleet shares) whose jobs
    go to the test's queue (``rq_queue``, ``ctx.settings.queue``)."""
    from conftest import upgraded
    from simsearch.config import Settings

    settings = upgraded(Settings.from_env(home=tmp_path / "home", database_url=postgres_url, weights_path=weights_dir))
    ctx = rq_ctx(settings, rq_queue)
    yield ctx
    ctx.close()


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
