"""Local features stored after ingest, as a sharded job: the SIFT keypoints of a collection's
images (:mod:`simsearch.images.local_features`) extracted from their originals and stored
(``image_features``), so that a search by upload takes candidates by local features by default
(:func:`simsearch.ops.verify.local_default`) without ingest paying for them (`simsearch
features`, ``POST /api/collections/<name>/features``).

Ingest with ``SIMSEARCH_LOCAL_FEATURES`` stores them as it goes (docs/region-search.md); this
stores them afterwards for the collection's ok images that lack them (or have a stale method's),
on the shard machinery of the passes over stored images (:mod:`simsearch.jobs.shards`, as a
re-embedding): a job of kind ``features`` split into shards (``features_shard``) of at most
``SIMSEARCH_SHARD_SIZE`` image ids that any worker takes (RQ + ``simsearch worker``, a thread of
the web app, or the command itself: :func:`run_here`). A shard checks before each batch that it
was not cancelled and which of the batch's images have the features already (an earlier run's:
skipped), then extracts and stores the others in one transaction, so a shard run again after its
worker was killed does only what the killed run had not committed. Its wall seconds are recorded
with it: the next job's cost estimate (images lacking x seconds per image) is taken from them,
else from a timed probe of a few images. Progress, cancel, retry and the lost-process sweep are
the sharded jobs' own (:mod:`simsearch.ops.job_actions`, :mod:`simsearch.jobs.reembed_lost`).
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select, update

from simsearch.errors import Conflict, JobCancelled
from simsearch.images import local_features as LF
from simsearch.jobs import fleet, reembed_lost, shards
from simsearch.ops.reembed_jobs import submit
from simsearch.ops.verify import features_from_original
from simsearch.store import features as stored
from simsearch.store import job_cancel, lifecycle, repo
from simsearch.store.lifecycle import JobKind, JobStatus
from simsearch.store.models import Image, IngestRun, utcnow
from simsearch.text import plural

KIND = JobKind.FEATURES
SHARD_KIND = JobKind.FEATURES_SHARD
BATCH = 32
MAX_ERRORS = 1000
RECORDED_SHARDS = 50  # the latest ended shards the recorded rate is taken from
PROBE_IMAGES = 4
UNREADABLE = "its original cannot be read or decoded (moved, changed or deleted)"


# ---- the cost, said before it starts ------------------------------------------------------------

def lacking_ids(ctx, collection: str) -> tuple[int, list[int]]:
    """(collection id, its ok images without features of the current method, by id)."""
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, collection).id
        ids, _stale = stored.lacking(s, coll_id, LF.METHOD)
    return coll_id, ids


def recorded_rate(ctx) -> float | None:
    """Seconds per image of the latest features shards that ended here (their wall seconds:
    reading, decoding, extracting and storing), or None when none did."""
    with ctx.db.session() as s:
        rows = s.execute(select(IngestRun.params, IngestRun.added)
                         .where(IngestRun.kind == SHARD_KIND.value, IngestRun.status == JobStatus.DONE.value,
                                IngestRun.added > 0)
                         .order_by(IngestRun.id.desc()).limit(RECORDED_SHARDS)).all()
    timed = [(float(p["seconds"]), int(n)) for p, n in rows if (p or {}).get("seconds") is not None]
    images = sum(n for _s, n in timed)
    return sum(sec for sec, _n in timed) / images if images else None


def probe_rate(ctx, ids: list[int]) -> float | None:
    """Seconds per image extracting the features of up to :data:`PROBE_IMAGES` of ``ids`` (nothing
    stored); None when none of them has a readable original (an unreadable one is not timed apart:
    the seconds are over those that were read)."""
    ids = ids[:PROBE_IMAGES]
    t0 = time.perf_counter()
    read = sum(features_from_original(ctx, i) is not None for i in ids)
    return (time.perf_counter() - t0) / read if read else None


def cost(ctx, ids: list[int], *, probe: bool = True) -> dict:
    """What storing the features of ``ids`` costs on one worker: ``images``, ``seconds_per_image``,
    ``seconds`` (None when unknown) and the ``basis`` of the rate: ``recorded`` (earlier shards),
    ``probe`` (a few of ``ids`` timed now, when ``probe``) or ``none``."""
    rate, basis = recorded_rate(ctx), "recorded"
    if rate is None and probe:
        rate, basis = probe_rate(ctx, ids), "probe"
    if rate is None:
        basis = "none"
    return {"images": len(ids), "seconds_per_image": None if rate is None else round(rate, 4),
            "seconds": None if rate is None else round(rate * len(ids), 1), "basis": basis}


def estimate(ctx, collection: str, *, probe: bool = True, retry_unreadable: bool = False) -> dict:
    """What storing ``collection``'s missing local features would cost, before it starts (with
    ``retry_unreadable``, also those of the images recorded unreadable, which it would try again)."""
    coll_id, ids = lacking_ids(ctx, collection)
    if retry_unreadable:
        with ctx.db.session() as s:
            ids = sorted(ids + stored.unreadable_ids(s, coll_id, LF.METHOD))
    return {"collection": collection, **cost(ctx, ids, probe=probe)}


# ---- the job -----------------------------------------------------------------------------------

def create_job(ctx, collection: str, *, shard_size: int | None = None, batch_size: int | None = None,
               retry_unreadable: bool = False) -> dict | None:
    """Record the job over the collection's images lacking features without starting it, or return
    the one queued or running for it (one lost with its process is ended first). None: none lacks
    them. ``retry_unreadable``: first forget the records of the images whose original could not be
    read (a curator fixed or restored the files), so that they are tried again (not when a job is
    joined: the next one takes them). Returns ``{"job_id", "status", "total", "shards", "estimate",
    "new", "retried"}`` (``shards``: ids; ``retried``: the records forgotten)."""
    coll_id, _ = lacking_ids(ctx, collection)
    reembed_lost.sweep(ctx, coll_id, KIND)
    with ctx.db.session() as s:
        found = s.scalars(select(IngestRun).where(IngestRun.kind == KIND.value, IngestRun.collection_id == coll_id,
                                                  IngestRun.status.in_([u.value for u in lifecycle.UNFINISHED]))
                          .order_by(IngestRun.id.desc()).limit(1)).first()
        if found is not None:
            return {"job_id": found.id, "status": found.status, "total": found.total, "shards": [],
                    "estimate": (found.params or {}).get("estimate"), "new": False, "retried": 0}
        retried = stored.forget_unreadable(s, coll_id, LF.METHOD) if retry_unreadable else 0
    _, todo = lacking_ids(ctx, collection)
    if not todo:
        return None
    est = cost(ctx, todo)
    job_id, shard_ids = shards.create_pass(ctx, KIND, coll_id, todo, spaces=[], source=f"local features ({LF.METHOD})",
                                           shard_size=shard_size, batch_size=int(batch_size or BATCH), estimate=est,
                                           nothing="no image lacks its local features")
    return {"job_id": job_id, "status": JobStatus.RUNNING.value, "total": len(todo), "shards": shard_ids,
            "estimate": est, "new": True, "retried": retried}


def start(ctx, runner, collection: str, *, shard_size: int | None = None, batch_size: int | None = None,
          retry_unreadable: bool = False) -> dict:
    """Queue the job storing ``collection``'s missing local features (409 when none lacks them), or
    join the one queued or running; each shard goes to ``runner``; ``retry_unreadable``: as
    :func:`create_job`. Returns the 202 body: ``job_id``, ``status``, ``collection``, ``total``,
    ``shards`` (how many), ``estimate``, ``runner``, ``retried``."""
    made = create_job(ctx, collection, shard_size=shard_size, batch_size=batch_size, retry_unreadable=retry_unreadable)
    if made is None:
        raise Conflict(f"every image of {collection!r} already has its local features stored{_tried_note(ctx, collection)}",
                       field="name")
    submit(ctx, runner, made["shards"], SHARD_KIND)
    return {"job_id": made["job_id"], "status": made["status"], "collection": collection, "total": made["total"],
            "shards": len(made["shards"]), "estimate": made["estimate"], "runner": runner.kind,
            "retried": made["retried"]}


def run_here(ctx, collection: str, *, progress=None, shard_size: int | None = None, batch_size: int | None = None,
             announce=None, retry_unreadable: bool = False) -> dict | None:
    """The job run by this command, shard after shard (with the workers too when a queue is
    configured: :func:`simsearch.jobs.fleet.run_pass`): ``{"job_id", "status", "total", "stored",
    "skipped", "unreadable", "retried", "estimate", "message", "errors"}``; None when no image lacks
    its features. ``announce(estimate)`` before it starts; ``progress(done, total)`` after each batch;
    ``retry_unreadable``: as :func:`create_job`. Run again after an interruption, it continues the
    same job (or, its process gone, a new one)."""
    made = create_job(ctx, collection, shard_size=shard_size, batch_size=batch_size, retry_unreadable=retry_unreadable)
    if made is None:
        return None
    if announce is not None:
        announce(made["estimate"])
    status = fleet.run_pass(ctx, made["job_id"], execute_shard, progress)
    with ctx.db.session() as s:
        run = s.get(IngestRun, made["job_id"])
        return {"job_id": run.id, "status": status, "total": run.total, "stored": run.added, "skipped": run.skipped,
                "unreadable": run.failed, "retried": made["retried"], "estimate": made["estimate"],
                "message": run.message, "errors": list(run.errors or [])}


def store_missing(ctx, collection: str, *, progress=None, shard_size: int | None = None,
                  batch_size: int | None = None, announce=None, retry_unreadable: bool = False) -> dict:
    """:func:`run_here`, summed up: ``collection``, ``lacking`` (before), ``stored``, ``unreadable``
    (no readable original: they stay without, and unverified), ``retried`` (of the lacking: those
    recorded unreadable before, tried again with ``retry_unreadable``), ``skipped``, ``seconds``,
    ``job_id`` (None: nothing lacked them), ``status`` and ``estimate``."""
    t0 = time.perf_counter()
    out = run_here(ctx, collection, progress=progress, shard_size=shard_size, batch_size=batch_size, announce=announce,
                   retry_unreadable=retry_unreadable)
    if out is None:
        out = {"job_id": None, "status": JobStatus.DONE.value, "total": 0, "stored": 0, "skipped": 0, "unreadable": 0,
               "retried": 0, "estimate": None,
               "message": "no image lacks its local features" + _tried_note(ctx, collection), "errors": []}
    return {"collection": collection, "lacking": out["total"], **out, "seconds": round(time.perf_counter() - t0, 2)}


def _tried_note(ctx, collection: str) -> str:
    """`` (N whose original could not be read were tried: ...)``, or nothing when there are none."""
    with ctx.db.session() as s:
        n = stored.tried_unreadable(s, repo.get_collection(s, collection).id, LF.METHOD)
    return (f" ({plural(n, 'image')} whose original could not be read: tried, not taken again; a search that "
            "verifies one reads its original again, and so does a pass asked to retry them: --retry-unreadable, "
            "retry_unreadable in the API)") if n else ""


def execute_shard(ctx, shard_id: int, *, progress=None) -> dict:
    """Store the features of one shard's images that still lack them, then roll the job up. A shard
    that ended is not run again; one left ``running`` by a dead worker is (what it committed is
    skipped). A failure propagates (RQ's failure callback retries the shard, or fails it for good
    after its last attempt). ``progress(done, total)``: after each batch."""
    got = shards.claim_shard(ctx, shard_id, SHARD_KIND, "local features shard")
    shard = got.run
    if not got.claimed:
        return {"run_id": shard_id, "status": shard.status}
    parent_id, coll_id = shard.parent_id, shard.collection_id
    ids, batch = [int(i) for i in shard.params["ids"]], int(shard.params.get("batch_size") or BATCH)
    try:
        with lifecycle.Heartbeat(ctx.db, shard_id):
            out = _store_shard(ctx, shard_id, ids, batch, progress)
    except JobCancelled:
        shards.roll_up(ctx, parent_id)
        return {"run_id": shard_id, "status": JobStatus.FAILED.value, "cancelled": True}
    finally:
        if ctx.descriptors is not None:
            ctx.descriptors.forget(coll_id)  # (this process's descriptor index follows the stored features)
    lifecycle.finish(ctx.db, shard_id, f"stored the local features of {out['added']} images, {out['skipped']} had "
                     "them already" + (f", {out['failed']} could not be read" if out["failed"] else ""),
                     params={**shard.params, "seconds": round(out["seconds"], 3)})
    shards.roll_up(ctx, parent_id)
    return {"run_id": shard_id, "status": JobStatus.DONE.value, **out}


def execute_shard_once(ctx, shard_id: int) -> dict:
    """:func:`execute_shard` in a thread runner (no retries): a failure ends the shard for good
    (:func:`simsearch.jobs.shards.run_once`)."""
    return shards.run_once(ctx, shard_id, execute_shard)


def _store_shard(ctx, shard_id: int, ids: list[int], batch: int, progress) -> dict:
    with ctx.db.session() as s:
        names = dict(s.execute(select(Image.id, Image.source_path).where(Image.id.in_(ids), Image.status == "ok")).all())
    counts = {"processed": 0, "added": 0, "skipped": 0, "failed": 0}
    errors: list[dict] = []
    t0 = time.perf_counter()
    for start in range(0, len(ids), max(1, batch)):
        chunk = ids[start:start + max(1, batch)]
        with ctx.db.session() as s:
            running = job_cancel.still_running(s, shard_id)  # cancelled meanwhile: stop before this batch
            methods = stored.methods_of(s, chunk)
        if not running:
            with ctx.db.session() as s:
                job_cancel.stopped(s.get(IngestRun, shard_id), f"stopped after {counts['processed']} of "
                                                               f"{len(ids)} images (what was stored is kept)")
            raise JobCancelled(f"local features shard {shard_id} was cancelled", field="job_id")
        todo = [i for i in chunk if i in names and methods.get(i) != LF.METHOD]  # an earlier run's: skipped
        new = {i: f for i in todo if (f := features_from_original(ctx, i)) is not None}
        bad = [{"file": Path(names[i] or "?").name, "reason": UNREADABLE} for i in todo if i not in new]
        errors += bad
        counts["processed"] += len(chunk)
        counts["added"] += len(new)
        counts["skipped"] += len(chunk) - len(todo)
        counts["failed"] += len(bad)
        with ctx.db.session() as s:  # the batch's features, its unreadable ones and the counters: one transaction
            stored.store(s, new, LF.METHOD, replace=any(i in methods for i in new))
            stored.record_unreadable(s, [i for i in todo if i not in new], LF.METHOD)  # tried: not lacking
            s.execute(update(IngestRun).where(IngestRun.id == shard_id)
                      .values(**counts, errors=errors[:MAX_ERRORS], updated_at=utcnow()))
        if progress is not None:
            progress(counts["processed"], len(ids))
    return {**counts, "seconds": time.perf_counter() - t0}
