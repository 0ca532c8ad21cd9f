"""Slow analysis never runs inside a request: the clusters, map, evaluation and comparison endpoints
answer 200 from the result cache, or 202 with a background job (the same runners as ingest) that
the client polls; on SQLite and PostgreSQL, with the in-process runner and with RQ + a worker.

The collections here are synthetic vectors written straight into the database (three separated
groups, labelled), so no model runs and the tests are quick."""

from __future__ import annotations

import threading

import pytest

from tests.helpers.jobs import REDIS_URL, rq_queue, run_worker_process  # noqa: F401 (fixture)
from tests.helpers.analysis import Gate, accepted, add_vectors, poll

SPACE = "efficientnet_lite0"
ENDPOINTS = ("clusters", "map", "evaluation", "comparison")


@pytest.fixture
def app(make_app):
    app = make_app()
    add_vectors(app.extensions["simsearch"])
    return app


def test_clusters_request_starts_a_job_and_never_computes_inline(app, monkeypatch):
    client = app.test_client()
    gate = Gate(monkeypatch, "auto_sweep")
    first = accepted(client.get("/api/collections/synth/clusters?k=auto"))
    # the sweep runs (and waits) on the job runner's thread, not on the request's
    assert gate.entered.wait(30), "the job never started"
    assert gate.threads and all(t.startswith("simsearch-") for t in gate.threads), gate.threads
    assert threading.current_thread().name not in gate.threads
    running = client.get(f"/api/jobs/{first['job_id']}").get_json()
    assert running["status"] == "running" and running["kind"] == "clusters"
    assert running["params"] == {"backbone": SPACE, "k": "auto", "representatives": 8}
    assert running["total"] == 3 and running["processed"] == 1 and "silhouette" in running["message"]
    # another request for the same result joins the running job instead of starting one
    again = accepted(client.get("/api/collections/synth/clusters"))
    assert again["job_id"] == first["job_id"] and again["status"] == "running"
    gate.release.set()
    job = poll(client, first["job_id"])
    assert job["status"] == "done" and job["processed"] == job["total"] == 3, job
    assert job["result_url"].startswith("/api/collections/synth/clusters?")
    resp = client.get(job["result_url"])
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["cached"] is True and body["k"] == 3 and sorted(c["size"] for c in body["clusters"]) == [15, 15, 15]
    assert client.get("/api/collections/synth/clusters?k=auto").get_json() == body
    assert len(gate.threads) == 1  # computed once
    # a fixed k is another result: another job, which reuses the cached sweep
    fixed = accepted(client.get("/api/collections/synth/clusters?k=4"))
    assert poll(client, fixed["job_id"])["status"] == "done"
    assert client.get("/api/collections/synth/clusters?k=4").get_json()["k"] == 4
    assert len(gate.threads) == 1


def test_map_request_never_runs_tsne_inline(app, monkeypatch):
    client = app.test_client()
    gate = Gate(monkeypatch, "tsne_2d")
    body = accepted(client.get("/api/collections/synth/map"))
    assert gate.entered.wait(30)
    assert threading.current_thread().name not in gate.threads
    assert client.get("/api/collections/synth/map").get_json()["job_id"] == body["job_id"]
    gate.release.set()
    assert poll(client, body["job_id"])["status"] == "done"
    m = client.get("/api/collections/synth/map").get_json()
    assert m["n"] == 45 and len(m["x"]) == len(m["labels"]) == 45 and m["cached"] is True
    # labels are read at each request: a new label shows without recomputing the map
    ids = m["ids"][:2]
    assert client.post("/api/collections/synth/labels", json={"image_ids": ids, "label": "renamed"}).status_code == 200
    again = client.get("/api/collections/synth/map")
    assert again.status_code == 200 and [again.get_json()["labels"][i] for i in (0, 1)] == ["renamed", "renamed"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_analysis_endpoint_answers_202_then_200(app, endpoint):
    client = app.test_client()
    url = f"/api/collections/synth/{endpoint}"
    body = accepted(client.get(url))
    job = poll(client, body["job_id"])
    assert job["status"] == "done" and job["kind"] == endpoint and job["collection"] == "synth", job
    resp = client.get(url)
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()
    if endpoint == "evaluation":
        assert data["n_labels"] == 3 and data["labels"]["knn_precision_at_10"] > 0.9
    if endpoint == "comparison":
        assert [p["backbone"] for p in data["backbones"]] == [SPACE] and data["backbones"][0]["best_k"] == 3


def test_bad_requests_fail_at_once_without_a_job(app):
    client = app.test_client()
    for url, status, field in (("/api/collections/synth/clusters?k=45", 409, "k"),  # more clusters than images: 409
                               ("/api/collections/synth/clusters?k=1", 400, "k"),
                               ("/api/collections/synth/map?backbone=resnet50", 404, "backbone"),
                               ("/api/collections/nope/evaluation", 404, "collection"),
                               ("/api/collections/synth/comparison?backbones=nope", 404, "backbones"),  # could be a derived space
                               ("/api/collections/synth/comparison?backbones=no%20pe", 400, "backbones")):
        resp = client.get(url)
        assert resp.status_code == status, (url, resp.get_json())
        assert resp.get_json()["error"]["field"] == field
    assert client.get("/api/jobs").get_json()["jobs"] == []


def test_a_failed_computation_is_recorded_and_the_next_request_retries(app, monkeypatch):
    import simsearch.ops.analysis as analysis  # the operation's t-SNE (imported at its top)

    def broken(*args, **kwargs):
        raise MemoryError("no room for the t-SNE")

    monkeypatch.setattr(analysis, "tsne_2d", broken)
    client = app.test_client()
    body = accepted(client.get("/api/collections/synth/map"))
    job = poll(client, body["job_id"])
    assert job["status"] == "failed" and "map" in job["message"] and "no room for the t-SNE" in job["message"], job
    monkeypatch.undo()
    retry = accepted(client.get("/api/collections/synth/map"))
    assert retry["job_id"] != body["job_id"]
    assert poll(client, retry["job_id"])["status"] == "done"
    assert client.get("/api/collections/synth/map").status_code == 200


def test_new_vectors_make_the_cached_result_stale(app):
    client = app.test_client()
    assert poll(client, accepted(client.get("/api/collections/synth/clusters"))["job_id"])["status"] == "done"
    assert client.get("/api/collections/synth/clusters").status_code == 200
    add_vectors(app.extensions["simsearch"], per_group=2, seed=1)
    body = accepted(client.get("/api/collections/synth/clusters"))
    assert poll(client, body["job_id"])["status"] == "done"
    assert client.get("/api/collections/synth/clusters").get_json()["n_images"] == 51


def test_ingest_job_listing_and_collection_summary_keep_their_meaning(app):
    client = app.test_client()
    body = accepted(client.get("/api/collections/synth/evaluation"))
    poll(client, body["job_id"])
    jobs = client.get("/api/jobs?collection=synth").get_json()["jobs"]
    assert [(j["id"], j["kind"]) for j in jobs] == [(body["job_id"], "evaluation")]


@pytest.mark.redis
def test_analysis_job_runs_on_rq_in_a_worker_process(make_app, settings, rq_queue):  # noqa: F811
    app = make_app(settings.replace(redis_url=REDIS_URL), SIMSEARCH_QUEUE=rq_queue)
    add_vectors(app.extensions["simsearch"])
    client = app.test_client()
    body = accepted(client.get("/api/collections/synth/clusters"))
    assert client.get(f"/api/jobs/{body['job_id']}").get_json()["status"] == "queued"
    proc = run_worker_process(settings, rq_queue)
    assert proc.returncode == 0, proc.stderr[-2000:]
    job = client.get(f"/api/jobs/{body['job_id']}").get_json()
    assert job["status"] == "done", job
    resp = client.get("/api/collections/synth/clusters")
    assert resp.status_code == 200 and resp.get_json()["k"] == 3
