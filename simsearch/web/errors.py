"""One JSON error shape for the whole API: ``{"error": {"code", "message", "field"?, "details"?}}``.

Every :class:`~simsearch.errors.SimsearchError` maps to its ``http_status``; werkzeug's HTTP errors
(unknown route, wrong method, body too large, bad JSON...) and unexpected exceptions (500, logged,
never shown to the client) are turned into the same shape. Pages outside the API (the browser UI)
get a small HTML page instead, unless the client asks for JSON.

Outages (docs/operations.md): every 503 carries ``Retry-After``. Database connection errors and
timeouts, SQLAlchemy's or the driver's own, are 503 ``database_unavailable``; a full disk (the
database's or the data folder's) is 507 ``storage_full``; a read-only database or data folder is
503 ``storage_read_only``.
"""

from __future__ import annotations

import errno
import logging

from flask import Flask, Response, jsonify, render_template_string, request
from markupsafe import escape
from werkzeug.exceptions import HTTPException

from simsearch.errors import CSRFError, SimsearchError, StorageFull, StorageReadOnly  # noqa: F401 (CSRFError: importable from here)
from simsearch.store.db import storage_error, unavailable
from simsearch.web.paths import hide_server_paths

log = logging.getLogger("simsearch.web")


# seconds in Retry-After of a 503 whose error does not say
DEFAULT_RETRY_AFTER = 30

# werkzeug exception class name -> our stable code
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}

_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ status }} {{ title }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
code{background:#f3f3f3;padding:.1rem .3rem}</style></head>
<body><h1>{{ status }} {{ title }}</h1><p>{{ message }}</p><p><a href="/">Home</a></p></body></html>"""


def error_body(code: str, message: str, *, field: str | None = None, details=None) -> dict:
    body = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    if details is not None:
        body["details"] = details
    return {"error": body}


def wants_json() -> bool:
    """API paths always get JSON; elsewhere JSON only when the client prefers it over HTML."""
    path = request.path
    if path.startswith("/api") or path in ("/health",):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def _respond(status: int, body: dict, headers=None) -> Response:
    if wants_json():
        resp = jsonify(body)
    else:
        err = body["error"]
        title = err["code"].replace("_", " ")
        resp = Response(render_template_string(_HTML, status=status, title=title, message=escape(err["message"])),
                        mimetype="text/html")
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def handle_simsearch_error(exc: SimsearchError) -> Response:
    status = int(getattr(exc, "http_status", 500) or 500)
    if status >= 500:
        log.error("%s: %s", type(exc).__name__, exc.message)
    headers = {"WWW-Authenticate": 'Bearer realm="simsearch"'} if status == 401 else {}
    if getattr(exc, "retry_after", None) is not None:
        headers["Retry-After"] = str(int(exc.retry_after))
    elif status == 503:
        headers["Retry-After"] = str(DEFAULT_RETRY_AFTER)
    body = exc.to_dict()
    try:  # messages about weights or files may name folders of the server: show placeholders
        body["error"]["message"] = hide_server_paths(body["error"]["message"])
    except Exception:  # never fail the error response itself
        log.debug("could not hide server paths in an error message", exc_info=True)
    return _respond(status, body, headers)


def handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = _HTTP_CODES.get(status, "http_error" if status < 500 else "internal_error")
    message = exc.description or exc.name
    if status == 404:
        message = f"no such endpoint or resource: {request.path}"
    elif status == 405:
        allowed = sorted(m for m in (exc.valid_methods or []) if m not in ("HEAD", "OPTIONS"))
        message = f"method {request.method} is not allowed on {request.path}" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    elif status == 413:
        limit = request.max_content_length
        message = "request body too large" + (f": the limit is {limit // (1024 * 1024)} MB" if limit else "")
    details = None
    headers = {}
    if status == 405 and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    if status == 408:
        headers["Connection"] = "close"
    if status == 503:
        headers["Retry-After"] = str(DEFAULT_RETRY_AFTER)
    return _respond(status, error_body(code, message, details=details), headers)


def storage_os_error(exc: BaseException) -> StorageFull | StorageReadOnly | None:
    """A write to the data folder that failed because its disk is full or it is read-only."""
    if not isinstance(exc, OSError):
        return None
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull("the server cannot store this: its data folder's disk is full "
                           "(an operator must free space; reads still work)")
    if exc.errno == errno.EROFS or (exc.errno in (errno.EACCES, errno.EPERM) and _in_data_folder(exc.filename)):
        why = "is read-only" if exc.errno == errno.EROFS else "is not writable by the server (permissions)"
        return StorageReadOnly(f"the server cannot store this: its data folder {why}; reads still work")
    return None


def _in_data_folder(filename) -> bool:
    """Whether ``filename`` lies in the data folder (SIMSEARCH_HOME): a permission error there is
    the server's storage, elsewhere (a file a request named) it is not."""
    from flask import current_app
    from pathlib import Path

    try:
        home = current_app.extensions["simsearch"].settings.home
        return filename is not None and Path(str(filename)).resolve().is_relative_to(home)
    except Exception:  # no app context or settings: not ours to say
        return False


def handle_database_error(exc: Exception) -> Response:
    """SQLAlchemy's connection errors and timeouts: 503 ``database_unavailable``, no SQL shown; a
    full or read-only database: 507 ``storage_full`` / 503 ``storage_read_only``."""
    err = unavailable(exc) or storage_error(exc)
    if err is None:
        return _unexpected(exc)
    log.warning("%s on %s %s: %s", err.code.replace("_", " "), request.method, request.path,
                type(getattr(exc, "orig", None) or exc).__name__)
    return handle_simsearch_error(err)


def handle_unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return handle_http_exception(exc)
    if isinstance(exc, SimsearchError):
        return handle_simsearch_error(exc)
    if unavailable(exc) is not None or storage_error(exc) is not None:
        return handle_database_error(exc)
    storage = storage_os_error(exc)
    if storage is not None:
        log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.path, exc)
        return handle_simsearch_error(storage)
    return _unexpected(exc)


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _respond(500, error_body("internal_error", "internal server error; the server log has the details"))


def register_error_handlers(app: Flask) -> None:
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    app.register_error_handler(SimsearchError, handle_simsearch_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    for cls in (OperationalError, InterfaceError, PoolTimeout):
        app.register_error_handler(cls, handle_database_error)
    app.register_error_handler(Exception, handle_unexpected)
