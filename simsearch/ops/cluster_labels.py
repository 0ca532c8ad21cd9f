"""Clusters as a curator reads them: label make-up, agreement with the labels, names, and saving a
cluster as a label.

:func:`simsearch.ops.analysis.clusters` is cached under the vectors alone. What depends on the
labels (each cluster's make-up, the adjusted Rand index at every k of the silhouette sweep) is
cached beside it, in the same result cache, under the fingerprint of the vectors *and* the
labels: a label change (saving a cluster as a label, say) recomputes only that part, from the
cached sweep, without reading a vector. Cluster names are stored there too (kind
``cluster_names``), per clustering: the vectors' fingerprint and the k actually used, so
``k=auto`` and the same k asked for share their names. Names belong to one clustering: when
images are added or removed the clusters are computed anew and unnamed.

:func:`lookup` / :func:`compute` are the analysis task's (cheap lookup / background job);
:func:`rename` and :func:`save_as_label` write, against the clusters as last computed, refusing
(409) when the vectors changed since the caller saw them (``version``).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from simsearch import limits
from simsearch.errors import Conflict, NotFound
from simsearch.ops import analysis
from simsearch.ops import vectors as vecs
from simsearch.ops.analysis_results import NO_LABELS_NOTE, ClusterResult, Clusters, StoredLabelAgreement
from simsearch.store import results
from simsearch.store.results import ResultKey
from simsearch.analysis import external_scores
from simsearch.ops.images import clean_label, label_images

REPRESENTATIVES = 8  # the API's representatives per cluster
KIND_AGREEMENT = "cluster_labels"
KIND_NAMES = "cluster_names"


def version_of(vs: vecs.VectorSet) -> str:
    """The clustering's ``version`` as responses show it: which vectors it was computed from."""
    return vs.fingerprint[:16]


def _agreement_key(vs: vecs.VectorSet, base: ClusterResult, labels: list) -> ResultKey:
    fp = vecs.combined_fingerprint(vs.fingerprint, vecs.labels_fingerprint(labels))
    ks = base.silhouette.ks
    params = f"{analysis.FORMAT};k={base.k};ks={ks[0] if ks else 0}..{ks[-1] if ks else 0};seed={analysis.SEED}"
    return ResultKey(vs.collection_id, vs.space, KIND_AGREEMENT, params, fp)


def _names_key(vs: vecs.VectorSet, k: int) -> ResultKey:
    return ResultKey(vs.collection_id, vs.space, KIND_NAMES, f"k={k};seed={analysis.SEED}", vs.fingerprint)


def names(ctx, vs: vecs.VectorSet, k: int) -> dict[int, str]:
    hit = results.get(ctx.db, _names_key(vs, k), arrays=())
    return {int(c): n for c, n in (hit.info.get("names") or {}).items()} if hit is not None else {}


def _attach(ctx, vs, base: ClusterResult, agreement: StoredLabelAgreement) -> Clusters:
    return Clusters.attach(base, agreement, names(ctx, vs, base.k), version_of(vs))


def lookup(ctx, collection: str, space: str | None = None, k="auto",
           n_representatives: int = REPRESENTATIVES) -> Clusters | None:
    """The clusters with their labels part, when both are cached for the current vectors and
    labels; else None (the job of :func:`compute` makes what is missing)."""
    vs = vecs.peek(ctx, collection, space)
    base = analysis.lookup_clusters(ctx, collection, vs.space, k, n_representatives, vectors=vs)
    if base is None:
        return None
    hit = results.get(ctx.db, _agreement_key(vs, base, vs.labels(ctx)), arrays=())
    return _attach(ctx, vs, base, StoredLabelAgreement.model_validate(hit.info)) if hit is not None else None


def agreement(labels: list, assignments: dict[int, np.ndarray], at_k: np.ndarray,
              clusters: list[np.ndarray]) -> StoredLabelAgreement:
    """The labels part from the images' ``labels`` (in id order), the cluster of each image at
    every sweep k (``assignments``; -1: not assigned at that k, outside the sweep's sample: the ARI
    curve is over the labelled images that are) and at the clustering's k (``at_k``), and each
    cluster's members as positions in that order."""
    lab = np.array(["" if v is None else v for v in labels], dtype=object)
    mask = np.array([v is not None for v in labels], dtype=bool)
    distinct = {v for v in labels if v is not None}
    scorable = int(mask.sum()) >= 2 and len(distinct) >= 2

    def ari(pred: np.ndarray) -> float | None:
        pred = np.asarray(pred)
        keep = mask & (pred >= 0)
        if not scorable or keep.sum() < 2 or len(set(lab[keep])) < 2:
            return None
        return float(external_scores(lab[keep], pred[keep])["ari"])

    makeup = []
    for positions in clusters:
        counts = Counter(labels[i] for i in positions.tolist())
        makeup.append(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or "")))
    at_k_score = ari(at_k)
    return StoredLabelAgreement(n_labelled=int(mask.sum()), n_labels=len(distinct),
                                ari=[ari(assignments[k]) for k in sorted(assignments)], ari_at_k=at_k_score,
                                note=NO_LABELS_NOTE if at_k_score is None else None, makeup=makeup)


def compute(ctx, collection: str, space: str | None = None, k="auto", n_representatives: int = REPRESENTATIVES, *,
            progress: analysis.Progress | None = None) -> Clusters:
    """The clusters (:func:`simsearch.ops.analysis.clusters`, cached or computed) with their labels
    part (cached or computed from the cached sweep)."""
    base = analysis.clusters(ctx, collection, space, k, n_representatives, progress=progress)
    vs = vecs.peek(ctx, collection, base.backbone)
    if base.n_images != len(vs):
        raise Conflict(f"the images of collection {collection!r} changed while the clusters were computed: try again",
                       field="collection")
    labels = vs.labels(ctx)
    key = _agreement_key(vs, base, labels)
    hit = results.get(ctx.db, key, arrays=())
    if hit is not None:
        return _attach(ctx, vs, base, StoredLabelAgreement.model_validate(hit.info))
    assignments = analysis.sweep_assignments(ctx, vs)
    at_k = np.empty(len(vs), dtype=np.int32)
    positions = []
    for c in base.clusters:
        pos = np.searchsorted(vs.ids, np.asarray(c.members, dtype=np.int64))
        at_k[pos] = c.cluster
        positions.append(pos)
    result = agreement(labels, assignments, at_k, positions)
    results.put(ctx.db, key, result.to_dict())
    return _attach(ctx, vs, base, result)


# ---- writes -----------------------------------------------------------------------------------


def current_clusters(ctx, collection: str, space: str | None, k, cluster: int, version: str | None):
    """(clusters as last computed, their vectors) for a write, or 409 when there are none for the
    current vectors or they are not the ``version`` the caller saw; 404 for an unknown cluster."""
    vs = vecs.peek(ctx, collection, space)
    base = analysis.lookup_clusters(ctx, collection, vs.space, k, REPRESENTATIVES, vectors=vs)
    if base is None:
        raise Conflict(f"no clusters of {collection!r} at k={k} are computed for its current images: "
                       "open them first (GET .../clusters), then name or label them", field="k")
    if version is not None and version != version_of(vs):
        raise Conflict("the clusters changed since they were shown (images were added or removed): "
                       "load them again", field="version")
    if not 0 <= cluster < base.k:
        raise NotFound(f"there is no cluster {cluster}: the clusters are numbered 0..{base.k - 1}", field="cluster")
    return base, vs


def rename(ctx, collection: str, space: str | None, k, cluster: int, name: str | None, *,
           version: str | None = None) -> dict:
    """Name (``None``: unname) one cluster of the clustering last computed for ``k``."""
    base, vs = current_clusters(ctx, collection, space, k, cluster, version)
    name = clean_label(name, field="name")
    current = names(ctx, vs, base.k)
    if name is None:
        current.pop(cluster, None)
    else:
        current[cluster] = name
    results.put(ctx.db, _names_key(vs, base.k), {"names": {str(c): n for c, n in sorted(current.items())}})
    return {"collection": collection, "backbone": vs.space, "k": base.k, "cluster": cluster, "name": name,
            "version": version_of(vs)}


def save_as_label(ctx, collection: str, space: str | None, k, cluster: int, label: str, *,
                  version: str | None = None) -> dict:
    """Give every image of one cluster the label ``label`` (replacing theirs)."""
    base, vs = current_clusters(ctx, collection, space, k, cluster, version)
    label = limits.check(limits.Label, label, "label").strip()
    members = base.clusters[cluster].members
    updated = label_images(ctx, collection, members, label)
    return {"collection": collection, "backbone": vs.space, "k": base.k, "cluster": cluster, "label": label,
            "updated": updated, "version": version_of(vs)}
