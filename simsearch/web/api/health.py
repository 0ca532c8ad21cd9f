"""``/api/health`` and ``/api/backbones``."""

from __future__ import annotations

from sqlalchemy import text

from simsearch import __version__
from simsearch.errors import QueueUnavailable, SimsearchError
from simsearch.ops.backbones import backbone_rows
from simsearch.web.api import bp
from simsearch.web.api.common import ctx, runner
from simsearch.web.paths import hide_server_paths


@bp.get("/health")
def health():
    app_ctx = ctx()
    out = {"status": "ok", "version": __version__, "database": app_ctx.db.dialect, "jobs": runner().kind}
    try:
        with app_ctx.db.session() as s:
            s.execute(text("SELECT 1"))
    except Exception as exc:
        raise SimsearchError(f"database unreachable: {type(exc).__name__}", details=out) from None
    if runner().kind == "rq":
        try:
            runner().ping()
        except Exception as exc:
            raise QueueUnavailable(f"job queue (Redis) unreachable: {type(exc).__name__}", details=out) from None
    return out


@bp.get("/backbones")
def backbones():
    rows = backbone_rows(ctx().settings)
    return {"backbones": [{**r, "weights_note": hide_server_paths(r["weights_note"])} for r in rows]}
