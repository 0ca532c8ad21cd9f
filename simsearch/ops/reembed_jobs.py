"""Embedding a collection's stored images in other spaces as a sharded job (`simsearch embed`,
``POST /api/collections/<name>/reembed``, the compare page's "embed with another backbone", the
space `simsearch tune` chose).

:func:`start` takes the collection's ok images that lack a vector in one of the spaces, records
what it will cost (:mod:`simsearch.jobs.reembed_cost`) and a job split into shards
(:mod:`simsearch.jobs.reembed`), and hands each shard to the runner (RQ + ``simsearch worker``,
or a thread of this process). :func:`run_here` runs the same job in the calling process (the
command without ``--queue``), which shares it with the workers when a queue is configured. Asking again while one is queued or running for the same spaces
returns that job.
"""

from __future__ import annotations

from sqlalchemy import select

from simsearch import provenance, space_defaults
from simsearch.errors import Conflict, InvalidInput
from simsearch.jobs import reembed, reembed_cost, reembed_lost
from simsearch.ops.ingest import IngestOptions, name_list
from simsearch.store import lifecycle, repo
from simsearch.jobs.rq import SHARD_TARGETS, THREAD_TARGETS
from simsearch.store.lifecycle import JobKind, JobStatus
from simsearch.store.models import Image, IngestRun


def target_spaces(ctx, spaces) -> list[str]:
    """The spaces asked for (names, or comma-separated names), checked: backbone spaces of one
    backbone and precision whose weights are at hand (400 / 503 naming ``spaces``)."""
    names = [n for raw in name_list(spaces, "spaces") for n in str(raw).split(",") if n.strip()]
    if not names:
        raise InvalidInput("give the space(s) to embed in, e.g. efficientnet_lite0@gem3", field="spaces")
    return reembed.check_spaces(IngestOptions.parse(ctx.settings, backbones=names).spaces)


def lacking_ids(ctx, collection: str, spaces: list[str], ids=None) -> tuple[int, list[int]]:
    """(collection id, its ok images lacking a vector in one of ``spaces``; ``ids``: only those)."""
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, collection).id
        ok = list(s.scalars(select(Image.id).where(Image.collection_id == coll_id, Image.status == "ok")
                            .order_by(Image.id)))
        if ids is not None:
            keep = {int(i) for i in ids}
            ok = [i for i in ok if i in keep]
        return coll_id, reembed.lacking(s, ok, spaces)


def estimate(ctx, collection: str, spaces, *, probe: bool = False) -> dict:
    """What embedding ``collection``'s images that lack ``spaces`` would cost, before it starts
    (``probe``: time a few of its images when no rate is recorded; it loads the model)."""
    spaces = target_spaces(ctx, spaces)
    _coll_id, ids = lacking_ids(ctx, collection, spaces)
    paths = None
    if probe and ids:
        paths = [p for _i, p, _s in reembed.sources(ctx, ids[:reembed_cost.PROBE_IMAGES * 4]) if p is not None]
    return {"collection": collection, "spaces": spaces,
            **reembed_cost.estimate(ctx, spaces, len(ids), probe_paths=paths)}


def create_job(ctx, collection: str, spaces: list[str], *, ids=None, source: str | None = None,
               shard_size: int | None = None, batch_size: int | None = None, join: bool | None = None) -> dict | None:
    """Record the job over the images lacking ``spaces`` (already checked; ``ids``: only those)
    without starting it; the one queued or running for the same spaces is returned instead
    (``join``, by default when no ``ids`` are given; a job lost with its process is ended first:
    :mod:`simsearch.jobs.reembed_lost`). None: nothing lacks them.
    Returns ``{"job_id", "status", "total", "shards", "estimate", "new"}`` (``shards``: ids)."""
    coll_id, todo = lacking_ids(ctx, collection, spaces, ids)
    reembed_lost.sweep(ctx, coll_id)
    found = _unfinished(ctx, coll_id, spaces) if (ids is None if join is None else join) else None
    if found is not None:
        return {"job_id": found.id, "status": found.status, "total": found.total, "shards": [],
                "estimate": (found.params or {}).get("estimate"), "new": False}
    if not todo:
        return None
    cost = reembed_cost.estimate(ctx, spaces, len(todo))
    space_defaults.keep_default(ctx, collection, spaces)  # what the collection uses does not change
    for sp in spaces:  # (a space it has keeps its record)
        provenance.record(ctx, coll_id, sp, provenance.of_space(ctx, sp), "embedded")
    job_id, shard_ids = reembed.create(ctx, coll_id, spaces, todo, source=source or f"re-embed: {', '.join(spaces)}",
                                       shard_size=shard_size, batch_size=batch_size, estimate=cost)
    with ctx.db.session() as s:  # (the spaces in params too: the same request joins this job)
        run = s.get(IngestRun, job_id)
        run.params = {**run.params, "spaces": spaces}
    return {"job_id": job_id, "status": JobStatus.RUNNING.value, "total": len(todo), "shards": shard_ids,
            "estimate": cost, "new": True}


def _unfinished(ctx, coll_id: int, spaces: list[str]) -> IngestRun | None:
    """The newest queued or running re-embedding of the collection in ``spaces`` (one whose
    process died was ended by :func:`reembed_lost.sweep` just before)."""
    with ctx.db.session() as s:
        for run in s.scalars(select(IngestRun).where(IngestRun.kind == reembed.KIND.value,
                                                     IngestRun.collection_id == coll_id,
                                                     IngestRun.status.in_([u.value for u in lifecycle.UNFINISHED]))
                             .order_by(IngestRun.id.desc())):
            if (run.params or {}).get("spaces") == spaces:
                s.expunge(run)
                return run
    return None


def start(ctx, runner, collection: str, spaces, *, ids=None, source: str | None = None, field: str = "spaces",
          shard_size: int | None = None, batch_size: int | None = None) -> dict:
    """Queue the re-embedding of ``collection``'s images lacking ``spaces`` (``ids``: only those;
    409 naming ``field`` when none lacks them), or join the one queued or running for the same
    spaces; each shard goes to ``runner``. Returns the 202 body: ``job_id``, ``status``,
    ``collection``, ``spaces``, ``total``, ``shards`` (how many), ``estimate``, ``runner``."""
    spaces = target_spaces(ctx, spaces)
    made = create_job(ctx, collection, spaces, ids=ids, source=source, shard_size=shard_size, batch_size=batch_size,
                      join=True)
    if made is None:
        raise Conflict(f"every image of {collection!r} already has vectors in {', '.join(spaces)}", field=field)
    submit(ctx, runner, made["shards"])
    return {"job_id": made["job_id"], "status": made["status"], "collection": collection, "spaces": spaces,
            "total": made["total"], "shards": len(made["shards"]), "estimate": made["estimate"], "runner": runner.kind}


def submit(ctx, runner, shard_ids: list[int], kind: str = reembed.SHARD_KIND) -> None:
    """Hand shards (of ``kind``: a pass over stored images' shard kind) to ``runner``: the RQ queue
    (retried by RQ) or this process's job thread."""
    target = (SHARD_TARGETS if runner.kind == "rq" else THREAD_TARGETS)[JobKind(kind)]
    for shard_id in shard_ids:
        runner.submit_function(shard_id, target)


def retry(ctx, runner, job_id: int) -> bool:
    """Queue again the shards of a failed or cancelled re-embedding (or another pass over stored
    images: a local features job) that did not end ``done`` (the same job; the images already done
    are skipped). False when it changed meanwhile."""
    with ctx.db.session() as s:
        kind = s.get(IngestRun, job_id).kind
        rows = s.execute(select(IngestRun.id, IngestRun.status).where(IngestRun.parent_id == job_id)).all()
    again = [i for i, status in rows if status != JobStatus.DONE]
    if not lifecycle.transition(ctx.db, job_id, JobStatus.RUNNING, when=lifecycle.RETRYABLE, finished_at=None,
                                message=f"running again (retry): {len(again)} unfinished shard(s) queued"):
        return False
    for shard_id in again:
        lifecycle.transition(ctx.db, shard_id, JobStatus.QUEUED, when=lifecycle.RETRYABLE, then=_not_final,
                             message="queued again (retry of its job)")
    submit(ctx, runner, again, lifecycle.IMAGE_PASSES[JobKind(kind)])
    return True


def _not_final(run: IngestRun) -> None:
    run.params = {k: v for k, v in (run.params or {}).items() if k != "final"}


def run_here(ctx, collection: str, spaces: list[str], *, ids=None, progress=None, shard_size: int | None = None,
             batch_size: int | None = None, source: str | None = None, announce=None) -> dict | None:
    """The re-embedding run in this process (shard after shard; with the workers too when a queue
    is configured: :func:`simsearch.jobs.fleet.run_pass`): ``{"job_id", "status", "total",
    "embedded", "skipped", "failed", "estimate", "message", "errors"}``; None when no image lacks
    the vectors. ``announce(estimate)`` before it starts; ``progress(done, total)`` after each
    batch. An interrupted run is resumed by the same call (the job queued or running for the same
    spaces is run on; one whose process died is ended as lost and a new one embeds the rest)."""
    made = create_job(ctx, collection, spaces, ids=ids, source=source, shard_size=shard_size, batch_size=batch_size)
    if made is None:
        return None
    if announce is not None:
        announce(made["estimate"])
    status = reembed.run_here(ctx, made["job_id"], progress)
    with ctx.db.session() as s:
        run = s.get(IngestRun, made["job_id"])
        return {"job_id": run.id, "status": status, "total": run.total, "embedded": run.added,
                "skipped": run.skipped, "failed": run.failed, "estimate": made["estimate"], "message": run.message,
                "errors": list(run.errors or [])}
