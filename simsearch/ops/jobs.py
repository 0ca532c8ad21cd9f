"""Jobs (ingest and background analyses) as the API and UI show them (one job: with its shards,
``children``, when a large ingest was split)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select

from simsearch import limits
from simsearch.errors import NotFound
from simsearch.jobs import shards
from simsearch.store.lifecycle import ENDED, RETRYABLE, SHARDED_KINDS, JobKind, JobStatus  # noqa: F401 (ENDED: the CLI's)
from simsearch.jobs.status import STALE_AFTER_SECONDS, _aware, job_dict
from simsearch.ops import job_actions
from simsearch.ops.analysis_tasks import KINDS, AnalysisTask
from simsearch.store import repo
from simsearch.store.models import Collection, IngestRun

MAX_LIMIT = limits.JOBS_LIMIT_MAX


def get(ctx, job_id: int) -> dict:
    with ctx.db.session() as s:
        run = s.get(IngestRun, job_id)
        if run is None:
            raise NotFound(f"no job with id {job_id}", field="job_id")
        coll = s.get(Collection, run.collection_id)
        out = shown(run, coll.name if coll else None, s)
        out["retry_refused"] = job_actions.refusal(ctx, run, out["collection"]) if run.status in RETRYABLE else None
        if _sharded(run):
            children = s.scalars(select(IngestRun).where(IngestRun.parent_id == run.id).order_by(IngestRun.id))
            out["children"] = [shown(child, out["collection"]) for child in children]
        return out


def shown(run: IngestRun, collection: str | None, session=None) -> dict:
    """:func:`job_dict`, with ``result_url`` (where the result is served) for an analysis job, and
    for a sharded ingest the live sums of its shards."""
    out = job_dict(run, collection)
    if run.kind in KINDS and collection is not None:
        out["result_url"] = AnalysisTask.from_json(run.kind, collection, run.params).result_url()
    elif run.kind == JobKind.TUNE and collection is not None:
        from urllib.parse import quote

        out["result_url"] = f"/api/collections/{quote(collection, safe='')}/spaces"
    if session is not None and _sharded(run):
        out.update(sharded_progress(session, run, out))
    return out


def _sharded(run: IngestRun) -> bool:
    """A job split into shards: a large queued ingest, a re-embedding, a local features job."""
    return run.kind in SHARDED_KINDS and bool((run.params or {}).get("shards"))


def sharded_progress(session, run: IngestRun, shown: dict) -> dict:
    """A sharded job's counters as the sums of its shards' (they move while shards run)."""
    summary = shards.progress(session, run.id, run.kind)
    out = {k: summary[k] for k in ("processed", "added", "skipped", "failed")}
    states = summary["states"]
    counted = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DONE, JobStatus.FAILED)
    out["shards"] = {"total": summary["shards"], **{k.value: states.get(k.value, 0) for k in counted},
                     "attempts": summary["attempts"]}
    last = session.scalar(select(func.max(IngestRun.updated_at)).where(IngestRun.parent_id == run.id))
    started, last = _aware(run.started_at), _aware(last)
    if run.status == JobStatus.RUNNING and started is not None:
        elapsed = (datetime.now(timezone.utc) - started).total_seconds()
        out["rate"] = round(out["processed"] / elapsed, 3) if elapsed > 0 else 0.0
        out["eta_seconds"] = round(max(0.0, (run.total - out["processed"]) / out["rate"]), 1) if out["rate"] else None
        out["stale"] = last is not None and (datetime.now(timezone.utc) - last).total_seconds() > STALE_AFTER_SECONDS
        if not out["stale"] and shown.get("stale"):
            out["message"] = run.message
    return out


def recent(ctx, *, collection: str | None = None, limit: int = 20) -> list[dict]:
    """The latest jobs, newest first, of every collection or of one."""
    with ctx.db.session() as s:
        q = (select(IngestRun, Collection.name).join(Collection, Collection.id == IngestRun.collection_id)
             .where(IngestRun.parent_id.is_(None)))  # a sharded job is listed once, with its shards' sums
        if collection is not None:
            q = q.where(IngestRun.collection_id == repo.get_collection(s, collection).id)
        rows = s.execute(q.order_by(IngestRun.id.desc()).limit(limit)).all()
        return [{**shown(run, cname, s),
                 "retry_refused": job_actions.refusal(ctx, run, cname) if run.status in RETRYABLE else None}
                for run, cname in rows]
