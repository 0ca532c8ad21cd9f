"""Analysis computations as plain values, so they can be looked up, queued and run elsewhere.

An :class:`AnalysisTask` names one result (clusters, map, evaluation or comparison of a
collection, with its parameters). The web API answers a request from :meth:`AnalysisTask.lookup`
(the cached result, cheap) or records the task in a job whose runner calls
:meth:`AnalysisTask.compute` (seconds to minutes); the params are plain JSON, so an RQ worker in
another process can run it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from simsearch.errors import InvalidInput
from simsearch.ops import analysis, cluster_labels, comparison, duplicates

KINDS = ("clusters", "map", "evaluation", "comparison", "duplicates")
# The query parameters of each kind's endpoint (GET /api/collections/<name>/<kind>).
QUERY_PARAMS = {"clusters": ("backbone", "k"), "map": ("backbone",), "evaluation": ("backbone",),
                "comparison": ("backbones", "sample"), "duplicates": ("backbone",)}


@dataclass(frozen=True)
class AnalysisTask:
    """``params`` by kind: clusters ``{"backbone", "k" ('auto' or int), "representatives"}`` (with
    their labels part, :mod:`simsearch.ops.cluster_labels`); map
    ``{"backbone", "method"}``; evaluation ``{"backbone"}``; comparison ``{"backbones": [..], "sample": cap or "all"}``;
    duplicates ``{"backbone"}`` (the candidate pairs; tiers and thresholds are applied per request).
    ``backbone`` is resolved (never None) when a request makes the task, so the job computes what
    the request asked for even if the collection's default changes meanwhile."""

    kind: str
    collection: str
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InvalidInput(f"unknown analysis {self.kind!r} (known: {', '.join(KINDS)})", field="kind")

    @classmethod
    def from_json(cls, kind: str, collection: str, params: dict | None) -> "AnalysisTask":
        return cls(kind, collection, dict(params or {}))

    def to_json(self) -> dict:
        return dict(self.params)

    def same_as(self, kind: str, collection: str, params: dict | None) -> bool:
        return (kind, collection, dict(params or {})) == (self.kind, self.collection, self.params)

    @property
    def spaces(self) -> list[str]:
        return list(self.params["backbones"]) if self.kind == "comparison" else [self.params["backbone"]]

    def describe(self) -> str:
        return f"{self.kind} of {self.collection} ({', '.join(self.spaces)})"

    def result_url(self) -> str:
        """Where the API serves the result (the URL that started the job, with the parameters the
        endpoint takes)."""
        query = {k: (",".join(v) if isinstance(v, list) else v) for k, v in self.params.items()
                 if k in QUERY_PARAMS[self.kind]}
        return f"/api/collections/{quote(self.collection, safe='')}/{self.kind}?{urlencode(query)}"

    def lookup(self, ctx):
        """The cached result (typed), or None when it must be computed."""
        p = self.params
        if self.kind == "clusters":
            return cluster_labels.lookup(ctx, self.collection, p["backbone"], p.get("k", "auto"),
                                         p.get("representatives", 8))
        if self.kind == "map":
            return analysis.lookup_map(ctx, self.collection, p["backbone"], p.get("method", "tsne"))
        if self.kind == "evaluation":
            return analysis.lookup_evaluation(ctx, self.collection, p["backbone"])
        if self.kind == "duplicates":
            return duplicates.lookup_pairs(ctx, self.collection, p["backbone"])
        return comparison.lookup_comparison(ctx, self.collection, p["backbones"], with_maps=False,
                                            sample=p.get("sample", comparison.SAMPLE_CAP))

    def compute(self, ctx, progress: analysis.Progress | None = None):
        """Compute (what is not cached), store and return the result."""
        p = self.params
        if self.kind == "clusters":
            return cluster_labels.compute(ctx, self.collection, p["backbone"], p.get("k", "auto"),
                                          p.get("representatives", 8), progress=progress)
        if self.kind == "map":
            return analysis.map_2d(ctx, self.collection, p["backbone"], p.get("method", "tsne"), progress=progress)
        if self.kind == "evaluation":
            return analysis.evaluate(ctx, self.collection, p["backbone"], progress=progress)
        if self.kind == "duplicates":
            return duplicates.pairs(ctx, self.collection, p["backbone"], progress=progress)
        return comparison.compare(ctx, self.collection, p["backbones"], with_maps=False, progress=progress,
                                  sample=p.get("sample", comparison.SAMPLE_CAP))
