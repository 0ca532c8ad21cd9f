"""Cancelling and retrying a job (the jobs page's buttons, ``POST /api/jobs/<id>/cancel`` and
``/retry``).

**Cancel** a queued or running job: it ends ``failed`` with the message "cancelled by a user"
(:func:`simsearch.store.job_cancel.cancel_job`). A queued job is then never started; a running
ingest (or shard) stops before its next batch, keeping what it committed; a running analysis or
tuning finishes its current computation, and its result is not recorded as the job's. Cancelling
a sharded ingest cancels its unfinished shards; cancelling one shard fails only that shard. An
index rebuild cannot be cancelled (searches use the previous index until it ends; 409).

**Retry** a job that failed, was cancelled or was interrupted:

- an analysis or a tuning starts again with the same parameters: a new job (or the one already
  queued or running for them);
- an ingest whose files are still staged (an upload kept by ``SIMSEARCH_UPLOAD_RETENTION_HOURS``, a
  server folder) is queued again, the same job: the files already stored are skipped;
- an embedding pass of the compare page recorded as an ingest (``embed: SPACE``, before these were
  re-embeddings) starts again as a re-embedding over the images that still lack the vectors: a
  new job;
- a re-embedding (kind ``reembed``) queues again its shards that did not end ``done``: the same
  job; the images a shard had embedded are skipped;
- anything else is refused (409) with what to do instead: a `simsearch ingest` command is run again,
  a shard is retried with its whole job, an index rebuild starts again by itself.
"""

from __future__ import annotations

from sqlalchemy import select

from simsearch.errors import Conflict, NotFound
from simsearch.jobs import shards
from simsearch.jobs.manifest import FILENAME as MANIFEST, run_folder
from simsearch.jobs.runners import make_runner
from simsearch.jobs.status import embedding_space
from simsearch.ops import analysis_jobs, reembed_jobs, tune_jobs
from simsearch.ops.analysis_tasks import AnalysisTask
from simsearch.ops.embed_jobs import start_embedding
from simsearch.store import job_cancel, lifecycle
from simsearch.store.lifecycle import ANALYSIS_KINDS, RETRYABLE, SHARD_KINDS, UNFINISHED, JobKind, JobStatus
from simsearch.store.models import Collection, IngestRun


def _job(ctx, job_id: int) -> tuple[IngestRun, str | None, list[int]]:
    """The job (detached), its collection's name and the ids of its unfinished shards."""
    with ctx.db.session() as s:
        run = s.get(IngestRun, job_id)
        if run is None:
            raise NotFound(f"no job with id {job_id}", field="job_id")
        coll = s.get(Collection, run.collection_id)
        children = list(s.scalars(select(IngestRun.id).where(IngestRun.parent_id == job_id,
                                                             IngestRun.status.in_([u.value for u in UNFINISHED]))
                                  .order_by(IngestRun.id)))
        s.expunge(run)
        return run, coll.name if coll is not None else None, children


def cancel(ctx, job_id: int) -> dict:
    """Cancel job ``job_id`` (404 unknown; 409 ended, or an index rebuild). Returns
    ``{"job_id", "status", "cancelled"}``; ``cancelled``: the ids of the jobs it cancelled (its
    shards too)."""
    run, _collection, children = _job(ctx, job_id)
    if run.kind == JobKind.INDEX:
        raise Conflict(f"job {job_id} is an index rebuild, which cannot be cancelled: searches use the previous "
                       "index until it ends", field="job_id")
    if run.status not in UNFINISHED:
        raise Conflict(f"job {job_id} has ended ({run.status}): there is nothing to cancel", field="job_id")
    done = [job_id] if job_cancel.cancel_job(ctx.db, job_id) else []
    for child in children:
        if job_cancel.cancel_job(ctx.db, child, f"with its ingest #{job_id}"):
            done.append(child)
    if not done:  # it ended meanwhile
        raise Conflict(f"job {job_id} ended before it could be cancelled", field="job_id")
    if run.kind in SHARD_KINDS and run.parent_id is not None:
        shards.roll_up(ctx, run.parent_id)  # the last shard to end ends the job
    return {"job_id": job_id, "status": JobStatus.FAILED.value, "cancelled": done}


def refusal(ctx, run: IngestRun, collection: str | None) -> str | None:
    """Why job ``run`` cannot be retried, with what to do instead; None when :func:`retry` can
    start it again (the jobs page shows its Retry button only then)."""
    if run.status not in RETRYABLE:
        hint = ": cancel it first" if run.status in UNFINISHED else ""
        return f"job {run.id} is {run.status}; only a failed, cancelled or interrupted job can be retried{hint}"
    if collection is None:
        return f"the collection of job {run.id} was deleted"
    if run.kind == JobKind.REEMBED_SHARD:
        return f"job {run.id} is a shard of re-embedding #{run.parent_id}: retry that job (what was stored is skipped)"
    if run.kind == JobKind.FEATURES_SHARD:
        return (f"job {run.id} is a shard of local features job #{run.parent_id}: retry that job (what was stored is "
                "skipped)")
    if run.kind == JobKind.SHARD:
        return (f"job {run.id} is a shard of ingest #{run.parent_id}: ingest the same files again to finish that job "
                "(what was stored is skipped)")
    if run.kind == JobKind.INDEX:
        return f"job {run.id} is an index rebuild: it starts again by itself when the index is next needed"
    if run.kind != JobKind.INGEST:
        return None
    if job_cancel.still_stopping(run):
        return (f"job {run.id} was cancelled while it ran and is still stopping (its current batch ends first): "
                "retry it in a moment")
    if (run.owner or "").startswith("cli:"):
        return f"job {run.id} was a `simsearch ingest` command: run the same command again, it skips what was stored"
    if (run.params or {}).get("shards"):
        return (f"job {run.id} was split into shards: ingest the same files again to finish it (what was stored is "
                "skipped)")
    if _staged(ctx, run.id) or (run.source or "").startswith("embed:"):
        return None
    return (f"the files of job {run.id} were deleted when it ended (SIMSEARCH_UPLOAD_RETENTION_HOURS keeps them): add "
            "them again on the collection's Add images page (what was stored is skipped)")


def _staged(ctx, run_id: int) -> bool:
    return (run_folder(ctx.settings, run_id) / MANIFEST).is_file()


def retry(ctx, runner, job_id: int) -> dict:
    """Start job ``job_id`` again (see the module's text; 404 unknown, 409 when it is not failed,
    cancelled or interrupted, or cannot be started again: :func:`refusal`). Returns ``{"job_id",
    "status", "retry_of"}``: ``job_id`` is the job to follow (the same one, or a new one)."""
    run, collection, _children = _job(ctx, job_id)
    reason = refusal(ctx, run, collection)
    if reason is not None:
        raise Conflict(reason, field="job_id")
    if run.kind in ANALYSIS_KINDS:
        new_id, status = analysis_jobs.start(ctx, runner, AnalysisTask.from_json(run.kind, collection, run.params))
    elif run.kind == JobKind.TUNE:
        opts = {k: v for k, v in (run.params or {}).items() if k != "report"}
        new_id, status = tune_jobs.start(ctx, runner, collection, opts)
    elif run.kind in (JobKind.REEMBED, JobKind.FEATURES):  # the same job: its shards not ended done are queued again
        if not reembed_jobs.retry(ctx, runner, run.id):
            raise Conflict(f"job {run.id} changed meanwhile: look at it again", field="job_id")
        new_id, status = run.id, JobStatus.RUNNING.value
    elif _staged(ctx, run.id):  # an ingest whose files are still there: the same job, queued again
        if not lifecycle.requeue(ctx.db, run.id, f"queued again (retry of a {run.status} job)", when=RETRYABLE):
            raise Conflict(f"job {run.id} changed meanwhile: look at it again", field="job_id")
        runner.submit(run.id, {"batch_size": None})
        new_id, status = run.id, JobStatus.QUEUED.value
    else:  # the compare page's embedding pass: over the images that still lack the vectors
        started = start_embedding(ctx, runner, collection, embedding_space(run.source))
        new_id, status = started["job_id"], started["status"]
    return {"job_id": new_id, "status": status, "retry_of": job_id}


def command_runner(ctx):
    """The runner ``simsearch jobs --retry`` hands a job to: the workers' queue when
    ``SIMSEARCH_REDIS_URL`` is set (``kind`` ``"rq"``), else a thread of the command's own process
    (``"thread"``: the command waits for the job, :meth:`shutdown` with ``wait=True``)."""
    return make_runner(ctx)
