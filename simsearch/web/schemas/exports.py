"""Exports of a selection (``POST /api/collections/<name>/selection``) and suggested cluster names
(``GET /api/collections/<name>/clusters/suggestions``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from simsearch import limits as L
from simsearch.web.schemas.requests import AnalysisQuery, Body, ClusterRef

__all__ = ["SelectionExport", "ClusterSuggestionsQuery", "ClusterSuggestions"]

Version = Annotated[str, Field(max_length=64, pattern=r"^[0-9a-f]+$", examples=["3f9c2a71d0b4e85a6c12"])]
ClusterNumber = Annotated[int, Field(ge=0, le=L.CLUSTER_K_MAX - 1), L.Whole]


def _no_default(schema: dict) -> None:
    schema.pop("default", None)  # absent means "not this way"; a JSON null is refused, as the schema says


class ExportGroup(Body):
    group: Annotated[int, Field(ge=0), L.Whole] = Field(description="The group's number (e.g. a duplicate group's).")
    image_ids: list[Annotated[int, L.Whole]] = Field(min_length=1, max_length=L.LABEL_IDS_MAX)


class SelectionExport(Body):
    """Exactly one of ``image_ids``, ``groups`` and ``cluster``."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re", json_schema_extra={"oneOf": [
        {"required": ["image_ids"]}, {"required": ["groups"]}, {"required": ["cluster"]}]})
    image_ids: list[Annotated[int, L.Whole]] = Field(
        None, min_length=1, max_length=L.LABEL_IDS_MAX, json_schema_extra=_no_default, examples=[[12, 7, 31]],
        description="The selected images (a lasso on the map, a result list), in order.")
    groups: list[ExportGroup] = Field(
        None, min_length=1, max_length=L.LABEL_IDS_MAX, json_schema_extra=_no_default,
        description="Images in numbered groups (e.g. the duplicate groups shown): the `group` column, COCO's "
                    "`simsearch_group`.")
    cluster: ClusterRef = Field(None, json_schema_extra=_no_default,
                                description="One cluster's images (as GET .../clusters computed them).")
    format: Literal["csv", "json", "coco"] = Field(
        "csv", description="`csv` (a line per file: id,path,label,first,group,width,height,size,mtime), `json` (a list "
                           "of images, each with every file) or `coco` (a COCO JSON: images, a category per label, an "
                           "image-level annotation per labelled image; loads with pycocotools' `COCO(file)`).")


class ClusterSuggestionsQuery(AnalysisQuery):
    k: L.ClusterK = "auto"
    cluster: ClusterNumber = Field(description="The cluster's number (0..k-1).")
    version: Version | None = Field(None, description="The `version` of the clusters shown: 409 when they changed since.")


class Suggestion(BaseModel):
    name: str = Field(description="The ImageNet class's first name: the suggested cluster name.", examples=["tabby"])
    classes: str = Field(description="All the class's names.", examples=["tabby, tabby cat"])
    wnid: str = Field(description="The class's WordNet id.", examples=["n02123045"])
    images: int = Field(description="How many of the classified images the classifier gives this class first.")
    share: float = Field(description="`images` / `classified`.")


class ClusterSuggestions(BaseModel):
    collection: str
    backbone: str
    k: int
    cluster: int
    version: str
    size: int = Field(description="The cluster's images.")
    classified: int = Field(description="How many of them were classified (a seeded sample of at most 2,000).")
    from_space: str | None = Field(description="The space whose vectors were classified (the plain average-pooled "
                                               "one when `backbone` pools otherwise).")
    suggestions: list[Suggestion] = Field(description="Most images first; empty when there are none (see `note`).")
    note: str | None = Field(description="Why there are no suggestions (a backbone without an ImageNet classifier, "
                                         "imported vectors...).")
