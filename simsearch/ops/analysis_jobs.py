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

from simsearch.errors import NotFound
from simsearch.store import lifecycle
from simsearch.jobs.execute import mark_failed
from simsearch.store.lifecycle import ANALYSIS_KINDS
from simsearch.ops.analysis_tasks import AnalysisTask
from simsearch.store import repo

log = logging.getLogger("simsearch.jobs")

TARGET = "simsearch.ops.analysis_jobs:execute"  # what the runners call: execute(ctx, run_id)


def start(ctx, runner, task: AnalysisTask) -> tuple[int, str]:
    """The job computing ``task``: one already queued, or running and not lost, for the same
    parameters (:func:`simsearch.store.lifecycle.active`), else a new one handed to ``runner``.
    Returns (job id, status)."""
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, task.collection).id
    found = lifecycle.active(ctx.db, kind=task.kind, collection_id=coll_id,
                             same=lambda params: task.same_as(task.kind, task.collection, params))
    if found is not None:
        return found
    run_id = lifecycle.create(ctx.db, kind=task.kind, collection_id=coll_id, params=task.to_json(),
                              source=task.describe(), spaces=task.spaces)
    runner.submit_function(run_id, TARGET)
    return run_id, lifecycle.JobStatus.QUEUED.value


def execute(ctx, run_id: int) -> dict:
    """Run a queued analysis job to the end. Returns ``{"run_id", "status", "result_url"}``."""
    got = lifecycle.claim(ctx.db, run_id, kinds=ANALYSIS_KINDS, message="starting")
    if got.run is None:
        raise NotFound(f"no analysis job with id {run_id}", field="job_id")
    if not got.claimed:
        log.warning("analysis job %s is %s, not queued: not running it again", run_id, got.status)
        return {"run_id": run_id, "status": got.status}
    task = AnalysisTask.from_json(got.run.kind, got.collection, got.run.params)
    try:
        with lifecycle.Heartbeat(ctx.db, run_id):
            task.compute(ctx, progress=lifecycle.progress_writer(ctx.db, run_id))
    except BaseException as exc:
        reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        mark_failed(ctx, run_id, f"the {task.kind} computation failed: {reason}")
        raise
    lifecycle.finish(ctx.db, run_id)
    return {"run_id": run_id, "status": lifecycle.JobStatus.DONE.value, "result_url": task.result_url()}
