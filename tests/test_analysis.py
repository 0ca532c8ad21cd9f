"""simsearch.analysis: metrics against scikit-learn and brute-force references, recovery of known
cluster structure, determinism, projections and parameter validation. Small N throughout."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA

from simsearch.analysis import (
    external_scores,
    kmeans,
    knn_graph,
    knn_precision,
    neighbour_overlap,
    pca_2d,
    representatives,
    silhouette_sweep,
    tsne_2d,
    place_2d,
)
from simsearch.analysis.cluster import silhouette_many
from simsearch.errors import InvalidInput

FAST_TSNE = dict(n_iter=150, early_exaggeration_iter=100)


def unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def blobs():
    """600 points, 5 well-separated clusters in 64-D, L2-normalised (like embeddings)."""
    X, y = make_blobs(n_samples=600, n_features=64, centers=5, cluster_std=1.0, center_box=(-10, 10), random_state=3)
    return unit(X), y


@pytest.fixture(scope="module")
def sweep(blobs):
    X, _ = blobs
    return silhouette_sweep(X, ks=range(2, 9), seed=0, sample_size=250)


def brute_knn(X, k, metric="cosine"):
    X = np.asarray(X, dtype=np.float64)
    if metric == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
    if metric == "euclidean":
        score = -((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    else:
        score = X @ X.T
    np.fill_diagonal(score, -np.inf)
    return np.argsort(-score, axis=1, kind="stable")[:, :k]


# ---- clustering -------------------------------------------------------------------------------


def test_sweep_recovers_true_k_and_labels(blobs, sweep):
    _, y = blobs
    assert sweep.ks == list(range(2, 9))
    assert sweep.best_k == 5
    assert sweep.scores[sweep.ks.index(5)] == max(sweep.scores)
    assert metrics.adjusted_rand_score(y, sweep.labels[5]) == pytest.approx(1.0)
    assert sweep.sample_size == 250 and len(sweep.sample_indices) == 250
    assert sweep.centroids[5].shape == (5, 64) and sweep.centroids[5].dtype == np.float32
    assert sweep.labels[5].dtype == np.int64 and sweep.labels[5].shape == (600,)


def test_sweep_on_raw_unnormalised_blobs():
    X, y = make_blobs(n_samples=400, n_features=8, centers=4, cluster_std=0.8, random_state=11)
    res = silhouette_sweep(X, ks=[2, 3, 4, 5, 6], seed=1)
    assert res.best_k == 4
    assert res.sample_size == 400  # smaller than sample_size: every point used
    assert metrics.adjusted_rand_score(y, res.labels[4]) == pytest.approx(1.0)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_silhouette_equals_sklearn_on_the_same_sample(blobs, metric):
    X, _ = blobs
    res = silhouette_sweep(X, ks=[2, 3, 5, 7], seed=4, sample_size=300, metric=metric)
    idx = res.sample_indices
    expected_idx = np.sort(np.random.default_rng(4).choice(len(X), size=300, replace=False))
    np.testing.assert_array_equal(idx, expected_idx)
    for k, score in zip(res.ks, res.scores):
        ref = metrics.silhouette_score(X[idx], res.labels[k][idx], metric=metric)
        assert score == pytest.approx(ref, abs=1e-5), k


def test_silhouette_many_matches_sklearn_with_singletons_and_gaps():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 6))
    a = rng.integers(0, 4, 120)
    b = a.copy()
    b[7] = 9  # a singleton cluster (scores 0) and non-contiguous ids
    for lab, got in zip([a, b], silhouette_many(X, [a, b])):
        assert got == pytest.approx(metrics.silhouette_score(X, lab), abs=1e-5)
    assert np.isnan(silhouette_many(X, [np.zeros(120, int)])[0])


def test_kmeans_is_deterministic_and_seed_matters(blobs):
    X, _ = blobs
    a, b = kmeans(X, 4, seed=7), kmeans(X, 4, seed=7)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert a.inertia == b.inertia


def test_kmeans_result_is_consistent(blobs):
    X, y = blobs
    r = kmeans(X, 5, seed=0)
    assert r.backend == "sklearn"
    sizes = np.bincount(r.labels, minlength=5)
    assert list(sizes) == sorted(sizes, reverse=True)  # id 0 = largest cluster
    for c in range(5):  # centroids are the member means
        np.testing.assert_allclose(r.centroids[c], X[r.labels == c].mean(axis=0), atol=1e-5)
    assert r.inertia == pytest.approx(float(((X - r.centroids[r.labels]) ** 2).sum()), rel=1e-5)
    assert metrics.adjusted_rand_score(y, r.labels) == pytest.approx(1.0)


def test_faiss_backend_recovers_blobs_deterministically(blobs):
    X, y = blobs
    a = kmeans(X, 5, seed=3, backend="faiss")
    b = kmeans(X, 5, seed=3, backend="faiss")
    assert a.backend == "faiss"
    np.testing.assert_array_equal(a.labels, b.labels)
    assert metrics.adjusted_rand_score(y, a.labels) == pytest.approx(1.0)
    assert a.inertia == pytest.approx(kmeans(X, 5, seed=3).inertia, rel=1e-4)
    for c in range(5):
        np.testing.assert_allclose(a.centroids[c], X[a.labels == c].mean(axis=0), atol=1e-5)


def test_faiss_backend_with_training_subsample():
    # 4,000 points, k = 3: FAISS trains on a seeded 768-point subsample, then refines on all points
    X, y = make_blobs(n_samples=4000, n_features=32, centers=3, cluster_std=2.0, random_state=8)
    X = unit(X)
    a, b = kmeans(X, 3, seed=5, backend="faiss"), kmeans(X, 3, seed=5, backend="faiss")
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert metrics.adjusted_rand_score(y, a.labels) == pytest.approx(1.0)
    assert a.inertia == pytest.approx(float(((X - a.centroids[a.labels]) ** 2).sum()), rel=1e-5)


# ---- external scores --------------------------------------------------------------------------


def test_external_scores_equal_sklearn_with_string_labels():
    rng = np.random.default_rng(5)
    true = rng.choice(["cat", "dog", "bird"], size=200)
    pred = np.where(rng.random(200) < 0.7, np.searchsorted(["bird", "cat", "dog"], true), rng.integers(0, 4, 200))
    s = external_scores(list(true), pred)
    assert s["ari"] == pytest.approx(metrics.adjusted_rand_score(true, pred))
    assert s["nmi"] == pytest.approx(metrics.normalized_mutual_info_score(true, pred))
    assert s["homogeneity"] == pytest.approx(metrics.homogeneity_score(true, pred))
    assert s["completeness"] == pytest.approx(metrics.completeness_score(true, pred))
    assert s["v_measure"] == pytest.approx(metrics.v_measure_score(true, pred))
    assert 0.2 < s["ari"] < 0.9
    assert (s["n_samples"], s["n_classes"]) == (200, 3)


def test_external_scores_of_a_relabelled_copy_are_perfect():
    true = np.array(["a", "a", "b", "b", "c", "c"])
    s = external_scores(true, [2, 2, 0, 0, 1, 1])
    assert all(s[key] == pytest.approx(1.0) for key in ("ari", "nmi", "homogeneity", "completeness", "v_measure"))


# ---- neighbours -------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "ip", "euclidean"])
def test_knn_graph_matches_brute_force(metric):
    X = np.random.default_rng(2).standard_normal((300, 16)).astype(np.float32)
    idx, _ = knn_graph(X, 8, metric=metric)
    np.testing.assert_array_equal(idx, brute_knn(X, 8, metric))


def test_knn_precision_matches_brute_force():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 24)).astype(np.float32)
    y = rng.integers(0, 3, 400)
    X[np.arange(400), y] += 2.5  # each class leans towards its own axis: partly predictable
    for k in (1, 5, 10):
        nn = brute_knn(X, k)
        ref = float((y[nn] == y[:, None]).mean())
        assert knn_precision(X, y, k=k) == pytest.approx(ref, abs=1e-12)
    assert 0.5 < knn_precision(X, y, k=10) < 1.0


def test_knn_precision_sampled_queries_are_a_subset_average():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((300, 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    q = np.sort(np.random.default_rng(9).choice(300, size=50, replace=False))
    nn = brute_knn(X, 5)[q]
    assert knn_precision(X, y, k=5, sample_size=50, seed=9) == pytest.approx(float((y[nn] == y[q, None]).mean()))


def test_knn_precision_of_blobs_and_of_shuffled_labels(blobs):
    X, y = blobs
    assert knn_precision(X, y, k=10) == 1.0
    shuffled = np.random.default_rng(0).permutation(y)
    assert knn_precision(X, shuffled, k=10) < 0.35  # ~1/5 by chance


def test_knn_excludes_self_even_with_duplicate_points():
    X = np.repeat(np.random.default_rng(1).standard_normal((20, 4)), 2, axis=0)
    idx, _ = knn_graph(X, 3, metric="euclidean")
    assert not (idx == np.arange(40)[:, None]).any()
    assert (idx[:, 0] == (np.arange(40) ^ 1)).all()  # the twin is the nearest


def test_neighbour_overlap_identical_random_and_rotated(blobs):
    X, _ = blobs
    assert neighbour_overlap(X, X.copy(), k=10) == 1.0
    R = np.random.default_rng(0).standard_normal(X.shape).astype(np.float32)
    assert neighbour_overlap(X, R, k=10) < 0.1
    Q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((64, 64)))
    assert neighbour_overlap(X, (X @ Q).astype(np.float32), k=10) > 0.99  # rotation keeps cosines


def test_neighbour_overlap_matches_brute_force_jaccard():
    rng = np.random.default_rng(6)
    A = rng.standard_normal((150, 10))
    B = A + 0.5 * rng.standard_normal((150, 10))
    na, nb = brute_knn(A, 7), brute_knn(B, 7)
    ref = np.mean([len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(na, nb)])
    assert neighbour_overlap(A, B, k=7) == pytest.approx(ref)
    assert 0.1 < ref < 0.9


# ---- representatives --------------------------------------------------------------------------


def test_representatives_are_nearest_to_centroid(blobs):
    X, _ = blobs
    r = kmeans(X, 5, seed=0)
    reps = representatives(X, r.labels, r.centroids, n=4)
    assert sorted(reps) == list(range(5))
    for c, rows in reps.items():
        members = np.flatnonzero(r.labels == c)
        d = ((X[members] - r.centroids[c]) ** 2).sum(axis=1)
        assert rows == [int(i) for i in members[np.argsort(d, kind="stable")[:4]]]


def test_representatives_small_and_empty_clusters():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    C = np.array([[0.9, 0.0], [3.0, 0.0], [9.0, 9.0]])
    reps = representatives(X, [0, 0, 1], C, n=5)
    assert reps == {0: [1, 0], 1: [2], 2: []}


# ---- projections ------------------------------------------------------------------------------


def test_pca_2d_matches_sklearn(blobs):
    X, _ = blobs
    Y = pca_2d(X)
    assert Y.shape == (600, 2) and Y.dtype == np.float32
    np.testing.assert_allclose(Y, PCA(n_components=2).fit_transform(X.astype(np.float64)), atol=1e-4)
    wide = np.random.default_rng(0).standard_normal((10, 50))  # N < D path
    np.testing.assert_allclose(pca_2d(wide), PCA(n_components=2).fit_transform(wide), atol=1e-4)
    assert pca_2d(np.ones((1, 3))).tolist() == [[0.0, 0.0]]


def test_tsne_shape_determinism_and_separation(blobs):
    X, y = blobs
    X, y = X[:300], y[:300]
    a = tsne_2d(X, seed=0, perplexity=20, **FAST_TSNE)
    b = tsne_2d(X, seed=0, perplexity=20, **FAST_TSNE)
    assert a.shape == (300, 2) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert knn_precision(a, y, k=10, metric="euclidean") > 0.95
    assert not np.array_equal(a, tsne_2d(X, seed=1, perplexity=20, **FAST_TSNE))


def test_tsne_of_many_points_fits_a_sample_and_places_the_rest(blobs):
    """Above fit_max points: t-SNE of a seeded sample, the others placed among their nearest
    sampled neighbours (a 1M-point map in minutes, not hours)."""
    X, y = blobs  # 600 points, 3 clusters
    Y = tsne_2d(X, seed=0, perplexity=20, fit_max=200, **FAST_TSNE)
    assert Y.shape == (600, 2) and Y.dtype == np.float32 and np.isfinite(Y).all()
    np.testing.assert_array_equal(Y, tsne_2d(X, seed=0, perplexity=20, fit_max=200, **FAST_TSNE))
    fit = np.sort(np.random.default_rng(0).choice(600, 200, replace=False))
    np.testing.assert_array_equal(Y[fit], tsne_2d(X[fit], seed=0, perplexity=20, fit_max=None, **FAST_TSNE))
    placed = np.setdiff1d(np.arange(600), fit)
    # each placed point's nearest fitted point on the map is of its own cluster
    d = ((Y[placed, None, :] - Y[None, fit, :]) ** 2).sum(-1)
    assert (y[fit][d.argmin(1)] == y[placed]).mean() > 0.97
    assert knn_precision(Y, y, k=10, metric="euclidean") > 0.95


def test_place_2d_keeps_fitted_points_and_lands_between_neighbours():
    fitted_x = np.array([[0.0, 0.0], [10.0, 0.0]], np.float32)
    X = np.vstack([fitted_x, [[1.0, 0.0], [9.0, 0.0]]]).astype(np.float32)
    coords = np.array([[-5.0, 0.0], [5.0, 0.0]], np.float32)
    out = place_2d(X, np.array([0, 1]), coords, k=2)
    np.testing.assert_array_equal(out[:2], coords)
    assert -5 < out[2, 0] < 0 < out[3, 0] < 5  # nearer to its closer neighbour's position


@pytest.mark.parametrize("n", [1, 2, 4, 12])
def test_tsne_tiny_inputs(n):
    X = np.random.default_rng(n).standard_normal((n, 5)).astype(np.float32)
    Y = tsne_2d(X, seed=0, n_iter=50, early_exaggeration_iter=50)
    assert Y.shape == (n, 2) and np.isfinite(Y).all()


# ---- validation -------------------------------------------------------------------------------


def _field(call):
    with pytest.raises(InvalidInput) as err:
        call()
    return err.value.field


def test_parameter_validation_names_the_field(blobs):
    X, y = blobs
    bad = X.copy()
    bad[3, 1] = np.nan
    assert _field(lambda: kmeans(X, 1)) == "k"
    assert _field(lambda: kmeans(X[:5], 5)) == "k"
    assert _field(lambda: kmeans(X, 2.5)) == "k"
    assert _field(lambda: kmeans(X, 3, seed=-1)) == "seed"
    assert _field(lambda: kmeans(X, 3, n_init=0)) == "n_init"
    assert _field(lambda: kmeans(bad, 3)) == "X"
    assert _field(lambda: kmeans(X[0], 3)) == "X"
    assert _field(lambda: kmeans(X, 3, backend="gpu")) == "backend"
    assert _field(lambda: silhouette_sweep(X, ks=[])) == "ks"
    assert _field(lambda: silhouette_sweep(X, ks=[2, 2])) == "ks"
    assert _field(lambda: silhouette_sweep(X[:6], ks=[2, 6])) == "ks"
    assert _field(lambda: silhouette_sweep(X, sample_size=1)) == "sample_size"
    assert _field(lambda: silhouette_sweep(X, metric="manhattan")) == "metric"
    assert _field(lambda: external_scores(y, y[:-1])) == "labels_pred"
    assert _field(lambda: external_scores([], [])) == "labels_true"
    assert _field(lambda: knn_precision(X, y[:10])) == "labels"
    assert _field(lambda: knn_precision(X, y, k=0)) == "k"
    assert _field(lambda: knn_precision(X, y, k=600)) == "k"
    assert _field(lambda: knn_precision(np.zeros((4, 3)), [0, 0, 1, 1], k=1)) == "X"  # cosine of a zero row
    assert _field(lambda: neighbour_overlap(X, X[:-1])) == "X_b"
    assert _field(lambda: neighbour_overlap(X, bad)) == "X_b"
    assert _field(lambda: tsne_2d(X, perplexity=0)) == "perplexity"
    assert _field(lambda: tsne_2d(bad)) == "X"
    assert _field(lambda: representatives(X, y, np.zeros((5, 3)))) == "centroids"
    assert _field(lambda: representatives(X, y, np.zeros((4, 64)))) == "labels"  # label 4 has no centroid
    assert _field(lambda: representatives(X, y, np.zeros((5, 64)), n=0)) == "n"
    with pytest.raises(InvalidInput, match="k must be < n_samples"):
        kmeans(X[:5], 5)


def test_faiss_kmeans_refines_on_a_sample_above_refine_sample(blobs, monkeypatch):
    """Above REFINE_SAMPLE points the Lloyd refinement runs on a seeded sample, then every point
    is assigned once: the clusters are still found, and the centroids are the means of the final
    labels over all points."""
    from sklearn.metrics import adjusted_rand_score

    from simsearch.analysis import cluster

    X, y = blobs
    monkeypatch.setattr(cluster, "REFINE_SAMPLE", 150)
    r = kmeans(X, 5, seed=0, backend="faiss")  # 5 blobs
    assert adjusted_rand_score(y, r.labels) > 0.99
    means = np.stack([X[r.labels == c].mean(0) for c in range(5)])
    np.testing.assert_allclose(r.centroids, means, atol=1e-5)
    np.testing.assert_array_equal(r.labels, kmeans(X, 5, seed=0, backend="faiss").labels)  # deterministic
