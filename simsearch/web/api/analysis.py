"""Analysis endpoints: clusters, the 2-D map, evaluation against labels, backbone comparison
(computed by :mod:`simsearch.ops.analysis` and :mod:`simsearch.ops.comparison`, cached in the
database)."""

from __future__ import annotations

import math

import numpy as np
from flask import jsonify

from simsearch.errors import Conflict
from simsearch.ops import collections as ops_collections
from simsearch.ops.search import collection_space
from simsearch.web import schemas as S
from simsearch.web.api import bp
from simsearch.web.api.common import ctx
from simsearch.web.contract import errors

MAP_SIGNIFICANT_DIGITS = 4
ANALYSIS = "Computed on first request and cached in the database until the collection's vectors change."


@bp.get("/collections/<name>/clusters")
@bp.input(S.ClustersQuery, location="query", arg_name="q")
@bp.output(S.Clusters, description="Cluster assignment and summary.")
@bp.doc(summary="Clusters", tags=["analysis"], description=ANALYSIS, responses=errors(400, 404, 409))
def clusters(name: str, q: S.ClustersQuery):
    _, space = collection_space(ctx(), name, q.backbone)
    from simsearch.ops import analysis

    return jsonify(analysis.clusters(ctx(), name, space, q.k).to_dict())


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
@bp.doc(summary="2-D map", tags=["analysis"], description=ANALYSIS, responses=errors(400, 404, 409))
def map_view(name: str, q: S.AnalysisQuery):
    _, space = collection_space(ctx(), name, q.backbone)
    from simsearch.ops import analysis

    return jsonify(compact_map(analysis.map_2d(ctx(), name, space).to_dict()))


@bp.get("/collections/<name>/evaluation")
@bp.input(S.AnalysisQuery, location="query", arg_name="q")
@bp.output(S.Evaluation, description="Retrieval precision and cluster agreement with the labels.")
@bp.doc(summary="Evaluation against labels", tags=["analysis"], description=ANALYSIS, responses=errors(400, 404, 409))
def evaluation(name: str, q: S.AnalysisQuery):
    _, space = collection_space(ctx(), name, q.backbone)
    from simsearch.ops import analysis

    return jsonify(analysis.evaluate(ctx(), name, space).to_dict())


@bp.get("/collections/<name>/comparison")
@bp.input(S.ComparisonQuery, location="query", arg_name="q")
@bp.output(S.Comparison, description="The evaluation of each backbone, side by side.")
@bp.doc(summary="Compare backbones", tags=["analysis"], description=ANALYSIS, responses=errors(400, 404, 409))
def comparison(name: str, q: S.ComparisonQuery):
    _, have = ops_collections.spaces(ctx(), name)
    names = list(dict.fromkeys(q.backbones or have))  # known backbones without vectors are reported in their panel
    if not names:  # the request is fine; the collection has nothing to compare yet
        raise Conflict(f"collection {name!r} has no vectors yet: ingest images first", field="backbones")
    from simsearch.ops.comparison import compare

    return jsonify(compare(ctx(), name, names, with_maps=False).to_dict())
