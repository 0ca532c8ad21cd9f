"""Responses of the analysis endpoints: clusters, map, evaluation, comparison (see
:mod:`simsearch.study` for how each is computed and cached)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Score = float | None  # a metric; null where it cannot be computed


class SilhouetteSweep(BaseModel):
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


class LabelCount(BaseModel):
    label: str | None = Field(description="A label; null counts the images without one.")
    count: int


class Cluster(BaseModel):
    cluster: int
    size: int
    representatives: list[int] = Field(description="Image ids nearest the cluster's centre.")
    members: list[int] = Field(description="Every image id in the cluster.")
    name: str | None = Field(None, description="The name a curator gave the cluster (null: none).")
    labels: list[LabelCount] = Field(default_factory=list, description="The cluster's label make-up: images per label "
                                                                       "(now), most common first.")


class LabelAgreement(BaseModel):
    """How the clusters agree with the labels (computed over the labelled images)."""

    n_labelled: int
    n_labels: int = Field(description="Distinct labels: the k to compare with the silhouette's choice.")
    ari: list[Score] = Field(description="Adjusted Rand index against the labels at each k of `silhouette.ks` "
                                         "(null without two distinct labels).")
    ari_at_k: Score = Field(description="At the clusters' k.")
    note: str | None = None


class Clusters(BaseModel):
    """k-means clusters of a collection's vectors (k chosen by the silhouette curve, `silhouette`, when `k=auto`)."""

    collection: str
    backbone: str
    k: int
    auto: bool = Field(description="k was chosen by the silhouette sweep (its `best_k`).")
    silhouette_at_k: Score = Field(description="Mean silhouette at `k`, scored as the sweep scores (also for a k "
                                               "outside `silhouette.ks`).")
    silhouette: SilhouetteSweep
    n_images: int
    clusters: list[Cluster]
    cached: bool = Field(description="Served from the analysis cache (the vectors did not change).")
    version: str = Field(description="Identifies the vectors clustered; send it back when naming or labelling a "
                                     "cluster (409 if the clusters changed since).")
    label_agreement: LabelAgreement


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


class Map(BaseModel):
    """2-D map (t-SNE): parallel arrays, one entry per image; coordinates rounded to 4 significant digits."""

    collection: str
    backbone: str
    method: str = Field(description="`tsne` or `pca`.")
    n: int
    ids: list[int]
    x: list[float | None]
    y: list[float | None]
    labels: list[str | None]
    clusters: list[int] = Field(description="Cluster of each image at the automatically chosen k.")
    k: int
    seconds: float | None = Field(description="Time the projection took when it was computed.")
    cached: bool


class ExternalScores(BaseModel):
    """Agreement of k-means clusters with the labels."""

    k: int
    ari: float = Field(description="Adjusted Rand index.")
    nmi: float = Field(description="Normalised mutual information.")
    homogeneity: float
    completeness: float
    v_measure: float
    n_samples: int
    n_classes: int
    n_clusters: int


class LabelPrecision(BaseModel):
    label: str
    n: int = Field(description="Images with the label.")
    precision: float = Field(description="Mean kNN precision of the label's images.")


class Contingency(BaseModel):
    """Images of each label (row) in each k-means cluster (column)."""

    k: int = Field(description="Clusters: the number of distinct labels (the best k when there are as many labels as images).")
    labels: list[str]
    clusters: list[int]
    counts: list[list[int]] = Field(description="counts[label][cluster].")


class LabelScores(BaseModel):
    model_config = ConfigDict(extra="allow")  # knn_precision_at_<k> is named after its k

    at_best_k: ExternalScores
    at_n_labels: ExternalScores | None
    knn_precision_at_10: float = Field(description="Leave-one-out kNN precision@10 over the labelled images.")
    precision_k: int = Field(description="The k actually used (fewer when there are few labelled images).")
    per_label: list[LabelPrecision] = Field(description="The same precision for each label's images.")
    contingency: Contingency | None = Field(description="Labels against k-means clusters.")


class Evaluation(BaseModel):
    """Retrieval and clustering quality against the labels."""

    collection: str
    backbone: str
    n_images: int
    silhouette: SilhouetteSweep
    best_k: int
    n_labelled: int
    n_labels: int
    labels: LabelScores | None = Field(description="Null without at least two distinct labels (see `note`).")
    note: str | None = None


class Embedding(BaseModel):
    embedded: int
    failed: int
    errors: list[dict]


class PanelMap(BaseModel):
    ids: list[int]
    x: list[float | None]
    y: list[float | None]
    labels: list[str | None]
    clusters: list[int]
    k: int


class BackbonePanel(BaseModel):
    """One backbone's column in the comparison; `available: false` with a `reason` (no vectors,
    no weights) and no scores otherwise."""

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
    embedding: Embedding | None = None
    map: PanelMap | None = None


class NeighbourOverlap(BaseModel):
    a: str
    b: str
    k: int
    n: int = Field(description="Images with vectors in both spaces.")
    jaccard: float = Field(description="Mean Jaccard overlap of the k nearest neighbours.")


class Comparison(BaseModel):
    """Side-by-side evaluation of several backbones on one collection."""

    collection: str
    n_images: int
    backbones: list[BackbonePanel]
    neighbour_overlap: list[NeighbourOverlap]
