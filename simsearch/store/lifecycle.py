"""The life of a job: its statuses and kinds, and every change of status, in one place.

Every job is a row of one table (:class:`~simsearch.store.models.IngestRun`): an ingest, a shard
of a large ingest (``parent_id`` its job), an analysis, a tuning, an index rebuild. Its ``status``
column holds a :class:`JobStatus` (a ``StrEnum``: the strings the database has always held) and
moves only through the functions here::

    create / new_run -> queued --claim--> running --finish--> done
                          ^                  |  \\--fail----> failed
                          +----requeue-------+   \\-interrupt-> interrupted

(an index rebuild is created ``running``; a sharded ingest is ``running`` while its shards run).
A running job writes :func:`progress` and, while one step runs long, a :class:`Heartbeat`; one
not heard of for :data:`LOST_AFTER_SECONDS` is *lost* (:func:`is_lost`): its process stopped, and
asking again starts a new one (:func:`active` skips it). Each change is one conditional UPDATE
(``WHERE status IN (...)``), so of two processes that claim, fail or requeue the same job at once
exactly one wins. Every function takes the time from ``clock`` (default: now, in UTC), so a test
can move time without sleeping.

This module imports only the store: the ingest pipeline, the runners, the ops and the web app
all use it (``tests/test_job_lifecycle.py`` checks that no other module writes a status by hand).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Callable, Iterable

from sqlalchemy import select, update

from simsearch.store.models import Collection, IngestRun, utcnow

log = logging.getLogger("simsearch.jobs")


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # a `simsearch ingest` command that stopped mid-way (its work is kept)


class JobKind(StrEnum):
    INGEST = "ingest"
    SHARD = "shard"  # a slice of a large queued ingest (simsearch.jobs.shards)
    REEMBED = "reembed"  # stored images embedded again in other spaces (simsearch.jobs.reembed)
    REEMBED_SHARD = "reembed_shard"  # a slice of a re-embedding's images
    FEATURES = "features"  # local features of stored images, stored after ingest (simsearch.ops.local_features)
    FEATURES_SHARD = "features_shard"  # a slice of those images
    INDEX = "index"  # a background index rebuild (simsearch.jobs.index_builds)
    TUNE = "tune"  # simsearch.ops.tune_jobs
    # the background analyses (simsearch.ops.analysis_tasks.KINDS)
    CLUSTERS = "clusters"
    MAP = "map"
    EVALUATION = "evaluation"
    COMPARISON = "comparison"
    DUPLICATES = "duplicates"


UNFINISHED = (JobStatus.QUEUED, JobStatus.RUNNING)
ENDED = (JobStatus.DONE, JobStatus.FAILED, JobStatus.INTERRUPTED)
ANALYSIS_KINDS = (JobKind.CLUSTERS, JobKind.MAP, JobKind.EVALUATION, JobKind.COMPARISON, JobKind.DUPLICATES)
SHARD_KINDS = (JobKind.SHARD, JobKind.REEMBED_SHARD, JobKind.FEATURES_SHARD)  # slices of a job (``parent_id``), rolled up into it
# Passes over a collection's stored images, split into shards of image ids (``params["ids"]``) that
# any worker takes, or the command that started them (then lost with its process): job -> shard kind
IMAGE_PASSES = {JobKind.REEMBED: JobKind.REEMBED_SHARD, JobKind.FEATURES: JobKind.FEATURES_SHARD}
SHARDED_KINDS = (JobKind.INGEST, *IMAGE_PASSES)  # jobs whose shards are the work (when ``params["shards"]``)
RESTARTABLE = (JobKind.INGEST, JobKind.SHARD, *IMAGE_PASSES.values())  # idempotent: started again after a lost worker
RETRYABLE = (JobStatus.FAILED, JobStatus.INTERRUPTED)  # ended badly: a retry may start it again

HEARTBEAT_SECONDS = 30.0
# A running job not heard of for this long is taken as lost (its process stopped): a request
# starts a new one instead of waiting on it. The heartbeat keeps live ones fresh. A queued one is
# waiting for a worker and is never lost.
LOST_AFTER_SECONDS = 300
MESSAGE_MAX = 2000

Clock = Callable[[], datetime]
ANY_OWNER = "<any>"  # (``owned_by`` of the conditional changes: whoever owns the job, or nobody)


def aware(dt: datetime | None) -> datetime | None:
    """``dt`` in UTC when the database gave it without a zone (SQLite)."""
    return dt if dt is None or dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def _cut(message: str | None) -> str | None:
    return None if message is None else str(message)[:MESSAGE_MAX]


# ---- creating ----------------------------------------------------------------------------------

def new_run(*, kind: str = JobKind.INGEST, collection_id: int, source: str, spaces: Iterable[str] = (),
            params: dict | None = None, total: int = 0, owner: str | None = None, parent_id: int | None = None,
            message: str | None = None, running: bool = False, clock: Clock = utcnow) -> IngestRun:
    """A new job row (to add to a session): ``queued``, or ``running`` from now when the caller
    runs it at once (``running``: an index rebuild)."""
    now = clock()
    return IngestRun(kind=str(kind), collection_id=collection_id, source=source, spaces=list(spaces), params=params,
                     total=int(total), owner=owner, parent_id=parent_id, message=_cut(message),
                     status=JobStatus.RUNNING.value if running else JobStatus.QUEUED.value,
                     started_at=now if running else None, updated_at=now)


def create(db, **fields) -> int:
    """:func:`new_run`, stored; returns its id."""
    with db.session() as s:
        run = new_run(**fields)
        s.add(run)
        s.flush()
        return run.id


# ---- running -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """What :func:`claim` found: the job (a detached snapshot; None: no job of those kinds with
    that id), its collection's name, and whether this caller now runs it."""

    run: IngestRun | None
    collection: str | None
    claimed: bool

    @property
    def status(self) -> str | None:
        return None if self.run is None else self.run.status


def claim(db, run_id: int, *, kinds: Iterable[str], runnable: Iterable[str] = (JobStatus.QUEUED,),
          ended: Callable[[IngestRun], bool] | None = None, count_attempt: bool = False,
          message: str | None = None, clock: Clock = utcnow) -> Claim:
    """Take job ``run_id`` to ``running`` if it is of one of ``kinds`` and its status is one of
    ``runnable`` (and ``ended(run)`` is not true). The change is conditional on the status seen,
    so of two claims at once one wins. ``count_attempt``: add one to its attempts."""
    kinds, runnable = {str(k) for k in kinds}, {str(r) for r in runnable}
    with db.session() as s:
        run = s.get(IngestRun, run_id)
        if run is None or run.kind not in kinds:
            return Claim(None, None, False)
        coll = s.get(Collection, run.collection_id)
        name = coll.name if coll is not None else None
        if run.status not in runnable or (ended is not None and ended(run)):
            return Claim(run, name, False)
        seen = run.status
    now = clock()
    values = {"status": JobStatus.RUNNING.value, "started_at": now, "updated_at": now}
    if message is not None:
        values["message"] = _cut(message)
    if count_attempt:
        values["attempts"] = IngestRun.attempts + 1
    with db.session() as s:  # a new transaction: the UPDATE takes the row (SQLite: the database) first
        won = s.execute(update(IngestRun).where(IngestRun.id == run_id, IngestRun.status == seen).values(**values)
                        .execution_options(synchronize_session=False)).rowcount == 1
        return Claim(s.get(IngestRun, run_id, populate_existing=True), name, won)


def begin(run: IngestRun, total: int, *, clock: Clock = utcnow) -> None:
    """``run`` (a row in the caller's session) starts now over ``total`` items: the ingest
    pipeline's start, on a run it was given or made (a resumed run counts again from 0)."""
    now = clock()
    run.status, run.total, run.started_at, run.updated_at = JobStatus.RUNNING.value, int(total), now, now
    run.processed = 0


def start_parent(run: IngestRun, *, clock: Clock = utcnow) -> None:
    """A job split into shards (rows whose ``parent_id`` is ``run``): it runs while they do."""
    now = clock()
    run.status, run.started_at, run.updated_at = JobStatus.RUNNING.value, now, now


def progress(db, run_id: int, message: str | None = None, done: int | None = None, total: int | None = None,
             *, clock: Clock = utcnow) -> None:
    """Record a running job's step: its message and ``done`` of ``total`` (each when given)."""
    values: dict = {"updated_at": clock()}
    if message is not None:
        values["message"] = _cut(message)
    if done is not None:
        values["processed"] = int(done)
    if total is not None:
        values["total"] = int(total)
    with db.session() as s:
        s.execute(update(IngestRun).where(IngestRun.id == run_id).values(**values))


def progress_writer(db, run_id: int, *, clock: Clock = utcnow) -> Callable[[str, int, int], None]:
    """``progress(message, done, total)`` that writes a background job's step to its row."""

    def write(message: str, done: int, total: int) -> None:
        progress(db, run_id, message, done, total, clock=clock)

    return write


def heartbeat(db, run_id: int, *, clock: Clock = utcnow) -> bool:
    """A running job is alive: bump its ``updated_at``. False when it is not running (any more)."""
    with db.session() as s:
        return s.execute(update(IngestRun).where(IngestRun.id == run_id, IngestRun.status == JobStatus.RUNNING.value)
                         .values(updated_at=clock())).rowcount == 1


class Heartbeat:
    """:func:`heartbeat` every ``every`` seconds on a thread while a long step runs (a context
    manager), so that a live job never looks lost."""

    def __init__(self, db, run_id: int, every: float = HEARTBEAT_SECONDS, *, clock: Clock = utcnow):
        self.db, self.run_id, self.every, self.clock = db, run_id, every, clock
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"simsearch-heartbeat-{run_id}", daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(self.every):
            try:
                heartbeat(self.db, self.run_id, clock=self.clock)
            except Exception:  # the database is away for a moment: the next beat tries again
                log.warning("job %s: could not record a heartbeat", self.run_id, exc_info=True)

    def __enter__(self) -> "Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)


# ---- ending ------------------------------------------------------------------------------------

def transition(db, run_id: int, to: str, *, when: Iterable[str] = UNFINISHED, owned_by: str | None = ANY_OWNER,
               message: str | None = None, then: Callable[[IngestRun], None] | None = None,
               clock: Clock = utcnow, **values) -> bool:
    """Move job ``run_id`` to status ``to`` if its status is one of ``when`` (and, given
    ``owned_by``, it is still that owner's; None: still nobody's); ``values``: other columns to
    set; ``then(run)``: more changes to the moved row, in the same transaction. Ending sets
    ``finished_at``, queueing again clears it. Returns whether it moved."""
    now = clock()
    to = JobStatus(to)
    changes = {"status": to.value, "updated_at": now, **values}
    if to in ENDED:
        changes.setdefault("finished_at", now)
    elif to is JobStatus.QUEUED:
        changes["finished_at"] = None
    if message is not None:
        changes["message"] = _cut(message)
    where = [IngestRun.id == run_id, IngestRun.status.in_([str(w) for w in when])]
    if owned_by is None:
        where.append(IngestRun.owner.is_(None))
    elif owned_by != ANY_OWNER:
        where.append(IngestRun.owner == owned_by)
    with db.session() as s:
        moved = s.execute(update(IngestRun).where(*where).values(**changes)
                          .execution_options(synchronize_session=False)).rowcount == 1
        if moved and then is not None:
            then(s.get(IngestRun, run_id))
        return moved


def finish(db, run_id: int, message: str | None = "done", *, clock: Clock = utcnow, **values) -> bool:
    """A running job ended well: ``done``, with ``message`` and other columns (``values``)."""
    return transition(db, run_id, JobStatus.DONE, message=message, clock=clock, **values)


def fail(db, run_id: int, reason: str, *, final: bool = False, clock: Clock = utcnow) -> bool:
    """Record why job ``run_id`` failed: ``failed`` with ``reason`` (no-op on a job that is done, or
    failed already). ``final`` (a shard): its last attempt failed, and it is failed even when an
    earlier attempt's failure was recorded; no retry follows."""
    when = (*UNFINISHED, JobStatus.INTERRUPTED) + ((JobStatus.FAILED,) if final else ())

    def mark_final(run: IngestRun) -> None:
        run.params = {**(run.params or {}), "final": True}

    return transition(db, run_id, JobStatus.FAILED, when=when, message=str(reason), clock=clock,
                      then=mark_final if final else None)


def interrupt(db, run_id: int, message: str, *, owned_by: str | None = ANY_OWNER, clock: Clock = utcnow) -> bool:
    """The process running job ``run_id`` stopped mid-way (its committed work is kept):
    ``interrupted``. Given ``owned_by`` (a stopped process found later): only while the job is
    unfinished and still that owner's; else (the command itself, stopping) unless it is done."""
    when = UNFINISHED if owned_by != ANY_OWNER else (*UNFINISHED, JobStatus.FAILED, JobStatus.INTERRUPTED)
    return transition(db, run_id, JobStatus.INTERRUPTED, when=when, owned_by=owned_by, message=message, clock=clock)


def requeue(db, run_id: int, message: str, *, when: Iterable[str] = UNFINISHED, owned_by: str | None = ANY_OWNER,
            new_owner: str | None = None, clock: Clock = utcnow) -> bool:
    """Put job ``run_id`` back to ``queued`` to be started again (a retry, a lost queue entry, a
    stopped runner's job taken over by ``new_owner``)."""
    values = {"owner": new_owner} if new_owner is not None else {}
    return transition(db, run_id, JobStatus.QUEUED, when=when, owned_by=owned_by, message=message, clock=clock,
                      **values)


def end(run: IngestRun, status: str, message: str | None = None, *, keep_message: bool = False,
        clock: Clock = utcnow) -> None:
    """``run`` (a row in the caller's session, whose counters the caller sets) ends now with
    ``status``. ``keep_message``: leave its message (a resumed run that ends well keeps the note
    that it was resumed)."""
    now = clock()
    run.status, run.finished_at, run.updated_at = JobStatus(status).value, now, now
    if not keep_message:
        run.message = _cut(message)


def cancel(db, collection_id: int, message: str, *, clock: Clock = utcnow) -> list[int]:
    """Fail every unfinished job of a collection with ``message`` (a queued one is then never
    started: runners only start queued or running jobs). Returns their ids."""
    now = clock()
    unfinished = [s.value for s in UNFINISHED]
    with db.session() as s:
        ids = list(s.scalars(select(IngestRun.id).where(IngestRun.collection_id == collection_id,
                                                        IngestRun.status.in_(unfinished))))
        if ids:
            s.execute(update(IngestRun).where(IngestRun.id.in_(ids), IngestRun.status.in_(unfinished))
                      .values(status=JobStatus.FAILED.value, message=_cut(message), finished_at=now, updated_at=now)
                      .execution_options(synchronize_session=False))
    return ids


# ---- which jobs are alive ----------------------------------------------------------------------

def is_lost(status: str, updated_at: datetime | None, created_at: datetime | None = None, *,
            now: datetime | None = None) -> bool:
    """Whether a job is running but not heard of for :data:`LOST_AFTER_SECONDS` (a queued job
    waits for a worker, and is never lost)."""
    last = aware(updated_at) or aware(created_at)
    if status != JobStatus.RUNNING or last is None:
        return False
    return last < (now or utcnow()) - timedelta(seconds=LOST_AFTER_SECONDS)


def active(db, *, kind: str, collection_id: int, same: Callable[[dict | None], bool] | None = None,
           clock: Clock = utcnow) -> tuple[int, str] | None:
    """The newest queued job of ``kind`` on the collection, or running one that is not lost, as
    (id, status); ``same(params)``: only jobs of those parameters. Asking twice joins one job."""
    with db.session() as s:
        rows = s.execute(select(IngestRun.id, IngestRun.status, IngestRun.params, IngestRun.updated_at,
                                IngestRun.created_at)
                         .where(IngestRun.kind == str(kind), IngestRun.collection_id == collection_id,
                                IngestRun.status.in_([u.value for u in UNFINISHED]))
                         .order_by(IngestRun.id.desc())).all()
    now = clock()
    for run_id, status, params, updated, created in rows:
        if (same is None or same(params)) and not is_lost(status, updated, created, now=now):
            return run_id, status
    return None


def unfinished(db, *, owner_like: str) -> list:
    """(id, owner, kind, processed, total) of the unfinished jobs whose owner matches ``owner_like``
    (SQL LIKE: ``thread:%``, ``cli:%``)."""
    with db.session() as s:
        return s.execute(select(IngestRun.id, IngestRun.owner, IngestRun.kind, IngestRun.processed, IngestRun.total)
                         .where(IngestRun.status.in_([u.value for u in UNFINISHED]),
                                IngestRun.owner.like(owner_like))).all()


def assign(db, run_id: int, owner: str) -> None:
    """Record who runs job ``run_id`` (see :mod:`simsearch.jobs.owners`)."""
    with db.session() as s:
        s.execute(update(IngestRun).where(IngestRun.id == run_id).values(owner=owner))


def is_final(status: str, params: dict | None) -> bool:
    """Whether a shard has ended for good. A shard whose attempt failed is ``failed`` for a moment
    before RQ's failure callback puts it back to ``queued`` for its next attempt: only the last
    failure (``fail(..., final=True)``) counts, or the job would end while its shard is retried."""
    return status in (JobStatus.DONE, JobStatus.INTERRUPTED) or (status == JobStatus.FAILED
                                                                  and bool((params or {}).get("final")))
