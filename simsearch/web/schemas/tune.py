"""Requests and responses of the tuning endpoints: start a tuning job, a collection's spaces, its
default space, removing a derived space (:mod:`simsearch.web.api.tune`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictBool

from simsearch import limits as L
from simsearch.ops.analysis_results import Sample
from simsearch.ops.sampling import CAP as SAMPLE_CAP
from simsearch.web.schemas.requests import Body

Folds = Annotated[int, Field(ge=2, le=20, description="Cross-validation folds (stratified by label, seeded)."), L.Whole]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1, description="Seed of the folds and of the ARI's k-means."), L.Whole]


class TuneRequest(Body):
    set_default: StrictBool = Field(False, description="Make the chosen space the collection's default search space "
                                    "(without it the default stays what it was).")
    folds: Folds = 5
    seed: Seed = 0
    variants: StrictBool = Field(True, description="Also try GeM pooling and flip / multi-scale test-time views "
                                 "(embeds the images again: they must still be readable where they were "
                                 "ingested from).")
    sample: Annotated[int, Field(ge=20), L.Whole] | Literal["all"] = Field(
        SAMPLE_CAP, description="Score the candidates on a seeded sample of at most this many labelled images "
                                "by label (stratified, or whole labels when there are many: docs/tuning.md; the whole collection is then embedded once, in the chosen variant "
                                "only); `all`: on every image.")


class DefaultSpaceRequest(Body):
    space: L.Space | None = Field(description="A space the collection has vectors in; null: back to the "
                                  "settings' default backbone.")


class SpaceCV(BaseModel):
    p_at_10_mean: float
    p_at_10_std: float
    ari_mean: float | None
    ari_std: float | None
    kept_mean: float | None = Field(None, description="Neighbour preservation vs the raw space (see `tune`).")
    served_mean: float | None = Field(None, description="What `tune` chose by: mean of P@10, ARI and preservation.")


class Words(BaseModel):
    title: str = Field(description="A readable name.", examples=["Label precision (P@10)"])
    explanation: str = Field(description="What it means, in one line.",
                             examples=["the share of an image's 10 nearest images that carry its label"])


class SpaceRow(BaseModel):
    name: str = Field(description="The space's name as requests give it (`backbone` parameters, `space` fields).",
                      examples=["efficientnet_lite0@gem3+flip"])
    title: str = Field(description="The space in plain words (`simsearch.spaces.describe`).",
                       examples=["EfficientNet-Lite0, GeM pooling (p = 3), flip view"])
    explanation: str = Field(description="What the space is, in one line.",
                             examples=["Features of the EfficientNet-Lite0 ImageNet network, pooled by a generalised "
                                       "mean (p = 3) that stresses each feature's strongest responses, averaged with "
                                       "the mirrored image."])
    kind: Literal["backbone", "derived", "imported"] = Field(
        description="backbone: embedded by a backbone (with its pooling and test-time views); derived: made from "
                    "backbone spaces by `tune` (removable); imported: vectors imported from a file.")
    vectors: int
    default: bool
    bases: list[str] | None = Field(description="A derived space: the spaces it is made from.")
    recipe: dict[str, Any] | None = Field(description="A derived space: transform, dims, shrinkage, re-ranking.")
    dim: int | None
    cv: SpaceCV | None = Field(description="A derived space: its cross-validated scores when it was chosen.")
    fingerprint: dict[str, Any] | None = Field(None, description="What made the vectors: model, weights_sha256, "
                                               "pooling, views, precision, dim (null: not known).")
    internal: bool = Field(False, description="A pooling / view variant `tune` embedded as a derived space's base: "
                           "left out of the pages' space pickers.")


class TuneCandidate(BaseModel):
    space: str
    bases: list[str]
    candidate: str
    p_at_10_mean: float
    p_at_10_std: float
    ari_mean: float | None
    ari_std: float | None
    kept_mean: float | None = Field(None, description="Mean fraction of a held-out image's 10 nearest in the raw "
                                    "space still among its 50 nearest here (1: the raw space's neighbourhoods kept).")
    served_mean: float | None = Field(None, description="The criterion: per fold, the mean of P@10, ARI (0 when "
                                      "negative) and kept; averaged over the folds.")
    served_std: float | None = None
    seconds: float = Field(description="Cross-validation seconds.")
    embed_seconds: float = Field(0.0, description="Model seconds of the embedding pass this space needed (0: "
                                 "its vectors were there).")
    cv_images: int | None = Field(None, description="Labelled images it was cross-validated on (the sample's).")


class TuneReport(BaseModel):
    collection: str
    mode: Literal["labelled", "unlabelled"]
    n_images: int
    n_labelled: int
    n_labels: int
    protocol: str
    candidates: list[dict[str, Any]] = Field(description="Labelled: TuneCandidate rows; unlabelled: the whitening grid.")
    chosen: str | None
    created: dict[str, Any] | None
    default_space: str | None
    seconds: float
    embedding: dict[str, Any] | None = Field(None, description="The variants' embedding pass over the sample (images, "
                                             "seconds, spaces, view_seconds) and, when a variant was chosen, "
                                             "`collection_pass`: the rest of the collection embedded in it.")
    sample: Sample | None = Field(None, description="What the candidates were scored on.")
    notes: list[str] = []


class LastTuning(BaseModel):
    job_id: int
    status: Literal["queued", "running", "done", "failed", "interrupted"]
    message: str | None
    finished_at: str | None
    report: TuneReport | None = Field(description="Once the job is done.")


class Spaces(BaseModel):
    """A collection's search spaces, its default, and its newest tuning."""

    collection: str
    default_space: str | None = Field(description="Where searches go when they name no space (null: they must "
                                      "name one).")
    default_chosen: bool = Field(description="The collection chose its default (else the settings' default "
                                 "backbone applies).")
    spaces: list[SpaceRow]
    last_tuning: LastTuning | None = Field(description="The newest tuning job; its report's candidates carry "
                                           "`title` and `explanation` too.")
    scores: dict[str, Words] = Field(description="Every score the pages show (`p_at_10`, `ari`, `kept`, "
                                     "`percentile`...) in plain words.", examples=[{
                                         "p_at_10": {"title": "Label precision (P@10)",
                                                     "explanation": "the share of an image's 10 nearest images that "
                                                                    "carry its label"}}])
    not_measured: str = Field(description="What an empty score cell means.", examples=[
        "not measured: this space was not a candidate of the last tuning (press Tune to score it)"])


class DefaultSpace(BaseModel):
    collection: str
    default_space: str | None


class SpaceRemoved(BaseModel):
    collection: str
    space: str
    vectors_deleted: int
    was_default: bool
