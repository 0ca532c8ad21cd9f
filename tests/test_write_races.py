"""Every write route under parallel requests (issue 19, item 4): races end in 200/201/202, 404 or
409, never a 500, on SQLite and PostgreSQL.

The race is real: each request runs on its own thread and its first write statement (INSERT,
UPDATE, DELETE, SELECT ... FOR UPDATE, an advisory lock) waits at a barrier until every request has reached its own
first write (or has finished without one). So all of them have read what is stored (the
collection, the image, the name that is still free) before any of them writes: what a burst of
requests from a script or a double-click does on a busy server."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from simsearch.store.models import Collection, Image
from tests.helpers.jobs import rq_queue  # noqa: F401 (fixture)
from tests.helpers.races import WAIT, at_once, imported, no_500, npz

N = 6  # requests at once


def statuses(responses) -> list[int]:
    return sorted(r.status_code for r in responses)


@pytest.fixture
def app(make_app):
    return make_app()


# ---- collections ---------------------------------------------------------------------------------

def test_parallel_creates_of_one_name(app):
    answers = at_once(app, *[lambda c: c.post("/api/collections", json={"name": "same"})] * N)
    no_500(answers)
    assert statuses(answers) == [201] + [409] * (N - 1)


def test_parallel_renames_of_several_collections_to_one_name(app):
    client = app.test_client()
    for i in range(N):
        assert client.post("/api/collections", json={"name": f"c{i}"}).status_code == 201
    answers = at_once(app, *[lambda c, i=i: c.patch(f"/api/collections/c{i}", json={"name": "target"})
                             for i in range(N)])
    no_500(answers)
    assert statuses(answers) == [200] + [409] * (N - 1)
    for r in answers:
        if r.status_code == 409:
            assert r.get_json()["error"]["field"] == "name" and "already exists" in r.get_json()["error"]["message"]
    names = {c["name"] for c in client.get("/api/collections").get_json()["collections"]}
    winner = next(i for i, r in enumerate(answers) if r.status_code == 200)
    assert names == {"target"} | {f"c{i}" for i in range(N) if i != winner}


def test_parallel_renames_of_one_collection(app):
    client = app.test_client()
    client.post("/api/collections", json={"name": "src"})
    answers = at_once(app, *[lambda c, i=i: c.patch("/api/collections/src", json={"name": f"dst{i}"})
                             for i in range(N)])
    no_500(answers)
    assert statuses(answers) == [200] + [404] * (N - 1), [r.get_json() for r in answers]
    names = [c["name"] for c in client.get("/api/collections").get_json()["collections"]]
    assert len(names) == 1 and names[0].startswith("dst")


def test_parallel_deletes_of_one_collection(app):
    client = app.test_client()
    imported(client, "gone")
    answers = at_once(app, *[lambda c: c.delete("/api/collections/gone")] * N)
    no_500(answers)
    assert statuses(answers) == [200] + [404] * (N - 1), [r.get_json() for r in answers]
    assert next(r for r in answers if r.status_code == 200).get_json()["images"] == 6
    with app.extensions["simsearch"].db.session() as s:
        assert s.scalar(select(func.count()).select_from(Collection)) == 0
        assert s.scalar(select(func.count()).select_from(Image)) == 0


# ---- images --------------------------------------------------------------------------------------

def test_parallel_deletes_of_one_image(app):
    ids = imported(app.test_client(), "pets")
    answers = at_once(app, *[lambda c: c.delete(f"/api/images/{ids[0]}")] * N)
    no_500(answers)
    assert statuses(answers) == [200] + [404] * (N - 1), [r.get_json() for r in answers]


def test_parallel_changes_of_one_image(app):
    ids = imported(app.test_client(), "pets")
    answers = at_once(app, *[lambda c, i=i: c.patch(f"/api/images/{ids[0]}", json={"name": f"n{i}.jpg", "label": f"l{i}"})
                             for i in range(N)])
    no_500(answers)
    assert statuses(answers) == [200] * N
    final = app.test_client().get(f"/api/images/{ids[0]}").get_json()
    assert final["label"] in {f"l{i}" for i in range(N)}


def test_parallel_changes_and_a_delete_of_one_image(app):
    ids = imported(app.test_client(), "pets")
    calls = [lambda c: c.delete(f"/api/images/{ids[0]}")] + \
            [lambda c, i=i: c.patch(f"/api/images/{ids[0]}", json={"label": f"l{i}"}) for i in range(N - 1)]
    answers = at_once(app, *calls)
    no_500(answers)
    assert answers[0].status_code == 200
    assert set(r.status_code for r in answers[1:]) <= {200, 404, 409}


def test_parallel_labels_of_a_selection(app):
    ids = imported(app.test_client(), "pets")
    answers = at_once(app, *[lambda c, i=i: c.post("/api/collections/pets/labels", json={"image_ids": ids, "label": f"l{i}"})
                             for i in range(N)])
    no_500(answers)
    assert statuses(answers) == [200] * N
    labels = {i["label"] for i in app.test_client().get("/api/collections/pets/images?per_page=100").get_json()["images"]}
    assert len(labels) == 1


def test_parallel_labels_while_the_collection_is_deleted(app):
    ids = imported(app.test_client(), "pets")
    calls = [lambda c: c.delete("/api/collections/pets")] + \
            [lambda c, i=i: c.post("/api/collections/pets/labels", json={"image_ids": ids, "label": f"l{i}"})
             for i in range(N - 1)]
    answers = at_once(app, *calls)
    no_500(answers)
    assert answers[0].status_code == 200
    assert set(r.status_code for r in answers[1:]) <= {200, 404, 409}


# ---- vectors, spaces -----------------------------------------------------------------------------

def test_parallel_imports_of_the_same_vectors(app):
    data = npz([f"k{i}" for i in range(5)], dim=1280)
    answers = at_once(app, *[lambda c: c.post("/api/collections/vec/vectors?backbone=efficientnet_lite0&same_model=true", data=data,
                                              content_type="application/octet-stream")] * N)
    no_500(answers)
    assert set(statuses(answers)) <= {200, 409}, [r.get_json() for r in answers]
    assert 200 in statuses(answers)
    with app.extensions["simsearch"].db.session() as s:
        assert s.scalar(select(func.count()).select_from(Collection)) == 1
        assert s.scalar(select(func.count()).select_from(Image)) == 5


def test_parallel_imports_of_different_vectors_for_the_same_keys(app):
    answers = at_once(app, *[lambda c, i=i: c.post("/api/collections/vec/vectors?backbone=efficientnet_lite0&same_model=true",
                                                   data=npz(["a", "b", "c"], dim=1280, seed=i),
                                                   content_type="application/octet-stream") for i in range(N)])
    no_500(answers)
    assert statuses(answers) == [200] + [409] * (N - 1), [r.get_json() for r in answers]


def test_parallel_default_space_changes(app):
    imported(app.test_client(), "pets")
    answers = at_once(app, *[lambda c, i=i: c.put("/api/collections/pets/default-space",
                                                  json={"space": "efficientnet_lite0" if i % 2 else None})
                             for i in range(N)])
    no_500(answers)
    assert set(statuses(answers)) <= {200}, [r.get_json() for r in answers]


# ---- deleting a collection while one of its jobs runs (issue 19, item 8) ------------------------------

def _job_row(app, collection: str, status: str = "running", kind: str = "ingest") -> int:
    """A job of the collection as a worker in another process leaves it while it runs."""
    from simsearch.store import repo
    from simsearch.store.models import IngestRun

    with app.extensions["simsearch"].db.session() as s:
        coll = repo.get_collection(s, collection)
        run = IngestRun(collection_id=coll.id, kind=kind, source="elsewhere", spaces=[], status=status)
        s.add(run)
        s.flush()
        return run.id


@pytest.mark.parametrize("status", ["queued", "running"])
def test_a_collection_with_an_unfinished_job_is_not_deleted_unless_forced(app, status):
    client = app.test_client()
    imported(client, "busy")
    job = _job_row(app, "busy", status)
    err = client.delete("/api/collections/busy")
    assert err.status_code == 409, err.get_json()
    body = err.get_json()["error"]
    assert body["code"] == "conflict" and "force" in body["message"] and body["details"] == {"jobs": 1}
    assert client.get(f"/api/jobs/{job}").get_json()["status"] == status  # untouched
    assert client.get("/api/collections/busy").status_code == 200
    answers = at_once(app, *[lambda c: c.delete("/api/collections/busy?force=true")] * N)
    no_500(answers)
    assert statuses(answers) == [200] + [404] * (N - 1), [r.get_json() for r in answers]
    assert client.get(f"/api/jobs/{job}").status_code == 404
    assert client.get("/api/collections/busy").status_code == 404
    assert client.delete("/api/collections/busy?force=true").status_code == 404


def test_a_background_index_rebuild_does_not_hold_a_delete(app):
    client = app.test_client()
    imported(client, "idx")
    _job_row(app, "idx", "running", kind="index")
    assert client.delete("/api/collections/idx").status_code == 200


def test_forced_delete_cancels_a_queued_job_before_it_starts(app):
    """A cancelled queued job is never run, even by a runner that still has it (a worker's queue)."""
    from simsearch.jobs.execute import execute_run
    from simsearch.ops.collections import cancel_jobs
    from simsearch.store import repo

    client = app.test_client()
    imported(client, "q")
    job = _job_row(app, "q", "queued")
    ctx = app.extensions["simsearch"]
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, "q").id
    assert cancel_jobs(ctx, coll_id, "cancelled: test") == [job]
    assert execute_run(ctx, job) == {"run_id": job, "status": "failed"}


@pytest.mark.model
def test_forced_delete_of_a_collection_while_its_ingest_runs(app, tmp_path, monkeypatch):
    """A real ingest, held between two batches: the delete is 409 while it runs; a forced delete
    (several at once: one 200, the others 404) removes the collection and the job stops at its next
    write without bringing anything back."""
    from simsearch.ingest import Ingester
    from tests.conftest import copy_subset

    entered, release, ended = threading.Event(), threading.Event(), threading.Event()
    original = Ingester._store

    def held(self, *args, **kwargs):
        entered.set()
        try:
            assert release.wait(WAIT)
            return original(self, *args, **kwargs)
        finally:
            ended.set()

    monkeypatch.setattr(Ingester, "_store", held)
    folder = copy_subset(tmp_path / "pets", 2)
    client = app.test_client()
    files = [(open(p, "rb"), f"{p.parent.name}/{p.name}") for p in sorted(folder.rglob("*.jpg"))]
    resp = client.post("/api/collections/pets/ingest", data={"files": files, "batch_size": "2"},
                       content_type="multipart/form-data")
    assert resp.status_code == 202, resp.get_json()
    job = resp.get_json()["job_id"]
    assert entered.wait(WAIT)
    assert client.get(f"/api/jobs/{job}").get_json()["status"] == "running"
    assert client.delete("/api/collections/pets").status_code == 409
    answers = at_once(app, *[lambda c: c.delete("/api/collections/pets?force=true")] * N)
    no_500(answers)
    assert statuses(answers) == [200] + [404] * (N - 1)
    release.set()
    assert ended.wait(WAIT)
    app.extensions["simsearch_jobs"].shutdown(wait=True)  # the job's thread has ended
    assert client.get(f"/api/jobs/{job}").status_code == 404
    assert client.get("/api/collections/pets").status_code == 404
    with app.extensions["simsearch"].db.session() as s:
        assert s.scalar(select(func.count()).select_from(Collection)) == 0
        assert s.scalar(select(func.count()).select_from(Image)) == 0


# ---- jobs, spaces, clusters ----------------------------------------------------------------------------

@pytest.fixture
def queued_app(make_app, settings, rq_queue):  # noqa: F811
    """An app whose jobs stay queued (an RQ queue no worker takes from)."""
    from tests.helpers.jobs import REDIS_URL

    return make_app(settings.replace(redis_url=REDIS_URL, jobs="rq", queue=rq_queue))


def test_parallel_first_ingests_into_a_new_collection(queued_app, tmp_path):
    from PIL import Image as PILImage

    for i in range(N):
        PILImage.new("RGB", (32, 32), (40 * i, 0, 0)).save(tmp_path / f"{i}.jpg")

    def upload(i):
        return lambda c: c.post("/api/collections/fresh/ingest", content_type="multipart/form-data",
                                data={"files": [(open(tmp_path / f"{i}.jpg", "rb"), f"{i}.jpg")]})

    answers = at_once(queued_app, *[upload(i) for i in range(N)])
    no_500(answers)
    assert statuses(answers) == [202] * N
    assert len({r.get_json()["job_id"] for r in answers}) == N
    with queued_app.extensions["simsearch"].db.session() as s:
        assert s.scalar(select(func.count()).select_from(Collection)) == 1


def test_parallel_tunings_of_one_collection(queued_app):
    imported(queued_app.test_client(), "pets", n=40)
    answers = at_once(queued_app, *[lambda c: c.post("/api/collections/pets/tune", json={})] * N)
    no_500(answers)
    assert set(statuses(answers)) == {202}, [r.get_json() for r in answers]


def test_parallel_deletes_of_a_derived_space(app):
    from tests.helpers.api import a_derived_space

    imported(app.test_client(), "pets", n=20)
    space = a_derived_space(app, "pets")
    answers = at_once(app, *[lambda c: c.delete(f"/api/collections/pets/spaces/{space}")] * N)
    no_500(answers)
    assert statuses(answers) == [200] + [404] * (N - 1), [r.get_json() for r in answers]


def test_parallel_names_and_labels_of_one_cluster(app):
    from tests.helpers.analysis import result

    imported(app.test_client(), "pets", n=20)
    data, _ = result(app.test_client(), "/api/collections/pets/clusters?k=2")
    name = [lambda c, i=i: c.post("/api/collections/pets/clusters/name",
                                  json={"k": 2, "cluster": 0, "name": f"n{i}", "version": data["version"]}) for i in range(3)]
    label = [lambda c, i=i: c.post("/api/collections/pets/clusters/label", json={"k": 2, "cluster": 0, "label": f"l{i}"})
             for i in range(3)]
    answers = at_once(app, *name, *label)
    no_500(answers)
    assert statuses(answers) == [200] * 6, [r.get_json() for r in answers]


@pytest.mark.parametrize("reason, status", [("UNIQUE constraint failed: collections.name", 409),
                                            ("FOREIGN KEY constraint failed", 409),
                                            ("NOT NULL constraint failed: collections.name", 500)])
def test_an_integrity_error_reaching_the_app_is_409_only_for_a_lost_race(app, monkeypatch, reason, status):
    import sqlite3

    from sqlalchemy.exc import IntegrityError

    from simsearch.ops import collections as ops_collections

    def fails(*args, **kwargs):
        raise IntegrityError("INSERT INTO collections (name) VALUES (?)", ("secret-value",), sqlite3.IntegrityError(reason))

    monkeypatch.setattr(ops_collections, "create", fails)
    resp = app.test_client().post("/api/collections", json={"name": "x"})
    assert resp.status_code == status
    text = resp.get_data(as_text=True)
    assert "INSERT" not in text and "secret-value" not in text
    if status == 409:
        assert resp.get_json()["error"]["code"] == "conflict"


def test_parallel_embeds_and_selection_exports(app):
    """The remaining write routes: an embedding with a backbone every image has (409 each: nothing to
    do) and exports of a selection (a POST for its long list; it changes nothing)."""
    ids = imported(app.test_client(), "pets")
    embed = [lambda c: c.post("/api/collections/pets/embed", json={"backbone": "efficientnet_lite0"})] * 3
    export = [lambda c: c.post("/api/collections/pets/selection", json={"image_ids": ids, "format": "json"})] * 3
    answers = at_once(app, *embed, *export)
    no_500(answers)
    assert [r.status_code for r in answers] == [409] * 3 + [200] * 3, [r.get_data(as_text=True)[:200] for r in answers]
