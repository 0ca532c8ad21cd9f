"""Ingest jobs on an RQ queue (Redis): enqueueing, the job function, and the worker loop.

The job carries everything it needs as plain data: the run id, options (``batch_size``,
``workers``) and the settings of the process that enqueued it (:func:`settings_to_data`), so a
``simsearch worker`` process (or container) that shares the database and the data directory runs
it exactly as the web app would, whatever its own environment says.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("simsearch.jobs")

DEFAULT_QUEUE = "simsearch"
JOB_TIMEOUT = 24 * 3600  # seconds; big ingests take hours on CPU
JOB_FUNCTION = "simsearch.jobs.rq.run_ingest_job"
SHARD_FUNCTION = "simsearch.jobs.rq.run_shard_job"


# ---- settings as job data ------------------------------------------------------------------

# Settings a job does not need and that must not sit in Redis with the job (for days): secrets.
NOT_CARRIED = frozenset({"api_keys"})


def settings_to_data(settings) -> dict:
    """The settings as JSON-able data (without API keys or the secret key: they stay off Redis)."""
    return settings.to_data()


def settings_from_data(data: dict):
    """The :class:`~simsearch.config.Settings` that :func:`settings_to_data` wrote (validated)."""
    from simsearch.config import Settings

    return Settings.from_data(data)


# ---- the job -------------------------------------------------------------------------------

_contexts: dict = {}
_contexts_lock = threading.Lock()
_worker_settings = None  # the settings of the worker process (run_worker), for jobs without their own


def job_context(settings_data: dict | None = None):
    """One :class:`~simsearch.context.AppContext` per worker process and settings (models and
    indexes stay loaded between jobs of a ``--simple`` worker). Jobs enqueued without settings
    (by an older version) use the worker's."""
    from simsearch.config import Settings
    from simsearch.context import AppContext

    if settings_data:
        settings = settings_from_data(settings_data)
    else:
        settings = _worker_settings or Settings.from_env()
    key = (os.getpid(), repr(settings))  # a forked work horse never uses its parent's connections
    with _contexts_lock:
        ctx = _contexts.get(key)
        if ctx is None:
            ctx = _contexts[key] = AppContext.open(settings)
        return ctx


def run_ingest_job(run_id: int, options: dict | None = None, settings: dict | None = None) -> dict:
    """RQ job: run ingest job ``run_id``. ``options``: ``batch_size``, ``workers``;
    ``settings``: :func:`settings_to_data` of the enqueuing process."""
    from simsearch.jobs.execute import execute_run

    options = dict(options or {})
    return execute_run(job_context(settings), int(run_id), batch_size=options.get("batch_size"),
                       workers=options.get("workers"))


def resolve_target(target: str):
    """The function named ``module:function`` (the job functions of layers above this package,
    named rather than imported, e.g. ``simsearch.ops.analysis_jobs:execute``)."""
    import importlib

    module, _, name = target.partition(":")
    if not module.startswith("simsearch.") or not name:
        raise ValueError(f"not a simsearch job function: {target!r}")
    return getattr(importlib.import_module(module), name)


def run_shard_job(run_id: int, options: dict | None = None, settings: dict | None = None) -> dict:
    """RQ job: ingest shard ``run_id`` of a sharded job (see :mod:`simsearch.jobs.shards`)."""
    from simsearch.jobs.shards import execute_shard

    options = dict(options or {})
    return execute_shard(job_context(settings), int(run_id), batch_size=options.get("batch_size"),
                         workers=options.get("workers"))


def run_function_job(run_id: int, target: str, settings: dict | None = None):
    """RQ job: call ``target(ctx, run_id)`` (see :func:`resolve_target`) for job ``run_id``."""
    return resolve_target(target)(job_context(settings), int(run_id))


def on_job_failure(job, connection, exc_type, exc_value, tb) -> None:
    """RQ failure callback (an exception, or a worker that died mid-job: AbandonedJobError).
    With retries left the run goes back to ``queued`` (RQ starts it again); else it is failed
    with the reason, and a shard's job is brought up to date."""
    from simsearch.jobs.execute import mark_failed, mark_retrying
    from simsearch.jobs.shards import fail_finally

    try:
        run_id = int(job.args[0])
        settings = job.args[2] if len(job.args) > 2 else None
        failure = exc_value if isinstance(exc_value, BaseException) else getattr(exc_type, "__name__", "error")
        if getattr(exc_type, "__name__", "") == "AbandonedJobError":
            failure = "the worker running it stopped (killed, crashed or its machine lost)"
        ctx = job_context(settings)
        if job.retries_left:
            mark_retrying(ctx, run_id, failure, job.retries_left)
        elif job.func_name == SHARD_FUNCTION:
            fail_finally(ctx, run_id, failure)
        else:
            mark_failed(ctx, run_id, failure)
    except Exception:  # never let a callback hide the original failure
        log.exception("could not record the failure of job %s", getattr(job, "id", "?"))


# ---- queue and worker ----------------------------------------------------------------------

# Seconds a client of the queue (the web app, the CLI, reconcile) waits for Redis to connect or answer:
# a frozen Redis must give QueueUnavailable (503), not hang a request. The worker's own connection
# has none: it blocks on the queue by design (RQ bounds that wait itself).
CLIENT_TIMEOUT = 5.0


def redis_connection(url: str, *, worker: bool = False):
    from redis import Redis

    if worker:
        return Redis.from_url(url)
    return Redis.from_url(url, socket_connect_timeout=CLIENT_TIMEOUT, socket_timeout=CLIENT_TIMEOUT,
                          socket_keepalive=True)


def retry_policy(settings):
    """RQ's retry for a job: ``job_retries`` more starts (at once: a crash is retried by the next
    free worker; a job that keeps failing ends ``failed`` with its reason), or None."""
    from rq import Retry

    retries = settings.job_retries if settings is not None else 3
    return Retry(max=retries) if retries > 0 else None


def new_job_id() -> str:
    import uuid

    return uuid.uuid4().hex


def _enqueue(redis_url: str, queue_name: str, func: str, args: tuple, settings, description: str,
             job_id: str | None = None, connection=None) -> str:
    """Put ``func(*args, settings data)`` on the RQ queue, failures recorded on the run by
    :func:`on_job_failure`; returns the RQ job id (``job_id`` when given: the caller records it
    on the run first, so a job lost with Redis is found and queued again)."""
    from rq import Callback, Queue

    queue = Queue(queue_name, connection=connection or redis_connection(redis_url))
    if settings is not None:
        args = args + (settings_to_data(settings),)
    job = queue.enqueue_call(
        func=func,
        args=args,
        timeout=JOB_TIMEOUT,
        result_ttl=7 * 24 * 3600,
        failure_ttl=30 * 24 * 3600,
        description=description,
        on_failure=Callback(on_job_failure),
        retry=retry_policy(settings),
        job_id=job_id,
    )
    return job.id


def enqueue_ingest(redis_url: str, queue_name: str, run_id: int, options: dict | None = None, *, settings=None,
                   job_id: str | None = None, connection=None) -> str:
    """Put an ingest job on the RQ queue; returns the RQ job id."""
    return _enqueue(redis_url, queue_name, JOB_FUNCTION, (int(run_id), dict(options or {})), settings,
                    f"simsearch ingest run {run_id}", job_id, connection)


def enqueue_shard(redis_url: str, queue_name: str, run_id: int, options: dict | None = None, *, settings=None,
                  job_id: str | None = None, connection=None) -> str:
    """Put one shard of a sharded ingest on the RQ queue; returns the RQ job id."""
    return _enqueue(redis_url, queue_name, SHARD_FUNCTION, (int(run_id), dict(options or {})), settings,
                    f"simsearch ingest shard {run_id}", job_id, connection)


def enqueue_function(redis_url: str, queue_name: str, run_id: int, target: str, *, settings=None,
                     job_id: str | None = None, connection=None) -> str:
    """Put a job that calls ``target(ctx, run_id)`` on the RQ queue; returns the RQ job id."""
    return _enqueue(redis_url, queue_name, "simsearch.jobs.rq.run_function_job", (int(run_id), target), settings,
                    f"simsearch job {run_id} ({target})", job_id, connection)


MAINTENANCE_LOCK_SECONDS = 30
HEARTBEAT_GRACE = 10  # seconds past a missed heartbeat before a busy worker's job counts as abandoned


def die_with_parent(parent_pid: int | None) -> None:
    """Linux: have this (forked) process SIGKILLed when its parent dies; exit now if it already
    has. Elsewhere a no-op."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def worker_class(simple: bool = False):
    """RQ's Worker (a forked work horse per job) or SimpleWorker (jobs in the worker process), with
    simsearch's recovery: a job is abandoned :data:`HEARTBEAT_GRACE` seconds after its worker's last
    heartbeat (RQ waits 60), and every maintenance pass (each ``worker_heartbeat`` seconds while
    idle) also reconciles the database with the queue (:func:`simsearch.jobs.reconcile.reconcile`)."""
    from rq import SimpleWorker, Worker

    base = SimpleWorker if simple else Worker

    class SimsearchWorker(base):
        def main_work_horse(self, job, queue):
            # A horse outliving its worker would run its job on, unseen, while RQ (no heartbeats)
            # gives the job to another worker: two runs of one job. It dies with its worker instead.
            die_with_parent(self.pid)
            return super().main_work_horse(job, queue)

        def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
            return max(1, int(super().get_heartbeat_ttl(job, working_time)) - 60 + HEARTBEAT_GRACE)

        def run_maintenance_tasks(self):
            # RQ's cleaning lock lives 15 minutes: a worker killed while cleaning would stop the
            # recovery of abandoned jobs for that long. Cleaning takes well under a second.
            for queue in self.queues:
                if self.connection.ttl(queue.registry_cleaning_key) > MAINTENANCE_LOCK_SECONDS:
                    self.connection.expire(queue.registry_cleaning_key, MAINTENANCE_LOCK_SECONDS)
            super().run_maintenance_tasks()
            from simsearch.jobs.reconcile import reconcile_quietly

            reconcile_quietly(job_context(None), self.connection, [q.name for q in self.queues])

    SimsearchWorker.__name__ = SimsearchWorker.__qualname__ = f"Simsearch{base.__name__}"
    return SimsearchWorker


def run_worker(redis_url: str, queues: list[str], *, burst: bool = False, simple: bool = False,
               name: str | None = None, logging_level: str = "INFO", settings=None) -> bool:
    """Consume jobs. ``simple``: run jobs in this process (models stay loaded between jobs)
    instead of a forked work horse per job (isolates crashes; loads the model for each job).
    ``settings``: for jobs that do not carry their own (and the heartbeat interval)."""
    global _worker_settings

    _worker_settings = settings
    heartbeat = settings.worker_heartbeat if settings is not None else 10
    conn = redis_connection(redis_url, worker=True)
    worker = worker_class(simple)(queues, connection=conn, name=name, job_monitoring_interval=heartbeat,
                                  maintenance_interval=heartbeat, worker_ttl=heartbeat + 20)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return worker.work(burst=burst, logging_level=logging_level)
