"""Suggested cluster names from the backbone's own ImageNet classifier: the head read from the
EfficientNet-Lite checkpoint, the class names shipped with the package, the votes (pure), and the API
over real photos: a cluster of cats is offered a cat class, a cluster of dogs a dog breed."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import copy_subset
from tests.helpers.api import analysis_result, assert_error, ingest_folder

CAT_CLASSES = {"n02123045", "n02123159", "n02123394", "n02123597", "n02124075"}  # tabby .. Egyptian cat
DOG_CLASSES = range(151, 269)  # ImageNet's dog breeds: Chihuahua .. Mexican hairless


def test_class_names_ship_with_the_package():
    from simsearch.embedding.backbones.imagenet_head import class_names

    names = class_names()
    assert len(names) == 1000 and len({w for w, _ in names}) == 1000
    assert names[0] == ("n01440764", "tench, Tinca tinca") and names[281] == ("n02123045", "tabby, tabby cat")
    assert [w for w, _ in names] == sorted(w for w, _ in names)  # the classifier's order: the synsets sorted


def test_the_head_is_read_from_the_lite_checkpoints_only():
    from simsearch.embedding.backbones.imagenet_head import classifier_head, has_head

    weight, bias = classifier_head("efficientnet_lite0")
    assert weight.shape == (1000, 1280) and bias.shape == (1000,) and weight.dtype == np.float32
    assert np.isfinite(weight).all() and weight.std() > 0
    assert classifier_head("resnet50") is None and not has_head("mobilenet_v2") and not has_head("nope")


def test_votes_rank_classes_by_images_then_mean_score_and_ignore_scale():
    from simsearch.embedding.backbones.imagenet_head import top_classes

    weight = np.eye(4, 3, dtype=np.float32)  # 4 classes over 3 dimensions: class 3 scores 0 everywhere
    x = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.2, 1], [0, 0.1, 0.8]], dtype=np.float32)
    votes = top_classes(x, weight)
    assert [(v.index, v.images) for v in votes] == [(0, 2), (2, 2), (1, 1)]  # 0 before 2: higher mean score
    assert votes[0].share == pytest.approx(0.4)
    scaled = top_classes(x * np.array([[3], [0.1], [7], [2], [0.5]], dtype=np.float32), weight)
    assert {v.index: v.images for v in scaled} == {0: 2, 2: 2, 1: 1}  # each vector's vote is the same at any scale
    assert [v.index for v in top_classes(x, weight, top=1)] == [0]
    assert top_classes(np.zeros((0, 3), np.float32), weight) == []
    with pytest.raises(ValueError):
        top_classes(np.zeros((2, 5), np.float32), weight)


def test_spaces_without_a_classifier_say_why():
    from simsearch.ops.cluster_suggestions import _source, sample

    assert _source("efficientnet_lite0") == ("efficientnet_lite0", "efficientnet_lite0", None)
    assert _source("efficientnet_lite1+flip+bf16")[:2] == ("efficientnet_lite1", "efficientnet_lite1+flip+bf16")
    assert _source("efficientnet_lite0@gem3")[:2] == ("efficientnet_lite0", "efficientnet_lite0")  # read the avg space
    assert "no suggestions for this backbone" in _source("resnet50")[2]
    assert "imported or derived" in _source("clip-vit-b32")[2]
    ids = np.arange(10, 5000, dtype=np.int64)
    assert np.array_equal(sample(ids, 100), sample(ids[::-1], 100)) and len(sample(ids, 100)) == 100
    assert np.array_equal(sample(ids[:50], 100), ids[:50])


@pytest.fixture
def app(make_app):
    return make_app()


def test_a_cluster_of_cats_is_offered_a_cat_class(app, tmp_path):
    from simsearch.embedding.backbones.imagenet_head import class_names

    ingest_folder(app, copy_subset(tmp_path / "pets", 6))
    client = app.test_client()
    data = analysis_result(client, "/api/collections/pets/clusters?k=2").get_json()
    wnids = [w for w, _ in class_names()]
    seen = set()
    for c in data["clusters"]:
        top_label = c["labels"][0]["label"]
        url = f"/api/collections/pets/clusters/suggestions?k=2&cluster={c['cluster']}&version={data['version']}"
        resp = client.get(url)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        out = resp.get_json()
        assert out["note"] is None and out["classified"] == out["size"] == c["size"]
        assert out["from_space"] == "efficientnet_lite0" and 1 <= len(out["suggestions"]) <= 5
        best = out["suggestions"][0]
        assert best["name"] == best["classes"].split(",")[0]
        assert sum(s["images"] for s in out["suggestions"]) <= c["size"]
        if top_label == "cats":
            assert best["wnid"] in CAT_CLASSES, out["suggestions"]
        else:
            assert wnids.index(best["wnid"]) in DOG_CLASSES, out["suggestions"]
        seen.add(top_label)
    assert seen == {"cats", "dogs"}
    # accepting one is the existing rename
    named = client.post("/api/collections/pets/clusters/name",
                        json={"k": 2, "cluster": 0, "version": data["version"], "name": best["name"]})
    assert named.status_code == 200 and named.get_json()["name"] == best["name"]

    base = "/api/collections/pets/clusters/suggestions?k=2"
    assert_error(client.get(f"{base}&cluster=7"), 404, "not_found", "cluster")
    assert_error(client.get(f"{base}&cluster=0&version={'0' * 16}"), 409, "conflict", "version")
    assert_error(client.get(f"{base}"), 400, "invalid_input", "cluster")
    assert_error(client.get(f"{base}&cluster=x"), 400, "invalid_input", "cluster")
    assert_error(client.get("/api/collections/pets/clusters/suggestions?k=3&cluster=0"), 409, "conflict", "k")
