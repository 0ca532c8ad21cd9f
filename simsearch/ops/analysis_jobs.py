"""Analysis jobs: clusters, maps, evaluations and comparisons computed off the request thread.

A request that finds no cached result (:meth:`~simsearch.ops.analysis_tasks.AnalysisTask.lookup`)
calls :func:`start`: it returns the job already queued or running for the same task, so many page
loads share one computation, or records a new ``queued`` run (an ``ingest_runs`` row whose
``kind`` is the task's kind and ``params`` its parameters) and hands it to the job runner, the
same runners as ingest (:mod:`simsearch.jobs.runners`: a thread in this process, or RQ +
``simsearch worker``), naming :func:`execute` as the function that runs it. :func:`execute`
computes it, writing each step to the row (``processed`` of ``total``
steps, ``message``) and a heartbeat while one step runs long; the result goes to the result cache,
where the next request finds it. A failure is recorded on the row with its reason.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta, timezone

from sqlalchemy import select, update

from simsearch.errors import NotFound
from simsearch.jobs.execute import mark_failed
from simsearch.ops.analysis_tasks import AnalysisTask
from simsearch.store import repo
from simsearch.store.models import Collection, IngestRun, utcnow

log = logging.getLogger("simsearch.jobs")

TARGET = "simsearch.ops.analysis_jobs:execute"  # what the runners call: execute(ctx, run_id)

HEARTBEAT_SECONDS = 30.0
# A running analysis not heard of for this long is taken as lost (its process stopped) and a
# request starts a new one instead of waiting on it (the heartbeat keeps live ones fresh). A queued
# one is waiting for a worker: requests join it.
LOST_AFTER_SECONDS = 300


def _active(ctx, coll_id: int, task: AnalysisTask) -> tuple[int, str] | None:
    """The newest queued job of the same task, or running one that is still alive, as (id, status)."""
    fresh_since = utcnow() - timedelta(seconds=LOST_AFTER_SECONDS)
    with ctx.db.session() as s:
        rows = s.execute(select(IngestRun.id, IngestRun.status, IngestRun.params, IngestRun.updated_at, IngestRun.created_at)
                         .where(IngestRun.kind == task.kind, IngestRun.collection_id == coll_id,
                                IngestRun.status.in_(("queued", "running")))
                         .order_by(IngestRun.id.desc())).all()
    for run_id, status, params, updated, created in rows:
        last = updated or created
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=timezone.utc)
        if task.same_as(task.kind, task.collection, params) and (status == "queued" or last is None
                                                                 or last >= fresh_since):
            return run_id, status
    return None


def start(ctx, runner, task: AnalysisTask) -> tuple[int, str]:
    """The job computing ``task``: one already queued or running, else a new one handed to
    ``runner``. Returns (job id, status)."""
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, task.collection).id
    found = _active(ctx, coll_id, task)
    if found is not None:
        return found
    with ctx.db.session() as s:
        run = IngestRun(collection_id=coll_id, kind=task.kind, params=task.to_json(), source=task.describe(),
                        spaces=task.spaces, status="queued", total=0, updated_at=utcnow())
        s.add(run)
        s.flush()
        run_id = run.id
    runner.submit_function(run_id, TARGET)
    return run_id, "queued"


def job_progress(ctx, run_id: int):
    """``progress(message, done, total)`` that writes a background job's step to its row."""

    def progress(message: str, done: int, total: int) -> None:
        with ctx.db.session() as s:
            s.execute(update(IngestRun).where(IngestRun.id == run_id)
                      .values(processed=done, total=total, message=message[:2000], updated_at=utcnow()))

    return progress


class _Heartbeat:
    """Bumps the run's ``updated_at`` every few seconds while a long step runs, so that a live
    job never looks lost."""

    def __init__(self, ctx, run_id: int, every: float = HEARTBEAT_SECONDS):
        self.ctx, self.run_id, self.every = ctx, run_id, every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"simsearch-heartbeat-{run_id}", daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(self.every):
            try:
                with self.ctx.db.session() as s:
                    s.execute(update(IngestRun).where(IngestRun.id == self.run_id, IngestRun.status == "running")
                              .values(updated_at=utcnow()))
            except Exception:  # the database is away for a moment: the next beat tries again
                log.warning("analysis job %s: could not record a heartbeat", self.run_id, exc_info=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)


def execute(ctx, run_id: int) -> dict:
    """Run a queued analysis job to the end. Returns ``{"run_id", "status", "result_url"}``."""
    with ctx.db.session() as s:
        run = s.get(IngestRun, run_id)
        if run is None or run.kind == "ingest":
            raise NotFound(f"no analysis job with id {run_id}", field="job_id")
        if run.status != "queued":
            log.warning("analysis job %s is %s, not queued: not running it again", run_id, run.status)
            return {"run_id": run_id, "status": run.status}
        coll = s.get(Collection, run.collection_id)
        task = AnalysisTask.from_json(run.kind, coll.name, run.params)
        run.status, run.started_at, run.updated_at, run.message = "running", utcnow(), utcnow(), "starting"

    progress = job_progress(ctx, run_id)

    try:
        with _Heartbeat(ctx, run_id):
            task.compute(ctx, progress=progress)
    except BaseException as exc:
        reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        mark_failed(ctx, run_id, f"the {task.kind} computation failed: {reason}")
        raise
    with ctx.db.session() as s:
        s.execute(update(IngestRun).where(IngestRun.id == run_id)
                  .values(status="done", message="done", finished_at=utcnow(), updated_at=utcnow()))
    return {"run_id": run_id, "status": "done", "result_url": task.result_url()}
