"""Slow analysis never runs inside a request: the clusters, map, evaluation and comparison endpoints
answer 200 from the result cache, or 202 with a background job (the same runners as ingest) that
the client polls; on SQLite and PostgreSQL, with the in-process runner and with RQ + a worker.

The collections here are synthetic vectors written straight into the database (three separated
groups, labelled), so no model runs and the tests are quick."""

from __future__ import annotations

import hashlib
import threading
import time

import numpy as np
import pytest

from tests.test_jobs import REDIS_URL, rq_queue, run_worker_process  # noqa: F401 (fixture)

SPACE = "efficientnet_lite0"
ENDPOINTS = ("clusters", "map", "evaluation", "comparison")


def add_vectors(ctx, collection: str = "synth", per_group: int = 15, groups: int = 3, dim: int = 64,
                space: str = SPACE, seed: int = 0) -> list[int]:
    """``groups`` tight groups of unit vectors, labelled g0, g1, ...; returns the image ids."""
    from simsearch.store import repo
    from simsearch.store.models import Embedding, Image

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, dim))
    ids = []
    with ctx.db.session() as s:
        coll = repo.get_or_create_collection(s, collection)
        for g in range(groups):
            for i in range(per_group):
                v = centres[g] + 0.15 * rng.normal(size=dim)
                v = (v / np.linalg.norm(v)).astype(np.float32)
                digest = hashlib.sha256(f"{collection}:{space}:{g}:{i}:{seed}".encode()).hexdigest()
                img = Image(collection_id=coll.id, content_hash=digest, source_path=f"/synthetic/{g}/{i}.jpg",
                            label=f"g{g}", status="ok", meta={})
                s.add(img)
                s.flush()
                s.add(Embedding(image_id=img.id, space=space, dim=dim, vector=repo.vector_to_bytes(v)))
                ids.append(img.id)
    return ids


@pytest.fixture
def app(make_app):
    app = make_app()
    add_vectors(app.extensions["simsearch"])
    return app


def poll(client, job_id: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/jobs/{job_id}").get_json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def accepted(resp) -> dict:
    assert resp.status_code == 202, (resp.status_code, resp.get_data(as_text=True)[:300])
    body = resp.get_json()
    assert set(body) == {"job_id", "status", "status_url"} and body["status"] in ("queued", "running")
    assert resp.headers["Location"] == body["status_url"] == f"/api/jobs/{body['job_id']}"
    return body


class Gate:
    """Replaces a function of simsearch.analysis: records the thread that calls it and holds it
    until released, then calls the real one."""

    def __init__(self, monkeypatch, name: str):
        import simsearch.analysis as analysis

        self.real = getattr(analysis, name)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: list[str] = []
        monkeypatch.setattr(analysis, name, self)

    def __call__(self, *args, **kwargs):
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        assert self.release.wait(60), "the test never released the gate"
        return self.real(*args, **kwargs)


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
    import simsearch.analysis as analysis

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
