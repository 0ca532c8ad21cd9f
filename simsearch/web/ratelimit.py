"""Limits on what one client may ask of the server: a per-address rate limit for anonymous
searches (:class:`RateLimiter`) and a cap on unfinished jobs (:func:`cap_jobs`).

**Anonymous searches** (a public server, ``SIMSEARCH_PUBLIC_SEARCH``):

A token bucket per client address: ``per_minute`` tokens, refilled continuously (one every
``60 / per_minute`` seconds), so a visitor may send a burst of ``per_minute`` searches and then one
every few seconds. A request finding the bucket empty is refused with
:class:`~simsearch.errors.TooManyRequests` (429, ``Retry-After``: the seconds until a token is back).

The buckets live in the server process: gunicorn's N workers each allow ``per_minute``, so the
effective limit is up to N times higher. Behind a reverse proxy every visitor has the proxy's
address unless ``SIMSEARCH_PROXY_HOPS`` says how many proxies' ``X-Forwarded-For`` to trust.

**Jobs** (ingest, embedding, tuning, analyses: each request may queue one): a job created while a
request is handled records who asked for it (``ingest_runs.requested_by``: the client's API key as a
digest, else its address; :func:`simsearch.web.security.client_id`). Before it is stored, the jobs
not yet finished (queued or running, a job's shards and background index rebuilds not counted) are
counted, the client's and everyone's; at ``SIMSEARCH_MAX_QUEUED_JOBS_PER_CLIENT`` or
``SIMSEARCH_MAX_QUEUED_JOBS`` the request is refused: 429 with ``Retry-After``. A request that finds
its job already queued (the same analysis) creates nothing and is never refused. The count and the
insert are one transaction holding a lock (PostgreSQL: an advisory lock; SQLite: the write lock,
taken first), so parallel requests, in any number of processes, never exceed the caps.
"""

from __future__ import annotations

import math
import threading
import time

from sqlalchemy import event, func, select, text, update

from simsearch.errors import TooManyRequests
from simsearch.store import lifecycle
from simsearch.store.models import IngestRun
from simsearch.web.security import client_id

MAX_ADDRESSES = 10_000  # buckets kept; full (idle) ones are dropped first when there are more


class RateLimiter:
    def __init__(self, per_minute: int, *, clock=time.monotonic):
        self.per_minute = per_minute
        self.rate = per_minute / 60.0  # tokens per second
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, address: str, what: str = "requests") -> None:
        """Take one token for ``address``; raise :class:`TooManyRequests` when there is none."""
        if self.per_minute <= 0:
            return
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(address, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[address] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / self.rate))
                raise TooManyRequests(
                    f"too many {what} from this address: at most {self.per_minute} a minute without an API key; "
                    f"try again in {wait} s", retry_after=wait, details={"per_minute": self.per_minute})
            self._buckets[address] = (tokens - 1.0, now)
            if len(self._buckets) > MAX_ADDRESSES:
                self._prune(now)

    def _prune(self, now: float) -> None:
        full = [a for a, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.per_minute]
        for a in full:
            del self._buckets[a]
        while len(self._buckets) > MAX_ADDRESSES:  # all busy: drop the oldest entries
            del self._buckets[next(iter(self._buckets))]


# ---- jobs ----------------------------------------------------------------------------------------

JOB_RETRY_AFTER = 10  # seconds: jobs take a while; ask again then
NOT_COUNTED = ("shard", "reembed_shard", "features_shard", "index")  # made by a job, or by the index manager: nobody asked for them
UNFINISHED = [status.value for status in lifecycle.UNFINISHED]
_ADVISORY_KEY = 0x51A5EA4C  # pg_advisory_xact_lock's key for "count then insert a job"


def _job_lock(connection) -> None:
    """Serialise "count the unfinished jobs, then insert one" across requests and processes
    until the transaction ends."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})
    else:  # SQLite: a write statement takes the database's write lock (reads saw the latest commit)
        connection.execute(update(IngestRun).where(IngestRun.id < 0).values(requested_by=None))


def cap_jobs(mapper, connection, run: IngestRun) -> None:
    """``before_insert`` of :class:`IngestRun`: within a web request, record who asks for the job
    and refuse it (429) when that client or the server has too many unfinished jobs."""
    from flask import current_app, has_request_context

    if not has_request_context() or run.kind in NOT_COUNTED or run.parent_id is not None:
        return
    services = current_app.extensions.get("simsearch")
    settings = getattr(getattr(services, "services", services), "settings", None)
    if settings is None:
        return
    client = client_id()
    run.requested_by = client
    per_client, overall = settings.max_queued_jobs_per_client, settings.max_queued_jobs
    if not per_client and not overall:
        return
    _job_lock(connection)
    unfinished = (select(func.count()).select_from(IngestRun)
                  .where(IngestRun.status.in_(UNFINISHED), IngestRun.kind.not_in(NOT_COUNTED),
                         IngestRun.parent_id.is_(None)))
    if per_client:
        mine = connection.scalar(unfinished.where(IngestRun.requested_by == client))
        if mine >= per_client:
            raise TooManyRequests(
                f"you have {mine} unfinished jobs (queued or running): at most {per_client} at once "
                f"(SIMSEARCH_MAX_QUEUED_JOBS_PER_CLIENT); ask again when one has ended",
                retry_after=JOB_RETRY_AFTER, details={"unfinished": mine, "limit": per_client})
    if overall:
        everyone = connection.scalar(unfinished)
        if everyone >= overall:
            raise TooManyRequests(
                f"the server has {everyone} unfinished jobs: at most {overall} at once (SIMSEARCH_MAX_QUEUED_JOBS); "
                "ask again when some have ended", retry_after=JOB_RETRY_AFTER,
                details={"unfinished": everyone, "limit": overall})


# One listener for the process, whatever the number of apps: it acts only inside a request of an
# app (the CLI and the workers are not capped) and reads that app's settings.
if not event.contains(IngestRun, "before_insert", cap_jobs):
    event.listen(IngestRun, "before_insert", cap_jobs)
