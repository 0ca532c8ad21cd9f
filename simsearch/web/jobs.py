"""Running web ingest jobs: a small in-process thread pool, or an RQ queue when Redis is configured.

Either way the request thread only stages the files, creates the ``queued`` IngestRun row and
hands its id over; progress is read back from that row (``GET /api/jobs/<id>``).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from sqlalchemy import select, update

from simsearch.errors import SimsearchError
from simsearch.store import repo
from simsearch.store.models import IngestRun, utcnow
from simsearch.web.payloads import Staging, remove_quietly, write_manifest
from simsearch.store.db import unavailable
from simsearch.worker import DEFAULT_QUEUE, enqueue_ingest, execute_run, failure_reason, mark_failed, run_folder

log = logging.getLogger("simsearch.web.jobs")
MAX_ERRORS_SHOWN = 200


class QueueUnavailable(SimsearchError):
    code = "queue_unavailable"
    http_status = 503


_TOKENS: dict[int, str] = {}


def this_process() -> str:
    """The owner name of jobs run by this process: host, pid and a random token (a restarted
    container can give the new process the old one's pid; the token tells them apart)."""
    pid = os.getpid()
    token = _TOKENS.setdefault(pid, uuid.uuid4().hex[:12])
    return f"thread:{socket.gethostname()}:{pid}:{token}"


def _owner_is_gone(owner: str) -> bool:
    """Whether the in-process runner named ``owner`` (on this host) has certainly stopped."""
    try:
        kind, host, pid_text, _token = owner.split(":")
        pid = int(pid_text)
    except ValueError:
        return False
    if kind != "thread" or host != socket.gethostname():
        return False  # another machine's process: cannot tell
    if pid == os.getpid():
        return owner != this_process()  # an earlier process that had this pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


class ThreadRunner:
    """Runs jobs in this process, ``threads`` at a time (the ingest itself uses several threads).

    Each job it takes is marked with this process as its owner. :meth:`recover` (run by the web app
    on the first request a process serves) resumes the unfinished jobs of a runner on this host
    whose process has stopped (killed, crashed, restarted): ingest is idempotent, so what was
    committed before is skipped and the rest is ingested."""

    kind = "thread"

    def __init__(self, services, threads: int = 1):
        self.services = services
        self.pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="simsearch-job")
        self._recovered = False
        self._recover_lock = threading.Lock()
        self._pending: dict[int, str] = {}
        self._pending_lock = threading.Lock()
        self._retrier: threading.Thread | None = None
        self._stopping = threading.Event()

    def submit(self, run_id: int, options: dict) -> None:
        with self.services.db.session() as s:
            s.execute(update(IngestRun).where(IngestRun.id == run_id).values(owner=this_process()))
        self.pool.submit(self._run, run_id, options)

    def _run(self, run_id: int, options: dict) -> None:
        try:
            execute_run(self.services, run_id, batch_size=options.get("batch_size"))
        except Exception as exc:
            # a database error raised while recording another failure: that one is the reason
            ctx = exc.__context__
            if unavailable(exc) is not None and isinstance(ctx, Exception) and \
                    not type(ctx).__module__.startswith(("sqlalchemy", "psycopg", "sqlite3")):
                exc = ctx
            log.error("ingest job %s failed: %s", run_id, failure_reason(exc))
            self._record_failure(run_id, failure_reason(exc))

    # A job whose failure could not be written (the database was down) must not stay "running":
    # the failure is kept here and written as soon as the database answers again.
    RETRY_SECONDS = 2.0

    def _record_failure(self, run_id: int, message: str) -> None:
        try:
            mark_failed(self.services, run_id, message)  # a no-op when execute_run recorded it
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
                    mark_failed(self.services, run_id, message)
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
        with self.services.db.session() as s:
            candidates = s.execute(select(IngestRun.id, IngestRun.owner, IngestRun.processed, IngestRun.total)
                                   .where(IngestRun.status.in_(("queued", "running")), IngestRun.owner.is_not(None))).all()
        resumed = []
        for run_id, owner, processed, total in candidates:
            if owner == me or not _owner_is_gone(owner):
                continue
            message = (f"resumed after the process running it stopped ({processed} of {total} files were done; "
                       "images stored before count as skipped)")
            with self.services.db.session() as s:
                claimed = s.execute(update(IngestRun)
                                    .where(IngestRun.id == run_id, IngestRun.owner == owner,
                                           IngestRun.status.in_(("queued", "running")))
                                    .values(owner=me, status="queued", message=message, updated_at=utcnow())).rowcount
            if claimed == 1:
                log.warning("ingest job %s: %s", run_id, message)
                self.pool.submit(self._run, run_id, {})
                resumed.append(run_id)
        return resumed

    def shutdown(self, wait: bool = True) -> None:
        self._stopping.set()
        self.pool.shutdown(wait=wait, cancel_futures=not wait)


class RQRunner:
    """Enqueues jobs on Redis for ``simsearch worker``."""

    kind = "rq"

    def __init__(self, services, redis_url: str, queue_name: str = DEFAULT_QUEUE):
        self.services = services
        self.redis_url = redis_url
        self.queue_name = queue_name

    def submit(self, run_id: int, options: dict) -> None:
        try:
            enqueue_ingest(self.redis_url, self.queue_name, run_id, options)
        except Exception as exc:
            mark_failed(self.services, run_id, f"could not enqueue the job: {exc}")
            raise QueueUnavailable(f"the job queue (Redis) is unavailable: {exc}") from None

    def ping(self) -> bool:
        from simsearch.worker import redis_connection

        return bool(redis_connection(self.redis_url).ping())

    def shutdown(self, wait: bool = True) -> None:
        pass


def make_runner(services):
    settings = services.settings
    mode = settings.jobs or ("rq" if settings.redis_url else "thread")
    if mode == "rq":
        if not settings.redis_url:
            raise SimsearchError("SIMSEARCH_JOBS=rq needs SIMSEARCH_REDIS_URL")
        return RQRunner(services, settings.redis_url, settings.queue)
    return ThreadRunner(services, settings.job_threads)


def create_run(services, collection: str, spaces: list[str], source: str, staging: Staging, *,
               absolute_files: list[dict] | None = None, batch_size: int | None = None) -> int:
    """Create the queued run, move the staged files to ``uploads/<run_id>/`` and write its manifest."""
    files = absolute_files if absolute_files is not None else [{"path": f.rel, "label": f.label} for f in staging.files]
    with services.db.session() as s:
        coll = repo.get_or_create_collection(s, collection)
        run = IngestRun(collection_id=coll.id, source=source, spaces=list(spaces), status="queued", total=len(files),
                        updated_at=utcnow())
        s.add(run)
        s.flush()
        run_id = run.id
    folder = run_folder(services.settings, run_id)
    try:
        if folder.exists():  # left over from a deleted run that had the same id
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging.dir, folder)
        for f in files:
            if absolute_files is None:
                f["name"] = str(folder / f["path"])
        write_manifest(folder, {"run_id": run_id, "collection": collection, "files": files, "ignored": staging.ignored,
                                "batch_size": batch_size})
    except BaseException as exc:
        mark_failed(services, run_id, f"could not stage the files: {exc}")
        remove_quietly(staging.dir)
        raise
    return run_id


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def iso(dt: datetime | None) -> str | None:
    dt = _aware(dt)
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if dt else None


STALE_AFTER_SECONDS = 600


def job_dict(run: IngestRun, collection: str | None) -> dict:
    started, finished = _aware(run.started_at), _aware(run.finished_at)
    rate, eta = 0.0, None
    if started is not None:
        elapsed = ((finished or datetime.now(timezone.utc)) - started).total_seconds()
        if elapsed > 0 and run.processed:
            rate = run.processed / elapsed
    if run.status == "done":
        eta = 0.0
    elif run.status == "running" and rate > 0:
        eta = max(0.0, (run.total - run.processed) / rate)
    errors = list(run.errors or [])
    # A running job reports progress every batch (seconds apart); one silent for this long lost
    # the process running it (killed, restarted). Its committed work is kept: ingest it again.
    last = _aware(run.updated_at) or _aware(run.started_at)
    stale = run.status == "running" and last is not None and \
        (datetime.now(timezone.utc) - last).total_seconds() > STALE_AFTER_SECONDS
    message = run.message
    if stale:
        message = (f"no progress for over {STALE_AFTER_SECONDS // 60} minutes: the process running this job "
                   "probably stopped; everything committed is kept. An in-process job resumes when the web app "
                   "restarts on the same host; otherwise ingesting the same files again resumes it")
    return {
        "id": run.id,
        "status": run.status,
        "collection": collection,
        "backbones": list(run.spaces or []),
        "source": run.source,
        "total": run.total,
        "processed": run.processed,
        "failed": run.failed,
        "added": run.added,
        "skipped": run.skipped,
        "rate": round(rate, 3),
        "eta_seconds": None if eta is None else round(eta, 1),
        "errors": errors[:MAX_ERRORS_SHOWN],
        "errors_total": len(errors),
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "updated_at": iso(run.updated_at),
        "finished_at": iso(run.finished_at),
        "message": message,
        "stale": stale,
    }
