"""Passes over stored images (re-embedding, local features): a folder ingested to pass over, an
image's file that blocks whoever reads it, and the scenarios that tests/test_reembed_jobs.py and
tests/test_feature_jobs.py run on both kinds: a job cancelled mid-shard then retried, and a
worker SIGKILLed mid-shard."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sqlalchemy import select

from tests.helpers.jobs import REDIS_URL, kill_group, start_worker
from tests.helpers.waiting import wait_until


def ingest(ctx, folder, collection: str = "pets") -> int:
    """Ingest ``folder`` (labels by sub-folder) into ``collection`` in ``efficientnet_lite0``; its id."""
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.store import repo

    files, _ = files_from_folder(folder, labels="folders")
    Ingester(ctx, spaces=["efficientnet_lite0"], batch_size=8).run(collection, files, source=str(folder))
    with ctx.db.session() as s:
        return repo.get_collection(s, collection).id


class Blocked:
    """An image's file at ``path`` moved to ``away`` and a FIFO in its place: whoever opens it to read
    waits there (a shard is killed mid-way); :meth:`restore` puts the file back."""

    def __init__(self, path, away):
        self.path, self.away = str(path), Path(away)
        shutil.move(self.path, self.away)
        os.mkfifo(self.path)

    def restore(self) -> None:
        os.unlink(self.path)
        shutil.move(self.away, self.path)


def cancel_then_retry(ctx, made: dict, execute_shard, stored) -> None:
    """A pass over 8 images in 2 shards of 4, batches of 2 (``made``: its ``create_job`` answer;
    ``execute_shard``: its kind's shard function; ``stored()``: how many images have what it
    stores): its job cancelled after the first batch stops the first shard before its next batch
    and the second before it starts (2 images stored); a retry on a thread runner finishes the job,
    skipping those 2."""
    from simsearch.jobs.runners import ThreadRunner
    from simsearch.ops import job_actions, jobs as jobs_ops

    job_id, (first, second) = made["job_id"], made["shards"]
    cancelled = []

    def cancel_once(done, total):
        if not cancelled:
            cancelled.append(job_actions.cancel(ctx, job_id))

    out = execute_shard(ctx, first, progress=cancel_once)
    assert out["cancelled"] and cancelled[0]["cancelled"] == [job_id, first, second]
    job = jobs_ops.get(ctx, job_id)
    assert job["status"] == "failed" and job["cancelled"] and job["processed"] == 2, job
    shard = next(c for c in job["children"] if c["id"] == first)
    assert "stopped after 2 of 4 images" in shard["message"]
    assert execute_shard(ctx, second)["status"] == "failed"  # a cancelled shard is not started
    assert stored() == 2

    runner = ThreadRunner(ctx)
    try:
        assert job_actions.retry(ctx, runner, job_id) == {"job_id": job_id, "status": "running", "retry_of": job_id}
        wait_until(lambda: jobs_ops.get(ctx, job_id)["status"] in ("done", "failed"), 300, 0.2, "the retried job ends")
    finally:
        runner.shutdown()
    job = jobs_ops.get(ctx, job_id)
    assert job["status"] == "done", job
    assert (job["processed"], job["added"], job["skipped"]) == (8, 6, 2)  # the 2 stored before were skipped
    assert stored() == 8


def kill_a_worker_mid_shard(ctx, queue: str, tmp_path, start, stored) -> tuple[dict, dict]:
    """A pass of one shard over the 12 images the caller ingested, in batches of 2, whose worker is
    SIGKILLed mid-way: the fifth image's file blocks (:class:`Blocked`); ``start(runner)`` queues the
    pass on ``queue`` (an RQ runner) and answers its 202 body; a ``simsearch worker`` stores two
    batches (``stored()``: image id -> what is stored for it) and is killed with its work horse while
    the third waits on the file; the file is put back and a second worker finishes the shard, doing
    only the 8 images left (the job's and its shard's counters say so). Returns ``stored()`` before
    the kill and at the end."""
    from simsearch.jobs.runners import RQRunner
    from simsearch.ops import jobs as jobs_ops
    from simsearch.store.models import Image, IngestRun

    with ctx.db.session() as s:
        fifth = s.execute(select(Image.source_path).order_by(Image.id).offset(4).limit(1)).scalar_one()
    workers = []
    try:
        blocked = Blocked(fifth, tmp_path / "kept.jpg")  # the shard's third batch waits in open() here
        started = start(RQRunner(ctx, REDIS_URL, queue))
        job_id = started["job_id"]
        assert started["shards"] == 1 and started["total"] == 12
        first = start_worker(ctx.settings, queue, SIMSEARCH_WORKER_HEARTBEAT="1")
        workers.append(first)
        wait_until(lambda: len(stored()) >= 4 or first.poll() is not None, 300, 0.1, "two batches stored")
        assert first.poll() is None, first.stderr.read()[-3000:]
        before = stored()
        assert len(before) == 4  # the third batch waits on the pipe: nothing more is stored
        kill_group(first)  # the worker and its work horse, no clean-up of any kind
        blocked.restore()
        with ctx.db.session() as s:
            shard = s.scalars(select(IngestRun).where(IngestRun.parent_id == job_id)).one()
            assert (shard.status, shard.attempts, shard.processed) == ("running", 1, 4)

        second = start_worker(ctx.settings, queue, SIMSEARCH_WORKER_HEARTBEAT="1")
        workers.append(second)
        job = wait_until(lambda: (j := jobs_ops.get(ctx, job_id))["status"] in ("done", "failed") and j, 300, 0.5,
                         lambda: f"the job ends; worker: {second.poll()}")
        assert job["status"] == "done", job
        child = job["children"][0]
        assert (child["skipped"], child["added"], child["processed"]) == (4, 8, 12)  # the 4 stored were not redone
        assert job["shards"]["attempts"] == 2 and (job["processed"], job["added"], job["skipped"]) == (12, 8, 4)
        return before, stored()
    finally:
        for worker in workers:
            kill_group(worker)
