"""Cancelling and retrying jobs (``POST /api/jobs/<id>/cancel``, ``/retry``; simsearch.ops.job_actions)
and the words a job is listed with (its title)."""

from __future__ import annotations

from conftest import CATS_DOGS, dataset_files

from simsearch.jobs.status import title
from simsearch.store import job_cancel, lifecycle
from simsearch.store.lifecycle import JobKind
from simsearch.store.models import Image
from tests.helpers.api import assert_error, ingest_folder, wait_job
from tests.helpers.held import feed, held_ingest, release
from tests.helpers.waiting import wait_until


def _coll_id(app, name: str) -> int:
    from simsearch.store import repo

    with app.extensions["simsearch"].db.session() as s:
        return repo.get_or_create_collection(s, name).id


def test_a_queued_job_is_cancelled_once_and_never_started(make_app):
    app = make_app()
    client = app.test_client()
    db = app.extensions["simsearch"].db
    job = lifecycle.create(db, kind=JobKind.INGEST, collection_id=_coll_id(app, "c"), source="x", total=3)
    resp = client.post(f"/api/jobs/{job}/cancel")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"job_id": job, "status": "failed", "cancelled": [job]}
    shown = client.get(f"/api/jobs/{job}").get_json()
    assert shown["status"] == "failed" and shown["cancelled"] is True and shown["message"].startswith("cancelled")
    # nothing runs it now: a runner only claims queued jobs
    assert not lifecycle.claim(db, job, kinds=(JobKind.INGEST,)).claimed
    assert_error(client.post(f"/api/jobs/{job}/cancel"), 409, "conflict", "job_id")
    assert_error(client.post("/api/jobs/999999/cancel"), 404, "not_found", "job_id")
    index = lifecycle.create(db, kind=JobKind.INDEX, collection_id=_coll_id(app, "c"), source="index rebuild: x",
                             running=True)
    body = assert_error(client.post(f"/api/jobs/{index}/cancel"), 409, "conflict", "job_id")
    assert "index rebuild" in body["message"]


def test_cancelling_a_sharded_ingest_cancels_its_shards_and_lists_them(make_app):
    app = make_app()
    client = app.test_client()
    db = app.extensions["simsearch"].db
    coll = _coll_id(app, "c")
    parent = lifecycle.create(db, kind=JobKind.INGEST, collection_id=coll, source="x", total=4,
                              params={"shards": 2, "shard_size": 2})
    shard_ids = [lifecycle.create(db, kind=JobKind.SHARD, collection_id=coll, source="x", parent_id=parent, total=2,
                                  params={"start": 2 * i, "stop": 2 * i + 2, "shard": i + 1, "shards": 2})
                 for i in range(2)]
    shown = client.get(f"/api/jobs/{parent}").get_json()
    assert [c["id"] for c in shown["children"]] == shard_ids
    assert shown["children"][1]["title"] == f"Shard 2 of 2 of ingest #{parent}"
    assert shown["children"][0]["parent_id"] == parent
    resp = client.post(f"/api/jobs/{parent}/cancel")
    assert resp.status_code == 200 and sorted(resp.get_json()["cancelled"]) == sorted([parent, *shard_ids])
    shown = client.get(f"/api/jobs/{parent}").get_json()
    assert shown["cancelled"] and all(c["cancelled"] for c in shown["children"])
    # a cancelled shard ended for good: no retry attempt starts it again
    for sid in shard_ids:
        got = lifecycle.claim(db, sid, kinds=(JobKind.SHARD,), runnable=(*lifecycle.UNFINISHED, "failed"),
                              ended=lambda run: lifecycle.is_final(run.status, run.params))
        assert not got.claimed
    # the list shows the job once
    listed = [j["id"] for j in client.get("/api/jobs?limit=50").get_json()["jobs"]]
    assert parent in listed and not set(shard_ids) & set(listed)


def test_a_running_ingest_stops_before_its_next_batch_when_cancelled(make_app, tmp_path):
    app = make_app()
    client = app.test_client()
    ctx, runner = app.extensions["simsearch"], app.extensions["simsearch_jobs"]
    cats = dataset_files(CATS_DOGS / "cats", 5)
    pipe = tmp_path / "last.jpg"
    job = held_ingest(ctx, runner, "held", cats[:4], pipe, batch_size=2)
    try:
        running = wait_until(lambda: (j := client.get(f"/api/jobs/{job}").get_json())["processed"] == 4 and j,
                             timeout=180, message="the held ingest did not store its first batches")
        assert running["status"] == "running" and running["total"] == 5 and running["title"].startswith("Adding images")
        assert client.post(f"/api/jobs/{job}/cancel").status_code == 200
    except BaseException:
        release(pipe, cats[4])
        raise
    feed(pipe, cats[4])  # the ingest goes on with its last batch: it sees the cancel and stops
    runner.pool.shutdown(wait=True)  # the job's thread has ended
    shown = client.get(f"/api/jobs/{job}").get_json()
    assert shown["status"] == "failed" and shown["cancelled"], shown
    assert shown["processed"] == 4 and shown["added"] == 4
    with ctx.db.session() as s:
        assert s.query(Image).count() == 4  # the last file was read but not stored


def test_retry_queues_a_failed_ingest_again_while_its_files_are_staged(make_app, tmp_path):
    from simsearch.jobs.execute import create_run
    from simsearch.jobs.manifest import ManifestFile, uploads_dir
    from simsearch.jobs.staging import Staging, new_staging_dir

    app = make_app()
    client = app.test_client()
    ctx = app.extensions["simsearch"]
    cats = dataset_files(CATS_DOGS / "cats", 3)
    staging = Staging(dir=new_staging_dir(uploads_dir(ctx.settings)), ignored=[])
    job = create_run(ctx, "again", ["efficientnet_lite0"], "upload", staging,
                     absolute_files=[ManifestFile(path=str(p), name=p.name) for p in cats])
    assert_error(client.post(f"/api/jobs/{job}/retry"), 409, "conflict", "job_id")  # queued: nothing to retry
    job_cancel.cancel_job(ctx.db, job)
    assert client.get(f"/api/jobs/{job}").get_json()["retry_refused"] is None  # its files are still staged
    resp = client.post(f"/api/jobs/{job}/retry")
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert body["job_id"] == job and body["retry_of"] == job and resp.headers["Location"] == f"/api/jobs/{job}"
    done = wait_job(client, job)
    assert done["status"] == "done" and done["added"] == 3 and not done["cancelled"], done
    # its files were removed when it ended: a second retry says what to do instead
    assert lifecycle.transition(ctx.db, job, "failed", when=("done",), message="failed for the test")
    body = assert_error(client.post(f"/api/jobs/{job}/retry"), 409, "conflict", "job_id")
    assert "Add images" in body["message"] and client.get(f"/api/jobs/{job}").get_json()["retry_refused"] == body["message"]


def test_retry_of_an_analysis_starts_a_new_job_with_its_parameters(make_app, pets_small):
    from simsearch.ops.analysis_tasks import AnalysisTask

    app = make_app()
    client = app.test_client()
    ctx = app.extensions["simsearch"]
    ingest_folder(app, pets_small)
    task = AnalysisTask("clusters", "pets", {"backbone": "efficientnet_lite0", "k": 2, "representatives": 4})
    old = lifecycle.create(ctx.db, kind="clusters", collection_id=_coll_id(app, "pets"), params=task.to_json(),
                           source=task.describe(), spaces=task.spaces)
    lifecycle.fail(ctx.db, old, "the clusters computation failed: for the test")
    resp = client.post(f"/api/jobs/{old}/retry")
    assert resp.status_code == 202, resp.get_json()
    new = resp.get_json()["job_id"]
    assert new != old and resp.get_json()["retry_of"] == old
    done = wait_job(client, new)
    assert done["status"] == "done" and done["kind"] == "clusters" and done["params"] == task.to_json(), done
    assert done["title"] == "Clustering in efficientnet_lite0"


def test_retry_refuses_what_cannot_start_again(make_app):
    app = make_app()
    client = app.test_client()
    db = app.extensions["simsearch"].db
    coll = _coll_id(app, "c")
    cli = lifecycle.create(db, kind=JobKind.INGEST, collection_id=coll, source="photos", owner="cli:host:1:x")
    lifecycle.interrupt(db, cli, "interrupted")
    body = assert_error(client.post(f"/api/jobs/{cli}/retry"), 409, "conflict", "job_id")
    assert "simsearch ingest" in body["message"]
    # the job says so before anyone asks (the jobs page shows it instead of a Retry button)
    assert client.get(f"/api/jobs/{cli}").get_json()["retry_refused"] == body["message"]
    listed = {j["id"]: j for j in client.get("/api/jobs").get_json()["jobs"]}
    assert listed[cli]["retry_refused"] == body["message"]
    running = lifecycle.create(db, kind=JobKind.TUNE, collection_id=coll, source="tuning of c", running=True)
    assert "cancel it first" in assert_error(client.post(f"/api/jobs/{running}/retry"), 409)["message"]
    assert_error(client.post("/api/jobs/424242/retry"), 404, "not_found", "job_id")


def test_a_job_says_what_it_does_by_its_kind():
    assert title("ingest", "embed: efficientnet_b0", None, ["efficientnet_b0"], None) == \
        "Embedding with efficientnet_b0 (re-embedding)"
    assert title("ingest", "compare:mobilenet_v3", None, [], None) == "Embedding with mobilenet_v3 for a comparison"
    assert title("ingest", "photos/", None, ["efficientnet_lite0"], None) == "Adding images (efficientnet_lite0)"
    assert title("index", "index rebuild: grew", {"reason": "grew"}, ["s"], None) == "Index rebuild of s: grew"
    assert title("tune", "tuning of c", {}, [], None) == "Tuning the search spaces"
    assert title("map", "map of c", {"backbone": "s"}, [], None) == "Map layout in s"
    assert title("comparison", "x", {"backbones": ["a", "b"]}, [], None) == "Comparison of backbones in a, b"


def test_simsearch_jobs_lists_an_embedding_pass_as_one_not_as_new_images():
    from simsearch.cli.jobs import _line

    job = {"id": 7, "kind": "ingest", "title": title("ingest", "compare:efficientnet_b0", None, [], None),
           "status": "done", "cancelled": False, "collection": "pets", "processed": 24, "total": 24, "added": 0,
           "skipped": 24, "failed": 0}
    line = _line(job)
    assert line.startswith("#7  ingest  Embedding with efficientnet_b0 for a comparison  done  pets  24/24")
    assert "new" not in line
    assert "  cancelled  " in _line({**job, "status": "failed", "cancelled": True})
