"""Scores of a clustering against known labels, and the points that best represent each cluster."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _validate as v


def _codes(labels: np.ndarray, field: str) -> np.ndarray:
    try:
        return np.unique(labels, return_inverse=True)[1].reshape(-1)
    except TypeError:
        raise v.InvalidInput(f"{field} mixes label types that cannot be compared", field=field) from None


def external_scores(labels_true: Any, labels_pred: Any) -> dict[str, float | int]:
    """Agreement of a clustering ``labels_pred`` with reference classes ``labels_true``.

    Both are 1-D sequences of the same length; values may be ints or strings (only equality
    matters). Returns scikit-learn's ``ari`` (adjusted Rand index), ``nmi`` (normalized mutual
    information, arithmetic mean), ``homogeneity``, ``completeness`` and ``v_measure``, plus
    ``n_samples``, ``n_classes`` and ``n_clusters``.
    """
    from sklearn import metrics

    t = np.asarray(labels_true)
    if t.ndim != 1:
        raise v.InvalidInput(f"labels_true must be 1-D, got shape {t.shape}", field="labels_true")
    if t.shape[0] == 0:
        raise v.InvalidInput("labels_true is empty", field="labels_true")
    t = _codes(v.labels(t, t.shape[0], "labels_true"), "labels_true")
    p = _codes(v.labels(labels_pred, t.shape[0], "labels_pred"), "labels_pred")
    h, c, vm = metrics.homogeneity_completeness_v_measure(t, p)
    return {
        "ari": float(metrics.adjusted_rand_score(t, p)),
        "nmi": float(metrics.normalized_mutual_info_score(t, p)),
        "homogeneity": float(h),
        "completeness": float(c),
        "v_measure": float(vm),
        "n_samples": int(t.shape[0]),
        "n_classes": int(t.max()) + 1,
        "n_clusters": int(p.max()) + 1,
    }


def representatives(X: Any, labels: Any, centroids: Any, n: int = 5, *, block: int = 8_192) -> dict[int, list[int]]:
    """For each cluster id ``0..k-1`` (k = ``len(centroids)``), the row indices of its members
    nearest its centroid (euclidean; on unit vectors the same order as cosine to the centroid),
    nearest first, at most ``n`` of them; ties go to the lower row index. An empty cluster maps
    to an empty list.
    """
    X = v.matrix(X, "X")
    C = v.matrix(centroids, "centroids")
    if C.shape[1] != X.shape[1]:
        raise v.InvalidInput(
            f"centroids have {C.shape[1]} features but X has {X.shape[1]}", field="centroids"
        )
    k = C.shape[0]
    y = v.cluster_labels(labels, X.shape[0], k)
    n = v.integer(n, "n", low=1)
    dist = np.empty(X.shape[0], dtype=np.float64)
    for start in range(0, X.shape[0], block):
        diff = X[start : start + block] - C[y[start : start + block]]
        dist[start : start + block] = np.einsum("ij,ij->i", diff, diff, dtype=np.float64)
    order = np.lexsort((np.arange(X.shape[0]), dist, y))  # by cluster, then distance, then row
    bounds = np.searchsorted(y[order], np.arange(k + 1))
    return {c: [int(i) for i in order[bounds[c] : min(bounds[c + 1], bounds[c] + n)]] for c in range(k)}
