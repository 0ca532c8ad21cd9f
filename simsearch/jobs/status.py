"""A run as the API and the UI show it: counters, rate, ETA, errors, and whether it went stale."""

from __future__ import annotations

from datetime import datetime, timezone

from simsearch.store.job_cancel import is_cancelled
from simsearch.store.models import IngestRun

MAX_ERRORS_SHOWN = 200


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def iso(dt: datetime | None) -> str | None:
    dt = _aware(dt)
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if dt else None


STALE_AFTER_SECONDS = 600

ANALYSIS_TITLES = {"clusters": "Clustering", "map": "Map layout", "evaluation": "Evaluation of the spaces",
                   "comparison": "Comparison of backbones", "duplicates": "Duplicate search"}


def embedding_space(source: str | None) -> str | None:
    """The space an embedding pass adds (a re-embedding, or an ingest job before they were
    re-embeddings, whose ``source`` is ``embed: SPACE``, the compare page's, or ``compare:SPACE``,
    ``simsearch compare --backbones``'s); None for an ingest."""
    for prefix in ("embed:", "compare:"):
        if source and source.startswith(prefix):
            return source[len(prefix):].strip() or None
    return None


def title(kind: str, source: str | None, params: dict | None, spaces: list | None, parent_id: int | None) -> str:
    """What a job does, in a few words: by its kind, and for an ingest whether it adds images or
    only another backbone's vectors to images already there (an embedding pass)."""
    params, spaces = params or {}, list(spaces or [])
    if kind == "shard":
        part = f"Shard {params['shard']} of {params.get('shards', '?')}" if params.get("shard") else "Shard"
        return f"{part} of ingest #{parent_id}" if parent_id else part
    if kind in ("reembed_shard", "features_shard"):
        part = f"Shard {params['shard']} of {params.get('shards', '?')}" if params.get("shard") else "Shard"
        job = "re-embedding" if kind == "reembed_shard" else "local features"
        return f"{part} of {job} #{parent_id}" if parent_id else part
    if kind == "features":
        return "Storing local features (SIFT)"
    space = embedding_space(source) if kind in ("ingest", "reembed") else None
    if space is not None:  # the compare page's action, or `simsearch compare`'s pass
        why = "for a comparison" if source.startswith("compare:") else "(re-embedding)"
        return f"Embedding with {space} {why}"
    if kind == "reembed":
        return "Re-embedding in " + ", ".join(spaces[:3]) + ("..." if len(spaces) > 3 else "")
    if kind == "ingest":
        return "Adding images" + (f" ({', '.join(spaces[:2])})" if spaces else "")
    if kind == "index":
        return "Index rebuild" + (f" of {spaces[0]}" if spaces else "") + (f": {params['reason']}" if params.get("reason") else "")
    if kind == "tune":
        return "Tuning the search spaces"
    what = ANALYSIS_TITLES.get(kind, kind.title())
    space = params.get("backbone") or (", ".join(params["backbones"]) if isinstance(params.get("backbones"), list) else None)
    return what + (f" in {space}" if space else "")


def _params(params: dict | None) -> dict | None:
    """The job's parameters as shown: a re-embedding shard's image ids as their count."""
    if params is None:
        return None
    out = dict(params)
    if isinstance(out.get("ids"), list):
        out["images"] = len(out.pop("ids"))
    return out


def job_dict(run: IngestRun, collection: str | None) -> dict:
    started, finished = _aware(run.started_at), _aware(run.finished_at)
    rate, eta = 0.0, None
    if started is not None:
        elapsed = ((finished or datetime.now(timezone.utc)) - started).total_seconds()
        if elapsed > 0 and run.processed:
            rate = run.processed / elapsed
    if run.status == "done":
        eta = 0.0
    elif run.status == "running" and rate > 0:
        eta = max(0.0, (run.total - run.processed) / rate)
    errors = list(run.errors or [])
    # A running job reports progress every batch (seconds apart); one silent for this long lost
    # the process running it (killed, restarted). Its committed work is kept: ingest it again.
    last = _aware(run.updated_at) or _aware(run.started_at)
    stale = run.status == "running" and last is not None and \
        (datetime.now(timezone.utc) - last).total_seconds() > STALE_AFTER_SECONDS
    message = run.message
    kind = run.kind or "ingest"
    if stale and kind != "ingest":
        message = (f"no progress for over {STALE_AFTER_SECONDS // 60} minutes: the process computing this probably "
                   "stopped; asking for the result again starts a new computation")
    elif stale:
        message = (f"no progress for over {STALE_AFTER_SECONDS // 60} minutes: the process running this job "
                   "probably stopped; everything committed is kept. An in-process job resumes when the web app "
                   "restarts on the same host; otherwise ingesting the same files again resumes it")
    return {
        "id": run.id,
        "kind": kind,
        "title": title(kind, run.source, run.params, run.spaces, run.parent_id),
        "parent_id": run.parent_id,
        "cancelled": is_cancelled(run.status, run.message),  # "ingest", an analysis ("clusters", "map", "evaluation", "comparison", "duplicates"), "index"
        "params": _params(run.params),  # an analysis' parameters
        "status": run.status,
        "collection": collection,
        "backbones": list(run.spaces or []),
        "source": run.source,
        "total": run.total,
        "processed": run.processed,
        "failed": run.failed,
        "added": run.added,
        "skipped": run.skipped,
        "duplicates": run.duplicates or 0,
        "rate": round(rate, 3),
        "eta_seconds": None if eta is None else round(eta, 1),
        "errors": errors[:MAX_ERRORS_SHOWN],
        "errors_total": len(errors),
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "updated_at": iso(run.updated_at),
        "finished_at": iso(run.finished_at),
        "message": message,
        "stale": stale,
    }
