"""Making the jobs table and the queue agree after crashes, restarts and lost Redis data.

RQ itself starts again a job whose worker died (its heartbeats stopped: see
:func:`simsearch.jobs.worker_loop.worker_class`). What RQ cannot know, the database tells:

- a queued or running job whose RQ job is gone (Redis restarted without persistence, or was
  flushed) is put on the queue again, once (a conditional update claims it), when it is an ingest
  or a shard (ingest is idempotent); an analysis is failed: asking again starts a new one;
- a job whose RQ job failed or was stopped, while the database still says running (the worker
  died and RQ ran out of retries without telling us), is failed;
- a sharded job whose shards have all ended is ended (:func:`simsearch.jobs.shards.roll_up`);
- a re-embedding or local features job run by a process that died (`simsearch embed`, `simsearch
  features`, `simsearch compare`, a tuning) is ended as lost (:func:`simsearch.jobs.reembed_lost.mark_lost`);
- a `simsearch ingest` command killed mid-way (its process is gone) is marked ``interrupted``.

Every ``simsearch worker`` runs :func:`reconcile` in its maintenance pass (every few seconds
while idle); ``simsearch ingest`` and ``simsearch jobs`` run :func:`mark_interrupted`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from simsearch.store import lifecycle
from simsearch.store.lifecycle import IMAGE_PASSES, RESTARTABLE, SHARD_KINDS, SHARDED_KINDS, UNFINISHED, JobKind, JobStatus
from simsearch.store.models import IngestRun
from simsearch.text import plural
from simsearch.jobs.execute import mark_failed
from simsearch.jobs.rq import SHARD_TARGETS, enqueue_function, enqueue_ingest, enqueue_shard, new_job_id
from simsearch.jobs.shards import fail_finally, roll_up
from simsearch.jobs.reembed_lost import mark_lost
from simsearch.owners import owner_is_gone
from simsearch.store.db import unavailable

log = logging.getLogger("simsearch.jobs")

UNOWNED_GRACE = timedelta(minutes=5)  # a queued job nobody claimed: its submitter died before enqueueing


def _state(connection, job_id: str) -> str | None:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        status = Job.fetch(job_id, connection=connection).get_status(refresh=False)
    except NoSuchJobError:
        return None
    return getattr(status, "value", status) or None  # JobStatus is a str Enum: str() would say "JobStatus.X"


def reconcile(ctx, connection, queue_name: str) -> dict:
    """One pass over the unfinished jobs (see the module's doc); returns what it did."""
    done: dict[str, list[int]] = {"requeued": [], "failed": [], "ended": []}
    with ctx.db.session() as s:
        rows = s.execute(select(IngestRun.id, IngestRun.kind, IngestRun.status, IngestRun.owner, IngestRun.created_at,
                                IngestRun.attempts, IngestRun.params)
                         .where(IngestRun.status.in_([u.value for u in UNFINISHED]) |
                                ((IngestRun.kind.in_([k.value for k in SHARD_KINDS])) & (IngestRun.status == JobStatus.FAILED.value)))
                         ).all()
    limit = ctx.settings.job_retries + 3
    now = datetime.now(timezone.utc)
    for run_id, kind, status, owner, created, attempts, params in rows:
        if lifecycle.is_final(status, params):
            continue  # (a shard that failed for good)
        if kind in SHARDED_KINDS and (params or {}).get("shards"):  # a sharded job: its shards are the work
            if roll_up(ctx, run_id) != status or (kind in IMAGE_PASSES and mark_lost(ctx, run_id)):
                done["ended"].append(run_id)
            continue
        if owner is None:
            created = created if created is None or created.tzinfo else created.replace(tzinfo=timezone.utc)
            if not (status == JobStatus.QUEUED and kind in RESTARTABLE and created and now - created > UNOWNED_GRACE):
                continue
        elif not owner.startswith("rq:"):
            continue  # an in-process runner's or a CLI command's (see ThreadRunner.recover, mark_interrupted)
        state = _state(connection, owner[3:]) if owner else None
        if state in ("queued", "started", "scheduled", "deferred"):
            continue
        if state in ("failed", "stopped", "canceled"):
            give_up(ctx, run_id, kind, f"the worker running it stopped and the queue gave up on it ({state})")
            done["failed"].append(run_id)
            continue
        # gone from Redis (or finished there without ending here): start it again, once
        if kind not in RESTARTABLE or attempts >= limit:
            why = ("it was lost by the job queue (Redis restarted); asking for the result again starts it again"
                   if kind not in RESTARTABLE else f"it was started {attempts} times without finishing")
            give_up(ctx, run_id, kind, why)
            done["failed"].append(run_id)
            continue
        job_id = new_job_id()
        if not lifecycle.requeue(ctx.db, run_id, "queued again: the job queue had lost it", owned_by=owner,
                                 new_owner=f"rq:{job_id}"):
            continue  # another worker did it
        if kind in SHARD_TARGETS:
            enqueue_function(ctx.settings.redis_url or "", queue_name, run_id, SHARD_TARGETS[kind],
                             settings=ctx.settings, job_id=job_id, connection=connection)
        else:
            enqueue = enqueue_shard if kind == JobKind.SHARD else enqueue_ingest
            enqueue(ctx.settings.redis_url or "", queue_name, run_id, {}, settings=ctx.settings, job_id=job_id,
                    connection=connection)
        log.warning("job %s was lost by the queue; queued it again", run_id)
        done["requeued"].append(run_id)
    return done


def give_up(ctx, run_id: int, kind: str, why: str) -> None:
    if kind in SHARD_KINDS:
        fail_finally(ctx, run_id, why)
    else:
        mark_failed(ctx, run_id, why)


def reconcile_quietly(ctx, connection, queue_names: list[str]) -> dict | None:
    """:func:`reconcile` for a worker's maintenance pass: never raises (a database outage is
    logged once per pass; the next pass tries again)."""
    try:
        return reconcile(ctx, connection, queue_names[0])
    except Exception as exc:
        if unavailable(exc) is not None:
            log.warning("reconciling jobs: the database is unavailable; trying again later")
        else:
            log.exception("reconciling jobs failed")
        return None


def mark_interrupted(ctx) -> list[int]:
    """Mark ``interrupted`` the unfinished runs of `simsearch ingest` commands on this host whose
    process is gone (killed mid-way), and end as lost the re-embeddings such a process ran
    (:func:`simsearch.jobs.reembed_lost.mark_lost`); returns their ids. Their committed work is kept."""
    marked = []
    for run_id, owner, kind, processed, total in lifecycle.unfinished(ctx.db, owner_like="cli:%"):
        if kind in IMAGE_PASSES.values():
            continue  # ended with its job
        if kind in IMAGE_PASSES:
            if mark_lost(ctx, run_id):
                marked.append(run_id)
            continue
        if not owner_is_gone(owner):
            continue
        if lifecycle.interrupt(ctx.db, run_id, f"interrupted: the command stopped after {processed} of "
                                               f"{plural(total, 'file')}; everything committed is kept, run it again "
                                               "to continue", owned_by=owner):
            marked.append(run_id)
    return marked
