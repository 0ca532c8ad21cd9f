"""A pass over stored images (``IMAGE_PASSES``: a re-embedding, a local features job) that a command
runs "here" (`simsearch embed` and `simsearch features` without ``--queue``, `simsearch tune`'s pass
with the chosen variant, `simsearch compare`'s missing vectors), shared with the workers' fleet.

When a queue is configured (``SIMSEARCH_REDIS_URL``, and ``SIMSEARCH_JOBS`` not ``thread``) and
answers, :func:`run_pass` hands the job's shards to the queue (RQ, ``simsearch worker``) and the
command works on them too: it takes a queued shard with a conditional update (``queued`` ->
``running``, owner ``cli:HOST:PID:TOKEN``), so each shard runs once, by the command or by a worker
(owner ``rq:JOB``); a worker that meets a shard the command runs leaves it
(:func:`simsearch.jobs.shards.claim_shard`). The command takes shards from the end of the job while
the workers take them from the front, then waits for the shards the workers run, reporting the
whole job's progress (:func:`simsearch.jobs.shards.progress`), until the job ends. A shard that
failed for good (RQ's last attempt; not one cancelled) makes the command fail at once with one line
naming it; the other shards go on on the workers and the job ends ``failed`` when they end (a
retry runs what is missing). A worker that died mid-shard: RQ's failure callback (or
:mod:`simsearch.jobs.reconcile`) queues its shard again, and the command or another worker takes
it; a shard still ``running`` but not heard of for ``LOST_AFTER_SECONDS`` (its worker died and no
worker noticed) is queued again by the waiting command and taken.

Without a queue, or with one that does not answer (a warning, then in-process), every shard runs
in the command's process, as before (:func:`simsearch.jobs.shards.run_here`).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select, update

from simsearch.errors import SimsearchError
from simsearch.jobs import shards
from simsearch.jobs.rq import SHARD_TARGETS
from simsearch.jobs.runners import RQRunner
from simsearch.owners import owner_is_gone, this_process
from simsearch.store import job_cancel, lifecycle
from simsearch.store.lifecycle import ENDED, IMAGE_PASSES, JobKind, JobStatus, is_final
from simsearch.store.models import IngestRun

log = logging.getLogger("simsearch.jobs")

POLL_SECONDS = 1.0  # how often a command waiting on the workers' shards looks at the job
WHAT = {JobKind.REEMBED: "re-embedding", JobKind.FEATURES: "local features"}


def queue_for_passes(ctx) -> RQRunner | None:
    """The workers' queue a command's pass is offered to: ``SIMSEARCH_REDIS_URL`` (the first of
    ``SIMSEARCH_QUEUE``) when set, ``SIMSEARCH_JOBS`` is not ``thread`` and Redis answers; None
    otherwise (a configured queue that does not answer: a warning, and the pass runs here)."""
    settings = ctx.settings
    if not settings.redis_url or (settings.jobs or "rq") != "rq":
        return None
    runner = RQRunner(ctx, settings.redis_url, settings.queue.split(",")[0])
    try:
        runner.ping()
    except Exception as exc:
        log.warning("the job queue (Redis at SIMSEARCH_REDIS_URL) is unreachable (%s): "
                    "running every shard in this process", type(exc).__name__)
        return None
    return runner


def run_pass(ctx, parent_id: int, execute, on_batch=None, *, runner=None, poll: float = POLL_SECONDS) -> str:
    """Run job ``parent_id`` (a pass over stored images) with the fleet when there is a queue
    (``runner``; default :func:`queue_for_passes`), else in this process. ``execute(ctx, shard_id,
    progress=...)``: its kind's shard function; ``on_batch(done, total)``: the job's images done.
    Returns the job's status once it has ended; raises :class:`~simsearch.errors.SimsearchError`
    (one line naming the shard) when a shard failed for good."""
    runner = runner if runner is not None else queue_for_passes(ctx)
    if runner is None:
        return shards.run_here(ctx, parent_id, execute, on_batch)
    me = this_process("cli")
    with ctx.db.session() as s:
        parent = s.get(IngestRun, parent_id)
        total, kind = parent.total, parent.kind
        s.execute(update(IngestRun).where(IngestRun.id == parent_id, IngestRun.owner.is_(None)
                                          | IngestRun.owner.like("cli:%")).values(owner=me))
    offered = offer(ctx, runner, parent_id, IMAGE_PASSES[JobKind(kind)])
    log.info("%s job %s: %d shard(s) offered to the workers' queue %s", kind, parent_id, len(offered),
             runner.queue_name)
    seen = -1
    stop = threading.Event()
    while True:
        _raise_on_final_failure(ctx, parent_id, kind)
        shard_id = take(ctx, parent_id, me)
        if shard_id is not None:
            _run_one(ctx, parent_id, shard_id, kind, total, execute, on_batch)
            continue
        with ctx.db.session() as s:
            status = s.get(IngestRun, parent_id).status
            done = shards.progress(s, parent_id, kind)["processed"]
        if status in ENDED:
            _raise_on_final_failure(ctx, parent_id, kind)
            if on_batch is not None and done != seen:
                on_batch(done, total)
            return status
        if on_batch is not None and done != seen:
            on_batch(done, total)
            seen = done
        requeue_silent(ctx, parent_id)
        stop.wait(poll)


def offer(ctx, runner, parent_id: int, shard_kind: str) -> list[int]:
    """Queue for the workers the job's unfinished shards that nobody else holds: queued ones not on
    the queue yet (no owner, or a command's), and those a command that stopped left running (queued
    again first). Shards already on the queue or run by a worker are left as they are."""
    with ctx.db.session() as s:
        rows = s.execute(select(IngestRun.id, IngestRun.status, IngestRun.owner, IngestRun.params)
                         .where(IngestRun.parent_id == parent_id).order_by(IngestRun.id)).all()
    me = this_process("cli")
    todo = []
    for shard_id, status, owner, params in rows:
        if is_final(status, params) or (owner or "").startswith("rq:"):
            continue
        if status == JobStatus.QUEUED and (owner is None or owner.startswith("cli:")):
            todo.append(shard_id)
        elif owner is None or owner == me or (owner.startswith("cli:") and owner_is_gone(owner)):
            if lifecycle.requeue(ctx.db, shard_id, "queued again for the workers and the command that runs its job",
                                 when=(status,), owned_by=owner):
                todo.append(shard_id)
    target = SHARD_TARGETS[JobKind(shard_kind)]
    for shard_id in todo:
        runner.submit_function(shard_id, target)
    return todo


def take(ctx, parent_id: int, owner: str) -> int | None:
    """A queued shard of the job, taken for ``owner`` (the last first: the workers take the first):
    ``queued`` -> ``running`` in one conditional update, so a worker never runs it too."""
    with ctx.db.session() as s:
        queued = list(s.scalars(select(IngestRun.id).where(IngestRun.parent_id == parent_id,
                                                           IngestRun.status == JobStatus.QUEUED.value)
                                .order_by(IngestRun.id.desc())))
    for shard_id in queued:
        if lifecycle.transition(ctx.db, shard_id, JobStatus.RUNNING, when=(JobStatus.QUEUED,), owner=owner,
                                message="run by the command that started its job"):
            return shard_id
    return None


def requeue_silent(ctx, parent_id: int, *, now=None) -> list[int]:
    """Queue again the job's shards run by a worker but not heard of for ``LOST_AFTER_SECONDS``
    (its worker died and no other worker noticed): the waiting command takes them. ``now``: the
    time to judge by (default: now)."""
    with ctx.db.session() as s:
        rows = s.execute(select(IngestRun.id, IngestRun.owner, IngestRun.updated_at)
                         .where(IngestRun.parent_id == parent_id, IngestRun.status == JobStatus.RUNNING.value)).all()
    again = []
    for shard_id, owner, heard in rows:
        if (owner or "").startswith("rq:") and lifecycle.is_lost(JobStatus.RUNNING, heard, now=now):
            if lifecycle.requeue(ctx.db, shard_id, "queued again: the worker running it was not heard of",
                                 when=(JobStatus.RUNNING,), owned_by=owner):
                log.warning("shard %s: its worker was not heard of; queued again", shard_id)
                again.append(shard_id)
    return again


def _run_one(ctx, parent_id: int, shard_id: int, kind: str, total: int, execute, on_batch) -> None:
    with ctx.db.session() as s:
        before = shards.progress(s, parent_id, kind)["processed"] - (s.get(IngestRun, shard_id).processed or 0)
    report = None if on_batch is None else (lambda done, _n, b=before: on_batch(b + done, total))
    shards.run_once(ctx, shard_id, execute, progress=report)


def _raise_on_final_failure(ctx, parent_id: int, kind: str) -> None:
    """One line naming the first shard of the job that failed for good (not one cancelled)."""
    with ctx.db.session() as s:
        rows = s.execute(select(IngestRun.id, IngestRun.status, IngestRun.message, IngestRun.params)
                         .where(IngestRun.parent_id == parent_id, IngestRun.status == JobStatus.FAILED.value)
                         .order_by(IngestRun.id)).all()
    for shard_id, status, message, params in rows:
        if is_final(status, params) and not job_cancel.is_cancelled(status, message):
            params = params or {}
            reason = " ".join((message or "no reason recorded").split())
            raise SimsearchError(
                f"{WHAT.get(JobKind(kind), kind)} job {parent_id}: shard {params.get('shard', shard_id)} of "
                f"{params.get('shards', '?')} (run {shard_id}) failed: {reason}; the other shards go on on the "
                f"workers (`simsearch jobs {parent_id}`), and once the job has ended `simsearch jobs {parent_id} "
                "--retry` runs what is missing")
