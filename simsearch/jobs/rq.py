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
    key = repr(settings)
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


def run_function_job(run_id: int, target: str, settings: dict | None = None):
    """RQ job: call ``target(ctx, run_id)`` (see :func:`resolve_target`) for job ``run_id``."""
    return resolve_target(target)(job_context(settings), int(run_id))


def on_job_failure(job, connection, exc_type, exc_value, tb) -> None:
    """RQ failure callback (also when the work horse was killed): mark the run failed."""
    from simsearch.jobs.execute import mark_failed

    try:
        run_id = int(job.args[0])
        settings = job.args[2] if len(job.args) > 2 else None
        failure = exc_value if isinstance(exc_value, BaseException) else getattr(exc_type, "__name__", "error")
        mark_failed(job_context(settings), run_id, failure)
    except Exception:  # never let a callback hide the original failure
        log.exception("could not mark the ingest run of job %s failed", getattr(job, "id", "?"))


# ---- queue and worker ----------------------------------------------------------------------

def redis_connection(url: str):
    from redis import Redis

    return Redis.from_url(url)


def _enqueue(redis_url: str, queue_name: str, func: str, args: tuple, settings, description: str) -> str:
    """Put ``func(*args, settings data)`` on the RQ queue, failures recorded on the run by
    :func:`on_job_failure`; returns the RQ job id."""
    from rq import Callback, Queue

    queue = Queue(queue_name, connection=redis_connection(redis_url))
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
    )
    return job.id


def enqueue_ingest(redis_url: str, queue_name: str, run_id: int, options: dict | None = None, *, settings=None) -> str:
    """Put an ingest job on the RQ queue; returns the RQ job id."""
    return _enqueue(redis_url, queue_name, JOB_FUNCTION, (int(run_id), dict(options or {})), settings,
                    f"simsearch ingest run {run_id}")


def enqueue_function(redis_url: str, queue_name: str, run_id: int, target: str, *, settings=None) -> str:
    """Put a job that calls ``target(ctx, run_id)`` on the RQ queue; returns the RQ job id."""
    return _enqueue(redis_url, queue_name, "simsearch.jobs.rq.run_function_job", (int(run_id), target), settings,
                    f"simsearch job {run_id} ({target})")


def run_worker(redis_url: str, queues: list[str], *, burst: bool = False, simple: bool = False,
               name: str | None = None, logging_level: str = "INFO", settings=None) -> bool:
    """Consume ingest jobs. ``simple``: run jobs in this process (models stay loaded between jobs)
    instead of a forked work horse per job (isolates crashes; loads the model for each job).
    ``settings``: for jobs that do not carry their own."""
    global _worker_settings
    from rq import SimpleWorker, Worker

    _worker_settings = settings
    conn = redis_connection(redis_url)
    cls = SimpleWorker if simple else Worker
    worker = cls(queues, connection=conn, name=name)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return worker.work(burst=burst, logging_level=logging_level)
