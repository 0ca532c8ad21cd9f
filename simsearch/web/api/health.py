"""``/api/health`` and ``/api/backbones``."""

from __future__ import annotations

from sqlalchemy import text

from simsearch import __version__
from simsearch.errors import QueueUnavailable, SimsearchError
from simsearch.ops.backbones import backbone_rows
from simsearch.web import schemas as S
from simsearch.web.api.blueprint import bp
from simsearch.web.api.common import ctx, runner
from simsearch.web.contract import errors
from simsearch.web.paths import hide_server_paths
from simsearch.store.db import answer_within, unavailable


@bp.get("/health")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.Health, description="Database (and job queue) reachable.")
@bp.doc(summary="Health check", tags=["service"], responses=errors(400, 503))
def health(q):
    """200 when every dependency answers; else 503 (with ``Retry-After``) naming the first one
    down, with every dependency's state in ``details.checks`` (``ok``, ``unavailable``,
    ``schema_outdated``). The database gets ``SIMSEARCH_HEALTH_TIMEOUT`` seconds (3) in all to
    answer, whatever it does (refuses, hangs, is frozen)."""
    app_ctx = ctx()
    checks = {"database": "ok", "job_queue": "ok" if runner().kind == "rq" else "in-process"}
    failures = []
    try:
        with answer_within(app_ctx.settings.health_timeout):
            app_ctx.ensure_schema()
            with app_ctx.db.session() as s:
                s.execute(text("SELECT 1"))
    except SimsearchError as exc:
        checks["database"] = "unavailable" if exc.code == "database_unavailable" else exc.code
        failures.append(exc)
    except Exception as exc:
        err = unavailable(exc)
        if err is None:
            raise
        checks["database"] = "unavailable"
        failures.append(err)
    if runner().kind == "rq":
        try:
            runner().ping()
        except Exception as exc:
            checks["job_queue"] = "unavailable"
            failures.append(QueueUnavailable(f"the job queue (Redis) is unavailable: {type(exc).__name__}"))
    out = {"status": "ok", "version": __version__, "database": app_ctx.db.dialect, "jobs": runner().kind, "checks": checks}
    if failures:
        first = failures[0]
        down = ", ".join(k for k, v in checks.items() if v not in ("ok", "in-process"))
        raise type(first)(f"{first.message} (down: {down})", details=dict(out, status="unavailable"))
    return out


@bp.get("/backbones")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.BackboneList, description="Backbones and whether their weights are available.")
@bp.doc(summary="List backbones", tags=["service"], responses=errors(400))
def backbones(q):
    rows = backbone_rows(ctx().settings)
    return {"backbones": [{**r, "weights_note": hide_server_paths(r["weights_note"])} for r in rows]}
