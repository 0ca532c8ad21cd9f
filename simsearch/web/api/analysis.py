"""Analysis endpoints: clusters, the 2-D map, evaluation against labels, backbone comparison.

None of them computes inside the request. Each names its result as an
:class:`~simsearch.ops.analysis_tasks.AnalysisTask` and answers **200** with the result when it is
cached for the collection's current vectors (and labels, for scores), else **202**
``{"job_id", "status", "status_url"}`` (and ``Location``) for the background job computing it:
the one already queued or running for the same parameters, or a new one on the app's job runner
(:mod:`simsearch.ops.analysis_jobs`). Poll ``status_url`` until ``done``, then ask again.
"""

from __future__ import annotations

import math

import numpy as np
from flask import Response, jsonify

from simsearch.errors import Conflict, InvalidInput
from simsearch.ops import analysis_jobs, cluster_labels
from simsearch.ops import collections as ops_collections
from simsearch.ops.analysis_tasks import AnalysisTask
from simsearch.ops.search import collection_space
from simsearch.web import schemas as S
from simsearch.web.api.blueprint import bp
from simsearch.web.api.common import ctx, job_accepted, runner
from simsearch.web.contract import BINARY, WRITE_SECURITY, errors
from simsearch import spaces
from simsearch.ops import atlas as ops_atlas
from simsearch.web import map_binary as mb

MAP_SIGNIFICANT_DIGITS = 4
ANALYSIS = ("Never computed inside the request: 200 with the result when it is cached for the collection's current "
            "vectors (and labels, for scores), else 202 with the background job computing it (the one already "
            "running for the same parameters, or a new one): poll status_url until done, then ask again.")
JOB_CAP = ("Too many unfinished jobs: this client's (SIMSEARCH_MAX_QUEUED_JOBS_PER_CLIENT) or the server's "
           "(SIMSEARCH_MAX_QUEUED_JOBS); wait the `Retry-After` header's seconds.")
ACCEPTED = {202: {"description": "Being computed; poll status_url, then ask again.",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AnalysisAccepted"}}},
                  "headers": {"Location": {"schema": {"type": "string"}, "description": "The job's status URL."}}}}
ANALYSIS_ERRORS = {**ACCEPTED, **errors(400, 404, 409, 429, e429=JOB_CAP)}


def answer(task: AnalysisTask, shape=lambda result: result.to_dict()):
    """200 with the cached result, or 202 with the job that computes it."""
    result = task.lookup(ctx())
    if result is not None:
        shaped = shape(result)
        return shaped if isinstance(shaped, Response) else jsonify(shaped)
    job_id, status = analysis_jobs.start(ctx(), runner(), task)
    return job_accepted({"job_id": job_id, "status": status}, S.AnalysisAccepted)


@bp.get("/collections/<name>/clusters")
@bp.input(S.ClustersQuery, location="query", arg_name="q")
@bp.output(S.Clusters, description="Cluster assignment and summary.")
@bp.doc(summary="Clusters", tags=["analysis"], description=ANALYSIS, responses={**ANALYSIS_ERRORS})
def clusters(name: str, q: S.ClustersQuery):
    _, space = collection_space(ctx(), name, q.backbone)
    return answer(AnalysisTask("clusters", name, {"backbone": space, "k": q.k,
                                                  "representatives": cluster_labels.REPRESENTATIVES}))


CLUSTER_WRITE = ("Acts on the clusters as last computed by GET .../clusters with the same backbone and k (409 when "
                 "there are none for the current images, or `version` is not theirs).")


@bp.post("/collections/<name>/clusters/name")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.input(S.ClusterName, location="json", arg_name="body")
@bp.output(S.ClusterNamed, description="Named (kept with the clustering, while its images are unchanged).")
@bp.doc(summary="Name a cluster", tags=["analysis"], security=WRITE_SECURITY, description=CLUSTER_WRITE,
        responses=errors(400, 401, 403, 404, 409))
def name_cluster(name: str, q, body: S.ClusterName):
    return cluster_labels.rename(ctx(), name, body.backbone, body.k, body.cluster, body.name, version=body.version)


@bp.post("/collections/<name>/clusters/label")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.input(S.ClusterLabel, location="json", arg_name="body")
@bp.output(S.ClusterLabelled, description="Every image of the cluster now carries the label.")
@bp.doc(summary="Save a cluster as a label", tags=["analysis"], security=WRITE_SECURITY,
        description=CLUSTER_WRITE + " Replaces the label of each image of the cluster.",
        responses=errors(400, 401, 403, 404, 409))
def label_cluster(name: str, q, body: S.ClusterLabel):
    return cluster_labels.save_as_label(ctx(), name, body.backbone, body.k, body.cluster, body.label,
                                        version=body.version)


def round_significant(values, digits: int = MAP_SIGNIFICANT_DIGITS) -> list:
    """Round an array to ``digits`` significant digits relative to its largest magnitude."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return []
    finite = np.abs(arr[np.isfinite(arr)])
    top = float(finite.max()) if finite.size else 0.0
    decimals = digits - 1 - (int(math.floor(math.log10(top))) if top > 0 else 0)
    out = np.round(arr, max(0, decimals))
    return [None if not math.isfinite(v) else (int(v) if decimals <= 0 else v) for v in out.tolist()]


def compact_map(result: dict) -> dict:
    """Arrays stay arrays; float arrays are rounded (``x``, ``y`` and any other list of floats)."""
    out = dict(result)
    for key, value in result.items():
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, list) and value and all(isinstance(v, float) for v in value[:64]):
            out[key] = round_significant(value)
        elif isinstance(value, list):
            out[key] = value
    return out


@bp.get("/collections/<name>/map")
@bp.input(S.AnalysisQuery, location="query", arg_name="q")
@bp.output(S.Map, description="Parallel arrays; gzip-compressed when accepted.")
@bp.doc(summary="2-D map", tags=["analysis"], description=ANALYSIS, responses={**ANALYSIS_ERRORS})
def map_view(name: str, q: S.AnalysisQuery):
    _, space = collection_space(ctx(), name, q.backbone)
    return answer(AnalysisTask("map", name, {"backbone": space, "method": "tsne"}),
                  lambda result: compact_map(result.to_dict()))


@bp.get("/collections/<name>/map.bin")
@bp.input(S.AnalysisQuery, location="query", arg_name="q")
@bp.doc(summary="2-D map, binary", tags=["analysis"],
        description=ANALYSIS + " The same map as `/map` as typed arrays (12 bytes a point): see "
                               "simsearch/web/map_binary.py for the layout. For maps of a million points.",
        responses={200: {"description": "The binary map (gzip-compressed when accepted).",
                         "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                   **ANALYSIS_ERRORS})
def map_binary(name: str, q: S.AnalysisQuery):
    from flask import Response, request

    _, space = collection_space(ctx(), name, q.backbone)

    def shape(result):
        body = mb.encode(result)
        resp = Response(body, mimetype="application/octet-stream")
        if "gzip" in request.headers.get("Accept-Encoding", "").lower():
            import gzip

            resp.set_data(gzip.compress(body, compresslevel=6))
            resp.headers["Content-Encoding"] = "gzip"
        resp.vary.add("Accept-Encoding")
        return resp

    return answer(AnalysisTask("map", name, {"backbone": space, "method": "tsne"}), shape)


@bp.get("/collections/<name>/evaluation")
@bp.input(S.AnalysisQuery, location="query", arg_name="q")
@bp.output(S.Evaluation, description="Retrieval precision and cluster agreement with the labels.")
@bp.doc(summary="Evaluation against labels", tags=["analysis"], description=ANALYSIS,
        responses={**ANALYSIS_ERRORS})
def evaluation(name: str, q: S.AnalysisQuery):
    _, space = collection_space(ctx(), name, q.backbone)
    return answer(AnalysisTask("evaluation", name, {"backbone": space}))


@bp.get("/collections/<name>/comparison")
@bp.input(S.ComparisonQuery, location="query", arg_name="q")
@bp.output(S.Comparison, description="The evaluation of each backbone, side by side.")
@bp.doc(summary="Compare backbones", tags=["analysis"], description=ANALYSIS, responses={**ANALYSIS_ERRORS})
def comparison(name: str, q: S.ComparisonQuery):
    _, have = ops_collections.spaces(ctx(), name)
    names = list(dict.fromkeys(q.backbones or have))  # known backbones without vectors are reported in their panel
    if not names:  # the request is fine; the collection has nothing to compare yet
        raise Conflict(f"collection {name!r} has no vectors yet: ingest images first", field="backbones")
    return answer(AnalysisTask("comparison", name, {"backbones": names, "sample": q.sample}))


ATLAS_MAX_AGE = 365 * 24 * 3600


@bp.get("/collections/<name>/atlas/<space>/<tile>")
@bp.input(S.AtlasQuery, location="query", arg_name="q")
@bp.doc(summary="Thumbnail atlas of a map tile", tags=["analysis"],
        description="The stored thumbnails of the points of one tile of the map (`z-x-y`, see the `tile` parameter) as "
                    "one JPEG grid of 64-pixel cells, row by row, at most 256 (the first points of the tile, in map "
                    "order). Headers: `X-Atlas-Ids` (the image of each cell, comma-separated), `X-Atlas-Columns`, "
                    "`X-Atlas-Cell` (pixels), `X-Atlas-Points` (points in the tile). Points without a thumbnail "
                    "(imported vectors) have no cell. 204 when no point of the tile has one. Needs the map computed "
                    "(409 otherwise). With `v` (the map's generation) the answer is immutable.",
        responses={200: {"description": "The atlas (JPEG).", "content": {"image/jpeg": {"schema": BINARY}},
                         "headers": {h: {"schema": {"type": "string"}} for h in
                                     ("X-Atlas-Ids", "X-Atlas-Columns", "X-Atlas-Cell", "X-Atlas-Points", "ETag")}},
                   204: {"description": "No point of the tile has a thumbnail."},
                   304: {"description": "Not modified (If-None-Match matched)."}, **errors(400, 404, 409)})
def atlas(name: str, space: str, tile: str, q: S.AtlasQuery):
    from flask import request

    try:
        spaces.check(space, imported=True)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="space") from None
    got = ops_atlas.tile_atlas(ctx(), name, space, tile, generation=q.v, cached=request.if_none_match.contains)
    if got.not_modified:
        resp = Response(status=304)
    else:
        resp = Response(got.data, status=200 if got.ids else 204, mimetype="image/jpeg" if got.ids else None)
        resp.headers.update({"X-Atlas-Ids": ",".join(map(str, got.ids)), "X-Atlas-Columns": str(got.columns),
                             "X-Atlas-Cell": str(got.cell), "X-Atlas-Points": str(got.points)})
    resp.set_etag(got.etag)
    if q.v:
        resp.cache_control.max_age = ATLAS_MAX_AGE
        resp.cache_control.immutable = True
    else:
        resp.cache_control.no_cache = True
    resp.cache_control.private = True
    return resp
