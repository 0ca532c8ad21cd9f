"""Tuning a collection's search space: ``POST /collections/<name>/tune`` (a background job),
``GET /collections/<name>/spaces``, ``PUT /collections/<name>/default-space``,
``DELETE /collections/<name>/spaces/<space>`` (derived spaces only)."""

from __future__ import annotations

from simsearch.ops import spaces as ops_spaces
from simsearch.ops import tune_jobs
from simsearch.web import schemas as S
from simsearch.web.api.blueprint import bp
from simsearch.web.api.common import ctx, job_accepted, runner
from simsearch.web.contract import WRITE_SECURITY, errors
from simsearch.web.schemas import tune as T

ACCEPTED = {202: {"description": "Queued or running; poll status_url, then read the spaces.",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AnalysisAccepted"}}},
                  "headers": {"Location": {"schema": {"type": "string"}, "description": "The job's status URL."}}}}


@bp.post("/collections/<name>/tune")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.input(T.TuneRequest, location="json", arg_name="body")
@bp.doc(summary="Tune the collection's search space", tags=["tuning"], security=WRITE_SECURITY,
        description="Starts `simsearch tune` as a background job (kind `tune`), or returns the one already queued or "
                    "running for the collection. With labels, candidate spaces (whitening, a supervised projection, "
                    "query expansion, GeM pooling, flip and multi-scale views) are scored by nested cross-validation "
                    "and the best is stored (and made the default with `set_default`). 409 when the collection has "
                    "fewer than 8 images. Poll status_url, then GET the spaces.",
        responses={**ACCEPTED, **errors(400, 401, 403, 404, 409)})
def tune_collection(name: str, q, body: T.TuneRequest):
    job_id, status = tune_jobs.start(ctx(), runner(), name, body.model_dump())
    return job_accepted({"job_id": job_id, "status": status}, S.AnalysisAccepted)


@bp.get("/collections/<name>/spaces")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(T.Spaces, description="Backbone, derived and imported spaces; the default; the newest tuning.")
@bp.doc(summary="A collection's search spaces", tags=["tuning"], responses=errors(400, 404))
def list_spaces(name: str, q):
    return ops_spaces.overview(ctx(), name)


@bp.put("/collections/<name>/default-space")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.input(T.DefaultSpaceRequest, location="json", arg_name="body")
@bp.output(T.DefaultSpace, description="The collection's default space now.")
@bp.doc(summary="Choose the default search space", tags=["tuning"], security=WRITE_SECURITY,
        description="Searches, maps and clusters that name no space use it. 404 when the collection has no vectors "
                    "in that space.", responses=errors(400, 401, 403, 404))
def put_default_space(name: str, q, body: T.DefaultSpaceRequest):
    return ops_spaces.set_default(ctx(), name, body.space)


@bp.delete("/collections/<name>/spaces/<space>")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(T.SpaceRemoved, description="Removed: its vectors and index (the spaces it was made from stay).")
@bp.doc(summary="Remove a derived space", tags=["tuning"], security=WRITE_SECURITY,
        description="Only derived spaces: a backbone's space or imported vectors are refused with 409. When it was "
                    "the default, the settings' default applies again.", responses=errors(400, 401, 403, 404, 409))
def delete_space(name: str, space: str, q):
    return ops_spaces.remove(ctx(), name, space)
