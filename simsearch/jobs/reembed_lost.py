"""A re-embedding (or another pass over stored images: ``IMAGE_PASSES``, e.g. a local features job)
whose process died: found *lost* and ended, so that asking again starts it again.

A re-embedding run in a process of its own (:func:`simsearch.jobs.reembed.run_here`: `simsearch
embed`, `simsearch compare`, a tuning) owns its job and shards (owner ``cli:HOST:PID:TOKEN``). If
that process is killed, nothing else runs those shards: no runner resumes them (the in-process
runner resumes its own, ``thread:...``; RQ and :mod:`simsearch.jobs.reconcile` the workers'), and the
job would stay ``running`` for ever, joined by every later request for the same spaces. So a
running re-embedding is **lost** when each of its unfinished shards is owned by such a process (or
by nobody while running) and either that process has certainly stopped (on this host:
:func:`simsearch.owners.owner_is_gone`) or none of its shards was heard of (progress, heartbeat)
for :data:`~simsearch.store.lifecycle.LOST_AFTER_SECONDS`. :func:`mark_lost` then fails those
shards for good, saying so, and rolls the job up: it ends ``failed``, and retrying it (or asking
again) embeds what is still missing; what was stored is kept.

Who looks: every worker's maintenance pass (:func:`simsearch.jobs.reconcile.reconcile`),
`simsearch ingest` and `simsearch jobs` (:func:`simsearch.jobs.reconcile.mark_interrupted`), and
any new request for a re-embedding of the collection (:func:`sweep`, before it joins a job).
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from simsearch.jobs import shards
from simsearch.owners import owner_is_gone
from simsearch.store import lifecycle
from simsearch.store.lifecycle import IMAGE_PASSES, UNFINISHED, JobKind, JobStatus
from simsearch.store.models import IngestRun, utcnow

log = logging.getLogger("simsearch.jobs")


def _runs_here(owner: str | None, status: str) -> bool:
    """A shard run by a process of its own (or by nobody, while running): not a runner's."""
    return (owner or "").startswith("cli:") or (owner is None and status == JobStatus.RUNNING)


def is_lost(session, parent: IngestRun, *, now=None) -> bool:
    """Whether the running re-embedding ``parent`` was lost with its process (see the module's text)."""
    if parent.kind not in IMAGE_PASSES or parent.status != JobStatus.RUNNING:
        return False
    rows = session.execute(select(IngestRun.status, IngestRun.owner).where(
        IngestRun.parent_id == parent.id, IngestRun.status.in_([u.value for u in UNFINISHED]))).all()
    if not rows or not all(_runs_here(owner, status) for status, owner in rows):
        return False
    owners = {owner for _status, owner in rows if owner}
    if owners and all(owner_is_gone(owner) for owner in owners):
        return True
    # (the shards' progress and heartbeats: the job's own row is touched by every roll-up)
    heard = session.scalar(select(func.max(IngestRun.updated_at)).where(IngestRun.parent_id == parent.id))
    return lifecycle.is_lost(JobStatus.RUNNING, heard, now=now or utcnow())


def mark_lost(ctx, parent_id: int) -> bool:
    """End re-embedding ``parent_id`` if it is lost: its unfinished shards fail for good ("lost: the
    process running it stopped"), then the job is rolled up (``failed``, retrying finishes it).
    Returns whether it was lost. Each shard moves only if it is still as seen (status and owner)."""
    with ctx.db.session() as s:
        parent = s.get(IngestRun, parent_id)
        if parent is None or not is_lost(s, parent):
            return False
        kind = parent.kind
        rows = s.execute(select(IngestRun.id, IngestRun.status, IngestRun.owner, IngestRun.processed, IngestRun.total)
                         .where(IngestRun.parent_id == parent_id,
                                IngestRun.status.in_([u.value for u in UNFINISHED]))).all()
    for shard_id, status, owner, processed, total in rows:
        lifecycle.transition(ctx.db, shard_id, JobStatus.FAILED, when=(status,), owned_by=owner,
                             message=f"lost: the process running it stopped after {processed or 0} of {total} images "
                                     "(what it stored is kept)", then=_final)
    log.warning("%s job %s was lost with the process running it", kind, parent_id)
    shards.roll_up(ctx, parent_id)
    return True


def _final(run: IngestRun) -> None:
    run.params = {**(run.params or {}), "final": True}


def sweep(ctx, collection_id: int, kind: str = JobKind.REEMBED) -> list[int]:
    """:func:`mark_lost` each running job of ``kind`` (a re-embedding) of the collection; returns
    those found lost."""
    with ctx.db.session() as s:
        ids = list(s.scalars(select(IngestRun.id).where(IngestRun.kind == str(kind),
                                                        IngestRun.collection_id == collection_id,
                                                        IngestRun.status == JobStatus.RUNNING.value)))
    return [i for i in ids if mark_lost(ctx, i)]
