"""``POST /api/collections/<name>/search/examples``: a search with several positive and negative
examples (docs/search-examples.md): the JSON body, the multipart form and the response."""

from __future__ import annotations

from typing import Annotated, ClassVar

from apiflask.fields import UploadFile
from pydantic import BaseModel, ConfigDict, Field

from simsearch import limits as L
from simsearch.web.schemas.requests import Blank, Body, CsrfToken, Form, LabelFilter, SpaceParam
from simsearch.web.schemas.responses import Hit

__all__ = ["ExamplesSearch", "ExamplesUpload", "ExampleRef", "ExampleHit", "ExamplesResult"]

LIKE = "Positive examples: image ids of the collection (more like these)."
UNLIKE = "Negative examples: image ids of the collection (less like these)."
THRESHOLD = ("Leave out results whose `score` is below this (a cosine similarity, -1..1; e.g. 0.6). Results "
             "pushed down by a negative example fall below it first.")
PERCENTILE = ("Leave out results whose `percentile` is below this (0..100, the readable score shown by the search "
              "page, the same in every space; e.g. 50: at least as close as a typical top-10 neighbour).")
WEIGHT = "How hard the negative examples push (0: not at all, default 1; see docs/search-examples.md)."


class ExamplesSearch(Body):
    """A search by image ids (for uploaded examples, send a multipart form)."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re", json_schema_extra={
        "examples": [{"like": [12, 40], "unlike": [7], "k": 24, "min_percentile": 50}]})
    like: L.ExampleIds = Field([], description=LIKE + " At least one (or a file in the multipart form).")
    unlike: L.ExampleIds = Field([], description=UNLIKE)
    k: L.SearchK = 10
    backbone: L.Space | None = Field(None, description="The space to search; default: the collection's default space.")
    label: Annotated[str, Field(max_length=L.LABEL_MAX, pattern=L.NO_NUL)] | None = Field(
        None, description="Only return images with this label.")
    threshold: L.ScoreThreshold | None = Field(None, description=THRESHOLD)
    min_percentile: L.MinPercentile | None = Field(None, description=PERCENTILE)
    unlike_weight: L.UnlikeWeight = Field(1.0, description=WEIGHT)


def _files(what: str):
    return Field(None, description=f"{what} as image files (repeat the field; at most {L.EXAMPLE_FILES_MAX}).")


class ExamplesUpload(Form):
    comma_separated: ClassVar[frozenset[str]] = frozenset({"like", "unlike"})
    like: L.ExampleIds | None = Field(None, description=LIKE + " Repeat the field, or comma-separate.")
    unlike: L.ExampleIds | None = Field(None, description=UNLIKE + " Repeat the field, or comma-separate.")
    like_image: list[UploadFile] | None = _files("Positive examples")
    unlike_image: list[UploadFile] | None = _files("Negative examples")
    k: L.SearchK | None = None
    backbone: SpaceParam = None
    label: LabelFilter = None
    threshold: Annotated[L.ScoreThreshold | None, Blank] = Field(None, description=THRESHOLD)
    min_percentile: Annotated[L.MinPercentile | None, Blank] = Field(None, description=PERCENTILE)
    unlike_weight: Annotated[L.UnlikeWeight | None, Blank] = Field(None, description=WEIGHT)
    csrf_token: CsrfToken = None


class ExampleRef(BaseModel):
    """One example: an image of the collection, or an uploaded file."""

    image_id: int | None = Field(None, description="The example's image id (null for an uploaded file).")
    filename: str | None = Field(None, description="An uploaded example's file name.")
    bytes: int | None = Field(None, description="An uploaded example's size.")


class ExampleHit(Hit):
    score: float = Field(description="`like` minus `penalty`: what ranks the results (a cosine similarity when "
                                     "nothing pushed it down).")
    percentile: float | None = Field(None, description="The score as a percentile (0-100) of this collection's "
                                     "nearest-neighbour similarities in the space searched: the readable score, the "
                                     "same in every space (50: as close as a typical top-10 neighbour; null: too few "
                                     "vectors).")
    like: float = Field(description="Cosine similarity to the positive examples' average (their mean direction).")
    unlike: float | None = Field(description="The largest cosine similarity to a negative example (null: none given).")
    penalty: float | None = Field(description="How far the negative examples pushed the score down: `unlike_weight` "
                                              "times by how much the image is more like `unlike_example` than like the "
                                              "positives on average (0: not at all; null: no negatives).")
    unlike_example: ExampleRef | None = Field(description="The negative example the image is most like.")


class ExamplesResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "collection": "flowers", "backbone": "efficientnet_lite0", "k": 24,
        "like": [{"image_id": 12, "filename": None, "bytes": None}, {"image_id": 40, "filename": None, "bytes": None}],
        "unlike": [{"image_id": 7, "filename": None, "bytes": None}],
        "threshold": None, "min_percentile": 50.0, "score_threshold": 0.7214, "percentile_applied": True,
        "unlike_weight": 1.0, "candidates": 95, "exact": True, "seconds": 0.048,
        "results": [{"image_id": 23, "score": 0.787, "percentile": 87.1, "like": 0.863, "unlike": 0.785,
                     "penalty": 0.076, "unlike_example": {"image_id": 7, "filename": None, "bytes": None},
                     "path": "daisy/10993818044_4c19b86c82.jpg", "label": "daisy", "width": 128, "height": 128,
                     "file_count": 1, "thumbnail_url": "/api/images/23/thumbnail"}]}]})
    collection: str
    backbone: str = Field(description="The space searched: the one asked for, else the collection's default.")
    k: int
    like: list[ExampleRef] = Field(description="The positive examples, ids first, then the files.")
    unlike: list[ExampleRef] = Field(description="The negative examples, ids first, then the files.")
    threshold: float | None
    min_percentile: float | None
    score_threshold: float | None = Field(description="The score below which results were left out: the "
                                                      "threshold, or the score at min_percentile, whichever is higher.")
    percentile_applied: bool = Field(description="False when min_percentile was given but the space has too few "
                                                 "vectors to compute percentiles (nothing was left out for it).")
    unlike_weight: float
    results: list[ExampleHit] = Field(description="Best first; the examples themselves are left out.")
    candidates: int = Field(description="Images scored against every example.")
    exact: bool = Field(description="True when no image left unscored could have entered the results (the "
                                    "candidate list is widened until then, up to a limit).")
    seconds: float
