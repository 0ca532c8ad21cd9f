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
from datetime import timedelta, timezone

from sqlalchemy import select

from simsearch import derived
from simsearch.errors import Conflict, InvalidInput, NotFound
from simsearch.jobs.execute import mark_failed
from simsearch.store import repo
from simsearch.store.models import Collection, IngestRun, utcnow

log = logging.getLogger("simsearch.jobs")

KIND = "tune"
TARGET = "simsearch.ops.tune_jobs:execute"  # what the runners call: execute(ctx, run_id)
MIN_IMAGES = 8
LOST_AFTER_SECONDS = 300  # a running tuning not heard of for this long is taken as lost (heartbeat: 30 s)


def options(set_default=True, folds=5, seed=0, variants=True) -> dict:
    """The tuning's options as stored with the job, checked (InvalidInput naming the field)."""
    if not isinstance(folds, int) or isinstance(folds, bool) or not 2 <= folds <= 20:
        raise InvalidInput(f"folds must be a whole number from 2 to 20, not {folds!r}", field="folds")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**31:
        raise InvalidInput(f"seed must be a whole number from 0 to 2147483647, not {seed!r}", field="seed")
    return {"set_default": bool(set_default), "folds": folds, "seed": seed, "variants": bool(variants)}


def _active(ctx, coll_id: int) -> tuple[int, str] | None:
    fresh_since = utcnow() - timedelta(seconds=LOST_AFTER_SECONDS)
    with ctx.db.session() as s:
        rows = s.execute(select(IngestRun.id, IngestRun.status, IngestRun.updated_at)
                         .where(IngestRun.kind == KIND, IngestRun.collection_id == coll_id,
                                IngestRun.status.in_(("queued", "running")))
                         .order_by(IngestRun.id.desc())).all()
    for run_id, status, updated in rows:
        if updated is not None and updated.tzinfo is None:
            updated = updated.replace(tzinfo=timezone.utc)
        if status == "queued" or updated is None or updated >= fresh_since:
            return run_id, status
    return None


def _check_collection(ctx, coll_id: int, collection: str) -> None:
    """409 when the collection cannot be tuned as it is (too few images in its default space)."""
    from simsearch.search import resolve_space

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
    found = _active(ctx, coll_id)
    if found is not None:
        return found
    _check_collection(ctx, coll_id, collection)
    with ctx.db.session() as s:
        run = IngestRun(collection_id=coll_id, kind=KIND, params=opts, source=f"tuning of {collection}",
                        spaces=[], status="queued", total=0, updated_at=utcnow())
        s.add(run)
        s.flush()
        run_id = run.id
    runner.submit_function(run_id, TARGET)
    return run_id, "queued"


def execute(ctx, run_id: int) -> dict:
    """Run a queued tuning job to the end. Returns ``{"run_id", "status", "chosen"}``."""
    from simsearch.ops.analysis_jobs import _Heartbeat, job_progress
    from simsearch.ops.tune import tune

    with ctx.db.session() as s:
        run = s.get(IngestRun, run_id)
        if run is None or run.kind != KIND:
            raise NotFound(f"no tuning job with id {run_id}", field="job_id")
        if run.status != "queued":
            log.warning("tuning job %s is %s, not queued: not running it again", run_id, run.status)
            return {"run_id": run_id, "status": run.status}
        collection = s.get(Collection, run.collection_id).name
        opts = options(**{k: v for k, v in (run.params or {}).items() if k != "report"})
        run.status, run.started_at, run.updated_at, run.message = "running", utcnow(), utcnow(), "starting"

    progress = job_progress(ctx, run_id)

    try:
        with _Heartbeat(ctx, run_id):
            report = tune(ctx, collection, progress=progress, **opts)
    except BaseException as exc:
        reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        mark_failed(ctx, run_id, f"the tuning failed: {reason}")
        raise
    with ctx.db.session() as s:
        run = s.get(IngestRun, run_id)
        run.params = {**opts, "report": report.to_dict()}
        run.status, run.finished_at, run.updated_at = "done", utcnow(), utcnow()
        run.message = f"done: {report.chosen} chosen" + (" and made the default" if opts["set_default"] else "")
    return {"run_id": run_id, "status": "done", "chosen": report.chosen}


def last_report(ctx, coll_id: int) -> dict | None:
    """The newest tuning job of the collection: ``{"job_id", "status", "finished_at", "report"}``
    (``report`` None until it is done)."""
    from simsearch.jobs.status import iso

    with ctx.db.session() as s:
        run = s.scalar(select(IngestRun).where(IngestRun.kind == KIND, IngestRun.collection_id == coll_id)
                       .order_by(IngestRun.id.desc()).limit(1))
        if run is None:
            return None
        return {"job_id": run.id, "status": run.status, "message": run.message, "finished_at": iso(run.finished_at),
                "report": (run.params or {}).get("report")}
