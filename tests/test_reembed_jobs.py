"""Re-embedding as a sharded job (issue 22, item 1): shards of image ids rolled up into the job,
vectors equal to an unsharded pass, cancel and retry, the cost estimate, the API's 202 and
`simsearch embed`; and a shard whose worker is SIGKILLed mid-way is finished by another worker
without embedding again the images already stored."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from sqlalchemy import func, select

from conftest import copy_subset
from tests.helpers.api import assert_error, wait_job
from tests.helpers.jobs import CLI, REDIS_URL, cli_env, dead_owner, pg_rq_ctx, rq_ctx, rq_queue  # noqa: F401
from tests.helpers.passes import cancel_then_retry, ingest, kill_a_worker_mid_shard
from tests.helpers.waiting import wait_until

SPACE = "efficientnet_lite0@gem3"

pytestmark = pytest.mark.model


def _vectors(ctx, coll_id: int, space: str):
    from simsearch.store import repo

    with ctx.db.session() as s:
        return repo.load_vectors(s, coll_id, space)


def _rows(ctx, space: str) -> dict[int, object]:
    """image id -> created_at of each stored vector of ``space`` (a vector stored again gets a new one)."""
    from simsearch.store.models import Embedding

    with ctx.db.session() as s:
        return dict(s.execute(select(Embedding.image_id, Embedding.created_at).where(Embedding.space == space)).all())


def test_shards_are_rolled_up_and_the_vectors_equal_an_unsharded_pass(ctx, tmp_path):
    from simsearch.errors import Conflict
    from simsearch.jobs import reembed
    from simsearch.ops import jobs as jobs_ops, reembed_jobs
    from simsearch.ops.reembed import embed_collection

    coll_id = ingest(ctx, copy_subset(tmp_path / "pets", 5))  # 10 images
    made = reembed_jobs.create_job(ctx, "pets", [SPACE], shard_size=4, batch_size=3)
    job_id, shard_ids = made["job_id"], made["shards"]
    assert len(shard_ids) == 3 and made["total"] == 10 and made["estimate"]["images"] == 10
    job = jobs_ops.get(ctx, job_id)
    assert job["kind"] == "reembed" and job["status"] == "running" and job["shards"]["queued"] == 3
    assert [c["params"]["images"] for c in job["children"]] == [4, 3, 3]  # ids shown as their count

    reembed.execute_shard(ctx, shard_ids[0])
    job = jobs_ops.get(ctx, job_id)
    assert job["status"] == "running" and (job["processed"], job["added"], job["shards"]["done"]) == (4, 4, 1)
    for shard_id in shard_ids[1:]:
        reembed.execute_shard(ctx, shard_id)
    job = jobs_ops.get(ctx, job_id)
    assert job["status"] == "done", job
    assert (job["processed"], job["added"], job["skipped"], job["failed"]) == (10, 10, 0, 0)
    assert reembed.execute_shard(ctx, shard_ids[0])["status"] == "done"  # an ended shard is not run again

    ids, sharded = _vectors(ctx, coll_id, SPACE)
    assert len(ids) == 10 and len(_rows(ctx, SPACE)) == 10
    assert embed_collection(ctx, coll_id, [SPACE]).images == 10  # the unsharded pass, in place of the job's vectors
    ids2, whole = _vectors(ctx, coll_id, SPACE)
    assert np.array_equal(ids, ids2) and np.allclose(sharded, whole, atol=1e-6)
    with pytest.raises(Conflict):  # nothing lacks the vectors any more
        reembed_jobs.start(ctx, None, "pets", [SPACE])


def test_a_cancelled_shard_stops_before_its_next_batch_and_a_retry_finishes_the_job(ctx, tmp_path):
    from simsearch.jobs import reembed
    from simsearch.ops import reembed_jobs

    ingest(ctx, copy_subset(tmp_path / "pets", 4))  # 8 images
    cancel_then_retry(ctx, reembed_jobs.create_job(ctx, "pets", [SPACE], shard_size=4, batch_size=2), reembed.execute_shard, lambda: len(_rows(ctx, SPACE)))


def test_a_shard_of_a_stopped_in_process_runner_is_resumed_by_the_next_one(ctx, tmp_path):
    """The web app's thread ran a shard and its process died after the first batch (the row says
    running, owned by a process that no longer exists): the next runner on this host takes it over."""
    from sqlalchemy import update

    from simsearch.jobs import reembed
    from simsearch.jobs.runners import ThreadRunner, this_process
    from simsearch.ops import jobs as jobs_ops, reembed_jobs
    from simsearch.store.models import IngestRun

    ingest(ctx, copy_subset(tmp_path / "pets", 2))  # 4 images
    made = reembed_jobs.create_job(ctx, "pets", [SPACE], batch_size=2)
    (shard_id,) = made["shards"]
    stop_after_one = []

    def stop(done, total):
        if not stop_after_one:  # what a dead process leaves: its first batch stored, the shard running
            stop_after_one.append(done)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reembed.execute_shard(ctx, shard_id, progress=stop)
    with ctx.db.session() as s:
        s.execute(update(IngestRun).where(IngestRun.id == shard_id)
                  .values(owner=dead_owner("thread")))
    runner = ThreadRunner(ctx)
    try:
        assert runner.recover() == [shard_id]
        wait_until(lambda: jobs_ops.get(ctx, made["job_id"])["status"] in ("done", "failed"), 300, 0.2, "the job ends")
    finally:
        runner.shutdown()
    job = jobs_ops.get(ctx, made["job_id"])
    assert job["status"] == "done" and (job["added"], job["skipped"]) == (2, 2), job
    with ctx.db.session() as s:
        assert s.get(IngestRun, shard_id).owner == this_process() and s.get(IngestRun, shard_id).attempts == 2


def test_the_estimate_is_images_times_forwards_times_a_recorded_rate(ctx, tmp_path):
    from simsearch.jobs import reembed_cost
    from simsearch.ops import reembed_jobs

    ingest(ctx, copy_subset(tmp_path / "pets", 3))  # 6 images
    flip = "efficientnet_lite0@gem3+flip"
    est = reembed_jobs.estimate(ctx, "pets", [SPACE, flip])
    assert (est["images"], est["spaces"], est["forwards_per_image"]) == (6, 2, 2)  # gem3 and its flip share a forward
    assert est["basis"] == "ingest" and est["seconds_per_image"] > 0  # ingest's model seconds per image
    assert est["seconds"] == pytest.approx(6 * est["seconds_per_image"], rel=1e-3, abs=0.1)
    assert reembed_cost.forwards_per_image(["efficientnet_lite0+flip+ms"]) == 4

    done = reembed_jobs.run_here(ctx, "pets", [flip])
    assert done["status"] == "done" and done["embedded"] == 6 and done["estimate"]["images"] == 6
    after = reembed_jobs.estimate(ctx, "pets", [SPACE])
    assert after["basis"] == "recorded" and after["images"] == 6 and after["forwards_per_image"] == 1
    assert after["seconds"] == pytest.approx(6 * after["seconds_per_image"], rel=1e-3, abs=0.1)


def test_the_api_answers_202_with_the_estimate_and_joins_a_running_job(make_app, settings, tmp_path):
    from simsearch.context import AppContext

    ctx = AppContext.open(settings)
    try:
        ingest(ctx, copy_subset(tmp_path / "pets", 3))
    finally:
        ctx.close()
    client = make_app(settings).test_client()
    resp = client.post("/api/collections/pets/reembed", json={"spaces": [SPACE], "shard_size": 4})
    assert resp.status_code == 202, resp.get_data(as_text=True)[:500]
    body = resp.get_json()
    assert resp.headers["Location"] == body["status_url"] == f"/api/jobs/{body['job_id']}"
    assert (body["total"], body["shards"], body["spaces"], body["runner"]) == (6, 2, [SPACE], "thread")
    assert body["estimate"]["images"] == 6 and body["estimate"]["basis"] in ("ingest", "recorded")
    job = wait_job(client, body["job_id"])
    assert job["status"] == "done" and job["added"] == 6 and job["title"] == f"Re-embedding in {SPACE}", job
    assert_error(client.post("/api/collections/pets/reembed", json={"spaces": [SPACE]}), 409, "conflict", "spaces")
    assert_error(client.post("/api/collections/pets/reembed", json={"spaces": ["efficientnet_lite0", "efficientnet_lite0+bf16"]}),
                 400, None, "spaces")


def test_the_command_prints_the_estimate_then_embeds_with_a_progress_line(settings, tmp_path):
    from simsearch.context import AppContext

    ctx = AppContext.open(settings)
    try:
        ingest(ctx, copy_subset(tmp_path / "pets", 2))
    finally:
        ctx.close()
    env = cli_env(settings)
    cmd = CLI + ["embed", "-c", "pets", "-s", SPACE]
    est = subprocess.run(cmd + ["--estimate", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert est.returncode == 0, est.stderr[-2000:]
    assert json.loads(est.stdout)["images"] == 4
    run = subprocess.run(cmd + ["--progress"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.startswith("estimate: 4 images in 1 space") and "embedding: 4/4 images" in run.stderr
    assert run.stdout.startswith(f"pets: 4 images embedded in {SPACE}, 0 had them, 0 failed")
    queued = subprocess.run(cmd + ["--queue"], env=env, capture_output=True, text=True, timeout=120)
    assert queued.returncode != 0 and "SIMSEARCH_REDIS_URL" in queued.stderr


@pytest.mark.redis
@pytest.mark.postgres
def test_a_killed_worker_s_shard_is_finished_by_another_without_embedding_the_stored_images_again(
        pg_rq_ctx, tmp_path):  # noqa: F811
    from simsearch.ops import reembed_jobs
    from simsearch.store.models import Embedding

    ctx = pg_rq_ctx
    ingest(ctx, copy_subset(tmp_path / "pets", 6))  # 12 images
    before, after = kill_a_worker_mid_shard(
        ctx, ctx.settings.queue, tmp_path,
        lambda runner: reembed_jobs.start(ctx, runner, "pets", [SPACE], batch_size=2), lambda: _rows(ctx, SPACE))
    assert len(after) == 12 and all(after[i] == t for i, t in before.items())  # the same rows, not stored again
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Embedding).where(Embedding.space == SPACE)) == 12


@pytest.mark.redis
def test_shards_lost_with_redis_are_queued_again_and_a_failed_job_is_finished_by_a_retry(settings, tmp_path,
                                                                                          rq_queue):  # noqa: F811
    import redis
    from rq import Queue
    from rq.job import Job, JobStatus

    from simsearch.jobs.reconcile import reconcile
    from simsearch.jobs.rq import REEMBED_SHARD_TARGET
    from simsearch.jobs.runners import RQRunner
    from simsearch.ops import job_actions, jobs as jobs_ops, reembed_jobs
    from simsearch.store.models import IngestRun
    from tests.helpers.jobs import run_worker_process

    conn = redis.Redis.from_url(REDIS_URL)
    ctx = rq_ctx(settings, rq_queue)
    try:
        ingest(ctx, copy_subset(tmp_path / "pets", 1))  # 2 images
        runner = RQRunner(ctx, REDIS_URL, rq_queue)
        job_id = reembed_jobs.start(ctx, runner, "pets", [SPACE], shard_size=1)["job_id"]
        Queue(rq_queue, connection=conn).delete(delete_jobs=True)  # what a Redis restart does
        with ctx.db.session() as s:
            first, second = s.scalars(select(IngestRun.id).where(IngestRun.parent_id == job_id)
                                      .order_by(IngestRun.id)).all()
        assert sorted(reconcile(ctx, conn, rq_queue)["requeued"]) == [first, second]
        with ctx.db.session() as s:
            owners = {i: s.get(IngestRun, i).owner[3:] for i in (first, second)}
        assert Job.fetch(owners[first], connection=conn).args[1] == REEMBED_SHARD_TARGET
        Job.fetch(owners[first], connection=conn).set_status(JobStatus.FAILED)  # RQ gave up on it
        assert reconcile(ctx, conn, rq_queue)["failed"] == [first]
        assert jobs_ops.get(ctx, job_id)["status"] == "running"  # its other shard is still queued

        proc = run_worker_process(ctx.settings, rq_queue)
        assert proc.returncode == 0, proc.stderr[-3000:]
        job = jobs_ops.get(ctx, job_id)
        assert job["status"] == "failed" and job["message"].startswith("1 of 2 shards failed (shard 1)"), job
        assert "retrying the job finishes it" in job["message"] and job["retry_refused"] is None

        assert job_actions.retry(ctx, runner, job_id)["job_id"] == job_id
        proc = run_worker_process(ctx.settings, rq_queue)
        assert proc.returncode == 0, proc.stderr[-3000:]
        job = jobs_ops.get(ctx, job_id)
        assert job["status"] == "done" and (job["processed"], job["added"]) == (2, 2), job
        assert len(_rows(ctx, SPACE)) == 2
    finally:
        ctx.close()
