"""Choosing k automatically: the range of k grows with the collection, the sampled sweep is
deterministic, it picks 2 on cats and dogs, and the API and the CLI return the curve."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn import metrics
from sklearn.datasets import make_blobs

from simsearch.analysis import auto_sweep, k_grid
from simsearch.analysis.k_auto import assign_clusters
from simsearch.errors import InvalidInput
from tests.conftest import CATS_DOGS, copy_subset, dataset_files

SPACE = "efficientnet_lite0"


def unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---- the range of k ---------------------------------------------------------------------------


def test_k_grid_grows_with_the_collection():
    assert k_grid(3) == [2]
    assert k_grid(6) == [2, 3, 4, 5]  # always below n
    assert k_grid(12) == list(range(2, 11))  # small collections: 2..10, as before
    assert k_grid(100) == list(range(2, 11))
    grids = {n: k_grid(n) for n in (150, 400, 1_632, 5_000, 10**6)}
    assert grids[400][:9] == list(range(2, 11)) and grids[400][-1] == 40  # one cluster per 10 points
    assert grids[1_632][-1] == 163  # 102 flower species fit in the range
    assert grids[5_000][-1] == grids[10**6][-1] == 200  # capped: the API's largest k
    tops = [g[-1] for g in grids.values()]
    assert tops == sorted(tops) and tops[0] < tops[-1]
    for g in grids.values():
        assert g == sorted(set(g)) and g[0] == 2
        steps = [b / a for a, b in zip(g[8:], g[9:])]  # beyond 10: geometric steps of about x1.5
        assert all(1.2 <= s <= 1.8 for s in steps), g
    assert len(grids[10**6]) <= 20  # the number of k grows with log(n) only
    with pytest.raises(InvalidInput):
        k_grid(2)


# ---- the sampled sweep ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many_blobs():
    """3,000 points in 6 blobs (32-D, L2-normalised): above the sample the sweep is fitted on."""
    X, y = make_blobs(n_samples=3_000, n_features=32, centers=6, cluster_std=1.0, center_box=(-8, 8), random_state=5)
    return unit(X), y


def test_sampled_sweep_is_deterministic_and_assigns_every_point_at_the_chosen_k(many_blobs):
    X, y = many_blobs
    a = auto_sweep(X, seed=3, sample_size=600)
    b = auto_sweep(X, seed=3, sample_size=600)
    assert a.ks == k_grid(3_000) and a.sample_size == 600 and len(a.sample_indices) == 600
    assert a.scores == b.scores and a.best_k == b.best_k
    assert sorted(a.labels) == sorted(a.centroids) == [a.best_k]  # every point assigned at the chosen k only
    assert sorted(a.sample_labels) == a.ks  # the sample's clusters at every k
    for k in a.ks:
        np.testing.assert_array_equal(a.sample_labels[k], b.sample_labels[k])
        assert a.sample_labels[k].shape == (600,)
    np.testing.assert_array_equal(a.labels[6], b.labels[6])
    np.testing.assert_array_equal(a.centroids[6], b.centroids[6])
    assert a.labels[6].shape == (3_000,)
    np.testing.assert_array_equal(a.sample_indices, np.sort(np.random.default_rng(3).choice(3_000, 600, replace=False)))
    assert a.best_k == 6 and metrics.adjusted_rand_score(y, a.labels[6]) > 0.99
    # the centroids are the means of every point's final cluster, in the vectors' own space
    for c in range(6):
        np.testing.assert_allclose(a.centroids[6][c], X[a.labels[6] == c].mean(axis=0), atol=1e-5)
    # on the sample, the full assignment is the fitted clustering (up to the numbering)
    assert metrics.adjusted_rand_score(a.sample_labels[6], a.labels[6][a.sample_indices]) == 1.0
    other = auto_sweep(X, seed=4, sample_size=600, ks=[2, 6])
    assert not np.array_equal(other.sample_indices, a.sample_indices)


def test_another_k_alone_gives_the_sweeps_clusters_at_that_k(many_blobs):
    """A k the curator picks later is fitted and scored alone: the same clusters and silhouette
    as in the sweep, and every point assigned (``assign`` picks the k assigned in the pass)."""
    X, _ = many_blobs
    sweep = auto_sweep(X, seed=3, sample_size=600)
    k = 15
    alone = auto_sweep(X, seed=3, sample_size=600, ks=[k])
    assert alone.scores[0] == pytest.approx(sweep.scores[sweep.ks.index(k)], abs=1e-6)
    np.testing.assert_array_equal(alone.sample_labels[k], sweep.sample_labels[k])
    assert alone.labels[k].shape == (3_000,) and len(np.unique(alone.labels[k])) <= k
    both = auto_sweep(X, seed=3, sample_size=600, ks=[6, k], assign=[6, k])
    assert sorted(both.labels) == [6, k]
    np.testing.assert_array_equal(both.labels[k], alone.labels[k])
    # or from the centres the sweep fitted at k, without fitting again: the same clusters
    later = assign_clusters(X, sweep.fitted[k], sweep.mean)
    np.testing.assert_array_equal(later.labels, alone.labels[k])
    np.testing.assert_allclose(later.centroids, alone.centroids[k], atol=1e-6)
    assert later.inertia == pytest.approx(alone.inertias[k], rel=1e-6)
    small = auto_sweep(X[:300], seed=3)  # the sample is every point: the fitted labels are reused
    known = assign_clusters(X[:300], small.fitted[4], small.mean, labels=small.sample_labels[4])
    np.testing.assert_array_equal(known.labels, auto_sweep(X[:300], seed=3, ks=[4]).labels[4])
    with pytest.raises(InvalidInput) as err:
        assign_clusters(X, sweep.fitted[k][:, :5], sweep.mean)
    assert err.value.field == "fitted"
    with pytest.raises(InvalidInput) as err:
        auto_sweep(X, seed=3, sample_size=600, ks=[6], assign=[7])
    assert err.value.field == "assign"


def test_ari_curve_skips_the_images_outside_the_sample():
    from simsearch.ops.cluster_labels import agreement

    labels = ["a", "a", "b", "b", "a", None]
    sampled = np.array([0, 0, 1, 1, -1, -1])  # images 4 and 5 are outside the sweep's sample
    wrong = np.array([0, 1, 0, 1, -1, 0])
    at_k = np.array([0, 0, 1, 1, 1, 0])
    out = agreement(labels, {2: sampled, 3: wrong}, at_k, [np.array([0, 1, 5]), np.array([2, 3, 4])])
    assert out.ari[0] == 1.0 and out.ari[1] < 0  # over images 0-3 only
    assert out.ari_at_k < 1.0  # the chosen k: over every labelled image
    assert agreement(labels, {2: np.array([0, -1, -1, -1, -1, 0])}, at_k, []).ari == [None]


def test_sweep_validates_its_parameters(many_blobs):
    X, _ = many_blobs
    for kwargs, field in (({"ks": []}, "ks"), ({"ks": [2, 2]}, "ks"), ({"ks": [2, 50], "sample_size": 40}, "ks"),
                          ({"sample_size": 1}, "sample_size"), ({"metric": "manhattan"}, "metric"),
                          ({"n_init": 0}, "n_init"), ({"seed": -1}, "seed")):
        with pytest.raises(InvalidInput) as err:
            auto_sweep(X, **kwargs)
        assert err.value.field == field, kwargs


@pytest.fixture(scope="module")
def cats_dogs_vectors(weights_dir):
    """efficientnet_lite0 vectors of the first 20 cats and 20 dogs."""
    from simsearch.embedding.embedder import Embedder
    from simsearch.spaces import parse, space_key
    from simsearch.images import load_image, resize_for_model

    emb = Embedder(parse(space_key(SPACE, "avg", "fp32")), weights_dir, runtime="auto", device="cpu")
    files = dataset_files(CATS_DOGS / "cats", 20) + dataset_files(CATS_DOGS / "dogs", 20)
    pixels = np.stack([resize_for_model(load_image(f).image, emb.input_size) for f in files])
    return np.asarray(emb.embed(pixels), dtype=np.float32), np.repeat([0, 1], 20)


@pytest.mark.model
def test_picks_two_on_cats_and_dogs(cats_dogs_vectors):
    X, y = cats_dogs_vectors
    res = auto_sweep(X)
    assert res.ks == list(range(2, 11)) and res.centred and res.metric == "cosine"
    assert res.best_k == 2, dict(zip(res.ks, res.scores))
    assert metrics.adjusted_rand_score(y, res.labels[2]) > 0.6


# ---- the API and the CLI return the curve -----------------------------------------------------


@pytest.fixture
def pets_app(make_app, tmp_path):
    from simsearch.ingest import Ingester, files_from_folder

    app = make_app()
    folder = copy_subset(tmp_path / "pets", 6)
    files, _ = files_from_folder(folder, labels="folders")
    Ingester(app.extensions["simsearch"], spaces=[SPACE]).run("pets", files, source=str(folder))
    return app


@pytest.mark.model
def test_api_and_cli_return_the_curve(pets_app, settings):
    from simsearch.cli import cli
    from tests.helpers.analysis import result

    client = pets_app.test_client()
    data, _ = result(client, "/api/collections/pets/clusters?k=auto")
    sw = data["silhouette"]
    assert sw["ks"] == k_grid(12) and len(sw["scores"]) == len(sw["ks"])
    assert all(-1 <= s <= 1 for s in sw["scores"])
    assert sw["best_k"] == sw["ks"][int(np.argmax(sw["scores"]))] == data["k"] and data["auto"] is True
    assert sw["metric"] == "cosine" and sw["centred"] is True and sw["sample_size"] == 12
    assert data["silhouette_at_k"] == pytest.approx(sw["scores"][sw["ks"].index(data["k"])])
    assert len(data["label_agreement"]["ari"]) == len(sw["ks"])
    # another k: the same curve comes with it
    other = next(k for k in sw["ks"] if k != data["k"])
    picked, _ = result(client, f"/api/collections/pets/clusters?k={other}")
    assert picked["k"] == other and picked["auto"] is False and picked["silhouette"] == sw
    assert len(picked["clusters"]) == other

    env = {"SIMSEARCH_HOME": str(settings.home), "SIMSEARCH_DATABASE_URL": settings.database_url,
           "SIMSEARCH_WEIGHTS_DIR": str(settings.weights_path), "SIMSEARCH_REDIS_URL": ""}
    run = CliRunner()
    out = run.invoke(cli, ["cluster", "-c", "pets", "--json"], env=env, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["silhouette"] == sw
    text = run.invoke(cli, ["cluster", "-c", "pets"], env=env, catch_exceptions=False).output
    rows = re.findall(r"^\s+(\d+)\s+(-?\d\.\d{4})", text, re.M)
    assert [int(k) for k, _ in rows] == sw["ks"]
    assert [float(s) for _, s in rows] == pytest.approx(sw["scores"], abs=1e-4)
    assert re.search(rf"^chosen k: {data['k']} \(the best silhouette", text, re.M), text
