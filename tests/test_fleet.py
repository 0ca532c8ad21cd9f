"""The worker fleet's recovery (Redis on 127.0.0.1:6379, unique queue per test): retries after a
failed attempt, jobs lost with Redis's data queued again, jobs RQ gave up on failed, CLI runs
killed mid-way marked interrupted, one index writer across processes, `ingest --queue` and `jobs`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event

from conftest import copy_subset
from tests.helpers.jobs import REDIS_URL, queue_folder, rq_ctx, run_worker_process
from tests.helpers.waiting import wait_until

from simsearch.jobs import shards
from simsearch.store.models import IngestRun, utcnow


@pytest.fixture
def redis_conn():
    redis = pytest.importorskip("redis")
    conn = redis.Redis.from_url(REDIS_URL)
    conn.ping()  # fail, not skip, when Redis is down
    return conn


@pytest.fixture
def queue_name(redis_conn):
    from rq import Queue

    name = f"simsearch-fleet-{uuid.uuid4().hex[:10]}"
    yield name
    Queue(name, connection=redis_conn).delete(delete_jobs=True)
    for key in redis_conn.scan_iter(f"*{name}*"):
        redis_conn.delete(key)


@pytest.mark.redis
def test_a_large_queued_job_is_sharded_and_finished_by_workers(settings, tmp_path, queue_name):
    from simsearch.jobs.runners import RQRunner
    from simsearch.ops import jobs as jobs_ops

    ctx = rq_ctx(settings.replace(shard_size=4), queue_name)
    try:
        job_id = queue_folder(ctx, copy_subset(tmp_path / "pets", 5), "fleet")  # 10 files: 3 shards
        RQRunner(ctx, REDIS_URL, queue_name).submit(job_id, {})
        job = jobs_ops.get(ctx, job_id)
        assert job["status"] == "running" and job["shards"]["total"] == 3 and job["shards"]["queued"] == 3
        with ctx.db.session() as s:
            owners = [r.owner for r in s.query(IngestRun).filter(IngestRun.parent_id == job_id)]
        assert all(o.startswith("rq:") for o in owners)  # recorded before queueing: a lost job is found
        proc = run_worker_process(ctx.settings, queue_name)
        assert proc.returncode == 0, proc.stderr[-3000:]
        job = jobs_ops.get(ctx, job_id)
        assert job["status"] == "done", job
        assert (job["processed"], job["added"], job["failed"]) == (10, 10, 0)
        assert job["shards"]["done"] == 3
    finally:
        ctx.close()


@pytest.mark.redis
def test_a_failed_attempt_is_retried_and_the_last_failure_ends_the_shard(settings, tmp_path, queue_name):
    """RQ's failure callback: with retries left the shard goes back to queued; after the last, it
    fails for good and the job fails naming it."""
    from rq import Queue

    from simsearch.jobs.rq import on_job_failure, settings_to_data
    from simsearch.ops import jobs as jobs_ops

    ctx = rq_ctx(settings, queue_name)
    try:
        job_id = queue_folder(ctx, copy_subset(tmp_path / "pets", 2), "retry")
        first, second = shards.create_shards(ctx, job_id, 2)
        shards.execute_shard(ctx, first)
        q = Queue(queue_name, connection=__import__("redis").Redis.from_url(REDIS_URL))
        job = q.enqueue_call("simsearch.jobs.rq.run_shard_job", args=(second, {}, settings_to_data(ctx.settings)))
        with ctx.db.session() as s:
            s.get(IngestRun, second).status = "failed"  # as the Ingester leaves an attempt that raised
        job.retries_left = 2
        on_job_failure(job, None, RuntimeError, RuntimeError("boom"), None)
        with ctx.db.session() as s:
            run = s.get(IngestRun, second)
            assert run.status == "queued" and "starting again (2 more attempts allowed)" in run.message
        assert jobs_ops.get(ctx, job_id)["status"] == "running"

        job.retries_left = 0
        from rq.exceptions import AbandonedJobError

        on_job_failure(job, None, AbandonedJobError, AbandonedJobError(), None)
        shown = jobs_ops.get(ctx, job_id)
        assert shown["status"] == "failed"
        assert "shard 2" in shown["message"] and "the worker running it stopped" in shown["message"]
    finally:
        ctx.close()


@pytest.mark.redis
def test_jobs_lost_with_redis_are_queued_again_and_given_up_jobs_fail(settings, tmp_path, queue_name, redis_conn):
    """Redis restarted without persistence: the queued job is gone from it. The reconciler (every
    worker's maintenance pass) queues it again once; a job RQ failed for good is failed here."""
    from rq import Queue
    from rq.job import Job

    from simsearch.jobs.reconcile import reconcile
    from simsearch.jobs.runners import RQRunner

    ctx = rq_ctx(settings, queue_name)
    try:
        lost = queue_folder(ctx, copy_subset(tmp_path / "a", 1), "lost")
        RQRunner(ctx, REDIS_URL, queue_name).submit(lost, {})
        Queue(queue_name, connection=redis_conn).delete(delete_jobs=True)  # what a Redis restart does
        with ctx.db.session() as s:
            old_owner = s.get(IngestRun, lost).owner
        assert not Job.exists(old_owner[3:], connection=redis_conn)

        done = reconcile(ctx, redis_conn, queue_name)
        assert done["requeued"] == [lost]
        with ctx.db.session() as s:
            run = s.get(IngestRun, lost)
            assert run.status == "queued" and run.owner != old_owner and "lost" in run.message
        assert Job.exists(run.owner[3:], connection=redis_conn)
        assert reconcile(ctx, redis_conn, queue_name)["requeued"] == []  # once

        # RQ gave up on it (a horse killed with no retries left: no failure callback runs)
        from rq.job import JobStatus

        Job.fetch(run.owner[3:], connection=redis_conn).set_status(JobStatus.FAILED)
        assert reconcile(ctx, redis_conn, queue_name)["failed"] == [lost]
        with ctx.db.session() as s:
            assert s.get(IngestRun, lost).status == "failed"

        proc = run_worker_process(ctx.settings, queue_name)  # nothing left to run twice
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        ctx.close()


@pytest.mark.redis
def test_a_job_queued_by_a_process_that_died_before_enqueueing_is_queued_after_a_grace(settings, tmp_path,
                                                                                         queue_name, redis_conn):
    from simsearch.jobs.reconcile import UNOWNED_GRACE, reconcile

    ctx = rq_ctx(settings, queue_name)
    try:
        run_id = queue_folder(ctx, copy_subset(tmp_path / "a", 1), "orphan")
        assert reconcile(ctx, redis_conn, queue_name)["requeued"] == []  # maybe still being queued
        with ctx.db.session() as s:
            s.get(IngestRun, run_id).created_at = utcnow() - UNOWNED_GRACE - timedelta(seconds=5)
        assert reconcile(ctx, redis_conn, queue_name)["requeued"] == [run_id]
    finally:
        ctx.close()


def test_a_killed_cli_ingest_is_marked_interrupted_by_the_next_command(settings, tmp_path):
    """The run of a `simsearch ingest` killed mid-way stays `running` until the next command on
    this host sees its process is gone."""
    from simsearch.jobs.runners import this_process

    env = dict(os.environ, SIMSEARCH_HOME=str(settings.home), SIMSEARCH_DATABASE_URL=settings.database_url,
               SIMSEARCH_WEIGHTS_DIR=str(settings.weights_dir))
    cli = [sys.executable, "-c", "from simsearch.cli import main; main()"]
    from simsearch.context import AppContext

    ctx = AppContext.open(settings)
    try:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        owner = this_process("cli").replace(f":{os.getpid()}:", f":{dead.pid}:")
        with ctx.db.session() as s:
            from simsearch.store import repo

            coll = repo.get_or_create_collection(s, "pets")
            run = IngestRun(collection_id=coll.id, source="/photos", spaces=["efficientnet_lite0"], status="running",
                            total=100, processed=40, owner=owner, updated_at=utcnow())
            s.add(run)
            s.flush()
            run_id = run.id
        out = subprocess.run([*cli, "jobs", "--json"], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        listed = {j["id"]: j for j in json.loads(out.stdout)}
        assert listed[run_id]["status"] == "interrupted"
        assert "stopped after 40 of 100 files" in listed[run_id]["message"]
        shown = subprocess.run([*cli, "jobs", str(run_id)], env=env, capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0 and f"#{run_id}  ingest  Adding images (efficientnet_lite0)  interrupted  pets  40/100" \
            in shown.stdout
    finally:
        ctx.close()


def test_ingest_queue_needs_redis_and_jobs_reports_unknown_ids(settings, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMSEARCH_REDIS")}
    env.update(SIMSEARCH_HOME=str(settings.home), SIMSEARCH_DATABASE_URL=settings.database_url)
    cli = [sys.executable, "-c", "from simsearch.cli import main; main()"]
    folder = copy_subset(tmp_path / "pets", 1)
    out = subprocess.run([*cli, "ingest", str(folder), "-c", "q", "--queue"], env=env, capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: --queue needs SIMSEARCH_REDIS_URL (the Redis that `simsearch worker` processes read)"
    out = subprocess.run([*cli, "ingest", str(folder), "-c", "q", "--queue"], capture_output=True, text=True,
                         env={**env, "SIMSEARCH_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert out.returncode == 1 and out.stderr.startswith("error: the job queue (Redis at redis://127.0.0.1:1/0) is unreachable")
    assert len(out.stderr.strip().splitlines()) == 1
    out = subprocess.run([*cli, "jobs", "99999"], env=env, capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip() == "error: no job with id 99999"


@pytest.mark.redis
def test_ingest_queue_then_jobs_follow(settings, tmp_path, queue_name):
    env = dict(os.environ, SIMSEARCH_HOME=str(settings.home), SIMSEARCH_DATABASE_URL=settings.database_url,
               SIMSEARCH_WEIGHTS_DIR=str(settings.weights_dir), SIMSEARCH_REDIS_URL=REDIS_URL,
               SIMSEARCH_QUEUE=queue_name, SIMSEARCH_SHARD_SIZE="3")
    cli = [sys.executable, "-c", "from simsearch.cli import main; main()"]
    folder = copy_subset(tmp_path / "pets", 3)  # 6 files: 2 shards
    out = subprocess.run([*cli, "ingest", str(folder), "-c", "queued", "--labels", "folders", "--queue", "--json"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    accepted = json.loads(out.stdout)
    assert accepted["status"] == "queued" and accepted["total"] == 6 and accepted["runner"] == "rq"
    follow = subprocess.Popen([*cli, "jobs", str(accepted["job_id"]), "--follow", "--interval", "0.3"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = run_worker_process(settings.replace(redis_url=REDIS_URL), queue_name)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stdout, stderr = follow.communicate(timeout=120)
    assert follow.returncode == 0, stderr
    assert f"#{accepted['job_id']}  ingest  Adding images" in stdout
    assert "  done  queued  6/6  +6 new, 0 present, 0 failed  shards 2/2 done" in stdout


@pytest.mark.postgres
def test_one_index_writer_across_processes(postgres_url, tmp_path):
    """The PostgreSQL advisory lock: a second holder waits until the first lets go."""
    from simsearch.index.manager import writer_lock
    from simsearch.store.db import Database

    db1, db2 = Database(postgres_url), Database(postgres_url)
    path = tmp_path / "collection-1" / "efficientnet_lite0.faiss"
    order, held, release = [], threading.Event(), threading.Event()
    tries = []  # the second holder's lock attempts (pg_try_advisory_lock), seen on its engine
    event.listen(db2.engine, "after_cursor_execute",
                 lambda conn, cur, statement, *a: tries.append(1) if "pg_try_advisory_lock" in statement else None)

    def second():
        with writer_lock(db2, path):
            order.append("second")
            held.set()
            release.wait(10)

    try:
        with writer_lock(db1, path):
            t = threading.Thread(target=second)
            t.start()
            # a second try means the first was refused: the second holder waits for this one
            wait_until(lambda: len(tries) >= 2, 30, 0.02, "the second holder tried the lock again")
            order.append("first done")
        assert held.wait(10)
        assert order == ["first done", "second"]
        with pytest.raises(TimeoutError):  # the second holds it now
            with writer_lock(db1, path, wait=0.3):
                pass
        release.set()
        t.join(10)
        with writer_lock(db1, path, wait=5):  # free again
            pass
    finally:
        release.set()
        db1.dispose()
        db2.dispose()


def test_one_index_writer_on_sqlite_is_a_file_lock(tmp_path):
    import fcntl

    from simsearch.index.manager import writer_lock
    from simsearch.store.db import Database

    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    path = tmp_path / "collection-1" / "s.faiss"
    with writer_lock(db, path):
        with open(path.with_name("s.faiss.lock"), "a+b") as fh:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(path.with_name("s.faiss.lock"), "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released
    db.dispose()
