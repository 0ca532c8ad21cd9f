"""Request payloads: query parameters and JSON bodies, checked, with a 400 naming the field.

(Staging uploaded files and zip archives is :mod:`simsearch.jobs.staging`.)
"""

from __future__ import annotations

import json

from flask import current_app, request

from simsearch.errors import InvalidInput


def int_arg(name: str, default: int | None = None, *, minimum: int | None = None, maximum: int | None = None,
            source=None) -> int | None:
    values = request.args if source is None else source
    raw = values.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a whole number, not {raw!r}", field=name) from None
    if minimum is not None and value < minimum or maximum is not None and value > maximum:
        lo = "" if minimum is None else f" >= {minimum}"
        hi = "" if maximum is None else f" <= {maximum}"
        raise InvalidInput(f"{name} must be{lo}{' and' if lo and hi else ''}{hi}, not {value}", field=name)
    return value


def str_arg(name: str, source=None, *, max_length: int = 200) -> str | None:
    values = request.args if source is None else source
    raw = values.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_length:
        raise InvalidInput(f"{name} is too long (at most {max_length} characters)", field=name)
    return raw


def json_body(*, required: bool = True) -> dict:
    """The request's JSON object; 400 for a wrong content type, bad JSON or a non-object."""
    if not request.data and not required:
        return {}
    if not request.is_json:
        raise InvalidInput(f"send a JSON object with 'Content-Type: application/json' (got {request.mimetype or 'no content type'})",
                           field="body")
    try:  # the app's JSON provider refuses deep nesting with a ValueError (simsearch.web.guards)
        data = current_app.json.loads(request.get_data(as_text=True) or "null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}", field="body") from None
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object", field="body")
    return data
