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
from flask import jsonify, request, url_for

from simsearch.errors import InvalidInput
from simsearch.ops import collections as ops_collections
from simsearch.ops import analysis_jobs
from simsearch.ops.analysis import parse_k
from simsearch.ops.analysis_tasks import AnalysisTask
from simsearch.ops.backbones import check_space
from simsearch.ops.search import collection_space
from simsearch.web.api import bp
from simsearch.web.api.common import ctx, runner
from simsearch.web.payloads import int_arg, str_arg

MAP_SIGNIFICANT_DIGITS = 4


def answer(task: AnalysisTask, shape=lambda result: result.to_dict()):
    """200 with the cached result, or 202 with the job that computes it."""
    result = task.lookup(ctx())
    if result is not None:
        return jsonify(shape(result))
    job_id, status = analysis_jobs.start(ctx(), runner(), task)
    status_url = url_for("api.job", job_id=job_id)
    resp = jsonify({"job_id": job_id, "status": status, "status_url": status_url})
    resp.status_code = 202
    resp.headers["Location"] = status_url
    return resp


def _cluster_k():
    raw = (request.args.get("k") or "auto").strip().lower()
    if raw == "auto":
        return "auto"
    return parse_k(int_arg("k", minimum=2, maximum=200))


@bp.get("/collections/<name>/clusters")
def clusters(name: str):
    k = _cluster_k()
    _, space = collection_space(ctx(), name, str_arg("backbone"))
    return answer(AnalysisTask("clusters", name, {"backbone": space, "k": k, "representatives": 8}))


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
def map_view(name: str):
    _, space = collection_space(ctx(), name, str_arg("backbone"))
    return answer(AnalysisTask("map", name, {"backbone": space, "method": "tsne"}),
                  lambda result: compact_map(result.to_dict()))


@bp.get("/collections/<name>/evaluation")
def evaluation(name: str):
    _, space = collection_space(ctx(), name, str_arg("backbone"))
    return answer(AnalysisTask("evaluation", name, {"backbone": space}))


@bp.get("/collections/<name>/comparison")
def comparison(name: str):
    raw = str_arg("backbones", max_length=2000)
    _, have = ops_collections.spaces(ctx(), name)
    names = [b.strip() for b in raw.split(",") if b.strip()] if raw else have
    names = list(dict.fromkeys(names))
    if not names:
        raise InvalidInput("name the backbones to compare (backbones=a,b); this collection has: "
                           + (", ".join(have) or "none"), field="backbones")
    for n in names:
        check_space(n)  # 400 for unknown names; known ones without vectors are reported in their panel
    return answer(AnalysisTask("comparison", name, {"backbones": names}))
