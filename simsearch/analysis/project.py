"""2-D projections for maps: PCA and t-SNE (openTSNE, FFT-accelerated)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import _validate as v
from .neighbours import _search_excluding_self

TSNE_METRICS = ("euclidean", "cosine")
KNN_EXACT_MAX_N = 20_000  # above this the affinity kNN runs on the top KNN_PCA_DIMS components
KNN_PCA_DIMS = 100


def pca_2d(X: Any) -> np.ndarray:
    """Scores of the rows of ``X`` on its first two principal components, float32 (N, 2).

    Exact (eigendecomposition of the covariance, accumulated in float64 over row blocks, or of
    the Gram matrix when N < D). Signs follow scikit-learn: each component's largest-magnitude
    loading is positive. Missing components (N < 3 or D < 2) are zero columns.
    """
    return _pca(v.matrix(X, "X"), 2).astype(np.float32)


def _pca(X: np.ndarray, n_components: int, block: int = 16_384) -> np.ndarray:
    """(N, n_components) float64 principal-component scores; zero columns past the rank."""
    n, d = X.shape
    mean = X.mean(axis=0, dtype=np.float64)
    out = np.zeros((n, n_components), dtype=np.float64)
    if n < 2:
        return out
    if d <= n:
        cov = np.zeros((d, d), dtype=np.float64)
        mean32 = mean.astype(np.float32)
        for start in range(0, n, block):
            xc = X[start : start + block] - mean32
            cov += xc.T @ xc
        w, V = np.linalg.eigh(cov)
    else:
        xc = X.astype(np.float64) - mean
        w, U = np.linalg.eigh(xc @ xc.T)
        V = xc.T @ U
        V /= np.maximum(np.linalg.norm(V, axis=0), np.finfo(np.float64).tiny)
    order = np.argsort(w)[::-1][:n_components]
    tol = max(w.max(), 0.0) * max(n, d) * np.finfo(np.float64).eps * 10
    order = [j for j in order if w[j] > tol]
    W = V[:, order]
    W *= np.where(W[np.argmax(np.abs(W), axis=0), np.arange(W.shape[1])] >= 0, 1.0, -1.0)
    for start in range(0, n, block):
        out[start : start + block, : W.shape[1]] = (X[start : start + block].astype(np.float64) - mean) @ W
    return out


# openTSNE's FFT gradient has a fixed cost per iteration (its interpolation grid) that dominates
# for small N (tens of seconds for a few hundred points here); Barnes-Hut is O(N log N) and much
# faster below a few thousand points, FFT much faster above.
BH_MAX_N = 5_000


# Above this many points t-SNE is fitted on a seeded sample of this many and the other points are
# placed into that map (see tsne_2d): 100,000 points take about 2 minutes on 2 cores, 1M would take
# hours; placing 900,000 more takes about one minute.
TSNE_FIT_MAX = 100_000
PLACE_NEIGHBOURS = 10


def tsne_2d(
    X: Any,
    seed: int = 0,
    perplexity: float = 30.0,
    *,
    metric: str = "euclidean",
    n_iter: int = 500,
    early_exaggeration_iter: int = 250,
    n_jobs: int | None = None,
    knn_pca_dims: int | None = None,
    fit_max: int | None = TSNE_FIT_MAX,
) -> np.ndarray:
    """t-SNE map of the rows of ``X``, float32 (N, 2), deterministic for a given seed.

    openTSNE with the FFT-accelerated gradient (``negative_gradient_method="fft"``; Barnes-Hut
    for N <= ``BH_MAX_N``, where the FFT grid's fixed cost dominates), PCA
    initialisation (:func:`pca_2d`, rescaled and jittered exactly as openTSNE's own ``"pca"``
    init) and ``n_jobs = os.cpu_count()`` by default. The perplexity affinities use the exact
    ``3 * perplexity`` nearest neighbours by brute force (blocked GEMM + FAISS heaps; faster than
    openTSNE's Annoy at 1,280-D and free of approximation). Brute force is O(N^2 D), so when
    N > ``KNN_EXACT_MAX_N`` (20,000) and D > ``KNN_PCA_DIMS`` (100) -- or ``knn_pca_dims`` is
    given -- the neighbours are searched on the top principal components instead (openTSNE's
    own recommendation for large data; the reduced distances are the same kind of metric).
    ``metric``: ``"euclidean"`` (on unit vectors ``sqrt(2 - 2 cos)``) or ``"cosine"``.
    Perplexity is clipped to ``(N - 1) / 3`` for small N; one point maps to the origin.

    Above ``fit_max`` points (None: never) t-SNE is fitted on a seeded random sample of
    ``fit_max`` rows and every other row is placed into that map (:func:`place_2d`): at the
    distance-weighted mean position of its ``PLACE_NEIGHBOURS`` nearest sampled rows, found on
    the sample's top principal components -- how openTSNE initialises new points before it
    optimises them (``prepare_partial``); the further optimisation is skipped, as it would cost
    more than the fit. Neighbourhoods of the sample are exact t-SNE; a placed point lands among
    the points it is nearest to.
    """
    X = v.matrix(X, "X")
    if fit_max is not None and X.shape[0] > v.integer(fit_max, "fit_max", low=3):
        rng = np.random.default_rng(v.seed(seed))
        fit = np.sort(rng.choice(X.shape[0], fit_max, replace=False))
        coords = tsne_2d(X[fit], seed, perplexity, metric=metric, n_iter=n_iter,
                         early_exaggeration_iter=early_exaggeration_iter, n_jobs=n_jobs, knn_pca_dims=knn_pca_dims,
                         fit_max=None)
        return place_2d(X, fit, coords, metric=metric)
    seed = v.seed(seed)
    perplexity = v.positive_float(perplexity, "perplexity")
    metric = v.choice(metric, "metric", TSNE_METRICS)
    n_iter = v.integer(n_iter, "n_iter", low=0)
    early_exaggeration_iter = v.integer(early_exaggeration_iter, "early_exaggeration_iter", low=0)
    n_jobs = (os.cpu_count() or 1) if n_jobs is None else v.integer(n_jobs, "n_jobs", low=1)
    n, d = X.shape
    if knn_pca_dims is None:
        knn_pca_dims = KNN_PCA_DIMS if n > KNN_EXACT_MAX_N and d > KNN_PCA_DIMS else 0
    else:
        knn_pca_dims = v.integer(knn_pca_dims, "knn_pca_dims", low=0)
    if n == 1:
        return np.zeros((1, 2), dtype=np.float32)

    from openTSNE import TSNE, affinity, initialization, nearest_neighbors

    perplexity = min(perplexity, (n - 1) / 3)
    k = max(1, min(n - 1, int(3 * perplexity)))
    if metric == "cosine":  # on unit rows, cosine distance = squared euclidean / 2
        X = v.unit_rows(X)
    pcs = _pca(X, max(2, knn_pca_dims))
    if knn_pca_dims:
        X = np.ascontiguousarray(pcs[:, :knn_pca_dims], dtype=np.float32)
    idx, d2 = _search_excluding_self(X, k, "euclidean")
    d2 = d2.astype(np.float64)
    dist = np.minimum(d2 / 2.0, 2.0) if metric == "cosine" else np.sqrt(d2)
    knn = nearest_neighbors.PrecomputedNeighbors(np.ascontiguousarray(idx), np.ascontiguousarray(dist))
    aff = affinity.PerplexityBasedNN(knn_index=knn, perplexity=perplexity, n_jobs=n_jobs)

    init = np.array(pcs[:, :2])
    if np.std(init[:, 0]) > 0:
        initialization.rescale(init, inplace=True)
        initialization.jitter(init, inplace=True, random_state=seed)
    else:  # all points identical: no direction to start from
        init = np.random.RandomState(seed).normal(0.0, 1e-4, size=(n, 2))
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        negative_gradient_method="fft" if n > BH_MAX_N else "bh",
        n_iter=n_iter,
        early_exaggeration_iter=early_exaggeration_iter,
        n_jobs=n_jobs,
        random_state=seed,
        verbose=False,
    )
    emb = tsne.fit(affinities=aff, initialization=np.ascontiguousarray(init))
    return np.ascontiguousarray(emb, dtype=np.float32)


def place_2d(X: Any, fitted: np.ndarray, coords: np.ndarray, *, metric: str = "euclidean",
             k: int = PLACE_NEIGHBOURS, dims: int = KNN_PCA_DIMS, block: int = 65_536) -> np.ndarray:
    """2-D positions of every row of ``X`` given the map ``coords`` of the rows ``fitted`` (sorted
    indices): fitted rows keep their coordinates; each other row goes to the distance-weighted mean
    of the coordinates of its ``k`` nearest fitted rows (exact search on the fitted rows' top
    ``dims`` principal components; weights ``1 / (distance + 1e-6)``). float32 (N, 2)."""
    import faiss

    X = v.matrix(X, "X")
    metric = v.choice(metric, "metric", TSNE_METRICS)
    fitted = np.asarray(fitted, dtype=np.int64)
    coords = np.asarray(coords, dtype=np.float32)
    n = X.shape[0]
    out = np.empty((n, 2), dtype=np.float32)
    out[fitted] = coords
    rest = np.setdiff1d(np.arange(n), fitted, assume_unique=True)
    if not len(rest):
        return out
    S = X[fitted]
    if metric == "cosine":
        S = v.unit_rows(S)
    mean = S.mean(axis=0, dtype=np.float64).astype(np.float32)
    d = min(dims, S.shape[1])
    if d < S.shape[1]:  # the sample's principal directions (eigenvectors of its covariance)
        cov = np.zeros((S.shape[1], S.shape[1]), dtype=np.float64)
        for start in range(0, len(S), 16_384):
            xc = S[start : start + 16_384] - mean
            cov += xc.T @ xc
        w, V = np.linalg.eigh(cov)
        W = np.ascontiguousarray(V[:, np.argsort(w)[::-1][:d]], dtype=np.float32)
    else:
        W = np.eye(S.shape[1], dtype=np.float32)
    index = faiss.IndexFlatL2(d)
    index.add(np.ascontiguousarray((S - mean) @ W, dtype=np.float32))
    k = min(k, len(fitted))
    for start in range(0, len(rest), block):
        rows = rest[start : start + block]
        Q = X[rows]
        if metric == "cosine":
            Q = v.unit_rows(Q)
        dist, nn = index.search(np.ascontiguousarray((Q - mean) @ W, dtype=np.float32), k)
        weights = 1.0 / (np.sqrt(np.maximum(dist, 0.0)) + 1e-6)
        weights /= weights.sum(axis=1, keepdims=True)
        out[rows] = np.einsum("ij,ijk->ik", weights, coords[nn]).astype(np.float32)
    return out
