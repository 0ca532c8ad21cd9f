"""Sharded jobs: a large queued job split into shards that any worker takes.

Two sorts of job are split this way: a large queued ingest (below) and a pass over a collection's
stored images (``IMAGE_PASSES``: a re-embedding, :mod:`simsearch.jobs.reembed`, kind ``reembed``
with shards ``reembed_shard``; storing local features, :mod:`simsearch.ops.local_features`, kind
``features`` with shards ``features_shard``), whose shards hold their image ids
(:func:`create_pass`) and may be run by the command that asked (:func:`run_here`).
:func:`progress`, :func:`roll_up` and :func:`fail_finally` serve all of them.

A queued ingest of more than ``SIMSEARCH_SHARD_SIZE`` files gets one child run per slice of its
manifest (kind ``shard``, ``parent_id`` the job, ``params`` ``{"start", "stop"}``). Each shard is a
job of its own on the queue: N workers embed N shards at once, a worker that dies loses one
shard (started again by RQ), and the stores are upserts, so a shard run twice stores nothing
twice. The job's counters are the sums of its shards' (:func:`progress`); when the last shard
ends, :func:`roll_up` ends the job: ``done``, or ``failed`` naming the shards that failed.
"""

from __future__ import annotations

import logging

from sqlalchemy import case, func, select, update

from simsearch.errors import JobCancelled, NotFound
from simsearch.store import lifecycle
from simsearch.store.lifecycle import ENDED, IMAGE_PASSES, SHARD_KINDS, JobKind, JobStatus, is_final  # noqa: F401 (is_final re-exported)
from simsearch.store.models import Image, IngestRun, utcnow
from simsearch.text import plural
from simsearch import derived
from simsearch.errors import public_reason
from simsearch.ingest import DEFAULT_BATCH_SIZE, Ingester
from simsearch.ingest.pipeline import SHARD_INDEX_SYNC_EVERY
from simsearch.jobs.cleanup import release_uploads
from simsearch.jobs.manifest import Manifest, run_folder
from simsearch.owners import this_process

log = logging.getLogger("simsearch.jobs")

SHARD = JobKind.SHARD
MAX_ERRORS_KEPT = 1000


def fail_finally(ctx, shard_id: int, failure) -> None:
    """The shard's last attempt failed: it ends ``failed`` with the reason, then the job is rolled up."""
    if isinstance(failure, BaseException):
        failure = public_reason(failure, hide=(str(ctx.settings.home),))
    if not lifecycle.fail(ctx.db, shard_id, str(failure), final=True):
        return  # done (or gone)
    with ctx.db.session() as s:
        parent_id = s.get(IngestRun, shard_id).parent_id
    roll_up(ctx, parent_id)


def plan(total: int, size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` slices of ``total`` files, at most ``size`` each, sizes differing by
    at most one (2,001 files in shards of 1,000: 667 + 667 + 667, not 1,000 + 1,000 + 1)."""
    if total <= 0:
        return []
    count = -(-total // max(1, size))
    base, extra = divmod(total, count)
    out, start = [], 0
    for i in range(count):
        stop = start + base + (1 if i < extra else 0)
        out.append((start, stop))
        start = stop
    return out


def create_shards(ctx, run_id: int, size: int) -> list[int]:
    """Split queued job ``run_id`` into shard runs (when it has more than ``size`` files); returns
    the shard ids, or ``[]`` when the job runs as one. Idempotent: existing shards are returned."""
    with ctx.db.session() as s:
        run = s.get(IngestRun, run_id)
        if run is None:
            raise NotFound(f"no ingest job with id {run_id}", field="job_id")
        existing = list(s.scalars(select(IngestRun.id).where(IngestRun.parent_id == run_id).order_by(IngestRun.id)))
        if existing:
            return existing
        slices = plan(run.total, size)
        if len(slices) <= 1:
            return []
        shards = [lifecycle.new_run(kind=SHARD, parent_id=run_id, collection_id=run.collection_id, source=run.source,
                                    spaces=run.spaces, total=stop - start,
                                    params={"start": start, "stop": stop, "shard": i + 1, "shards": len(slices)})
                  for i, (start, stop) in enumerate(slices)]
        s.add_all(shards)
        run.params = {"shards": len(slices), "shard_size": size}
        lifecycle.start_parent(run)
        s.flush()
        return [sh.id for sh in shards]


def claim_shard(ctx, shard_id: int, kind: str, what: str) -> lifecycle.Claim:
    """Take shard ``shard_id`` (of ``kind``) to ``running``, one more attempt: from queued, or from
    running or failed (not for good) when its worker died, but not while a command runs it
    (:func:`held_by_a_command`). 404 (``what``) when there is none; not
    ``claimed`` when it has ended for good (it is not run again)."""
    got = lifecycle.claim(ctx.db, shard_id, kinds=(kind,), runnable=(*lifecycle.UNFINISHED, JobStatus.FAILED),
                          ended=lambda run: is_final(run.status, run.params) or held_by_a_command(run),
                          count_attempt=True)
    if got.run is None:
        raise NotFound(f"no {what} with id {shard_id}", field="job_id")
    if not got.claimed:
        log.warning("%s %s of job %s is %s: not running it again", what, shard_id, got.run.parent_id, got.run.status)
    return got


def held_by_a_command(run: IngestRun) -> bool:
    """A shard running in a command's own process (`simsearch embed`, a tuning: owner ``cli:...``)
    that is not this one: a worker given it on the queue leaves it (:mod:`simsearch.jobs.fleet`);
    if that command dies, the job is found lost (:mod:`simsearch.jobs.reembed_lost`)."""
    owner = run.owner or ""
    return run.status == JobStatus.RUNNING and owner.startswith("cli:") and owner != this_process("cli")


def execute_shard(ctx, shard_id: int, *, batch_size: int | None = None, workers: int | None = None) -> dict:
    """Ingest one shard (its slice of the parent's manifest), then :func:`roll_up` the parent.
    A shard that ended is not run again; one left ``running`` by a dead worker is."""
    got = claim_shard(ctx, shard_id, SHARD, "ingest shard")
    shard = got.run
    if not got.claimed:
        return {"run_id": shard_id, "status": shard.status}
    parent_id, start, stop = shard.parent_id, int(shard.params["start"]), int(shard.params["stop"])
    coll_id = shard.collection_id
    collection, spaces, source = got.collection, list(shard.spaces), shard.source
    # A failure is recorded by the caller: RQ's failure callback puts the shard back to queued
    # while it has retries left, and fails it (and rolls up the job) only after the last one.
    # Failing it here first would let another shard's roll-up end the whole job meanwhile.
    folder = run_folder(ctx.settings, parent_id)
    manifest = Manifest.read(folder)
    files = manifest.source_files(folder)[start:stop]
    ingester = Ingester(ctx, spaces=spaces, batch_size=batch_size or manifest.batch_size or DEFAULT_BATCH_SIZE,
                        workers=workers)
    # The job's derived spaces are refreshed once, when its last shard ends (roll_up): shards
    # refreshing them one by one at once would each rewrite them from what they saw. Its indexes
    # are brought up to date by a shard only every SHARD_INDEX_SYNC_EVERY seconds (a sync costs
    # O(collection)), and by every shard that finds the job ended after it (below).
    try:
        report = ingester.run(collection, files, source=source, run_id=shard_id, refresh_derived=False,
                              sync_every=SHARD_INDEX_SYNC_EVERY)
    except JobCancelled:  # the shard or its job was cancelled: not retried
        roll_up(ctx, parent_id)
        return {"run_id": shard_id, "status": JobStatus.FAILED.value, "cancelled": True}
    if roll_up(ctx, parent_id) in tuple(e.value for e in ENDED):
        # the last shard (or one ending beside it) brings the indexes up to date with every
        # shard's vectors, whoever ended the job: a worker's maintenance pass (reconcile) may
        # have rolled it up first, and does no index work of its own
        _sync_indexes(ctx, coll_id, ingester.spaces)
    return report.to_dict()


def progress(session, parent_id: int, kind: str = JobKind.INGEST) -> dict:
    """The sums of a sharded job's shards and how many are in each state. A shard that ended
    ``done`` processed all its files; ``added`` counts the images its runs stored. A shard run
    once has them in its own counter (written with the images, in one transaction); a shard
    claimed again (``attempts`` > 1: its worker died) has its last run's only, so the images
    stored under its id are counted instead (by ``images.ingest_run_id``'s index: the shard's
    images, never the collection's). A pass over stored images (``kind`` ``reembed``,
    ``features``) adds no images: ``added`` sums the images its shards' last runs embedded (or
    stored the features of), ``skipped`` those that had them already (an earlier run's work).

    Every job page, ``jobs --follow`` (every 2 s) and every shard's roll-up reads this, so it
    costs what the shards cost: counting the job's images on each call (as it did) took 3.5 s
    of PostgreSQL's CPU a call at 98,989 images of a 100-shard ingest, 27% of a core taken from
    the workers by one follower (docs/jobs.md, "What a job's progress costs")."""
    row = session.execute(select(func.count(),
                                 func.coalesce(func.sum(case((IngestRun.status == JobStatus.DONE.value, IngestRun.total),
                                                             else_=IngestRun.processed)), 0),
                                 func.coalesce(func.sum(IngestRun.failed), 0),
                                 func.coalesce(func.sum(IngestRun.attempts), 0),
                                 func.coalesce(func.sum(IngestRun.duplicates), 0),
                                 func.coalesce(func.sum(IngestRun.added), 0),
                                 func.coalesce(func.sum(IngestRun.skipped), 0),
                                 func.coalesce(func.sum(case((IngestRun.attempts <= 1, IngestRun.added), else_=0)), 0))
                          .where(IngestRun.parent_id == parent_id)).one()
    states = dict(session.execute(select(IngestRun.status, func.count()).where(IngestRun.parent_id == parent_id)
                                  .group_by(IngestRun.status)).all())
    processed, failed, duplicates = int(row[1]), int(row[2]), int(row[4])
    out = {"shards": int(row[0]), "processed": processed, "failed": failed, "attempts": int(row[3]),
           "states": {k: int(v) for k, v in states.items()}}
    if kind in IMAGE_PASSES:
        return {**out, "added": int(row[5]), "duplicates": 0, "skipped": int(row[6])}
    again = session.scalars(select(IngestRun.id).where(IngestRun.parent_id == parent_id, IngestRun.attempts > 1)).all()
    added = int(row[7]) + (session.scalar(select(func.count()).select_from(Image).where(
        Image.ingest_run_id.in_(list(again)), Image.status == "ok")) if again else 0)
    return {**out, "added": added, "duplicates": duplicates, "skipped": max(0, processed - added - failed - duplicates)}


def roll_up(ctx, parent_id: int) -> str:
    """Bring job ``parent_id`` up to date with its shards; end it when every shard has ended.
    Returns its status. Safe when several shards end at once: the parent row is locked first
    (an UPDATE), so the last shard to end always sees every other shard ended. The shards'
    states are read before their sums: a shard that ends between the two reads (each statement
    sees what was committed when it started) is then still running in the states, and the job is
    not ended with sums that miss its last batches (seen at 100,000 files: a roll-up by another
    process ended the job 104 files short while the last shard committed)."""
    with ctx.db.session() as s:
        locked = s.execute(update(IngestRun).where(IngestRun.id == parent_id,
                                                   IngestRun.status.not_in([e.value for e in ENDED]))
                           .values(updated_at=utcnow())).rowcount
        parent = s.get(IngestRun, parent_id)
        if parent is None:
            return "gone"
        if not locked:
            return parent.status
        shards = s.execute(select(IngestRun.id, IngestRun.status, IngestRun.message, IngestRun.errors,
                                  IngestRun.params).where(IngestRun.parent_id == parent_id).order_by(IngestRun.id)).all()
        summary = progress(s, parent_id, parent.kind)  # after the states: it counts at least what they say ended
        parent.processed, parent.added = summary["processed"], summary["added"]
        parent.skipped, parent.failed = summary["skipped"], summary["failed"]
        parent.duplicates = summary["duplicates"]
        errors: list = []
        for _sid, _status, _message, shard_errors, _params in shards:
            errors.extend(shard_errors or [])
        parent.errors = errors[:MAX_ERRORS_KEPT]
        if parent.started_at is None:
            parent.started_at = utcnow()
        if not all(is_final(status, params) for _sid, status, _m, _e, params in shards):
            return parent.status
        failed = [(p or {}).get("shard", sid) for sid, status, _m, _e, p in shards if status != JobStatus.DONE]
        reasons = [m for _sid, status, m, _e, _p in shards if status != JobStatus.DONE and m]
        if failed:
            again = ("retrying the job finishes it (the images already embedded are skipped)"
                     if parent.kind == JobKind.REEMBED else
                     "retrying the job finishes it (the images whose features are stored are skipped)"
                     if parent.kind == JobKind.FEATURES else "ingesting the same files again finishes the job")
            lifecycle.end(parent, JobStatus.FAILED,
                          f"{len(failed)} of {plural(len(shards), 'shard')} failed (shard {', '.join(map(str, failed[:10]))}"
                          f"{'...' if len(failed) > 10 else ''}): {reasons[0] if reasons else 'no reason recorded'}; "
                          + again)
        else:
            lifecycle.end(parent, JobStatus.DONE, keep_message=True)
        status = parent.status
        coll_id, spaces = parent.collection_id, list(parent.spaces or [])
        for sid, *_ in shards:
            spaces += list(s.get(IngestRun, sid).spaces or [])  # a shard adds the collection's required spaces
    log.info("sharded job %s: %s (%d shards)", parent_id, status, len(shards))
    release_uploads(ctx, parent_id)
    _refresh_derived(ctx, coll_id, list(dict.fromkeys(spaces)))
    return status


def _sync_indexes(ctx, collection_id: int, spaces: list[str]) -> None:
    """The ingest job has ended: the indexes of its spaces are brought up to date with every
    vector its shards stored (a shard syncs them only now and then: SHARD_INDEX_SYNC_EVERY)."""
    for space in spaces:
        try:
            ctx.sync_index(collection_id, space)
        except Exception:  # the vectors are stored (the source of truth); the next search syncs the index
            log.exception("ingest job: bringing the index of collection %s / %s up to date failed", collection_id, space)


def _refresh_derived(ctx, collection_id: int, spaces: list[str]) -> None:
    """The job has ended: its collection's derived spaces made from its spaces follow the new
    vectors (what the shards stored, even when some failed)."""
    try:
        done = derived.refresh_for_bases(ctx, collection_id, spaces)
    except Exception:  # the ingest itself is done; the next ingest or `simsearch tune` refreshes them
        log.exception("ingest job: refreshing the derived spaces of collection %s failed", collection_id)
        return
    if done:
        log.info("refreshed derived spaces %s", ", ".join(done))


def roll_up_parent_of(ctx, run_id: int) -> None:
    """:func:`roll_up` the job that ``run_id`` is a shard of (nothing for an unsharded run)."""
    with ctx.db.session() as s:
        run = s.get(IngestRun, run_id)
        parent_id = run.parent_id if run is not None else None
    if parent_id is not None:
        roll_up(ctx, parent_id)


# ---- passes over stored images (IMAGE_PASSES): shards of image ids ------------------------------

def create_pass(ctx, kind: str, collection_id: int, ids, *, spaces: list[str], source: str,
                shard_size: int | None = None, batch_size: int, estimate: dict | None = None,
                nothing: str = "nothing to do") -> tuple[int, list[int]]:
    """A running job of ``kind`` (an ``IMAGE_PASSES`` key) over images ``ids`` of the collection,
    split into queued shards (its shard kind) of at most ``shard_size`` image ids each (default
    ``SIMSEARCH_SHARD_SIZE``; ``params["ids"]``), or ended ``done`` (``nothing``) when there are
    none. Returns (job id, shard ids)."""
    ids = sorted({int(i) for i in ids})
    size = shard_size or ctx.settings.shard_size
    slices = plan(len(ids), size)
    with ctx.db.session() as s:
        parent = lifecycle.new_run(kind=kind, collection_id=collection_id, source=source, spaces=spaces,
                                   total=len(ids), params={"shards": len(slices), "shard_size": size,
                                                           "batch_size": batch_size,
                                                           **({"estimate": estimate} if estimate else {})})
        s.add(parent)
        s.flush()
        children = [lifecycle.new_run(kind=IMAGE_PASSES[JobKind(kind)], parent_id=parent.id,
                                      collection_id=collection_id, source=source, spaces=spaces, total=stop - start,
                                      params={"ids": ids[start:stop], "shard": i + 1, "shards": len(slices),
                                              "batch_size": batch_size})
                    for i, (start, stop) in enumerate(slices)]
        s.add_all(children)
        if children:
            lifecycle.start_parent(parent)
        else:
            lifecycle.end(parent, JobStatus.DONE, nothing)
        s.flush()
        return parent.id, [c.id for c in children]


def run_once(ctx, shard_id: int, execute, **options) -> dict:
    """``execute(ctx, shard_id, **options)`` (a pass's shard function) where nothing retries it: a
    thread runner's shard (the passes' ``execute_shard_once``), or one a command runs. A failure
    ends the shard for good (:func:`fail_finally`: its job is rolled up), then propagates."""
    try:
        return execute(ctx, shard_id, **options)
    except Exception as exc:
        fail_finally(ctx, shard_id, exc)
        raise


def unfinished_shards(ctx, parent_id: int) -> list[int]:
    """The shards of a job that have not ended for good (to queue, or run here)."""
    with ctx.db.session() as s:
        rows = s.execute(select(IngestRun.id, IngestRun.status, IngestRun.params)
                         .where(IngestRun.parent_id == parent_id).order_by(IngestRun.id)).all()
    return [i for i, status, params in rows if not is_final(status, params)]


def run_here(ctx, parent_id: int, execute, on_batch=None) -> str:
    """Run a pass's unfinished shards one after another in this process (``execute(ctx, shard_id,
    progress=...)``: its kind's shard function); returns the job's status. ``on_batch(done,
    total)``: the job's images done, after each batch. If this process dies the job is found lost
    (:mod:`simsearch.jobs.reembed_lost`)."""
    owner = this_process("cli")
    with ctx.db.session() as s:
        parent = s.get(IngestRun, parent_id)
        total, kind = parent.total, parent.kind
        s.execute(update(IngestRun).where((IngestRun.id == parent_id) | (IngestRun.parent_id == parent_id),
                                          IngestRun.owner.is_(None) | IngestRun.owner.like("cli:%"))
                  .values(owner=owner))  # (a runner's shards stay its own: it runs them too)
    for shard_id in unfinished_shards(ctx, parent_id):
        with ctx.db.session() as s:
            before = progress(s, parent_id, kind)["processed"]
            before -= s.get(IngestRun, shard_id).processed or 0
        report = None if on_batch is None else (lambda done, _n, b=before: on_batch(b + done, total))
        run_once(ctx, shard_id, execute, progress=report)
    with ctx.db.session() as s:
        return s.get(IngestRun, parent_id).status
