"""The one error hierarchy.

Every error simsearch raises on purpose is a :class:`SimsearchError`. Each kind has a stable
``code`` and an HTTP status; the web layer turns any of them into the single JSON error shape
``{"error": {"code": ..., "message": ..., "field": ..., "details": ...}}`` and the CLI prints
``error: <message>`` and exits with status 2 (bad input) or 1 (everything else).
"""

from __future__ import annotations

from typing import Any


class SimsearchError(Exception):
    """Base class: a failure with a message meant for the user."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, *, field: str | None = None, details: Any = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class InvalidInput(SimsearchError):
    """The caller gave a bad value: the message names the field or file and why."""

    code = "invalid_input"
    http_status = 400


class ImageDecodeError(InvalidInput):
    """One file is not a usable image (empty, truncated, corrupt, too many pixels, not an image)."""

    code = "bad_image"

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}", field="image", details={"file": source, "reason": reason})
        self.source = source
        self.reason = reason


class NotFound(SimsearchError):
    code = "not_found"
    http_status = 404


class Conflict(SimsearchError):
    code = "conflict"
    http_status = 409


class JobCancelled(Conflict):
    """The job was cancelled (from the jobs page, ``POST /api/jobs/<id>/cancel``) while it ran:
    what was committed is kept, the rest is not done."""

    code = "job_cancelled"


class Gone(SimsearchError):
    """The resource existed and is gone for good (an image's original file was deleted)."""

    code = "gone"
    http_status = 410


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"
    http_status = 413


class Unauthorized(SimsearchError):
    code = "unauthorized"
    http_status = 401


class WeightsUnavailable(SimsearchError):
    """A backbone's pretrained weights cannot be had here; the message says which file to put where."""

    code = "weights_unavailable"
    http_status = 503


class RuntimeRefused(SimsearchError):
    """A runtime cannot run this model here (not installed, no bf16 on this CPU, conversion or
    validation failed); the message says why. ``auto`` then tries the next runtime."""

    code = "runtime_unavailable"
    http_status = 503


class IndexCorrupt(SimsearchError):
    """A FAISS index file cannot be read or does not match the database (internal: triggers a rebuild)."""

    code = "index_corrupt"
    http_status = 500


class DatabaseUnavailable(SimsearchError):
    """The database cannot be reached or did not answer in time (the message never carries SQL)."""

    code = "database_unavailable"
    http_status = 503
    retry_after = 5  # seconds: the Retry-After header of the 503


class DatabaseRefused(DatabaseUnavailable):
    """The database server answers but refuses this URL: the database or role does not exist, the
    password is wrong. Waiting does not help: a server does not start with it (see
    ``AppContext.open``); a request that meets it (a database dropped under a running server) is a
    503 like any database outage."""


class StorageFull(SimsearchError):
    """The disk the database or the data folder writes to is full: 507 Insufficient Storage (the
    request was valid; nothing can be stored until an operator frees space, so no Retry-After)."""

    code = "storage_full"
    http_status = 507


class StorageReadOnly(SimsearchError):
    """The database or the data folder accepts no writes (read-only mount, permissions, a read-only
    database): 503, reads still work."""

    code = "storage_read_only"
    http_status = 503
    retry_after = 60


class SchemaOutdated(SimsearchError):
    """The database's schema is missing or older (or newer) than this simsearch: run ``simsearch db upgrade``."""

    code = "schema_outdated"
    http_status = 503
    retry_after = 30


class Forbidden(SimsearchError):
    """The caller may not do this here (e.g. server-side paths are not enabled)."""

    code = "forbidden"
    http_status = 403


class CSRFError(Forbidden):
    """A form or a cookie-authenticated write without a valid CSRF token."""

    code = "csrf_failed"


class HostNotAllowed(SimsearchError):
    """A request's ``Host`` header is not one this server answers to (the Host allow-list)."""

    code = "bad_host"
    http_status = 400


class TooManyRequests(SimsearchError):
    """The caller sent too many requests of a kind in too short a time (anonymous searches of a
    public server): ``retry_after`` is how many seconds to wait (the ``Retry-After`` header)."""

    code = "too_many_requests"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int, field: str | None = None, details: Any = None):
        super().__init__(message, field=field, details={"retry_after": retry_after, **(details or {})})
        self.retry_after = retry_after


class QueueUnavailable(SimsearchError):
    """The job queue (Redis) cannot be reached."""

    code = "queue_unavailable"
    http_status = 503
    retry_after = 5


class SourceUnavailable(SimsearchError):
    """A bucket or URL to ingest from cannot be read: its endpoint is unreachable or answers with
    an error (the message names the bucket and the cause, never credentials)."""

    code = "source_unavailable"
    http_status = 503
    retry_after = 30


class WorkerDown(SimsearchError):
    """No `simsearch worker` takes jobs from the queue (the container health check)."""

    code = "worker_down"
    http_status = 503


_REASON_LIMIT = 300


def public_reason(exc: BaseException, *, hide: tuple[str, ...] = ()) -> str:
    """A one-line reason for ``exc`` that is safe to store and show to API clients.

    Our own errors keep their message (written for users). A database error becomes its driver's
    first line (``database error (UniqueViolation): duplicate key value violates ...``), never
    SQLAlchemy's text, which carries the SQL statement and its parameters (a failed ingest once
    recorded ~10 KB of SQL with image data in its message). An OS error keeps its ``strerror``
    without the file name. Anything else: its type and the first line of its text, cut to 300
    characters. Occurrences of the folders in ``hide`` (the data directory...) are replaced by
    ``<data>``: clients need not learn where the server keeps its files. The full exception
    belongs in the server log.
    """
    if isinstance(exc, SimsearchError):
        text = exc.message
    elif type(exc).__module__.split(".")[0] == "sqlalchemy":
        orig = getattr(exc, "orig", None)
        detail = _first_line(str(orig)) if orig is not None else ""
        kind = type(orig).__name__ if orig is not None else type(exc).__name__
        text = f"database error ({kind})" + (f": {detail}" if detail else "")
    elif isinstance(exc, OSError):
        text = f"{type(exc).__name__}: {exc.strerror or 'operating system error'}"
    elif isinstance(exc, MemoryError):
        text = "out of memory"
    else:
        detail = _first_line(str(exc))
        text = type(exc).__name__ + (f": {detail}" if detail else "")
    for folder in hide:
        if folder and len(folder) > 1:
            text = text.replace(str(folder), "<data>")
    return text if len(text) <= 2000 else text[:1997] + "..."


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    return line if len(line) <= _REASON_LIMIT else line[:_REASON_LIMIT - 3] + "..."
