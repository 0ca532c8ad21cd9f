"""`simsearch tune` as a background job (kind ``tune``), started from the API or the web page.

:func:`start` checks what can be checked at once (the collection, the options, enough images),
then records a ``queued`` run (an ``ingest_runs`` row of kind ``tune``, its options in ``params``)
and hands it to the app's job runner, the same runners as ingest and the analyses (a thread in
this process, or RQ + ``simsearch worker``). A tuning already queued or running for the collection
is returned instead of starting another. :func:`execute` runs :func:`simsearch.ops.tune.tune`,
writing each step to the row; the report is stored in the row's ``params["report"]``, where
:func:`last_report` (the spaces overview) finds it.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from simsearch import derived
from simsearch.ops.sampling import CAP as SAMPLE_CAP, check_sample
from simsearch.errors import Conflict, InvalidInput, NotFound
from simsearch.store import lifecycle
from simsearch.jobs.execute import mark_failed
from simsearch.store.lifecycle import JobKind
from simsearch.store import repo
from simsearch.store.models import IngestRun
from simsearch.ops.tune import tune
from simsearch.jobs.status import iso
from simsearch.space_defaults import resolve_space

log = logging.getLogger("simsearch.jobs")

KIND = JobKind.TUNE
TARGET = "simsearch.ops.tune_jobs:execute"  # what the runners call: execute(ctx, run_id)
MIN_IMAGES = 8


def options(set_default=True, folds=5, seed=0, variants=True, sample=SAMPLE_CAP) -> dict:
    """The tuning's options as stored with the job, checked (InvalidInput naming the field)."""
    if not isinstance(folds, int) or isinstance(folds, bool) or not 2 <= folds <= 20:
        raise InvalidInput(f"folds must be a whole number from 2 to 20, not {folds!r}", field="folds")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**31:
        raise InvalidInput(f"seed must be a whole number from 0 to 2147483647, not {seed!r}", field="seed")
    return {"set_default": bool(set_default), "folds": folds, "seed": seed, "variants": bool(variants),
            "sample": "all" if check_sample(sample) is None else sample}


def _check_collection(ctx, coll_id: int, collection: str) -> None:
    """409 when the collection cannot be tuned as it is (too few images in its default space)."""
    space = resolve_space(ctx, coll_id, None)
    d = derived.get(ctx, coll_id, space)
    base = d.bases[0] if d is not None else space
    with ctx.db.session() as s:
        n = len(repo.vector_ids(s, coll_id, base))
    if n < MIN_IMAGES:
        raise Conflict(f"collection {collection!r} has {n} images with {base} vectors; tuning needs at least "
                       f"{MIN_IMAGES}: add images first", field="collection")


def start(ctx, runner, collection: str, opts: dict) -> tuple[int, str]:
    """The job tuning ``collection``: the one already queued or running, else a new one handed to
    ``runner``. Returns (job id, status)."""
    opts = options(**opts)
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, collection).id
    found = lifecycle.active(ctx.db, kind=KIND, collection_id=coll_id)
    if found is not None:
        return found
    _check_collection(ctx, coll_id, collection)
    run_id = lifecycle.create(ctx.db, kind=KIND, collection_id=coll_id, params=opts, source=f"tuning of {collection}")
    runner.submit_function(run_id, TARGET)
    return run_id, lifecycle.JobStatus.QUEUED.value


def execute(ctx, run_id: int) -> dict:
    """Run a queued tuning job to the end. Returns ``{"run_id", "status", "chosen"}``."""

    got = lifecycle.claim(ctx.db, run_id, kinds=(KIND,), message="starting")
    if got.run is None:
        raise NotFound(f"no tuning job with id {run_id}", field="job_id")
    if not got.claimed:
        log.warning("tuning job %s is %s, not queued: not running it again", run_id, got.status)
        return {"run_id": run_id, "status": got.status}
    opts = options(**{k: v for k, v in (got.run.params or {}).items() if k != "report"})
    try:
        with lifecycle.Heartbeat(ctx.db, run_id):
            report = tune(ctx, got.collection, progress=lifecycle.progress_writer(ctx.db, run_id), **opts)
    except BaseException as exc:
        reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        mark_failed(ctx, run_id, f"the tuning failed: {reason}")
        raise
    lifecycle.finish(ctx.db, run_id, f"done: {report.chosen} chosen" + (" and made the default" if opts["set_default"] else ""),
                     params={**opts, "report": report.to_dict()})
    return {"run_id": run_id, "status": lifecycle.JobStatus.DONE.value, "chosen": report.chosen}


def last_report(ctx, coll_id: int) -> dict | None:
    """The newest tuning job of the collection: ``{"job_id", "status", "finished_at", "report"}``
    (``report`` None until it is done)."""
    with ctx.db.session() as s:
        run = s.scalar(select(IngestRun).where(IngestRun.kind == KIND, IngestRun.collection_id == coll_id)
                       .order_by(IngestRun.id.desc()).limit(1))
        if run is None:
            return None
        return {"job_id": run.id, "status": run.status, "message": run.message, "finished_at": iso(run.finished_at),
                "report": (run.params or {}).get("report")}
