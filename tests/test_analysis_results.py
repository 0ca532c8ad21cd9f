"""The analysis results, declared once (simsearch/ops/analysis_results.py): results cached by the
code before them (dataclasses with hand-written to_dict) still load and give the same JSON; the
JSON leaves out what it used to leave out; the API's responses are those models and what the API
sends validates against the OpenAPI document generated from them (both databases)."""

from __future__ import annotations

import numpy as np
import pytest

from simsearch.ops.analysis_results import (NO_LABELS_NOTE, BackbonePanel, ClusterResult, Clusters, Comparison,
                                            EmbedReport, Evaluation, MapResult, NeighbourOverlap, SilhouetteSweep,
                                            StoredLabelAgreement)

# As the dataclasses wrote them (to_dict / base_dict / stored), key for key.
SWEEP = {"ks": [2, 3, 4], "scores": [0.21, 0.35, 0.3], "best_k": 3, "sample_size": 30, "seconds": 0.02,
         "metric": "cosine", "centred": True}
BASE_CLUSTERS = {"collection": "ext", "backbone": "clip-vit-b32", "k": 3, "auto": True, "silhouette_at_k": 0.35,
                 "silhouette": SWEEP, "n_images": 30, "cached": False,
                 "clusters": [{"cluster": c, "size": 10, "representatives": [1 + 10 * c, 2 + 10 * c],
                               "members": list(range(1 + 10 * c, 11 + 10 * c))} for c in range(3)]}
AGREEMENT = {"n_labelled": 27, "n_labels": 3, "ari": [0.4, 0.9, 0.8], "ari_at_k": 0.9, "note": None,
             "makeup": [[["a", 9], [None, 1]], [["b", 9], [None, 1]], [["c", 8], ["a", 1], [None, 1]]]}
EXTERNAL = {"k": 3, "ari": 0.9, "nmi": 0.88, "homogeneity": 0.87, "completeness": 0.89, "v_measure": 0.88,
            "n_samples": 27, "n_classes": 3, "n_clusters": 3}
EVALUATION = {"collection": "ext", "backbone": "clip-vit-b32", "n_images": 30, "silhouette": SWEEP, "best_k": 3,
              "n_labelled": 27, "n_labels": 3, "labels": {
                  "at_best_k": EXTERNAL, "at_n_labels": None, "knn_precision_at_10": 0.91, "precision_k": 10,
                  "per_label": [{"label": lab, "n": 9, "precision": 0.91} for lab in "abc"],
                  "contingency": {"k": 3, "labels": ["a", "b", "c"], "clusters": [0, 1, 2],
                                  "counts": [[9, 0, 0], [0, 9, 0], [1, 0, 8]]}}}
EVALUATION_NO_LABELS = {**EVALUATION, "n_labelled": 0, "n_labels": 0, "labels": None, "note": NO_LABELS_NOTE}
OVERLAP = {"a": "x", "b": "y", "k": 10, "n": 30, "jaccard": 0.5}


@pytest.mark.parametrize("model, stored", [(SilhouetteSweep, SWEEP), (ClusterResult, BASE_CLUSTERS),
                                           (StoredLabelAgreement, AGREEMENT), (Evaluation, EVALUATION),
                                           (Evaluation, EVALUATION_NO_LABELS), (NeighbourOverlap, OVERLAP)],
                         ids=["sweep", "clusters", "agreement", "evaluation", "evaluation-no-labels", "overlap"])
def test_results_cached_by_the_old_code_load_and_give_the_same_json(model, stored):
    loaded = model.model_validate(stored)
    assert loaded.to_dict() == stored
    assert model.model_validate(loaded.to_dict()) == loaded


def test_a_sweep_cached_before_the_metric_was_recorded_reads_as_euclidean_uncentred():
    old = {k: v for k, v in SWEEP.items() if k not in ("metric", "centred")}
    sweep = SilhouetteSweep.model_validate({**old, "seconds": None})
    assert (sweep.metric, sweep.centred, sweep.seconds) == ("euclidean", False, 0.0)
    assert SilhouetteSweep(**SWEEP).score_at(3) == 0.35 and SilhouetteSweep(**SWEEP).score_at(9) is None


def test_a_bad_cached_result_is_refused_naming_the_field():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="best_k"):
        SilhouetteSweep.model_validate({**SWEEP, "best_k": "three"})


def test_keys_absent_stay_absent():
    ev = Evaluation.model_validate(EVALUATION)
    assert "note" not in ev.to_dict() and ev.labels.knn_precision == 0.91
    assert Evaluation.model_validate(EVALUATION_NO_LABELS).to_dict()["note"] == NO_LABELS_NOTE
    down = BackbonePanel(backbone="x", dim=8, input_size=None, available=False, reason="no weights")
    assert down.to_dict() == {"backbone": "x", "dim": 8, "input_size": None, "available": False, "reason": "no weights"}
    embedded = down.model_copy(update={"embedding": EmbedReport(embedded=2, failed=0, errors=[])})
    assert embedded.to_dict()["embedding"] == {"embedded": 2, "failed": 0, "errors": []}
    m = MapResult(collection="ext", backbone="x", method="pca", n=2, ids=np.array([4, 5]),
                  x=np.array([0.5, 1.0], np.float32), y=np.array([0.25, 2.0], np.float32), labels=["a", None],
                  clusters=np.array([0, 1], np.int32), k=2, seconds=None, cached=True)
    assert isinstance(m.ids, np.ndarray) and m.ids.dtype == np.int64
    assert m.to_dict() == {"collection": "ext", "backbone": "x", "method": "pca", "n": 2, "ids": [4, 5], "x": [0.5, 1.0],
                           "y": [0.25, 2.0], "labels": ["a", None], "clusters": [0, 1], "k": 2, "seconds": None,
                           "cached": True}
    up = BackbonePanel.scored(Evaluation.model_validate(EVALUATION), backbone="x", dim=8, input_size=224,
                              embed_seconds_per_image=None, embed_seconds_total=None, map=m)
    panel = up.to_dict()
    assert set(panel) == {"backbone", "dim", "input_size", "available", "reason", "n_images", "silhouette", "best_k",
                          "labels", "embed_seconds_per_image", "embed_seconds_total", "map"}
    assert panel["map"] == {k: m.to_dict()[k] for k in ("ids", "x", "y", "labels", "clusters", "k")}
    both = Comparison(collection="ext", n_images=30, backbones=[up, down], neighbour_overlap=[NeighbourOverlap(**OVERLAP)])
    assert "map" in both.to_dict()["backbones"][0] and "map" not in both.to_dict(maps=False)["backbones"][0]
    assert both.available == [up]


def test_the_api_responses_are_the_result_models():
    from simsearch.web import schemas as S

    assert S.Clusters is Clusters and S.Evaluation is Evaluation and S.Comparison is Comparison
    assert issubclass(S.Map, MapResult) and set(S.Map.model_fields) == set(MapResult.model_fields)


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def ext(ctx, tmp_path):
    """Collection ``ext``: 30 imported vectors in 3 groups, labelled a/b/c but every 7th unlabelled."""
    from simsearch.ops.vectors_io import import_vectors

    x = np.repeat(_unit(3, 16, 9), 10, axis=0) + 0.05 * _unit(30, 16, 1)
    labels = np.array(["" if i % 7 == 6 else "abc"[i // 10] for i in range(30)])
    np.savez(tmp_path / "v.npz", vectors=x, keys=np.array([f"item-{i}" for i in range(30)]), labels=labels)
    import_vectors(ctx, tmp_path / "v.npz", "ext", "clip-vit-b32")
    return ctx


def test_old_rows_in_the_cache_are_served_as_they_were(ext):
    from simsearch.ops import analysis, cluster_labels
    from simsearch.ops import vectors as vecs
    from simsearch.store import results

    vs = vecs.peek(ext, "ext", "clip-vit-b32")
    assert cluster_labels.lookup(ext, "ext", vs.space) is None
    results.put(ext.db, analysis._clusters_key(vs, None, cluster_labels.REPRESENTATIVES), BASE_CLUSTERS)
    base = ClusterResult.model_validate(BASE_CLUSTERS)
    results.put(ext.db, cluster_labels._agreement_key(vs, base, vs.labels(ext)), AGREEMENT)
    got = cluster_labels.lookup(ext, "ext", vs.space).to_dict()
    expected = {**BASE_CLUSTERS, "cached": True, "version": cluster_labels.version_of(vs),
                "label_agreement": {k: v for k, v in AGREEMENT.items() if k != "makeup"},
                "clusters": [{**c, "name": None, "labels": [{"label": lab, "count": n} for lab, n in mix]}
                             for c, mix in zip(BASE_CLUSTERS["clusters"], AGREEMENT["makeup"])]}
    assert got == expected
    results.put(ext.db, analysis._evaluation_key(vs, vs.labels(ext)), EVALUATION)
    assert analysis.lookup_evaluation(ext, "ext", vs.space).to_dict() == EVALUATION


def _schema(spec: dict, name: str) -> dict:
    """A component of the OpenAPI document as a JSON schema that resolves its references."""
    return {**spec["components"]["schemas"][name], "components": spec["components"]}


def test_what_the_api_sends_validates_against_the_schema_made_from_the_models(ext, make_app):
    import jsonschema

    from simsearch.ops import analysis, cluster_labels, comparison

    cluster_labels.compute(ext, "ext", "clip-vit-b32")
    analysis.map_2d(ext, "ext", "clip-vit-b32")
    comparison.compare(ext, "ext", ["clip-vit-b32", "efficientnet_lite0"], with_maps=False)  # one unavailable
    client = make_app().test_client()
    spec = client.get("/api/openapi.json").get_json()
    for name, url in (("Clusters", "clusters"), ("Map", "map"), ("Evaluation", "evaluation"),
                      ("Comparison", "comparison?backbones=clip-vit-b32,efficientnet_lite0")):
        resp = client.get(f"/api/collections/ext/{url}")
        assert resp.status_code == 200, (url, resp.get_json())
        body = resp.get_json()
        jsonschema.validate(body, _schema(spec, name))
        assert set(spec["components"]["schemas"][name]["required"]) <= set(body), name
    panels = client.get("/api/collections/ext/comparison?backbones=clip-vit-b32,efficientnet_lite0").get_json()["backbones"]
    assert panels[0]["available"] and not panels[1]["available"] and "silhouette" not in panels[1]
