"""Who runs jobs: a small in-process thread pool, or an RQ queue when Redis is configured.

Either way the caller only stages the files, creates the ``queued`` IngestRun row
(:func:`~simsearch.jobs.execute.create_run`) and hands its id over; progress is read back from
that row. Other kinds of job (the background analyses) are handed over with
:meth:`submit_function`: a run id and the name of the function that runs it
(``module:function``, called as ``function(ctx, run_id)``); in this process they have a thread of
their own, so a long ingest and a long t-SNE do not wait for each other.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from simsearch.errors import QueueUnavailable, SimsearchError
from simsearch.store import lifecycle
from simsearch.store.lifecycle import JobKind
from simsearch.owners import owner_is_gone, this_process  # noqa: F401 (re-exported)
from simsearch.jobs.execute import execute_run, failure_reason, mark_failed
from simsearch.jobs.rq import (DEFAULT_QUEUE, THREAD_TARGETS, enqueue_function, enqueue_ingest, enqueue_shard, new_job_id,
                              redis_connection, resolve_target)
from simsearch.store.db import unavailable
from simsearch.text import plural
from simsearch.jobs.shards import create_shards

log = logging.getLogger("simsearch.jobs")

class ThreadRunner:
    """Runs jobs in this process, ``threads`` at a time (the ingest itself uses several threads).

    Each job it takes is marked with this process as its owner. :meth:`recover` (run by the web app
    on the first request a process serves) resumes the unfinished jobs of a runner on this host
    whose process has stopped (killed, crashed, restarted): ingest is idempotent, so what was
    committed before is skipped and the rest is ingested."""

    kind = "thread"

    def __init__(self, ctx, threads: int = 1):
        self.ctx = ctx
        self.pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="simsearch-job")
        self.functions = ThreadPoolExecutor(1, thread_name_prefix="simsearch-analysis")
        self._recovered = False
        self._recover_lock = threading.Lock()
        self._pending: dict[int, str] = {}
        self._pending_lock = threading.Lock()
        self._retrier: threading.Thread | None = None
        self._stopping = threading.Event()

    def submit(self, run_id: int, options: dict) -> None:
        lifecycle.assign(self.ctx.db, run_id, this_process())
        self.pool.submit(self._run, run_id, options)

    def submit_function(self, run_id: int, target: str) -> None:
        """Run ``target(ctx, run_id)`` (``module:function``) on this process's second thread; a
        re-embedding's or local features job's shard on the ingest threads (embedding work, as an ingest: it does not wait
        behind an analysis, nor an analysis behind it)."""
        lifecycle.assign(self.ctx.db, run_id, this_process())
        self._pool_of(target).submit(self._call, run_id, target)

    def _pool_of(self, target: str) -> ThreadPoolExecutor:
        return self.pool if target in THREAD_TARGETS.values() else self.functions

    def _call(self, run_id: int, target: str) -> None:
        try:
            resolve_target(target)(self.ctx, run_id)
        except BaseException as exc:
            log.exception("job %s (%s) failed", run_id, target)
            mark_failed(self.ctx, run_id, exc)  # a reason, never SQL; no-op when the function recorded it already

    def _run(self, run_id: int, options: dict) -> None:
        try:
            execute_run(self.ctx, run_id, batch_size=options.get("batch_size"))
        except Exception as exc:
            # a database error raised while recording another failure: that one is the reason
            ctx = exc.__context__
            if unavailable(exc) is not None and isinstance(ctx, Exception) and \
                    not type(ctx).__module__.startswith(("sqlalchemy", "psycopg", "sqlite3")):
                exc = ctx
            log.error("ingest job %s failed: %s", run_id, type(exc).__name__)
            self._record_failure(run_id, failure_reason(exc) if unavailable(exc) is not None else exc)

    # A job whose failure could not be written (the database was down) must not stay "running":
    # the failure is kept here and written as soon as the database answers again.
    RETRY_SECONDS = 2.0

    def _record_failure(self, run_id: int, message) -> None:
        try:
            mark_failed(self.ctx, run_id, message)  # a no-op when execute_run recorded it
            return
        except Exception as exc:
            if unavailable(exc) is None:
                log.exception("could not record the failure of ingest job %s", run_id)
                return
        log.warning("ingest job %s: the database is unavailable; its failure is recorded when it is back", run_id)
        with self._pending_lock:
            self._pending[run_id] = message
            if self._retrier is None or not self._retrier.is_alive():
                self._retrier = threading.Thread(target=self._retry_pending, name="simsearch-job-retry", daemon=True)
                self._retrier.start()

    def _retry_pending(self) -> None:
        while not self._stopping.wait(self.RETRY_SECONDS):
            with self._pending_lock:
                pending = dict(self._pending)
                if not pending:
                    self._retrier = None
                    return
            for run_id, message in pending.items():
                try:
                    mark_failed(self.ctx, run_id, message)
                except Exception as exc:
                    if unavailable(exc) is not None:
                        break  # still down: try again later
                    log.exception("could not record the failure of ingest job %s", run_id)
                with self._pending_lock:
                    self._pending.pop(run_id, None)
                log.warning("ingest job %s: failure recorded now that the database is back", run_id)

    def pending_failures(self) -> dict[int, str]:
        with self._pending_lock:
            return dict(self._pending)

    def recover_once(self) -> None:
        """:meth:`recover`, the first time this is called in this process (cheap afterwards)."""
        if self._recovered:
            return
        with self._recover_lock:
            if self._recovered:
                return
            self._recovered = True
            try:
                self.recover()
            except Exception as exc:  # never fail the request that triggered it
                if unavailable(exc) is not None:
                    self._recovered = False  # the database is down: check again on a later request
                    return
                log.exception("could not check for interrupted ingest jobs")

    def recover(self) -> list[int]:
        """Take over and queue again the unfinished jobs of stopped runners on this host; returns
        their ids. Each is claimed with a conditional update, so of several processes starting at
        once (gunicorn workers) exactly one resumes it."""
        me = this_process()
        resumed = []
        for run_id, owner, kind, processed, total in lifecycle.unfinished(self.ctx.db, owner_like="thread:%"):
            if owner == me or not owner_is_gone(owner):
                continue
            if kind in THREAD_TARGETS:  # a shard of a pass over stored images, idempotent: what was stored is skipped
                if lifecycle.requeue(self.ctx.db, run_id, "resumed after the process running it stopped",
                                     owned_by=owner, new_owner=me):
                    self.pool.submit(self._call, run_id, THREAD_TARGETS[kind])
                    resumed.append(run_id)
                continue
            if kind != JobKind.INGEST:  # an analysis or index build keeps nothing half-done: it is started again when needed
                again = ("the next search rebuilds the index" if kind == JobKind.INDEX
                         else "start the tuning again" if kind == JobKind.TUNE
                         else "asking for the result again starts a new computation")
                lifecycle.transition(self.ctx.db, run_id, lifecycle.JobStatus.FAILED, owned_by=owner,
                                     message=f"interrupted: the process computing it stopped; {again}")
                continue
            message = (f"resumed after the process running it stopped ({processed} of {plural(total, 'file')} done; "
                       "images stored before count as skipped)")
            if lifecycle.requeue(self.ctx.db, run_id, message, owned_by=owner, new_owner=me):
                log.warning("ingest job %s: %s", run_id, message)
                self.pool.submit(self._run, run_id, {})
                resumed.append(run_id)
        return resumed

    def shutdown(self, wait: bool = True) -> None:
        self._stopping.set()
        self.pool.shutdown(wait=wait, cancel_futures=not wait)
        self.functions.shutdown(wait=wait, cancel_futures=not wait)


class RQRunner:
    """Enqueues jobs on Redis for ``simsearch worker``, through one Redis client (its connection
    pool) opened on first use and kept: a pass offering many shards, or a web process queueing
    jobs, does not connect again for each one."""

    kind = "rq"

    def __init__(self, ctx, redis_url: str, queue_name: str = DEFAULT_QUEUE):
        self.ctx = ctx
        self.redis_url = redis_url
        self.queue_name = queue_name
        self._connection = None

    @property
    def connection(self):
        """The runner's Redis client (:func:`~simsearch.jobs.rq.redis_connection`), made on first use."""
        if self._connection is None:
            self._connection = redis_connection(self.redis_url)
        return self._connection

    def submit(self, run_id: int, options: dict) -> None:
        """Queue the job: as one RQ job, or (more than ``shard_size`` files) as one RQ job per shard
        that any worker takes. Each RQ job's id is recorded on its run before it is queued, so a
        job lost with Redis's data is found and queued again (:mod:`simsearch.jobs.reconcile`)."""
        try:
            conn = self.connection
            shards = create_shards(self.ctx, run_id, self.ctx.settings.shard_size)
            for rid in shards or [run_id]:
                job_id = self._claim(rid)
                enqueue = enqueue_shard if shards else enqueue_ingest
                enqueue(self.redis_url, self.queue_name, rid, options, settings=self.ctx.settings, job_id=job_id,
                        connection=conn)
        except Exception as exc:
            if unavailable(exc) is not None:
                raise
            log.error("could not enqueue ingest job %s: %s", run_id, exc)
            for rid in [run_id, *(shards if "shards" in locals() else [])]:
                mark_failed(self.ctx, rid, exc, "could not enqueue the job: ")
            raise QueueUnavailable(f"the job queue (Redis) is unavailable: {type(exc).__name__}") from None

    def _claim(self, run_id: int) -> str:
        job_id = new_job_id()
        lifecycle.assign(self.ctx.db, run_id, f"rq:{job_id}")
        return job_id

    def submit_function(self, run_id: int, target: str) -> None:
        try:
            enqueue_function(self.redis_url, self.queue_name, run_id, target, settings=self.ctx.settings,
                             job_id=self._claim(run_id), connection=self.connection)
        except Exception as exc:
            if unavailable(exc) is not None:
                raise
            mark_failed(self.ctx, run_id, f"could not enqueue the job: {exc}")
            raise QueueUnavailable(f"the job queue (Redis) is unavailable: {exc}") from None

    def ping(self) -> bool:
        return bool(self.connection.ping())

    def shutdown(self, wait: bool = True) -> None:
        pass


def make_runner(ctx):
    """The runner the settings ask for: ``SIMSEARCH_JOBS`` (``thread`` or ``rq``; default ``rq``
    when there is a Redis URL), ``SIMSEARCH_QUEUE``, ``SIMSEARCH_JOB_THREADS``."""
    settings = ctx.settings
    mode = settings.jobs or ("rq" if settings.redis_url else "thread")
    if mode == "rq":
        if not settings.redis_url:
            raise SimsearchError("SIMSEARCH_JOBS=rq needs SIMSEARCH_REDIS_URL")
        return RQRunner(ctx, settings.redis_url, settings.queue)
    return ThreadRunner(ctx, settings.job_threads)
