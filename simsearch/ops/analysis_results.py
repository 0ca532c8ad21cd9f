"""Typed results of the analysis operations (:mod:`simsearch.ops.analysis`,
:mod:`simsearch.ops.cluster_labels`, :mod:`simsearch.ops.comparison`), declared once.

Each result is a pydantic model whose fields are the keys of its JSON: the operations build
them, the result cache (:mod:`simsearch.store.results`, which stays type-agnostic) stores
``to_dict()`` and reads it back with ``model_validate``, the CLI prints ``to_dict()`` with
``--json``, the comparison report stores it beside its HTML, and the API's response schemas
(:mod:`simsearch.web.schemas.analysis`) are these models (the OpenAPI document is generated from
them). Keep the shapes stable: a field added or renamed here changes all of them at once.

Arrays of the 2-D map are numpy arrays in Python and lists in JSON (:data:`IntArray`,
:data:`FloatArray`).
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import numpy as np
from pydantic import (BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, WithJsonSchema, model_serializer,
                      model_validator)

NO_LABELS_NOTE = "no labels (or only one): external scores need at least two distinct labels"
PRECISION_AT = 10  # the k of the kNN precision@k reported (its key: knn_precision_at_10)

Score = float | None  # a metric; null where it cannot be computed


def _array(dtype, items: dict):
    """A numpy array of ``dtype`` in Python, a JSON list of ``items`` (its schema) outside."""
    return Annotated[np.ndarray, PlainValidator(lambda v: np.asarray(v, dtype)), PlainSerializer(lambda a: a.tolist()),
                     WithJsonSchema({"type": "array", "items": items})]


IntArray = _array(np.int64, {"type": "integer"})
FloatArray = _array(np.float32, {"anyOf": [{"type": "number"}, {"type": "null"}]})


class Result(BaseModel):
    """A result: immutable; ``to_dict()`` is its JSON (plain lists, numbers, strings)."""

    model_config = ConfigDict(frozen=True)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


class SometimesAbsent(Result):
    """A result some of whose keys are left out of its JSON (absent, not null): those named in
    ``OMIT_WHEN_NONE`` when None, and any :meth:`absent` names. Only where needed: the wrapping
    serializer slows the dump of a large result (a clusters result of 1M members)."""

    OMIT_WHEN_NONE: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit(self, handler):  # no return annotation: the JSON schema stays the model's
        out = handler(self)
        for key in self.absent():
            out.pop(key, None)
        return out

    def absent(self) -> set[str]:
        """The keys left out of this result's JSON."""
        return {key for key in self.OMIT_WHEN_NONE if getattr(self, key) is None}


# ---- silhouette sweep and clusters ------------------------------------------------------------


class SilhouetteSweep(Result):
    """The silhouette curve `k=auto` chooses from: plot `scores` against `ks` to pick another k."""

    ks: list[int] = Field(description="The k tried: every k from 2 to 10, then steps of x1.5 up to one cluster per 10 "
                                      "images (at most 200), always below the number of images.")
    scores: list[float] = Field(description="Mean silhouette at each k (higher: tighter, better separated clusters), "
                                            "computed on `sample_size` images.")
    best_k: int = Field(description="The k with the highest score (the one `k=auto` uses).")
    sample_size: int = Field(description="Images each k was fitted and scored on (a seeded sample of at most 10,000; "
                                         "every image is then assigned to its nearest centre).")
    seconds: float = Field(description="Time the sweep took when it was computed.")
    metric: str = Field("cosine", description="The silhouette's distance: `cosine` (or `euclidean`).")
    centred: bool = Field(True, description="Fitted and scored on the vectors less their mean (re-normalised).")

    @model_validator(mode="before")
    @classmethod
    def _recorded_before_metric(cls, data):
        """Sweeps cached before the metric and centring were recorded were euclidean, uncentred."""
        if isinstance(data, dict) and "ks" in data and "metric" not in data:
            data = {**data, "metric": "euclidean", "centred": data.get("centred", False)}
        if isinstance(data, dict) and data.get("seconds", 0.0) is None:
            data = {**data, "seconds": 0.0}
        return data

    def score_at(self, k: int) -> float | None:
        return dict(zip(self.ks, self.scores)).get(k)


class LabelCount(Result):
    label: str | None = Field(description="A label; null counts the images without one.")
    count: int


class ClusterMembers(Result):
    """One cluster as cached under the vectors alone (:class:`Cluster` adds its name and labels)."""

    cluster: int
    size: int
    representatives: list[int] = Field(description="Image ids nearest the cluster's centre.")
    members: list[int] = Field(description="Every image id in the cluster.")


class Cluster(ClusterMembers):
    name: str | None = Field(None, description="The name a curator gave the cluster (null: none).")
    labels: list[LabelCount] = Field(default_factory=list, description="The cluster's label make-up: images per label "
                                                                       "(now), most common first.")


class LabelAgreement(Result):
    """How the clusters agree with the labels (computed over the labelled images)."""

    n_labelled: int
    n_labels: int = Field(description="Distinct labels: the k to compare with the silhouette's choice.")
    ari: list[Score] = Field(description="Adjusted Rand index against the labels at each k of `silhouette.ks` "
                                         "(null without two distinct labels).")
    ari_at_k: Score = Field(description="At the clusters' k.")
    note: str | None = None


class StoredLabelAgreement(LabelAgreement):
    """The labels part as cached (:mod:`simsearch.ops.cluster_labels`): with each cluster's
    make-up, in cluster order, ``[(label or None, count)]`` most common first."""

    makeup: list[list[tuple[str | None, int]]]

    def public(self) -> LabelAgreement:
        return LabelAgreement(**{name: getattr(self, name) for name in LabelAgreement.model_fields})


class ClusterResult(Result):
    """k-means clusters of a collection's vectors, as :func:`simsearch.ops.analysis.clusters`
    computes and caches them under the vectors alone (:class:`Clusters` adds the labels part)."""

    collection: str
    backbone: str
    k: int
    auto: bool = Field(description="k was chosen by the silhouette sweep (its `best_k`).")
    silhouette_at_k: Score = Field(description="Mean silhouette at `k`, scored as the sweep scores (also for a k "
                                               "outside `silhouette.ks`).")
    silhouette: SilhouetteSweep
    n_images: int
    clusters: list[ClusterMembers]
    cached: bool = Field(description="Served from the analysis cache (the vectors did not change).")


class Clusters(ClusterResult):
    """k-means clusters of a collection's vectors (k chosen by the silhouette curve, `silhouette`, when `k=auto`)."""

    clusters: list[Cluster]
    version: str = Field(description="Identifies the vectors clustered; send it back when naming or labelling a "
                                     "cluster (409 if the clusters changed since).")
    label_agreement: LabelAgreement

    @classmethod
    def attach(cls, base: ClusterResult, agreement: StoredLabelAgreement, names: dict[int, str],
               version: str) -> "Clusters":
        """``base`` with its labels part: each cluster's name and make-up, the agreement, the version."""
        clusters = [Cluster(**dict(c), name=names.get(c.cluster),
                            labels=[LabelCount(label=lab, count=n) for lab, n in mix])
                    for c, mix in zip(base.clusters, agreement.makeup)]
        return cls(**{**dict(base), "clusters": clusters}, version=version, label_agreement=agreement.public())


# ---- evaluation against the labels ------------------------------------------------------------


class ExternalScores(Result):
    """Agreement of k-means clusters with the labels (scikit-learn's definitions)."""

    k: int
    ari: float = Field(description="Adjusted Rand index.")
    nmi: float = Field(description="Normalised mutual information.")
    homogeneity: float
    completeness: float
    v_measure: float
    n_samples: int
    n_classes: int
    n_clusters: int


class LabelPrecision(Result):
    label: str
    n: int = Field(description="Images with the label.")
    precision: float = Field(description="Mean kNN precision of the label's images.")


class Contingency(Result):
    """Images of each label (row) in each k-means cluster (column)."""

    k: int = Field(description="Clusters: the number of distinct labels (the best k when there are as many labels as images).")
    labels: list[str]
    clusters: list[int]
    counts: list[list[int]] = Field(description="counts[label][cluster].")


class LabelScores(Result):
    """Scores against the labels, over the labelled images."""

    at_best_k: ExternalScores
    at_n_labels: ExternalScores | None
    knn_precision_at_10: float = Field(description="Leave-one-out kNN precision@10 over the labelled images.")
    precision_k: int = Field(description="The k actually used (fewer when there are few labelled images).")
    per_label: list[LabelPrecision] = Field(description="The same precision for each label's images.")
    contingency: Contingency | None = Field(description="Labels against k-means clusters.")

    @property
    def knn_precision(self) -> float:
        return self.knn_precision_at_10


class Evaluation(SometimesAbsent):
    """Retrieval and clustering quality against the labels."""

    OMIT_WHEN_NONE = frozenset({"note"})

    collection: str
    backbone: str
    n_images: int
    silhouette: SilhouetteSweep
    best_k: int
    n_labelled: int
    n_labels: int
    labels: LabelScores | None = Field(description="Null without at least two distinct labels (see `note`).")
    note: str | None = Field(None, description="Why there are no label scores (only when `labels` is null).")


# ---- 2-D maps and the comparison ---------------------------------------------------------------


class MapPoints(Result):
    """The per-image lists of a map (what a comparison panel shows), parallel, one entry per image."""

    ids: IntArray
    x: FloatArray
    y: FloatArray
    labels: list[str | None]
    clusters: IntArray = Field(description="Cluster of each image at the automatically chosen k.")
    k: int


class MapResult(MapPoints):
    """2-D coordinates of every image (t-SNE or PCA) with its label and cluster."""

    collection: str
    backbone: str
    method: str = Field(description="`tsne` or `pca`.", examples=["tsne"])
    n: int
    seconds: float | None = Field(description="Time the projection took when it was computed.")
    cached: bool


class EmbedReport(SometimesAbsent):
    """Images embedded for a comparison (a re-embedding job run by the command); `job_id` and
    `estimate` are absent where no job was needed."""

    OMIT_WHEN_NONE = frozenset({"job_id", "estimate"})

    embedded: int
    failed: int
    errors: list[dict] = Field(description="Per image that failed: `{\"file\", \"reason\"}`.")
    job_id: int | None = Field(None, description="The re-embedding job that embedded them (null: none was needed).")
    estimate: dict | None = Field(None, description="Its cost, worked out before it started (as `POST .../reembed` "
                                                    "answers it).")


class BackbonePanel(SometimesAbsent):
    """One backbone's column in the comparison; `available: false` with a `reason` (no vectors,
    no weights) and no scores otherwise."""

    # Present only when available (from its Evaluation), else left out.
    SCORES: ClassVar[tuple[str, ...]] = ("n_images", "silhouette", "best_k", "labels", "embed_seconds_per_image",
                                         "embed_seconds_total")
    OMIT_WHEN_NONE = frozenset({"embedding", "map"})

    backbone: str
    dim: int
    input_size: int | None = Field(description="The model's input side in pixels; null for imported vectors.")
    available: bool
    reason: str | None
    n_images: int | None = None
    silhouette: SilhouetteSweep | None = None
    best_k: int | None = None
    labels: LabelScores | None = None
    embed_seconds_per_image: float | None = None
    embed_seconds_total: float | None = None
    embedding: EmbedReport | None = None
    map: MapPoints | None = None

    @classmethod
    def scored(cls, evaluation: Evaluation, **fields) -> "BackbonePanel":
        """An available backbone's panel with its evaluation's scores."""
        return cls(**fields, available=True, reason=None, n_images=evaluation.n_images, silhouette=evaluation.silhouette,
                   best_k=evaluation.best_k, labels=evaluation.labels)

    def absent(self) -> set[str]:
        scored = self.available and self.n_images is not None
        return super().absent() | (set() if scored else set(self.SCORES))


class NeighbourOverlap(Result):
    """Mean Jaccard overlap of the top-k neighbour sets of the images two backbones share."""

    a: str
    b: str
    k: int
    n: int = Field(description="Images with vectors in both spaces.")
    jaccard: float = Field(description="Mean Jaccard overlap of the k nearest neighbours.")


class Sample(Result):
    """What a result was computed on: a seeded sample by label (docs/tuning.md) or every image."""

    size: int = Field(description="Images in the sample.")
    of: int = Field(description="Images it was drawn from.")
    seed: int
    stratified_by: str = Field(description="`label` (images without one are a stratum of their own).")
    cap: int | None = Field(description="The sample's cap (the size unless the collection is smaller); null: all images "
                                        "were asked for.")
    rule: str = Field("stratified", description="`all` (every image), `stratified` (every label keeps at least 11 "
                                                "images or all it has, the rest in proportion) or `whole labels` (many "
                                                "labels: a seeded subset of labels, each kept whole up to a tenth of the cap).")
    labels: int | None = Field(None, description="Labels in the sample (images without one count as one).")


class Comparison(Result):
    """Side-by-side evaluation of several backbones on one collection."""

    collection: str
    n_images: int = Field(description="Images of the collection (status ok).")
    backbones: list[BackbonePanel]
    neighbour_overlap: list[NeighbourOverlap] = Field(description="One per pair of available backbones.")
    sample: Sample | None = Field(None, description="The images each backbone was evaluated on (each panel's "
                                                    "`n_images`: those of the sample with its vectors).")

    @property
    def available(self) -> list[BackbonePanel]:
        return [p for p in self.backbones if p.available]

    def to_dict(self, *, maps: bool = True) -> dict:
        return self.model_dump(mode="json", exclude=None if maps else {"backbones": {"__all__": {"map"}}})
