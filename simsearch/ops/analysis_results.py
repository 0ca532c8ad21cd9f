"""Typed results of the analysis operations (:mod:`simsearch.ops.analysis`).

Each has ``to_dict()``: the JSON shape the API sends, the CLI prints with ``--json`` and the
comparison report stores beside its HTML. The shapes are documented on each class; keep them
stable (the API's response schemas describe them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NO_LABELS_NOTE = "no labels (or only one): external scores need at least two distinct labels"


@dataclass(frozen=True)
class SilhouetteSweep:
    """Mean silhouette for each k of a k-means sweep: the curve ``cluster -k auto`` chooses from.

    ``to_dict()``: ``{"ks": [int], "scores": [float], "best_k": int, "sample_size": int,
    "seconds": float, "metric": str, "centred": bool}`` (``ks``: the k tried, a range that grows
    with the collection, :func:`simsearch.analysis.k_auto.k_grid`; ``best_k``: the highest score;
    ``sample_size``: the points each k was fitted and scored on; ``seconds``: how long the sweep
    took when it was computed; ``metric``: the silhouette's distance; ``centred``: computed on
    mean-centred vectors)."""

    ks: list[int]
    scores: list[float]
    best_k: int
    sample_size: int
    seconds: float
    metric: str = "cosine"
    centred: bool = True

    def score_at(self, k: int) -> float | None:
        return dict(zip(self.ks, self.scores)).get(k)

    def to_dict(self) -> dict:
        return {"ks": list(self.ks), "scores": list(self.scores), "best_k": self.best_k,
                "sample_size": self.sample_size, "seconds": self.seconds, "metric": self.metric,
                "centred": self.centred}

    @classmethod
    def from_dict(cls, d: dict) -> "SilhouetteSweep":
        return cls(ks=[int(k) for k in d["ks"]], scores=[float(s) for s in d["scores"]], best_k=int(d["best_k"]),
                   sample_size=int(d["sample_size"]), seconds=float(d.get("seconds") or 0.0),
                   metric=str(d.get("metric", "euclidean")), centred=bool(d.get("centred", False)))


@dataclass(frozen=True)
class Cluster:
    """``to_dict()``: ``{"cluster": int, "size": int, "representatives": [image id], "members": [image id]}``
    (representatives: the members nearest the cluster's centre, nearest first)."""

    cluster: int
    size: int
    representatives: list[int]
    members: list[int]

    def to_dict(self) -> dict:
        return {"cluster": self.cluster, "size": self.size, "representatives": list(self.representatives),
                "members": list(self.members)}

    @classmethod
    def from_dict(cls, d: dict) -> "Cluster":
        return cls(int(d["cluster"]), int(d["size"]), [int(i) for i in d["representatives"]], [int(i) for i in d["members"]])


@dataclass(frozen=True)
class LabelAgreement:
    """How a clustering relates to the labels, read against the labels of the moment.

    ``makeup``: per cluster (in cluster order), ``[(label or None, count)]``, most common first
    (None: images without a label). ``ari``: the adjusted Rand index against the labels, over the
    labelled images, at each k of the silhouette sweep (parallel to its ``ks``; None without two
    distinct labels); ``ari_at_k``: at the clustering's own k.

    ``to_dict()``: ``{"n_labelled", "n_labels", "ari": [float|null], "ari_at_k": float|null,
    "note": str|null}`` (the make-up goes into each cluster, see :class:`ClusterResult`)."""

    n_labelled: int
    n_labels: int
    ari: list[float | None]
    ari_at_k: float | None
    makeup: list[list[tuple[str | None, int]]]

    @property
    def note(self) -> str | None:
        return NO_LABELS_NOTE if self.ari_at_k is None else None

    def to_dict(self) -> dict:
        return {"n_labelled": self.n_labelled, "n_labels": self.n_labels, "ari": list(self.ari),
                "ari_at_k": self.ari_at_k, "note": self.note}

    def stored(self) -> dict:
        return {**self.to_dict(), "makeup": [[[lab, n] for lab, n in m] for m in self.makeup]}

    @classmethod
    def from_stored(cls, d: dict) -> "LabelAgreement":
        return cls(n_labelled=int(d["n_labelled"]), n_labels=int(d["n_labels"]),
                   ari=[None if a is None else float(a) for a in d["ari"]],
                   ari_at_k=None if d["ari_at_k"] is None else float(d["ari_at_k"]),
                   makeup=[[(lab, int(n)) for lab, n in m] for m in d["makeup"]])


@dataclass(frozen=True)
class ClusterResult:
    """k-means clusters of a collection's vectors.

    ``to_dict()``: ``{"collection": str, "backbone": str, "k": int, "auto": bool (k chosen by
    the silhouette sweep: its ``best_k``), "silhouette_at_k": float (scored as the sweep scores, also
    for a k outside it), "silhouette": SilhouetteSweep, "n_images": int,
    "clusters": [Cluster], "cached": bool (read from the cache, not computed now)}``, and once the
    labels part is attached (:mod:`simsearch.ops.cluster_labels`): ``"version"`` (identifies the
    vectors clustered: names and labels are saved against it), ``"label_agreement":
    LabelAgreement`` and in each cluster ``"name"`` (str|null) and ``"labels"`` (``[{"label":
    str|null, "count": int}]``, most common first). :meth:`base_dict` is the part cached under
    the vectors alone."""

    collection: str
    backbone: str
    k: int
    auto: bool
    silhouette_at_k: float | None
    silhouette: SilhouetteSweep
    n_images: int
    clusters: list[Cluster]
    cached: bool = False
    version: str | None = None
    agreement: LabelAgreement | None = None
    names: dict[int, str] = field(default_factory=dict)

    def base_dict(self) -> dict:
        return {"collection": self.collection, "backbone": self.backbone, "k": self.k, "auto": self.auto,
                "silhouette_at_k": self.silhouette_at_k, "silhouette": self.silhouette.to_dict(),
                "n_images": self.n_images, "clusters": [c.to_dict() for c in self.clusters], "cached": self.cached}

    def to_dict(self) -> dict:
        out = self.base_dict()
        if self.version is not None:
            out["version"] = self.version
        if self.agreement is not None:
            out["label_agreement"] = self.agreement.to_dict()
            for c, mix in zip(out["clusters"], self.agreement.makeup):
                c["name"] = self.names.get(c["cluster"])
                c["labels"] = [{"label": lab, "count": n} for lab, n in mix]
        return out

    @classmethod
    def from_dict(cls, d: dict, *, cached: bool) -> "ClusterResult":
        return cls(collection=d["collection"], backbone=d["backbone"], k=int(d["k"]), auto=bool(d["auto"]),
                   silhouette_at_k=d["silhouette_at_k"], silhouette=SilhouetteSweep.from_dict(d["silhouette"]),
                   n_images=int(d["n_images"]), clusters=[Cluster.from_dict(c) for c in d["clusters"]], cached=cached)


@dataclass(frozen=True)
class ExternalScores:
    """Agreement of a k-means clustering with the labels (scikit-learn's definitions).

    ``to_dict()``: ``{"k", "ari", "nmi", "homogeneity", "completeness", "v_measure", "n_samples",
    "n_classes", "n_clusters"}``."""

    k: int
    ari: float
    nmi: float
    homogeneity: float
    completeness: float
    v_measure: float
    n_samples: int
    n_classes: int
    n_clusters: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "ExternalScores":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class LabelScores:
    """Scores against the labels, over the labelled images.

    ``to_dict()``: ``{"at_best_k": ExternalScores, "at_n_labels": ExternalScores | null,
    "knn_precision_at_<K>": float, "precision_k": int, "per_label": [{"label", "n", "precision"}],
    "contingency": {"k", "labels": [str], "clusters": [int], "counts": [[int]]} | null}`` where
    ``<K>`` is the precision asked for (10), ``precision_k`` the k actually used (smaller when
    there are few labelled images), ``per_label`` the same precision averaged over each label's
    images, and ``contingency`` the images of each label (row) in each k-means cluster (column)
    at k = the number of labels (else at the best k)."""

    at_best_k: ExternalScores
    at_n_labels: ExternalScores | None
    knn_precision: float
    precision_k: int
    k_precision: int = 10
    per_label: list[dict] = field(default_factory=list)
    contingency: dict | None = None

    def to_dict(self) -> dict:
        return {"at_best_k": self.at_best_k.to_dict(),
                "at_n_labels": self.at_n_labels.to_dict() if self.at_n_labels else None,
                f"knn_precision_at_{self.k_precision}": self.knn_precision, "precision_k": self.precision_k,
                "per_label": [dict(r) for r in self.per_label], "contingency": self.contingency}

    @classmethod
    def from_dict(cls, d: dict) -> "LabelScores":
        key = next(k for k in d if k.startswith("knn_precision_at_"))
        return cls(at_best_k=ExternalScores.from_dict(d["at_best_k"]),
                   at_n_labels=ExternalScores.from_dict(d["at_n_labels"]) if d.get("at_n_labels") else None,
                   knn_precision=float(d[key]), precision_k=int(d["precision_k"]),
                   k_precision=int(key.removeprefix("knn_precision_at_")),
                   per_label=list(d.get("per_label") or []), contingency=d.get("contingency"))



@dataclass(frozen=True)
class Evaluation:
    """Clustering and retrieval quality of one backbone's vectors.

    ``to_dict()``: ``{"collection", "backbone", "n_images", "silhouette": SilhouetteSweep,
    "best_k", "n_labelled", "labels": LabelScores | null, "n_labels"}``, plus ``"note"`` (why
    there are no label scores) when ``labels`` is null."""

    collection: str
    backbone: str
    n_images: int
    silhouette: SilhouetteSweep
    n_labelled: int
    n_labels: int
    labels: LabelScores | None

    @property
    def best_k(self) -> int:
        return self.silhouette.best_k

    @property
    def note(self) -> str | None:
        return NO_LABELS_NOTE if self.labels is None else None

    def to_dict(self) -> dict:
        out = {"collection": self.collection, "backbone": self.backbone, "n_images": self.n_images,
               "silhouette": self.silhouette.to_dict(), "best_k": self.best_k, "n_labelled": self.n_labelled,
               "labels": self.labels.to_dict() if self.labels else None, "n_labels": self.n_labels}
        if self.labels is None:
            out["note"] = NO_LABELS_NOTE
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Evaluation":
        return cls(collection=d["collection"], backbone=d["backbone"], n_images=int(d["n_images"]),
                   silhouette=SilhouetteSweep.from_dict(d["silhouette"]), n_labelled=int(d["n_labelled"]),
                   n_labels=int(d["n_labels"]), labels=LabelScores.from_dict(d["labels"]) if d.get("labels") else None)


@dataclass(frozen=True)
class MapResult:
    """2-D coordinates of every image (t-SNE or PCA) with its label and cluster.

    ``to_dict()``: ``{"collection", "backbone", "method": "tsne"|"pca", "n": int, "ids": [int],
    "x": [float], "y": [float], "labels": [str|null], "clusters": [int], "k": int (clusters at
    the k chosen by silhouette), "seconds": float (time the projection took), "cached": bool}``;
    the lists are parallel, one entry per image."""

    collection: str
    backbone: str
    method: str
    ids: np.ndarray  # int64 (N,)
    coords: np.ndarray  # float32 (N, 2)
    labels: list[str | None]
    clusters: np.ndarray  # int (N,)
    k: int
    seconds: float | None
    cached: bool = False

    @property
    def n(self) -> int:
        return int(len(self.ids))

    @property
    def x(self) -> np.ndarray:
        return self.coords[:, 0]

    @property
    def y(self) -> np.ndarray:
        return self.coords[:, 1]

    def points(self) -> dict:
        """The per-image lists only (what a comparison panel shows)."""
        return {"ids": self.ids.tolist(), "x": self.x.tolist(), "y": self.y.tolist(), "labels": list(self.labels),
                "clusters": np.asarray(self.clusters).astype(int).tolist(), "k": self.k}

    def to_dict(self) -> dict:
        p = self.points()
        return {"collection": self.collection, "backbone": self.backbone, "method": self.method, "n": self.n,
                "ids": p["ids"], "x": p["x"], "y": p["y"], "labels": p["labels"], "clusters": p["clusters"],
                "k": self.k, "seconds": self.seconds, "cached": self.cached}


@dataclass(frozen=True)
class EmbedReport:
    """Images embedded for a comparison. ``to_dict()``: ``{"embedded": int, "failed": int,
    "errors": [{"file", "reason"}]}``."""

    embedded: int = 0
    failed: int = 0
    errors: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"embedded": self.embedded, "failed": self.failed, "errors": list(self.errors)}


@dataclass(frozen=True)
class BackbonePanel:
    """One backbone in a comparison.

    ``to_dict()``: ``{"backbone", "dim", "input_size", "available": bool, "reason": str|null}``;
    ``"embedding": EmbedReport`` when images were embedded for it; when available also
    ``"n_images", "silhouette", "best_k", "labels"`` (as in :class:`Evaluation`),
    ``"embed_seconds_per_image", "embed_seconds_total"`` (model time, null when unknown) and,
    when maps were asked for, ``"map": {"ids", "x", "y", "labels", "clusters", "k"}``."""

    backbone: str
    dim: int
    input_size: int | None  # None: imported vectors (no model)
    available: bool = True
    reason: str | None = None
    embedding: EmbedReport | None = None
    evaluation: Evaluation | None = None
    embed_seconds_per_image: float | None = None
    embed_seconds_total: float | None = None
    map: MapResult | None = None

    def to_dict(self) -> dict:
        out = {"backbone": self.backbone, "dim": self.dim, "input_size": self.input_size, "available": self.available,
               "reason": self.reason}
        if self.embedding is not None:
            out["embedding"] = self.embedding.to_dict()
        if self.available and self.evaluation is not None:
            ev = self.evaluation
            out.update({"n_images": ev.n_images, "silhouette": ev.silhouette.to_dict(), "best_k": ev.best_k,
                        "labels": ev.labels.to_dict() if ev.labels else None,
                        "embed_seconds_per_image": self.embed_seconds_per_image,
                        "embed_seconds_total": self.embed_seconds_total})
            if self.map is not None:
                out["map"] = self.map.points()
        return out


@dataclass(frozen=True)
class Overlap:
    """Mean Jaccard overlap of the top-k neighbour sets of the images two backbones share.
    ``to_dict()``: ``{"a", "b", "k", "n", "jaccard"}``."""

    a: str
    b: str
    k: int
    n: int
    jaccard: float

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "k": self.k, "n": self.n, "jaccard": self.jaccard}


@dataclass(frozen=True)
class Comparison:
    """Several backbones side by side on one collection.

    ``to_dict()``: ``{"collection", "n_images" (ok images), "backbones": [BackbonePanel],
    "neighbour_overlap": [Overlap]}`` (one overlap per pair of available backbones)."""

    collection: str
    n_images: int
    backbones: list[BackbonePanel]
    neighbour_overlap: list[Overlap]

    @property
    def available(self) -> list[BackbonePanel]:
        return [p for p in self.backbones if p.available]

    def to_dict(self, *, maps: bool = True) -> dict:
        panels = [p.to_dict() for p in self.backbones]
        if not maps:
            for p in panels:
                p.pop("map", None)
        return {"collection": self.collection, "n_images": self.n_images, "backbones": panels,
                "neighbour_overlap": [o.to_dict() for o in self.neighbour_overlap]}
