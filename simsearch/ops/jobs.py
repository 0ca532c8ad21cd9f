"""Jobs (ingest and background analyses) as the API and UI show them."""

from __future__ import annotations

from sqlalchemy import select

from simsearch.errors import NotFound
from simsearch.jobs.status import job_dict
from simsearch.ops.analysis_tasks import KINDS, AnalysisTask
from simsearch.store import repo
from simsearch.store.models import Collection, IngestRun

MAX_LIMIT = 200


def get(ctx, job_id: int) -> dict:
    with ctx.db.session() as s:
        run = s.get(IngestRun, job_id)
        if run is None:
            raise NotFound(f"no job with id {job_id}", field="job_id")
        coll = s.get(Collection, run.collection_id)
        return _shown(run, coll.name if coll else None)


def _shown(run: IngestRun, collection: str | None) -> dict:
    """:func:`job_dict`, with ``result_url`` (where the result is served) for an analysis job."""
    out = job_dict(run, collection)
    if run.kind in KINDS and collection is not None:
        out["result_url"] = AnalysisTask.from_json(run.kind, collection, run.params).result_url()
    return out


def recent(ctx, *, collection: str | None = None, limit: int = 20) -> list[dict]:
    """The latest jobs, newest first, of every collection or of one."""
    with ctx.db.session() as s:
        q = select(IngestRun, Collection.name).join(Collection, Collection.id == IngestRun.collection_id)
        if collection is not None:
            q = q.where(IngestRun.collection_id == repo.get_collection(s, collection).id)
        rows = s.execute(q.order_by(IngestRun.id.desc()).limit(limit)).all()
        return [_shown(run, cname) for run, cname in rows]
