"""Generic guards on what a request may carry, applied before any view runs.

Each guard holds for every endpoint, whatever schema (if any) a view declares, so a value the
database cannot store or that would crash the parser is refused with a 400/404/413 naming the
field, never a 500:

- ids in URLs (``<int:...>``) larger than the database's id columns can hold
  (:func:`simsearch.store.models.max_id`) are 404 like any unknown id;
- a NUL character (``\\x00``) or an unpaired UTF-16 surrogate (JSON's ``"\\ud800"``) anywhere in
  the path, the query string, a form field or a JSON string or key is refused (PostgreSQL cannot
  store a NUL in text and raises ``DataError``; a surrogate has no UTF-8 encoding);
- JSON bodies are parsed once, refusing nesting deeper than :data:`MAX_JSON_DEPTH` (a body
  nested 100,000 deep made the parser raise ``RecursionError``);
- a body sent with ``Transfer-Encoding: chunked`` is held to ``MAX_CONTENT_LENGTH`` like one with
  a ``Content-Length`` (413), instead of being silently cut at the limit (:class:`BodyLimit`);
- a write that lost a race to another request is a 409, never a 500 (:func:`lost_race`): a
  constraint that another request's commit broke (a name taken meanwhile, a collection deleted
  while images were labelled) or a row that another request deleted while this one changed it.
  The operations turn the races they expect into precise 404/409 errors; this is the net under them.
"""

from __future__ import annotations

import json
import re
import tempfile
from typing import Any

from flask import current_app, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import RequestEntityTooLarge

from simsearch.errors import Conflict, InvalidInput, NotFound
from simsearch.store.models import max_id
from simsearch.web.errors import handle_simsearch_error, handle_unexpected, log

MAX_JSON_DEPTH = 32
NUL = "\x00"


# ---- ids in URLs ----------------------------------------------------------------------------

def check_ids() -> None:
    """Ids in the URL (``<int:...>``) above what the id columns can hold cannot exist: 404 like any
    unknown id (the driver would raise instead of finding nothing). Checked here, not by the URL
    converter: a converter that refuses the value turns a DELETE into a 405 (the GET rule matched)."""
    top = None
    for name, value in (request.view_args or {}).items():
        if isinstance(value, int) and not isinstance(value, bool):
            top = current_max_id() if top is None else top
            if not 0 <= value <= top:
                raise NotFound(f"no such {name.removesuffix('_id')}: {value} is beyond the largest possible id",
                               field=name)


# ---- JSON --------------------------------------------------------------------------------------

class JSONTooDeep(ValueError):
    pass


class SafeJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, except that parsing a body nested too deeply for the parser (or
    deeper than :data:`MAX_JSON_DEPTH`) is a ``ValueError`` (Flask's 400), not a ``RecursionError``."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            value = json.loads(s, **kwargs)
        except RecursionError:
            raise JSONTooDeep(f"JSON nested too deeply (the limit is {MAX_JSON_DEPTH} levels)") from None
        check_depth(value)
        return value


def check_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`JSONTooDeep` when arrays/objects in ``value`` nest deeper than ``limit``."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                raise JSONTooDeep(f"JSON nested too deeply (the limit is {limit} levels)")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


_SURROGATE = re.compile("[\ud800-\udfff]")


def _bad_text(text: str) -> str | None:
    if NUL in text:
        return "contains a NUL character (\\x00), which is not allowed"
    if _SURROGATE.search(text):  # JSON's "\\ud800": no UTF-8 encoding exists, drivers raise
        return "contains an unpaired UTF-16 surrogate (not valid Unicode text)"
    return None


def find_bad_text(value: Any, path: str = "") -> tuple[str, str] | None:
    """``(path, reason)`` for the first string or key in a parsed JSON value that the database
    cannot store (a NUL character, an unpaired surrogate), else None. The path names the field:
    ``label``, ``meta.x``, ``image_ids[3]``. Iterative: no recursion limit to hit."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            why = _bad_text(item)
            if why:
                return where or "body", why
        elif isinstance(item, dict):
            for key, child in item.items():
                key_path = f"{where}.{key}" if where else str(key)
                why = _bad_text(str(key))
                if why:
                    return _printable(key_path), why
                stack.append((child, key_path))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
    return None


def _printable(name: str) -> str:
    return _SURROGATE.sub("?", name.replace(NUL, "\\x00"))


def _text_error(field: str, why: str) -> InvalidInput:
    return InvalidInput(f"{field} {why}", field=field)


def check_input() -> None:
    """``before_request`` hook: refuse text the database cannot store (NUL characters, unpaired
    surrogates) in the path, the query string, form fields and JSON bodies, and JSON bodies that
    do not parse or nest too deeply."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and (why := _bad_text(value)):
            raise _text_error(name, why)
    for key, value in request.args.items(multi=True):
        if why := _bad_text(key) or _bad_text(value):
            raise _text_error(_printable(key), why)
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for key, value in request.form.items(multi=True):
            if why := _bad_text(key) or _bad_text(value):
                raise _text_error(_printable(key), why)
    elif request.is_json and request.get_data(cache=True):
        try:
            data = current_app.json.loads(request.get_data(cache=True))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"request body is not valid JSON: {exc}", field="body") from None
        bad = find_bad_text(data)
        if bad is not None:
            raise _text_error(*bad)


# ---- chunked bodies ------------------------------------------------------------------------

class BodyLimit:
    """WSGI middleware holding a body sent without ``Content-Length`` (``Transfer-Encoding:
    chunked``) to the app's ``MAX_CONTENT_LENGTH``.

    Werkzeug reads such a body only when the server marks it terminated (``wsgi.input_terminated``:
    gunicorn, Werkzeug's server) and then cuts it at the limit without an error, so the view
    processed a truncated upload. This reads the body first (into a temporary file past 1 MB),
    passes it on with its real ``Content-Length``, and answers 413 when it is larger than the limit.
    """

    def __init__(self, app, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not chunked or environ.get("CONTENT_LENGTH") or "wsgi.input_terminated" not in environ:
            return self.wsgi_app(environ, start_response)
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        stream = environ["wsgi.input"]
        body = tempfile.SpooledTemporaryFile(max_size=1 << 20)
        size = 0
        while True:
            chunk = stream.read(1 << 16)
            if not chunk:
                break
            size += len(chunk)
            if limit is not None and size > limit:
                body.close()
                environ["simsearch.body_too_large"] = True
                environ["wsgi.input"] = _Empty()
                environ["CONTENT_LENGTH"] = "0"
                environ.pop("HTTP_TRANSFER_ENCODING", None)
                return self.wsgi_app(environ, start_response)
            body.write(chunk)
        body.seek(0)
        environ["wsgi.input"] = body
        environ["CONTENT_LENGTH"] = str(size)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            body.close()


class _Empty:
    def read(self, *_):
        return b""

    def readline(self, *_):
        return b""

    def __iter__(self):
        return iter(())


def refuse_oversized_stream() -> None:
    """``before_request`` hook: the 413 for a chunked body that :class:`BodyLimit` stopped reading
    (raised here so the error has the app's usual shape)."""
    if request.environ.get("simsearch.body_too_large"):
        raise RequestEntityTooLarge()


# ---- lost races --------------------------------------------------------------------------------

RACE_VIOLATIONS = ("unique", "foreign key", "duplicate key")  # in the driver's message, lower-cased


def lost_race(exc: Exception):
    """The 409 for a write that another request's change made impossible (a unique name taken,
    a row it refers to deleted, the row it changes deleted), without the SQL or its values.
    Other integrity errors (a NOT NULL column left empty: a bug) stay 500s."""
    from sqlalchemy.exc import IntegrityError

    reason = str(getattr(exc, "orig", None) or "").lower()
    if isinstance(exc, IntegrityError) and not any(v in reason for v in RACE_VIOLATIONS):
        return handle_unexpected(exc)
    log.warning("a write lost a race on %s %s: %s", request.method, request.path, type(exc).__name__)
    return handle_simsearch_error(Conflict(
        "another request changed or deleted the same data at the same time: reload it and try again"))


def install(app) -> None:
    """Install the guards on ``app``."""
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.orm.exc import StaleDataError

    app.register_error_handler(IntegrityError, lost_race)
    app.register_error_handler(StaleDataError, lost_race)
    app.json = SafeJSONProvider(app)
    app.json.sort_keys = False
    app.wsgi_app = BodyLimit(app, app.wsgi_app)
    app.before_request(refuse_oversized_stream)
    app.before_request(check_ids)
    app.before_request(check_input)


def current_max_id() -> int:
    """The largest id the app's database can hold (ids in JSON bodies above it cannot exist)."""
    services = current_app.extensions["simsearch"]
    return max_id(getattr(services, "services", services).db.dialect)
