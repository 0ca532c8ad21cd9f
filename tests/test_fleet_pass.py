"""A pass over stored images that a command runs "here" (`simsearch embed` without --queue, `tune`,
`compare`) is offered to the workers when a queue is configured (issue 22, :mod:`simsearch.jobs.fleet`):
the command and a real `simsearch worker` share its shards, each run once; a shard that failed for
good makes the command fail with one line naming it. Without a queue nothing changes (the
in-process tests of tests/test_reembed_jobs.py and tests/test_feature_jobs.py)."""

from __future__ import annotations

import subprocess

import pytest
from sqlalchemy import func, select

from conftest import copy_subset
from tests.helpers.jobs import (CLI, REDIS_URL, cli_env, kill_group, pg_rq_ctx, rq_ctx,  # noqa: F401 (fixtures)
                                rq_queue, run_worker_process, start_worker)
from tests.helpers.passes import Blocked, ingest
from tests.helpers.waiting import wait_until

SPACE = "efficientnet_lite0@gem3"

pytestmark = [pytest.mark.model, pytest.mark.redis]


@pytest.mark.postgres
def test_the_command_and_a_worker_share_the_shards_and_each_image_is_embedded_once(pg_rq_ctx, tmp_path,
                                                                                   rq_queue):  # noqa: F811
    import redis
    from rq import Queue, Worker

    from simsearch.ops import jobs as jobs_ops, reembed_jobs
    from simsearch.store.models import Embedding, IngestRun

    ctx = pg_rq_ctx
    conn = redis.Redis.from_url(REDIS_URL)
    worker = None
    try:
        ingest(ctx, copy_subset(tmp_path / "pets", 6))  # 12 images
        worker = start_worker(ctx.settings, rq_queue)
        queue = Queue(rq_queue, connection=conn)
        wait_until(lambda: Worker.all(connection=conn, queue=queue) or worker.poll() is not None, 300, 0.2,
                   "the worker listens on the queue")
        assert worker.poll() is None, worker.stderr.read()[-3000:]
        seen = []
        out = reembed_jobs.run_here(ctx, "pets", [SPACE], shard_size=2, batch_size=2,
                                    progress=lambda done, total: seen.append((done, total)))
        assert out["status"] == "done" and (out["total"], out["embedded"], out["failed"]) == (12, 12, 0), out
        assert seen[-1] == (12, 12) and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))  # the whole job's progress
        with ctx.db.session() as s:
            rows = s.execute(select(IngestRun.status, IngestRun.owner, IngestRun.attempts, IngestRun.added)
                             .where(IngestRun.parent_id == out["job_id"])).all()
            assert s.scalar(select(func.count()).select_from(Embedding).where(Embedding.space == SPACE)) == 12
            assert s.scalar(select(func.count(func.distinct(Embedding.image_id)))
                            .where(Embedding.space == SPACE)) == 12
        assert len(rows) == 6 and all(r.status == "done" and r.attempts == 1 for r in rows), rows  # each ran once
        assert sum(r.added for r in rows) == 12  # no image embedded twice
        runners = {r.owner.split(":")[0] for r in rows}
        assert runners == {"cli", "rq"}, rows  # both the command (cli:HOST:PID) and the worker (rq:JOB) ran shards
        job = jobs_ops.get(ctx, out["job_id"])
        assert job["status"] == "done" and job["shards"]["attempts"] == 6
    finally:
        kill_group(worker)


def test_a_shard_that_failed_for_good_fails_the_command_with_one_line_naming_it(settings, tmp_path,
                                                                               rq_queue):  # noqa: F811
    from simsearch.errors import SimsearchError
    from simsearch.jobs import shards
    from simsearch.ops import jobs as jobs_ops, reembed_jobs
    from simsearch.store.models import IngestRun

    ctx = rq_ctx(settings, rq_queue)
    try:
        ingest(ctx, copy_subset(tmp_path / "pets", 2))  # 4 images
        made = reembed_jobs.create_job(ctx, "pets", [SPACE], shard_size=2)
        job_id, (first, second) = made["job_id"], made["shards"]
        shards.fail_finally(ctx, first, "the worker gave up on it: boom")  # what RQ's last failure callback does
        with pytest.raises(SimsearchError) as err:
            reembed_jobs.run_here(ctx, "pets", [SPACE])  # joins the job, as the same command run again
        message = err.value.message
        assert "\n" not in message and message.startswith(f"re-embedding job {job_id}: shard 1 of 2 (run {first}) "
                                                          "failed: the worker gave up on it: boom"), message
        with ctx.db.session() as s:
            other = s.get(IngestRun, second)
            assert other.status == "queued" and other.owner.startswith("rq:")  # left to the workers
        cmd = CLI + ["embed", "-c", "pets", "-s", SPACE]
        run = subprocess.run(cmd, env=cli_env(ctx.settings, rq_queue), capture_output=True, text=True, timeout=300)
        assert run.returncode == 1, run.stderr[-2000:]
        errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
        assert errors == [line for line in run.stderr.splitlines() if "shard 1 of 2" in line] and len(errors) == 1
        proc = run_worker_process(ctx.settings, rq_queue)  # the workers end the job: failed, naming the shard
        assert proc.returncode == 0, proc.stderr[-3000:]
        job = jobs_ops.get(ctx, job_id)
        assert job["status"] == "failed" and job["message"].startswith("1 of 2 shards failed (shard 1)"), job
    finally:
        ctx.close()


def test_a_pass_offers_all_its_shards_to_the_queue_over_one_redis_connection(settings, rq_queue,
                                                                            monkeypatch):  # noqa: F811
    import redis
    from rq import Queue

    from simsearch.jobs import fleet, rq, runners, shards
    from simsearch.store import lifecycle, repo

    clients, connections = [], []
    make_client, make_connection = runners.redis_connection, redis.connection.ConnectionPool.make_connection

    def client(url, **kw):
        clients.append(make_client(url, **kw))
        return clients[-1]

    def connection(pool):
        connections.append(pool)
        return make_connection(pool)

    monkeypatch.setattr(runners, "redis_connection", client)
    monkeypatch.setattr(rq, "redis_connection", client)
    monkeypatch.setattr(redis.connection.ConnectionPool, "make_connection", connection)
    ctx = rq_ctx(settings, rq_queue)
    try:
        with ctx.db.session() as s:
            coll_id = repo.get_or_create_collection(s, "pets").id
        job_id, ids = shards.create_pass(ctx, "features", coll_id, range(1, 6), spaces=[], source="test",
                                         shard_size=1, batch_size=1)
        offered = Queue(rq_queue, connection=redis.Redis.from_url(REDIS_URL))
        ran = []

        def execute(ctx_, shard_id, progress=None):  # the command's share: it ends each shard it takes
            ran.append((shard_id, offered.count))
            lifecycle.finish(ctx_.db, shard_id, "done")
            shards.roll_up(ctx_, job_id)

        assert fleet.run_pass(ctx, job_id, execute, poll=0.05) == "done"
        assert sorted(shard for shard, _queued in ran) == ids and ran[0][1] == 5  # all five were on the queue
        assert len(clients) == 1  # the ping and the five enqueues: one client
        assert [p for p in connections if p is not offered.connection.connection_pool] == [clients[0].connection_pool]
    finally:
        ctx.close()


def test_a_queue_that_does_not_answer_runs_the_pass_here_with_a_warning(settings, tmp_path, caplog):
    from simsearch.context import AppContext
    from simsearch.jobs import fleet
    from simsearch.ops import reembed_jobs
    from simsearch.store.models import IngestRun

    ctx = AppContext.open(settings.replace(redis_url="redis://127.0.0.1:1/0", jobs="rq"))
    try:
        ingest(ctx, copy_subset(tmp_path / "pets", 1))  # 2 images
        assert fleet.queue_for_passes(ctx) is None
        assert "unreachable" in caplog.text and "running every shard in this process" in caplog.text
        out = reembed_jobs.run_here(ctx, "pets", [SPACE], shard_size=1)
        assert out["status"] == "done" and out["embedded"] == 2
        with ctx.db.session() as s:
            owners = list(s.scalars(select(IngestRun.owner).where(IngestRun.parent_id == out["job_id"])))
        assert len(owners) == 2 and all(o.startswith("cli:") for o in owners)
    finally:
        ctx.close()


def test_with_no_worker_running_the_command_runs_every_shard_and_the_queue_s_entries_do_nothing(settings, tmp_path,
                                                                                                  rq_queue):  # noqa: F811
    from simsearch.ops import jobs as jobs_ops, local_features
    from simsearch.store.models import ImageFeatures, IngestRun

    ctx = rq_ctx(settings, rq_queue)
    try:
        ingest(ctx, copy_subset(tmp_path / "pets", 2))  # 4 images
        report = local_features.store_missing(ctx, "pets", shard_size=2)  # a features pass: the other kind
        assert report["status"] == "done" and report["stored"] == 4, report
        with ctx.db.session() as s:
            rows = s.execute(select(IngestRun.id, IngestRun.owner, IngestRun.attempts)
                             .where(IngestRun.parent_id == report["job_id"])).all()
            assert s.scalar(select(func.count()).select_from(ImageFeatures)) == 4
        assert len(rows) == 2 and all(r.owner.startswith("cli:") and r.attempts == 1 for r in rows), rows
        proc = run_worker_process(ctx.settings, rq_queue)  # the queue held both shards: a worker finds them ended
        assert proc.returncode == 0, proc.stderr[-3000:]
        job = jobs_ops.get(ctx, report["job_id"])
        assert job["status"] == "done" and job["shards"]["attempts"] == 2 and job["added"] == 4, job
    finally:
        ctx.close()


@pytest.mark.postgres
def test_a_shard_whose_worker_died_unnoticed_is_queued_again_and_finished_by_the_waiting_command(
        pg_rq_ctx, tmp_path, rq_queue):  # noqa: F811
    import threading
    from datetime import timedelta

    from simsearch.jobs import fleet
    from simsearch.jobs.runners import RQRunner
    from simsearch.ops import reembed_jobs
    from simsearch.store.lifecycle import LOST_AFTER_SECONDS
    from simsearch.store.models import Embedding, Image, IngestRun, utcnow

    ctx = pg_rq_ctx
    worker, outcome = None, {}
    try:
        ingest(ctx, copy_subset(tmp_path / "pets", 2))  # 4 images
        made = reembed_jobs.create_job(ctx, "pets", [SPACE], shard_size=2, batch_size=1)
        job_id, (first, second) = made["job_id"], made["shards"]
        with ctx.db.session() as s:
            ids = s.get(IngestRun, first).params["ids"]
            second_image = s.get(Image, ids[1]).source_path
        blocked = Blocked(second_image, tmp_path / "kept.jpg")  # the shard's second batch waits here: its worker is killed
        reembed_jobs.submit(ctx, RQRunner(ctx, REDIS_URL, rq_queue), [first])
        worker = start_worker(ctx.settings, rq_queue)

        def stored() -> int:
            with ctx.db.session() as s:
                return s.scalar(select(func.count()).select_from(Embedding).where(Embedding.space == SPACE))

        wait_until(lambda: stored() >= 1 or worker.poll() is not None, 300, 0.1, "the worker's first batch stored")
        assert worker.poll() is None, worker.stderr.read()[-3000:]
        kill_group(worker)  # the only worker: nobody notices (no RQ maintenance runs)
        blocked.restore()

        def command():
            try:
                outcome["out"] = reembed_jobs.run_here(ctx, "pets", [SPACE])  # joins the job, waits on shard 1
            except BaseException as exc:  # (reported by the assertion below)
                outcome["error"] = exc

        thread = threading.Thread(target=command, daemon=True)
        thread.start()

        def second_done() -> bool:
            with ctx.db.session() as s:
                return s.get(IngestRun, second).status == "done" or not thread.is_alive()

        wait_until(second_done, 300, 0.1, "the command runs the queued shard")
        later = utcnow() + timedelta(seconds=LOST_AFTER_SECONDS + 1)  # the dead worker's shard not heard of since
        assert fleet.requeue_silent(ctx, job_id, now=later) == [first]
        thread.join(300)
        assert not thread.is_alive() and "error" not in outcome, outcome
        out = outcome["out"]
        assert out["status"] == "done" and out["total"] == 4, out
        with ctx.db.session() as s:
            shard = s.get(IngestRun, first)
            assert shard.owner.startswith("cli:") and shard.attempts == 2 and (shard.skipped, shard.added) == (1, 1)
        assert stored() == 4
    finally:
        kill_group(worker)
