"""The API's blueprint (every view registers on :data:`bp`) and what it does to every response."""

from __future__ import annotations

import gzip

from apiflask import APIBlueprint
from flask import Response, request

# An APIFlask blueprint: each view declares its contract (simsearch.web.schemas) with
# ``bp.input`` / ``bp.output`` / ``bp.doc``, from which the OpenAPI document and validation come.
bp = APIBlueprint("api", __name__, enable_openapi=True)

GZIP_MIN_BYTES = 1024


@bp.after_app_request
def compress_and_harden(resp: Response) -> Response:
    """Security headers on every response; gzip for large JSON when the client accepts it."""
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    if (resp.mimetype == "application/json" and resp.status_code == 200 and not resp.direct_passthrough
            and "Content-Encoding" not in resp.headers and "gzip" in request.headers.get("Accept-Encoding", "").lower()):
        data = resp.get_data()
        if len(data) >= GZIP_MIN_BYTES:
            resp.set_data(gzip.compress(data, compresslevel=6))
            resp.headers["Content-Encoding"] = "gzip"
    if resp.mimetype == "application/json":
        resp.vary.add("Accept-Encoding")
    return resp
