"""Choosing k (:func:`auto_sweep`, what ``cluster -k auto`` runs): the k tried grow with the
collection (:func:`k_grid`: every k up to 10, then steps of x1.5 up to ``N / 10`` points per
cluster, at most 200). Each k is fitted on one seeded sample of at most 10,000 points, scored by
the mean cosine silhouette on that sample; then every point is assigned to the nearest centroid
of the chosen k in one pass (another k later: :func:`assign_clusters`, from the stored fits). The sweep works on *mean-centred* vectors (the collection's mean
subtracted, then L2-normalised again): CNN features are non-negative and share a large common
component, so the raw cosines of a collection are all high and the silhouette favours the one or
two directions of largest variance (k = 2 or 3); centred, the silhouette peaks at the grain of
the collection (see docs/clusters.md for the figures).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from . import _validate as v
from .cluster import (REFINE_ITER, SILHOUETTE_METRICS, KMeansResult, SweepResult, _assign, _assign_and_sum, _blocked_sums, _canonical,
                      _check_ks, _sample, _train_faiss, centre_normalise, silhouette_many)

# The k of the automatic sweep (k_grid): every k up to DENSE_K, then steps of K_STEP up to one
# cluster per POINTS_PER_CLUSTER points, at most K_MAX (the API's largest k).
DENSE_K = 10
K_STEP = 1.5
POINTS_PER_CLUSTER = 10
K_MAX = 200
SWEEP_SAMPLE = 10_000  # the automatic sweep fits and scores every k on a seeded sample of this many
RESTART_BUDGET = 40  # restarts at k: min(n_init, max(1, RESTART_BUDGET // k)) (large k vary little)


def k_grid(n: int, *, k_max: int = K_MAX) -> list[int]:
    """The k an automatic sweep over ``n`` points tries: every k from 2 to :data:`DENSE_K` (10),
    then geometric steps of :data:`K_STEP` (x1.5, rounded) up to ``n // POINTS_PER_CLUSTER``
    (clusters of 10 points on average), at most ``k_max`` (200), always below ``n``. So 2..10 up
    to 100 points, 2..40 (13 k) at 400, 2..163 (16 k) at 1,632 and 2..200 (17 k) from 2,000 on:
    the range grows with the collection, the number of k with its logarithm."""
    n = v.integer(n, "n", low=3)
    k_max = v.integer(k_max, "k_max", low=2)
    top = min(k_max, n - 1, max(DENSE_K, n // POINTS_PER_CLUSTER))
    ks = list(range(2, min(DENSE_K, top) + 1))
    if top > DENSE_K:
        steps = math.ceil(math.log(top / DENSE_K) / math.log(K_STEP))
        ks += sorted({int(round(k)) for k in np.geomspace(DENSE_K, top, steps + 1)[1:]})
    return ks


def restarts(k: int, n_init: int) -> int:
    """k-means restarts at ``k`` in a sweep: ``n_init`` for small k, fewer as k grows (the best of
    several starts differs little at large k, and each start costs k times more)."""
    return max(1, min(n_init, RESTART_BUDGET // k))


def _column_mean(X: np.ndarray, block: int = 65_536) -> np.ndarray:
    total = np.zeros(X.shape[1], dtype=np.float64)
    for start in range(0, X.shape[0], block):
        total += X[start : start + block].sum(axis=0, dtype=np.float64)
    return (total / X.shape[0]).astype(np.float32)


def auto_sweep(
    X: Any,
    ks: Iterable[int] | None = None,
    seed: int = 0,
    sample_size: int | None = SWEEP_SAMPLE,
    *,
    metric: str = "cosine",
    n_init: int = 10,
    centre: bool = True,
    assign: Iterable[int] | None = None,
) -> SweepResult:
    """k-means at every k of ``ks`` (default :func:`k_grid` of N) scored by mean silhouette, fitted
    on a sample so that it stays fast at a million points.

    1. One seeded sample of ``m = min(N, sample_size)`` rows (as :func:`silhouette_sweep` draws it),
       mean-centred and re-normalised (:func:`centre_normalise`, the mean over all N) unless
       ``centre=False``.
    2. For each k: FAISS k-means on the sample (``restarts(k, n_init)`` seeded restarts, then Lloyd
       iterations over the sample), and the mean silhouette (``metric``) of the sample's labels,
       all k sharing one distance pass. ``sample_labels[k]``: those labels (rows
       ``sample_indices``), for every k.
    3. Only for the k of ``assign`` (default: ``best_k`` alone): one pass over all N rows assigns
       each to the nearest centroid (in the same space; :func:`assign_clusters` does the same
       later for another k from ``fitted[k]`` and ``mean``); ``labels[k]`` / ``centroids[k]`` /
       ``inertias[k]`` then hold every row's cluster, the means of the rows *as given* (not
       centred) and the squared distances to them. With ``m == N`` the labels are the fitted ones.

    Cost: the fits are O(m x sum(k) x D) whatever N, the pass O(N x k x D) for the assigned k
    only. ``best_k``: the highest score, ties to the smaller k. Deterministic for a given seed;
    the fit at a k does not depend on the other k, so ``auto_sweep(X, ks=[k])`` gives the same
    clusters at k as a sweep that contains k.
    """
    X = v.matrix(X, "X", min_rows=3)
    n = X.shape[0]
    metric = v.choice(metric, "metric", SILHOUETTE_METRICS)
    seed = v.seed(seed)
    n_init = v.integer(n_init, "n_init", low=1)
    m, idx = _sample(n, sample_size, seed)
    ks_list = _check_ks(k_grid(n) if ks is None else ks, m)
    mean = _column_mean(X) if centre else None
    S = np.ascontiguousarray(X[idx], dtype=np.float32)
    Z = centre_normalise(S, mean) if centre else S
    fitted = {k: _train_faiss(Z, k, seed, restarts(k, n_init), REFINE_ITER) for k in ks_list}
    sample_labels = {k: _assign(Z, c) for k, c in fitted.items()}
    scores = silhouette_many(Z, [sample_labels[k] for k in ks_list], metric=metric)
    finite = [(s, -k) for k, s in zip(ks_list, scores) if not math.isnan(s)]
    best_k = -max(finite)[1] if finite else ks_list[0]
    if assign is None:
        to_assign = [best_k]
    else:
        to_assign = sorted(set(assign))
        if not set(to_assign) <= set(ks_list):
            raise v.InvalidInput(f"assign must be a subset of ks {ks_list}, got {to_assign}", field="assign")
    fits = [fitted[k] for k in to_assign]
    assigned = _assign_full(X, fits, mean, [sample_labels[k] for k in to_assign] if m == n else None)
    labels = {k: r.labels for k, r in zip(to_assign, assigned)}
    centroids = {k: r.centroids for k, r in zip(to_assign, assigned)}
    inertias = {k: r.inertia for k, r in zip(to_assign, assigned)}
    return SweepResult(ks=ks_list, scores=scores, best_k=best_k, sample_size=m,
                       labels=labels, centroids=centroids, inertias=inertias, sample_indices=idx, metric=metric,
                       backend="faiss", centred=centre, sample_labels=sample_labels, fitted=fitted, mean=mean)


def assign_clusters(X: Any, fitted: Any, mean: Any = None, *, labels: Any = None) -> KMeansResult:
    """Every row of ``X`` assigned to the nearest of ``fitted`` (the centroids :func:`auto_sweep`
    fitted at one k: its ``fitted[k]``, in the space it fitted in: rows centred on ``mean`` and
    re-normalised when ``mean`` is given, as its ``mean``), in one pass. ``labels``: the rows'
    clusters when they are known already (the sweep's sample was every row): no pass, only the
    sums. Returns the clusters renumbered by size, the means of the rows *as given* and the
    inertia about them: exactly what :func:`auto_sweep` returns at a k it assigns."""
    X = v.matrix(X, "X", min_rows=1)
    fitted = v.matrix(fitted, "fitted", min_rows=2)
    if fitted.shape[1] != X.shape[1]:
        raise v.InvalidInput(f"fitted has {fitted.shape[1]} columns, X has {X.shape[1]}", field="fitted")
    if mean is not None:
        mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        if mean.shape[0] != X.shape[1]:
            raise v.InvalidInput(f"mean has {mean.shape[0]} values, X has {X.shape[1]} columns", field="mean")
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if labels.shape[0] != X.shape[0] or (labels.size and (labels.min() < 0 or labels.max() >= fitted.shape[0])):
            raise v.InvalidInput("labels must give a cluster 0..k-1 for every row of X", field="labels")
        labels = [labels]
    return _assign_full(X, [fitted], mean, labels)[0]


def _assign_full(X: np.ndarray, fits: list[np.ndarray], mean: np.ndarray | None,
                 known: list[np.ndarray] | None) -> list[KMeansResult]:
    """:func:`assign_clusters` for several k in one pass over ``X`` (no pass with ``known``)."""
    if known is not None:
        full = [(lab, _blocked_sums(X, lab, c.shape[0])) for lab, c in zip(known, fits)]
    else:
        full = _assign_and_sum(X, fits, mean=mean)
    total_sq = float(np.einsum("ij,ij->", X, X, dtype=np.float64))
    out = []
    for c, (lab, sums) in zip(fits, full):
        k = c.shape[0]
        counts = np.bincount(lab, minlength=k)
        nonempty = counts > 0
        raw = np.zeros((k, X.shape[1]), dtype=np.float32)
        raw[nonempty] = (sums[nonempty] / counts[nonempty, None]).astype(np.float32)
        inertia = max(total_sq - float((np.einsum("ij,ij->i", sums[nonempty], sums[nonempty]) / counts[nonempty]).sum()), 0.0)
        lab, raw = _canonical(lab, raw)
        out.append(KMeansResult(lab, raw, inertia, "faiss"))
    return out
