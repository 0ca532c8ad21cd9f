"""k-means clustering and silhouette scores (the automatic choice of k: :mod:`.k_auto`).

Backend rule (``backend="auto"``): up to :data:`SKLEARN_MAX_N` (20,000) points use
scikit-learn's ``KMeans`` (k-means++ init, ``n_init`` restarts, Lloyd to convergence). Larger
inputs use ``faiss.Kmeans`` on a seeded sample of :data:`REFINE_SAMPLE` (100,000) rows (all rows
when there are fewer), drawn once and shared by every k of a sweep: ``n_init`` seeded restarts
(``nredo``) of 25 Lloyd iterations on FAISS's own subsample of ``256 * k`` of them, keeping the
best, then up to ``refine_iter`` (10) Lloyd iterations over the whole sample (stopping early once
at most 0.01% of labels change). Then one pass over *all* points, for every k of a sweep at once,
assigns each point and sums the clusters, so the centroids are the means of the final full-data
labels and the inertia is over all points. (At 1M x 1,280 on 2 cores the sweep k = 2..10 took
200 s with the refinement over all points, 91-150 s with four passes over the data per k, and
52 s like this.) Both are deterministic for a given
seed. Cluster ids are then renumbered by decreasing size (ties: the cluster whose first member
comes first), so id 0 is always the largest cluster whichever backend ran.

"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from . import _validate as v

SKLEARN_MAX_N = 20_000
FAISS_POINTS_PER_CENTROID = 256  # FAISS's own default training subsample per centroid
FAISS_NITER = 25
MAX_ITER = 300  # scikit-learn's Lloyd iteration cap
REFINE_ITER = 10  # full-data Lloyd iterations after FAISS training
REFINE_SAMPLE = 100_000  # above this many points the refinement runs on a seeded sample of this many
REFINE_TOL = 1e-4  # full-data refinement stops once at most this fraction of labels change
BACKENDS = ("auto", "sklearn", "faiss")
SILHOUETTE_METRICS = ("euclidean", "cosine")


@dataclass
class KMeansResult:
    labels: np.ndarray  # int64 (N,), ids 0..k-1, 0 = largest cluster
    centroids: np.ndarray  # float32 (k, D): mean of each cluster's members
    inertia: float  # sum of squared euclidean distances of points to their centroid
    backend: str = "sklearn"  # which implementation ran


@dataclass
class SweepResult:
    ks: list[int]
    scores: list[float]  # mean silhouette per k (nan if the sample held < 2 clusters)
    best_k: int  # highest score; ties go to the smaller k
    sample_size: int  # points the silhouette was actually computed on
    labels: dict[int, np.ndarray]  # k -> labels of all N points (auto_sweep: only the k it assigned)
    centroids: dict[int, np.ndarray]  # k -> (k, D) float32 (likewise)
    inertias: dict[int, float] = field(default_factory=dict)
    sample_indices: np.ndarray | None = None  # sorted rows of X the silhouette used
    metric: str = "euclidean"
    backend: str = "sklearn"
    centred: bool = False  # scored (and, in auto_sweep, fitted) on mean-centred, re-normalised vectors
    sample_labels: dict[int, np.ndarray] = field(default_factory=dict)  # auto_sweep: k -> labels of sample_indices
    fitted: dict[int, np.ndarray] = field(default_factory=dict)  # auto_sweep: k -> centroids as fitted (see assign_clusters)
    mean: np.ndarray | None = None  # auto_sweep: the mean the rows were centred on (None: not centred)


def _check_k(k: Any, n: int, field_name: str = "k") -> int:
    k = v.integer(k, field_name, low=2)
    if k >= n:
        raise v.InvalidInput(f"{field_name} must be < n_samples ({n}), got {k}", field=field_name)
    return k


def kmeans(
    X: Any,
    k: int,
    seed: int = 0,
    n_init: int = 10,
    *,
    max_iter: int = MAX_ITER,
    backend: str = "auto",
    refine_iter: int = REFINE_ITER,
) -> KMeansResult:
    """Cluster the rows of ``X`` into ``k`` groups (squared-euclidean k-means).

    ``2 <= k < N``. See the module docstring for the backend rule. On L2-normalised vectors
    euclidean k-means is equivalent to maximising cosine similarity to (unnormalised) centroids.
    """
    X = v.matrix(X, "X", min_rows=3)
    n = X.shape[0]
    k = _check_k(k, n)
    seed = v.seed(seed)
    n_init = v.integer(n_init, "n_init", low=1)
    max_iter = v.integer(max_iter, "max_iter", low=1)
    refine_iter = v.integer(refine_iter, "refine_iter", low=0)
    backend = v.choice(backend, "backend", BACKENDS)
    return _kmeans(X, k, seed, n_init, max_iter, backend, refine_iter)


def _kmeans(X, k, seed, n_init, max_iter, backend, refine_iter) -> KMeansResult:
    """:func:`kmeans` on already validated arguments."""
    return _kmeans_many(X, [k], seed, n_init, max_iter, backend, refine_iter)[k]


def _kmeans_many(X, ks, seed, n_init, max_iter, backend, refine_iter) -> dict[int, KMeansResult]:
    """k-means for several k. The FAISS backend trains each k on samples, then assigns every
    point for all k in one pass over ``X`` (at 1M x 1,280 a pass reads 5 GB: one, not four per k)."""
    if backend == "auto":
        backend = "sklearn" if X.shape[0] <= SKLEARN_MAX_N else "faiss"
    out = {}
    if backend == "sklearn":
        for k in ks:
            labels, centroids = _kmeans_sklearn(X, k, seed, n_init, max_iter)
            labels, centroids = _canonical(labels, centroids)
            out[k] = KMeansResult(labels, centroids, _inertia(X, labels, centroids), backend)
        return out
    n = X.shape[0]
    R = X if n <= REFINE_SAMPLE else X[np.sort(np.random.default_rng(seed).choice(n, REFINE_SAMPLE, replace=False))]
    trained = [_train_faiss(R, k, seed, n_init, refine_iter) for k in ks]
    total_sq = float(np.einsum("ij,ij->", X, X, dtype=np.float64))
    for k, c, (labels, sums) in zip(ks, trained, _assign_and_sum(X, trained)):
        counts = np.bincount(labels, minlength=k)
        centroids = _means(sums, counts, c)
        nonempty = counts > 0
        inertia = max(total_sq - float((np.einsum("ij,ij->i", sums[nonempty], sums[nonempty]) / counts[nonempty]).sum()), 0.0)
        labels, centroids = _canonical(labels, centroids)
        out[k] = KMeansResult(labels, centroids, inertia, backend)
    return out


def _kmeans_sklearn(X, k, seed, n_init, max_iter):
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=seed).fit(X)
    return km.labels_.astype(np.int64), km.cluster_centers_.astype(np.float32)


def _assign(X: np.ndarray, centroids: np.ndarray, block: int = 16_384) -> np.ndarray:
    """Nearest centroid (squared euclidean) of every row; ties go to the lower id.

    Plain numpy GEMM: on the target machine it is ~2x faster than the faiss-cpu wheel's BLAS.
    """
    c = np.ascontiguousarray(centroids, dtype=np.float32)
    half_sq = 0.5 * np.einsum("ij,ij->i", c, c)
    out = np.empty(X.shape[0], dtype=np.int64)
    for start in range(0, X.shape[0], block):
        score = X[start : start + block] @ c.T  # argmax x.c - |c|^2/2 == argmin |x - c|^2
        score -= half_sq
        out[start : start + block] = np.argmax(score, axis=1)
    return out


def _blocked_sums(X: np.ndarray, labels: np.ndarray, k: int, block: int = 8_192) -> np.ndarray:
    """Per-cluster sums of rows: float32 products per block, accumulated in float64."""
    import scipy.sparse as sp

    sums = np.zeros((k, X.shape[1]), dtype=np.float64)
    for start in range(0, X.shape[0], block):
        lab = labels[start : start + block]
        m = lab.shape[0]
        onehot = sp.csr_matrix((np.ones(m, dtype=np.float32), (lab, np.arange(m))), shape=(k, m))
        sums += onehot @ X[start : start + block]
    return sums


def _means(sums: np.ndarray, counts: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Cluster means; an empty cluster keeps its previous centroid."""
    out = previous.astype(np.float64)
    nonempty = counts > 0
    out[nonempty] = sums[nonempty] / counts[nonempty, None]
    return out.astype(np.float32)


def _assign_and_sum(X: np.ndarray, centroid_sets: list[np.ndarray], block: int = 16_384,
                    mean: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each set of centroids: every row's nearest centroid (as :func:`_assign`) and the
    per-cluster sums of the rows (float32 products per block, accumulated in float64), all in
    one pass over ``X``. With ``mean``, rows are assigned as :func:`centre_normalise` makes them
    (the centroids live in that space) and the sums are of the rows as given."""
    import scipy.sparse as sp

    sets = [np.ascontiguousarray(c, dtype=np.float32) for c in centroid_sets]
    half_sq = [0.5 * np.einsum("ij,ij->i", c, c) for c in sets]
    labels = [np.empty(X.shape[0], dtype=np.int64) for _ in sets]
    sums = [np.zeros((c.shape[0], X.shape[1]), dtype=np.float64) for c in sets]
    for start in range(0, X.shape[0], block):
        xb = np.ascontiguousarray(X[start : start + block], dtype=np.float32)
        zb = xb if mean is None else centre_normalise(xb, mean)
        rows = np.arange(xb.shape[0])
        for c, hs, lab, sm in zip(sets, half_sq, labels, sums):
            score = zb @ c.T
            score -= hs
            best = np.argmax(score, axis=1)
            lab[start : start + xb.shape[0]] = best
            m = xb.shape[0]
            onehot = sp.csr_matrix((np.ones(m, dtype=np.float32), (best, rows)), shape=(c.shape[0], m))
            sm += onehot @ xb
    return list(zip(labels, sums))


def _train_faiss(R, k, seed, n_init, refine_iter) -> np.ndarray:
    """Centroids of ``R`` (all points, or one seeded sample of :data:`REFINE_SAMPLE` shared by
    every k): FAISS training on its own subsample of ``R``, then Lloyd iterations over ``R``.
    The training runs on one OpenMP thread: its subsample is small (256 points per centroid) and
    on a busy machine OpenMP's spinning threads made it several times slower than one thread."""
    import faiss

    km = faiss.Kmeans(
        R.shape[1],
        k,
        niter=FAISS_NITER,
        nredo=n_init,
        seed=seed,
        max_points_per_centroid=FAISS_POINTS_PER_CENTROID,
        min_points_per_centroid=1,
        verbose=False,
    )
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        km.train(R)
    finally:
        faiss.omp_set_num_threads(threads)
    centroids = np.asarray(km.centroids, dtype=np.float32).copy()
    labels = _assign(R, centroids)
    for _ in range(refine_iter):
        centroids = _means(_blocked_sums(R, labels, k), np.bincount(labels, minlength=k), centroids)
        new = _assign(R, centroids)
        changed = int(np.count_nonzero(new != labels))
        labels = new
        if changed <= REFINE_TOL * len(R):
            break
    return centroids


def _canonical(labels: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber clusters by decreasing size, ties by first appearance."""
    k = centroids.shape[0]
    counts = np.bincount(labels, minlength=k)
    first = np.full(k, labels.shape[0], dtype=np.int64)
    np.minimum.at(first, labels, np.arange(labels.shape[0]))
    order = np.lexsort((first, -counts))  # old ids in new order
    new_id = np.empty(k, dtype=np.int64)
    new_id[order] = np.arange(k)
    return new_id[labels], np.ascontiguousarray(centroids[order], dtype=np.float32)


def _inertia(X: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> float:
    """Sum of squared distances to the assigned centroid, expanded as
    sum|x|^2 - 2 sum_c c.S_c + sum_c n_c |c|^2 (S_c: member sums) -- no (N, D) temporaries."""
    k = centroids.shape[0]
    c = centroids.astype(np.float64)
    sums = _blocked_sums(X, labels, k)
    counts = np.bincount(labels, minlength=k)
    total = float(np.einsum("ij,ij->", X, X, dtype=np.float64))
    total += float((counts * np.einsum("ij,ij->i", c, c)).sum() - 2.0 * np.einsum("ij,ij->", c, sums))
    return max(total, 0.0)


def silhouette_sweep(
    X: Any,
    ks: Iterable[int] = range(2, 11),
    seed: int = 0,
    sample_size: int | None = 10_000,
    *,
    metric: str = "euclidean",
    n_init: int = 10,
    backend: str = "auto",
) -> SweepResult:
    """Run :func:`kmeans` for every k in ``ks`` and score each clustering by mean silhouette.

    The k-means runs use all N points. The silhouette is computed on one seeded random sample of
    ``min(N, sample_size)`` points (``sample_size=None``: all points), the same sample for every
    k, drawn with ``numpy.random.default_rng(seed).choice(N, sample_size, replace=False)``;
    the result is exactly ``sklearn.metrics.silhouette_score(X[idx], labels[idx], metric=metric)``
    for ``idx = result.sample_indices``, up to float32 rounding. ``metric`` is ``"euclidean"``
    (default; the distance k-means minimises, on unit vectors ``sqrt(2 - 2 cos)``) or
    ``"cosine"`` (``1 - cos``). Pairwise distances are computed once, in row blocks, for all k
    together, so memory stays O(block x sample) and time O(sample^2 x D).
    """
    X = v.matrix(X, "X", min_rows=3)
    n = X.shape[0]
    metric = v.choice(metric, "metric", SILHOUETTE_METRICS)
    seed = v.seed(seed)
    ks_list = _check_ks(ks, n)
    m, idx = _sample(n, sample_size, seed)

    n_init = v.integer(n_init, "n_init", low=1)
    backend = v.choice(backend, "backend", BACKENDS)
    results = _kmeans_many(X, ks_list, seed, n_init, MAX_ITER, backend, REFINE_ITER)
    scores = silhouette_many(X[idx], [results[k].labels[idx] for k in ks_list], metric=metric)
    finite = [(s, -k) for k, s in zip(ks_list, scores) if not math.isnan(s)]
    best_k = -max(finite)[1] if finite else ks_list[0]
    return SweepResult(
        ks=ks_list,
        scores=scores,
        best_k=best_k,
        sample_size=m,
        labels={k: r.labels for k, r in results.items()},
        centroids={k: r.centroids for k, r in results.items()},
        inertias={k: r.inertia for k, r in results.items()},
        sample_indices=idx,
        metric=metric,
        backend=results[ks_list[0]].backend,
    )


def _check_ks(ks: Iterable[int], n: int) -> list[int]:
    """Sorted, validated ``ks`` (each 2 <= k < n, no duplicates, at least one)."""
    try:
        ks_list = [_check_k(k, n, "ks") for k in ks]
    except TypeError:
        raise v.InvalidInput(f"ks must be an iterable of integers, got {ks!r}", field="ks") from None
    if not ks_list:
        raise v.InvalidInput("ks is empty: give at least one k", field="ks")
    if len(set(ks_list)) != len(ks_list):
        raise v.InvalidInput(f"ks contains duplicates: {ks_list}", field="ks")
    return sorted(ks_list)


def _sample(n: int, sample_size: int | None, seed: int) -> tuple[int, np.ndarray]:
    """(m, sorted row indices): all rows, or ``default_rng(seed).choice(n, m, replace=False)``."""
    m = n if sample_size is None else min(n, v.integer(sample_size, "sample_size", low=3))
    idx = np.arange(n) if m == n else np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))
    return m, idx


def centre_normalise(X: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``(X - mean)`` with each row L2-normalised again (float32; a row equal to the mean stays 0)."""
    Z = np.asarray(X, dtype=np.float32) - np.asarray(mean, dtype=np.float32)
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    Z /= norms
    return Z


def silhouette_many(
    X: np.ndarray, labelings: list[np.ndarray], *, metric: str = "euclidean", block_bytes: int = 256 << 20
) -> list[float]:
    """Mean silhouette of several labelings of the same points, sharing one distance pass.

    Matches ``sklearn.metrics.silhouette_score`` (points alone in their cluster score 0; a
    labeling with fewer than 2 or more than n - 1 distinct clusters scores nan, where
    scikit-learn would raise).
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = X.shape[0]
    codes, offsets, cols = [], [], 0
    for lab in labelings:
        uniq, inv = np.unique(lab, return_inverse=True)
        codes.append(inv.reshape(-1))
        offsets.append(cols)
        cols += uniq.shape[0]
    onehot = np.zeros((n, cols), dtype=np.float32)
    for code, off in zip(codes, offsets):
        onehot[np.arange(n), off + code] = 1.0

    if metric == "cosine":
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        Y = X / norms
    else:
        Y = X
        sq = np.einsum("ij,ij->i", X, X)
    sums = np.empty((n, cols), dtype=np.float64)
    block = max(1, min(n, block_bytes // (4 * n)))
    for start in range(0, n, block):
        stop = min(n, start + block)
        g = Y[start:stop] @ Y.T
        if metric == "cosine":
            dist = np.clip(1.0 - g, 0.0, 2.0)
        else:
            dist = sq[start:stop, None] + sq[None, :] - 2.0 * g
            np.maximum(dist, 0.0, out=dist)
            np.sqrt(dist, out=dist)
        rows = np.arange(stop - start)
        dist[rows, start + rows] = 0.0
        sums[start:stop] = dist @ onehot

    scores = []
    for code, off in zip(codes, offsets):
        c = int(code.max()) + 1
        if c < 2 or c > n - 1:
            scores.append(float("nan"))
            continue
        s = sums[:, off : off + c]
        counts = np.bincount(code, minlength=c).astype(np.float64)
        own = counts[code]
        a = s[np.arange(n), code] / np.maximum(own - 1, 1)
        mean_other = s / counts[None, :]
        mean_other[np.arange(n), code] = np.inf
        b = mean_other.min(axis=1)
        denom = np.maximum(a, b)
        sil = np.where(denom > 0, (b - a) / np.where(denom > 0, denom, 1), 0.0)
        sil[own <= 1] = 0.0
        scores.append(float(sil.mean()))
    return scores
