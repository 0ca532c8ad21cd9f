"""Ingest jobs on an RQ queue (Redis): enqueueing and the job functions (the worker loop that runs
them: :mod:`simsearch.jobs.worker_loop`).

The job carries everything it needs as plain data: the run id, options (``batch_size``,
``workers``) and the settings of the process that enqueued it (:func:`settings_to_data`), so a
``simsearch worker`` process (or container) that shares the database and the data directory runs
it exactly as the web app would, whatever its own environment says.
"""

from __future__ import annotations

import logging
import os
import threading

from simsearch.config import Settings
from simsearch.context import AppContext
from simsearch.jobs.execute import execute_run, mark_failed, mark_retrying
from simsearch.jobs.shards import execute_shard, fail_finally
from simsearch.store.lifecycle import JobKind

log = logging.getLogger("simsearch.jobs")

DEFAULT_QUEUE = "simsearch"
JOB_TIMEOUT = 24 * 3600  # seconds; big ingests take hours on CPU
JOB_FUNCTION = "simsearch.jobs.rq.run_ingest_job"
SHARD_FUNCTION = "simsearch.jobs.rq.run_shard_job"
FUNCTION_JOB = "simsearch.jobs.rq.run_function_job"
REEMBED_SHARD_TARGET = "simsearch.jobs.reembed:execute_shard"  # a re-embedding's shard (simsearch.jobs.reembed)
REEMBED_THREAD_TARGET = "simsearch.jobs.reembed:execute_shard_once"  # the same in a thread runner (no retries)
FEATURES_SHARD_TARGET = "simsearch.ops.local_features:execute_shard"  # a local features job's shard
FEATURES_THREAD_TARGET = "simsearch.ops.local_features:execute_shard_once"
# The shards of the passes over stored images (IMAGE_PASSES), by kind: on the RQ queue, in a thread runner
SHARD_TARGETS = {JobKind.REEMBED_SHARD: REEMBED_SHARD_TARGET, JobKind.FEATURES_SHARD: FEATURES_SHARD_TARGET}
THREAD_TARGETS = {JobKind.REEMBED_SHARD: REEMBED_THREAD_TARGET, JobKind.FEATURES_SHARD: FEATURES_THREAD_TARGET}


# ---- settings as job data ------------------------------------------------------------------

# Settings a job does not need and that must not sit in Redis with the job (for days): secrets.
NOT_CARRIED = frozenset({"api_keys"})


def settings_to_data(settings) -> dict:
    """The settings as JSON-able data (without API keys or the secret key: they stay off Redis)."""
    return settings.to_data()


def settings_from_data(data: dict):
    """The :class:`~simsearch.config.Settings` that :func:`settings_to_data` wrote (validated)."""
    return Settings.from_data(data)


# ---- the job -------------------------------------------------------------------------------

_contexts: dict = {}
_contexts_lock = threading.Lock()
_worker_settings = None  # the settings of the worker process (run_worker), for jobs without their own


def use_worker_settings(settings) -> None:
    """The settings of jobs enqueued without their own, in this worker process."""
    global _worker_settings
    _worker_settings = settings


def job_context(settings_data: dict | None = None):
    """One :class:`~simsearch.context.AppContext` per worker process and settings (models and
    indexes stay loaded between jobs of a ``--simple`` worker). Jobs enqueued without settings
    (by an older version) use the worker's."""
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
    try:
        run_id = int(job.args[0])
        settings = job.args[2] if len(job.args) > 2 else None
        failure = exc_value if isinstance(exc_value, BaseException) else getattr(exc_type, "__name__", "error")
        if getattr(exc_type, "__name__", "") == "AbandonedJobError":
            failure = "the worker running it stopped (killed, crashed or its machine lost)"
        ctx = job_context(settings)
        if job.retries_left:
            mark_retrying(ctx, run_id, failure, job.retries_left)
        elif job.func_name == SHARD_FUNCTION or (job.func_name == FUNCTION_JOB and job.args[1] in SHARD_TARGETS.values()):
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
    return _enqueue(redis_url, queue_name, FUNCTION_JOB, (int(run_id), target), settings,
                    f"simsearch job {run_id} ({target})", job_id, connection)
