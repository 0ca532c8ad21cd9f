"""Clusters as a curator reads them: label make-up per cluster, ARI against the labels at each k
(cached with the clusters), names that persist, saving a cluster as a label."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import copy_subset
from tests.helpers.api import assert_error
from tests.helpers.analysis import result

SPACE = "efficientnet_lite0"


def test_agreement_counts_labels_and_scores_each_k():
    from simsearch.ops.cluster_labels import agreement

    labels = ["a", "a", "b", "b", None, "b"]
    at2 = np.array([0, 0, 1, 1, 1, 1])
    at3 = np.array([0, 1, 2, 2, 2, 2])
    clusters = [np.array([0, 1]), np.array([2, 3, 4, 5])]
    out = agreement(labels, {2: at2, 3: at3}, at2, clusters)
    assert out.makeup == [[("a", 2)], [("b", 3), (None, 1)]]
    assert (out.n_labelled, out.n_labels) == (5, 2)
    assert out.ari[0] == pytest.approx(1.0) and out.ari_at_k == pytest.approx(1.0)  # k=2 splits a from b exactly
    assert out.ari[1] < 1.0  # k=3 splits the a's
    assert out.note is None
    # fewer than two distinct labels: no ARI, a note saying why
    one = agreement(["a", None, "a"], {2: np.array([0, 1, 1])}, np.array([0, 1, 1]), [np.array([0]), np.array([1, 2])])
    assert one.ari == [None] and one.ari_at_k is None and "two distinct labels" in one.note
    assert one.makeup == [[("a", 1)], [("a", 1), (None, 1)]]


@pytest.fixture
def pets_app(make_app, tmp_path):
    from simsearch.ingest import Ingester, files_from_folder

    app = make_app()
    folder = copy_subset(tmp_path / "pets", 6)
    files, _ = files_from_folder(folder, labels="folders")
    Ingester(app.extensions["simsearch"], spaces=[SPACE]).run("pets", files, source=str(folder))
    return app


def test_clusters_carry_makeup_ari_names_and_save_as_label(pets_app, make_app, settings, monkeypatch):
    from sklearn.metrics import adjusted_rand_score

    import simsearch.analysis
    from simsearch.ops import vectors as vecs

    client = pets_app.test_client()
    data, jobs = result(client, "/api/collections/pets/clusters?k=3")
    assert jobs == 1 and data["k"] == 3 and len(data["version"]) == 16
    labels = {i["id"]: i["label"] for i in client.get("/api/collections/pets/images?per_page=100").get_json()["images"]}
    for c in data["clusters"]:
        assert c["name"] is None
        assert sum(e["count"] for e in c["labels"]) == c["size"]
        counts = [e["count"] for e in c["labels"]]
        assert counts == sorted(counts, reverse=True)
        assert {e["label"] for e in c["labels"]} == {labels[m] for m in c["members"]}
    agree = data["label_agreement"]
    assert (agree["n_labels"], agree["n_labelled"]) == (2, 12) and agree["note"] is None
    assert len(agree["ari"]) == len(data["silhouette"]["ks"]) and all(-1 <= a <= 1 for a in agree["ari"])
    truth = [labels[m] for c in data["clusters"] for m in c["members"]]
    pred = [c["cluster"] for c in data["clusters"] for _ in c["members"]]
    assert agree["ari_at_k"] == pytest.approx(adjusted_rand_score(truth, pred))
    assert agree["ari"][data["silhouette"]["ks"].index(3)] == pytest.approx(agree["ari_at_k"])

    # name a cluster: kept, and served from the cache (no job)
    version = data["version"]
    resp = client.post("/api/collections/pets/clusters/name", json={"k": 3, "cluster": 1, "name": " Sleepy cats ",
                                                                    "version": version})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"collection": "pets", "backbone": SPACE, "k": 3, "cluster": 1, "name": "Sleepy cats",
                               "version": version}
    again, jobs = result(client, "/api/collections/pets/clusters?k=3")
    assert jobs == 0 and [c["name"] for c in again["clusters"]] == [None, "Sleepy cats", None]
    # the same clustering asked as k=auto (when auto picks 3) or by k=3 shares its names; another k has none
    other, _ = result(client, "/api/collections/pets/clusters?k=4")
    assert all(c["name"] is None for c in other["clusters"])

    # bad requests
    url = "/api/collections/pets/clusters/name"
    assert_error(client.post(url, json={"k": 3, "cluster": 3, "name": "x"}), 404, "not_found", "cluster")
    assert_error(client.post(url, json={"k": 3, "cluster": -1, "name": "x"}), 400, field="cluster")
    assert_error(client.post(url, json={"k": 3, "cluster": 0, "name": ""}), 400, field="name")
    assert_error(client.post(url, json={"k": 3, "cluster": 0}), 400, field="name")
    assert_error(client.post(url, json={"k": 3, "cluster": 0, "name": "x", "version": "0" * 16}), 409, "conflict", "version")
    assert_error(client.post(url, json={"k": 7, "cluster": 0, "name": "x"}), 409, "conflict", "k")  # never computed
    assert_error(client.post(url, json={"k": 1, "cluster": 0, "name": "x"}), 400, field="k")
    assert_error(client.post("/api/collections/nope/clusters/name", json={"k": 3, "cluster": 0, "name": "x"}), 404)

    # save a cluster as a label: its images get it; the labels part is recomputed from the cached
    # sweep without reading a vector, the clusters and their names stay
    target = again["clusters"][1]
    loads, sweeps = [], []
    real_load, real_sweep = vecs.load, simsearch.analysis.silhouette_sweep
    monkeypatch.setattr(vecs, "load", lambda *a, **kw: loads.append(a) or real_load(*a, **kw))
    monkeypatch.setattr(simsearch.analysis, "silhouette_sweep", lambda *a, **kw: sweeps.append(a) or real_sweep(*a, **kw))
    resp = client.post("/api/collections/pets/clusters/label", json={"k": 3, "cluster": 1, "label": "sleepy",
                                                                     "version": version})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["updated"] == target["size"] and resp.get_json()["label"] == "sleepy"
    page = client.get("/api/collections/pets/images?label=sleepy&per_page=100").get_json()
    assert sorted(i["id"] for i in page["images"]) == sorted(target["members"])
    after, jobs = result(client, "/api/collections/pets/clusters?k=3")
    assert jobs == 1 and loads == [] and sweeps == []
    assert after["clusters"][1]["labels"] == [{"label": "sleepy", "count": target["size"]}]
    assert after["clusters"][1]["name"] == "Sleepy cats" and after["version"] == version
    assert after["label_agreement"]["n_labels"] == 3
    assert_error(client.post("/api/collections/pets/clusters/label", json={"k": 3, "cluster": 0, "label": " "}), 400,
                 field="label")

    # names persist in the database: a new app on the same data sees them
    fresh = make_app(settings).test_client()
    kept, jobs = result(fresh, "/api/collections/pets/clusters?k=3")
    assert jobs == 0 and kept["clusters"][1]["name"] == "Sleepy cats"
    # removing a name
    assert client.post(url, json={"k": 3, "cluster": 1, "name": None}).get_json()["name"] is None
    assert result(client, "/api/collections/pets/clusters?k=3")[0]["clusters"][1]["name"] is None


def test_cluster_writes_need_a_key_when_keys_are_set(pets_app, make_app, settings):
    keyed = make_app(settings.replace(api_keys=("key-one",))).test_client()
    assert_error(keyed.get("/api/collections/pets/clusters?k=2"), 401, "unauthorized")  # reads need the key too
    reader = make_app(settings.replace(api_keys=("key-one",), public_reads=True)).test_client()
    data, _ = result(reader, "/api/collections/pets/clusters?k=2")
    body = {"k": 2, "cluster": 0, "name": "x", "version": data["version"]}
    assert_error(keyed.post("/api/collections/pets/clusters/name", json=body), 401, "unauthorized")
    label = {"k": 2, "cluster": 0, "label": "x"}
    assert_error(keyed.post("/api/collections/pets/clusters/label", json=label), 401, "unauthorized")
    ok = keyed.post("/api/collections/pets/clusters/label", json=label, headers={"X-API-Key": "key-one"})
    assert ok.status_code == 200 and ok.get_json()["updated"] == data["clusters"][0]["size"]
    ok = keyed.post("/api/collections/pets/clusters/name", json=body, headers={"Authorization": "Bearer key-one"})
    assert ok.status_code == 200
