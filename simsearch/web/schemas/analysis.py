"""Responses of the analysis endpoints: clusters, map, evaluation, comparison (see
:mod:`simsearch.ops.analysis` for how each is computed and cached).

The result models are declared once, in :mod:`simsearch.ops.analysis_results`: the operations
build them, the cache stores them, and these responses are those models (``Map`` only adds what
the API does to the map: its name and the rounding of the coordinates)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from simsearch.ops.analysis_results import Clusters, Comparison, Evaluation, MapResult

__all__ = ["Clusters", "ClusterNamed", "ClusterLabelled", "Map", "Evaluation", "Comparison"]


class Map(MapResult):
    """2-D map (t-SNE): parallel arrays, one entry per image; coordinates rounded to 4 significant digits."""


class ClusterNamed(BaseModel):
    collection: str
    backbone: str
    k: int
    cluster: int
    name: str | None
    version: str


class ClusterLabelled(BaseModel):
    collection: str
    backbone: str
    k: int
    cluster: int
    label: str
    updated: int = Field(description="Images that now carry the label.")
    version: str
