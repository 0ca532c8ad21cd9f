"""Ingest jobs off the request thread: the job function and the RQ worker.

An ingest job is an :class:`~simsearch.store.models.IngestRun` row (status ``queued``) plus a folder
``<home>/uploads/<run_id>/`` holding ``manifest.json`` (the files to ingest, their labels) and, for
uploads, the staged files themselves. :func:`execute_run` runs one such job with a given
:class:`~simsearch.services.Services`; the web app calls it from a background thread, and
:func:`run_ingest_job` is the RQ entry point, which takes only the run id and plain options and
builds its own Services from the worker's settings (handed over by ``simsearch worker``), so it works in a separate ``simsearch worker``
process (or container) that shares the database and the data directory.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from simsearch.errors import NotFound
from simsearch.store.models import Collection, IngestRun, utcnow

log = logging.getLogger("simsearch.worker")

DEFAULT_QUEUE = "simsearch"
JOB_TIMEOUT = 24 * 3600  # seconds; big ingests take hours on CPU


def uploads_dir(settings) -> Path:
    return Path(settings.home) / "uploads"


def run_folder(settings, run_id: int) -> Path:
    return uploads_dir(settings) / str(int(run_id))


def mark_failed(services, run_id: int, message: str) -> None:
    """Record a failure on a run that did not finish (no-op on finished runs)."""
    with services.db.session() as s:
        run = s.get(IngestRun, run_id)
        if run is not None and run.status not in ("done", "failed"):
            run.status, run.message = "failed", message[:2000]
            run.finished_at = run.updated_at = utcnow()


def failure_reason(exc: BaseException) -> str:
    """What a failed job's message says: the error's own message, or for a database error its
    reason (never the SQL or its parameters)."""
    from simsearch.store.db import unavailable

    db_error = unavailable(exc)
    if db_error is not None:
        return f"{db_error.message.split(';')[0]} while the job ran; ingest the same files again to finish it"
    return getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"


def execute_run(services, run_id: int, *, batch_size: int | None = None, workers: int | None = None) -> dict:
    """Run a queued ingest job to the end; the run row tracks progress. Returns the report dict."""
    from simsearch.ingest import DEFAULT_BATCH_SIZE, Ingester, SourceFile
    from simsearch.web.payloads import read_manifest

    with services.db.session() as s:
        run = s.get(IngestRun, run_id)
        if run is None:
            raise NotFound(f"no ingest job with id {run_id}", field="job_id")
        if run.status != "queued":
            log.warning("ingest job %s is %s, not queued: not running it again", run_id, run.status)
            return {"run_id": run_id, "status": run.status}
        coll = s.get(Collection, run.collection_id)
        collection, spaces, source = coll.name, list(run.spaces), run.source
    try:
        folder = run_folder(services.settings, run_id)
        manifest = read_manifest(folder)
        files = []
        for f in manifest["files"]:
            path = Path(f["path"])
            if not path.is_absolute():
                path = folder / path
            files.append(SourceFile(name=f.get("name") or str(path), path=path, label=f.get("label"),
                                    meta=f.get("meta") or {}))
        ingester = Ingester(services, spaces=spaces, batch_size=batch_size or manifest.get("batch_size") or DEFAULT_BATCH_SIZE,
                            workers=workers)
        report = ingester.run(collection, files, source=source, ignored=manifest.get("ignored", []), run_id=run_id)
    except BaseException as exc:
        mark_failed(services, run_id, failure_reason(exc))
        raise
    return report.to_dict()


# ---- RQ ------------------------------------------------------------------------------------

_services = None
_settings = None  # the worker's settings, set by run_worker (forked work horses inherit them)
_services_lock = threading.Lock()


def _job_services():
    """One Services per worker process, from the settings :func:`run_worker` was given (from the
    environment when jobs are run by a plain ``rq worker``)."""
    global _services
    from simsearch.config import Settings
    from simsearch.services import Services

    with _services_lock:
        settings = _settings or Settings.from_env()
        if _services is None or _services.settings != settings:
            _services = Services(settings)
        return _services


def run_ingest_job(run_id: int, options: dict | None = None) -> dict:
    """RQ job: run ingest job ``run_id``. ``options``: ``batch_size``, ``workers`` (plain values)."""
    options = dict(options or {})
    return execute_run(_job_services(), int(run_id), batch_size=options.get("batch_size"), workers=options.get("workers"))


def on_job_failure(job, connection, exc_type, exc_value, tb) -> None:
    """RQ failure callback (also when the work horse was killed): mark the run failed."""
    try:
        run_id = int(job.args[0])
        mark_failed(_job_services(), run_id, f"{getattr(exc_type, '__name__', 'error')}: {exc_value}")
    except Exception:  # never let a callback hide the original failure
        log.exception("could not mark the ingest run of job %s failed", getattr(job, "id", "?"))


def redis_connection(url: str):
    from redis import Redis

    return Redis.from_url(url)


def enqueue_ingest(redis_url: str, queue_name: str, run_id: int, options: dict | None = None) -> str:
    """Put an ingest job on the RQ queue; returns the RQ job id."""
    from rq import Callback, Queue

    queue = Queue(queue_name, connection=redis_connection(redis_url))
    job = queue.enqueue_call(
        func="simsearch.worker.run_ingest_job",
        args=(int(run_id), dict(options or {})),
        timeout=JOB_TIMEOUT,
        result_ttl=7 * 24 * 3600,
        failure_ttl=30 * 24 * 3600,
        description=f"simsearch ingest run {run_id}",
        on_failure=Callback(on_job_failure),
    )
    return job.id


def run_worker(settings, queues: list[str], *, burst: bool = False, simple: bool = False,
               name: str | None = None, logging_level: str = "INFO") -> bool:
    """Consume ingest jobs with ``settings`` (a Settings). ``simple``: run jobs in this process
    (models stay loaded between jobs) instead of a forked work horse per job (isolates crashes;
    loads the model for each job)."""
    global _settings
    from rq import SimpleWorker, Worker

    _settings = settings
    conn = redis_connection(settings.redis_url)
    cls = SimpleWorker if simple else Worker
    worker = cls(queues, connection=conn, name=name)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return worker.work(burst=burst, logging_level=logging_level)
