"""The analysis operations (simsearch.ops.analysis, .comparison) on a small real subset (10 cats + 10 dogs, EfficientNet-Lite0), on SQLite and PostgreSQL:
clusters (auto and fixed k), caching and its invalidation, evaluation, maps, errors, backbone comparison.
The typed results are checked through their ``to_dict()`` JSON shapes (what the CLI and API send)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from simsearch.ops import analysis, comparison
from simsearch.ops import vectors as vecs
from simsearch.errors import Conflict, InvalidInput, NotFound
from tests.conftest import CATS_DOGS, copy_subset, dataset_files
from tests.helpers.db import ingest

pytestmark = pytest.mark.model


@pytest.fixture
def pets(ctx, tmp_path):
    """20 labelled images (10 cats, 10 dogs) ingested into collection 'pets'; returns the folder."""
    root = copy_subset(tmp_path / "pets", 10)
    report = ingest(ctx, root, batch_size=10)
    assert report.added == 20 and report.failed == 0
    return root


def cluster_view(ctx, *args, **kwargs) -> dict:
    return analysis.clusters(ctx, *args, **kwargs).to_dict()


def test_cluster_view_auto_fixed_k_and_cache(ctx, pets):
    assert analysis.lookup_clusters(ctx, "pets") is None
    auto = cluster_view(ctx, "pets")
    assert auto["auto"] is True and auto["cached"] is False
    assert auto["backbone"] == "efficientnet_lite0" and auto["n_images"] == 20
    sw = auto["silhouette"]
    assert sw["ks"] == list(range(2, 11)) and len(sw["scores"]) == 9
    assert auto["k"] == sw["best_k"] == sw["ks"][int(np.argmax(sw["scores"]))]
    assert auto["silhouette_at_k"] == pytest.approx(max(sw["scores"]))
    assert len(auto["clusters"]) == auto["k"]
    members = [m for c in auto["clusters"] for m in c["members"]]
    assert sorted(members) == sorted(set(members)) and len(members) == 20
    for c in auto["clusters"]:
        assert c["size"] == len(c["members"]) > 0
        assert 1 <= len(c["representatives"]) <= min(8, c["size"])
        assert set(c["representatives"]) <= set(c["members"])

    again = cluster_view(ctx, "pets")
    assert again["cached"] is True
    assert analysis.lookup_clusters(ctx, "pets").to_dict() == again
    assert [c["members"] for c in again["clusters"]] == [c["members"] for c in auto["clusters"]]

    assert analysis.lookup_clusters(ctx, "pets", k=3, n_representatives=2) is None
    three = cluster_view(ctx, "pets", k=3, n_representatives=2)
    assert three["auto"] is False and three["k"] == 3 and len(three["clusters"]) == 3
    assert sum(c["size"] for c in three["clusters"]) == 20
    assert all(len(c["representatives"]) <= 2 for c in three["clusters"])
    assert three["silhouette_at_k"] == pytest.approx(dict(zip(sw["ks"], sw["scores"]))[3])

    # A k outside the sweep (2..10) is scored as the sweep scores: sklearn's cosine silhouette of the
    # mean-centred vectors (20 images: all of them are the sample).
    from sklearn.metrics import silhouette_score

    from simsearch.analysis.cluster import centre_normalise

    twelve = cluster_view(ctx, "pets", k=12)
    assert twelve["k"] == 12 and len(twelve["clusters"]) == 12
    loaded = vecs.load(ctx, "pets", None)
    ids, x = loaded.ids, loaded.x
    labels = np.zeros(len(ids), dtype=int)
    for c in twelve["clusters"]:
        labels[np.isin(ids, c["members"])] = c["cluster"]
    assert twelve["silhouette_at_k"] == pytest.approx(
        silhouette_score(centre_normalise(x, x.mean(axis=0)), labels, metric="cosine"), abs=1e-4)

    # One more image: the vectors' fingerprint changes, so nothing cached is reused.
    extra = dataset_files(CATS_DOGS / "cats", 1, start=150)[0]
    shutil.copy(extra, pets / "cats" / extra.name)
    assert ingest(ctx, pets, batch_size=10).added == 1
    assert analysis.lookup_clusters(ctx, "pets") is None
    fresh = cluster_view(ctx, "pets")
    assert fresh["cached"] is False and fresh["n_images"] == 21
    assert sum(c["size"] for c in fresh["clusters"]) == 21
    assert cluster_view(ctx, "pets")["cached"] is True


def test_evaluation_view(ctx, pets):
    assert analysis.lookup_evaluation(ctx, "pets") is None
    result = analysis.evaluate(ctx, "pets")
    ev = result.to_dict()
    assert analysis.lookup_evaluation(ctx, "pets") == result
    assert ev["n_images"] == ev["n_labelled"] == 20 and ev["n_labels"] == 2
    assert ev["best_k"] == ev["silhouette"]["best_k"]
    lab = ev["labels"]
    assert lab["at_n_labels"]["k"] == 2 and lab["at_best_k"]["k"] == ev["best_k"]
    for scores in (lab["at_n_labels"], lab["at_best_k"]):
        assert set(scores) >= {"k", "ari", "nmi", "homogeneity", "completeness"}
        assert -1 <= scores["ari"] <= 1 and all(0 <= scores[m] <= 1 + 1e-9 for m in ("nmi", "homogeneity", "completeness"))
    assert lab["precision_k"] == 10
    # Pretrained features separate cats from dogs even on 20 images (chance: precision 9/19 = 0.47, ARI 0;
    # with 10 per class, 10 neighbours include at least one of the other class, so at most 0.9).
    assert 0.65 <= lab["knn_precision_at_10"] <= 0.9, lab
    assert lab["at_n_labels"]["ari"] >= 0.4, lab

    # The scores depend on the labels: a label removed makes the cached evaluation stale.
    from sqlalchemy import update

    from simsearch.store.models import Image

    with ctx.db.session() as s:
        s.execute(update(Image).where(Image.id == int(result_ids(ctx)[0])).values(label=None))
    assert analysis.lookup_evaluation(ctx, "pets") is None
    fewer = analysis.evaluate(ctx, "pets")
    assert fewer.n_labelled == 19 and fewer.silhouette == result.silhouette
    assert analysis.lookup_evaluation(ctx, "pets") == fewer


def result_ids(ctx):
    return vecs.peek(ctx, "pets", None).ids


def test_evaluation_without_labels_has_a_note(ctx, tmp_path):
    root = copy_subset(tmp_path / "plain", 3)
    ingest(ctx, root, collection="plain", labels=None)
    ev = analysis.evaluate(ctx, "plain").to_dict()
    assert ev["labels"] is None and ev["n_labelled"] == 0 and "labels" in ev["note"]
    assert ev["silhouette"]["ks"] == [2, 3, 4, 5]  # k < number of images (6)


def test_map_view_shapes_and_cache(ctx, pets):
    assert analysis.lookup_map(ctx, "pets") is None
    m = analysis.map_2d(ctx, "pets").to_dict()
    assert m["method"] == "tsne" and m["n"] == 20 and m["cached"] is False
    assert len(m["ids"]) == len(m["x"]) == len(m["y"]) == len(m["labels"]) == len(m["clusters"]) == 20
    assert sorted(set(m["labels"])) == ["cats", "dogs"]
    assert set(m["clusters"]) == set(range(m["k"]))
    assert np.isfinite(m["x"]).all() and np.isfinite(m["y"]).all() and np.std(m["x"]) > 0
    again = analysis.map_2d(ctx, "pets").to_dict()
    assert again["cached"] is True and again["x"] == pytest.approx(m["x"]) and again["ids"] == m["ids"]
    assert analysis.lookup_map(ctx, "pets").to_dict() == again

    p = analysis.map_2d(ctx, "pets", method="pca").to_dict()
    assert p["method"] == "pca" and p["cached"] is False and len(p["x"]) == 20
    assert np.std(p["x"]) >= np.std(p["y"]) > 0  # first principal component has the most variance


def test_invalid_requests(ctx, pets):
    for bad in (0, 1, -3, "abc", "2.5"):
        with pytest.raises(InvalidInput, match="k must be"):
            analysis.clusters(ctx, "pets", k=bad)
        with pytest.raises(InvalidInput, match="k must be"):
            analysis.lookup_clusters(ctx, "pets", k=bad)
    # The lookups (what a request does before starting a job) refuse what the computation would.
    for op in (analysis.clusters, analysis.lookup_clusters):
        with pytest.raises(Conflict, match="smaller than the number of images"):  # the collection's state: 409
            op(ctx, "pets", k=20)
        with pytest.raises(NotFound, match="no vectors for backbone 'efficientnet_lite1'"):
            op(ctx, "pets", "efficientnet_lite1")
    for op in (analysis.map_2d, analysis.lookup_map):
        with pytest.raises(InvalidInput, match="method"):
            op(ctx, "pets", method="umap")
    for op in (analysis.evaluate, analysis.lookup_evaluation):
        with pytest.raises(NotFound, match="no collection named 'nope'"):
            op(ctx, "nope")
    for op in (comparison.compare, comparison.lookup_comparison):
        with pytest.raises(NotFound, match="no vectors for backbone 'alexnet'"):  # could be a derived space's name
            op(ctx, "pets", ["alexnet"])
        with pytest.raises(InvalidInput, match="at least one backbone"):
            op(ctx, "pets", [])


def test_comparison_view_marks_missing_weights_unavailable(ctx, pets, offline_keras_weights, weight_probes):
    assert comparison.lookup_comparison(ctx, "pets", ["efficientnet_lite0", "efficientnet_lite1"]) is None
    without = comparison.compare(ctx, "pets", ["efficientnet_lite0", "efficientnet_lite1"], embed=False).to_dict()
    lite1 = without["backbones"][1]
    assert lite1["available"] is False and "no vectors" in lite1["reason"]

    from simsearch.errors import WeightsUnavailable

    with pytest.raises(WeightsUnavailable, match="resnet50"):
        ctx.embedder("resnet50").load()
    # no download attempt hanging on the network: one probe, bounded by its timeout, then the error
    assert [(host, timeout) for host, timeout, _ in weight_probes] == [("keras-weights.invalid", 5.0)]

    weight_probes.clear()
    cmp = comparison.compare(ctx, "pets", ["efficientnet_lite0", "resnet50", "efficientnet_lite1"], embed=True).to_dict()
    # the unavailable backbone costs one bounded probe, not a download wait
    assert [(host, timeout) for host, timeout, _ in weight_probes] == [("keras-weights.invalid", 5.0)]
    panels = {p["backbone"]: p for p in cmp["backbones"]}
    assert list(panels) == ["efficientnet_lite0", "resnet50", "efficientnet_lite1"]
    res = panels["resnet50"]
    assert res["available"] is False and res["dim"] == 2048
    assert "resnet50" in res["reason"] and "weights" in res["reason"] and "map" not in res
    for name, dim in (("efficientnet_lite0", 1280), ("efficientnet_lite1", 1280)):
        p = panels[name]
        assert p["available"] is True and p["reason"] is None and p["dim"] == dim and p["n_images"] == 20
        assert p["labels"]["knn_precision_at_10"] > 0.5
        assert p["embed_seconds_per_image"] > 0 and p["embed_seconds_total"] > p["embed_seconds_per_image"]
        assert len(p["map"]["x"]) == 20 and p["best_k"] == p["silhouette"]["best_k"]
    assert panels["efficientnet_lite0"]["embedding"]["embedded"] == 0  # it had its vectors already
    lite0, lite1 = panels["efficientnet_lite0"]["embedding"], panels["efficientnet_lite1"]["embedding"]
    assert "job_id" not in lite0 and "estimate" not in lite0  # no re-embedding was needed
    embedding = {k: lite1[k] for k in ("embedded", "failed", "errors")}
    assert embedding == {"embedded": 20, "failed": 0, "errors": []}
    # the missing vectors were a re-embedding job, its cost estimated before it started
    assert isinstance(lite1["job_id"], int) and lite1["estimate"]["images"] == 20
    (ov,) = cmp["neighbour_overlap"]
    assert (ov["a"], ov["b"], ov["k"], ov["n"]) == ("efficientnet_lite0", "efficientnet_lite1", 10, 20)
    assert 0 < ov["jaccard"] <= 1
    # Every part is cached now: the comparison can be answered without computing.
    names = ["efficientnet_lite0", "resnet50", "efficientnet_lite1"]
    cached = comparison.lookup_comparison(ctx, "pets", names, with_maps=True)
    assert cached is not None and [p.available for p in cached.backbones] == [True, False, True]
    assert cached.neighbour_overlap[0].to_dict() == ov
    assert cached.to_dict()["backbones"][2]["map"] == cmp["backbones"][2]["map"]
