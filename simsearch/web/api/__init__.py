"""The JSON API, mounted at ``/api``: one module per resource, each view parsing the request,
calling an operation (:mod:`simsearch.ops`) and serialising its result. Every error is
``{"error": {"code", "message", ...}}`` (see :mod:`simsearch.web.errors`); ``/api/openapi.json``
and ``/api/docs`` describe every endpoint.

- :mod:`.health`: ``/health``, ``/backbones``;
- :mod:`.collections`: ``/collections``, ``/collections/<name>``, its images and labels;
- :mod:`.images`: ``/images/<id>``, its thumbnail and similar images;
- :mod:`.search`: ``/collections/<name>/search`` (by upload), ``.../search/examples`` (several examples);
- :mod:`.jobs`: ``/collections/<name>/ingest``, ``/jobs``; :mod:`.job_actions`: cancel, retry;
- :mod:`.analysis`: clusters, map, evaluation, comparison;
- :mod:`.duplicates`: `/collections/<name>/duplicates` (exact, near and similar groups);
- :mod:`.exports`: ``/collections/<name>/selection`` (export), ``.../clusters/suggestions``;
- :mod:`.vectors`: ``/collections/<name>/vectors`` (import an .npz, export one, streamed);
- :mod:`.tune`: ``/collections/<name>/tune`` (a job), its ``spaces``, ``default-space``.
"""

from __future__ import annotations

from simsearch.web.api.blueprint import bp

# The resources register their routes on ``bp`` when imported.
from simsearch.web.api import (analysis, collections, duplicates, exports, health, images, job_actions,  # noqa: E402,F401
                              jobs, search, tune, vectors)

__all__ = ["bp"]
