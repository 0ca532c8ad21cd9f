"""Cancelling one job: its message says so (its status is ``failed``), a running ingest stops
before its next batch and then says it has stopped. The statuses move through
:mod:`simsearch.store.lifecycle` (this module writes none by hand)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from simsearch.store.lifecycle import (LOST_AFTER_SECONDS, RESTARTABLE, SHARD_KINDS, Clock, JobStatus, _cut, aware,
                                       transition)
from simsearch.store.models import IngestRun, utcnow

CANCELLED = "cancelled"  # the first word of a cancelled job's message (its status is ``failed``)


def is_cancelled(status: str, message: str | None) -> bool:
    """Whether a job ended because it was cancelled (:func:`cancel_job`, :func:`simsearch.store.lifecycle.cancel`)."""
    return status == JobStatus.FAILED and (message or "").startswith(CANCELLED)


def cancel_job(db, run_id: int, reason: str = "by a user", *, clock: Clock = utcnow) -> bool:
    """Cancel job ``run_id`` if it is queued or running: ``failed`` with "cancelled ..." (a queued
    job is then never started; a running ingest stops at its next batch, :func:`still_running`).
    A shard is failed for good (no retry). Returns whether it moved."""
    def mark_final(run: IngestRun) -> None:
        if run.kind in SHARD_KINDS:
            run.params = {**(run.params or {}), "final": True}

    return transition(db, run_id, JobStatus.FAILED, message=f"{CANCELLED} {reason}", then=mark_final, clock=clock)


STOPPED = "; stopped after"  # what a cancelled ingest adds to its message once it has stopped


def stopped(run: IngestRun, note: str, *, clock: Clock = utcnow) -> None:
    """A cancelled job (a row in the caller's session) has stopped: ``note`` (starting "stopped
    after") is added to its message."""
    run.message, run.updated_at = _cut(f"{run.message}; {note}"), clock()


def still_stopping(run: IngestRun, *, now: datetime | None = None) -> bool:
    """Whether a job cancelled while it ran has not stopped yet (its current batch ends first; a
    process lost meanwhile never says so, and counts as stopped)."""
    if not is_cancelled(run.status, run.message) or run.kind not in RESTARTABLE or run.started_at is None:
        return False
    last = aware(run.updated_at) or aware(run.started_at)
    fresh = last is not None and last >= (now or utcnow()) - timedelta(seconds=LOST_AFTER_SECONDS)
    return STOPPED not in (run.message or "") and fresh


def still_running(session, run_id: int) -> bool:
    """Whether job ``run_id`` is still ``running`` (read in ``session``): a running ingest asks
    before each batch, and stops when the job was cancelled meanwhile."""
    status = session.scalar(select(IngestRun.status).where(IngestRun.id == run_id))
    return status == JobStatus.RUNNING
