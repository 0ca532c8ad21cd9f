"""The JSON API, mounted at ``/api``: one module per resource, each view parsing the request,
calling an operation (:mod:`simsearch.ops`) and serialising its result. Every error is
``{"error": {"code", "message", ...}}`` (see :mod:`simsearch.web.errors`); ``/api/openapi.json``
and ``/api/docs`` describe every endpoint.

- :mod:`.health`: ``/health``, ``/backbones``;
- :mod:`.collections`: ``/collections``, ``/collections/<name>``, its images and labels;
- :mod:`.images`: ``/images/<id>``, its thumbnail and similar images;
- :mod:`.search`: ``/collections/<name>/search`` (by upload);
- :mod:`.jobs`: ``/collections/<name>/ingest``, ``/jobs``;
- :mod:`.analysis`: clusters, map, evaluation, comparison;
- :mod:`.duplicates`: `/collections/<name>/duplicates` (exact, near and similar groups);
- :mod:`.vectors`: ``/collections/<name>/vectors`` (import an .npz, export one, streamed);
- :mod:`.tune`: ``/collections/<name>/tune`` (a job), its ``spaces``, ``default-space``.
"""

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


# The resources register their routes on ``bp`` when imported.
from simsearch.web.api import analysis, collections, duplicates, health, images, jobs, search, tune, vectors  # noqa: E402,F401
