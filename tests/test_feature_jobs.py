"""Local features stored after ingest as a sharded job (`simsearch features`, ``POST
/api/collections/<name>/features``): shards of image ids rolled up into the job, the features
equal to those a search would extract, cancel and retry, the cost estimate (a timed probe, then
the recorded rate), an unreadable original counted as tried (not lacking again), the API's 202
and the command's --json; and a shard whose worker is SIGKILLed mid-way is finished by another
worker without extracting again what was stored."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from sqlalchemy import delete, func, select

from conftest import copy_subset
from tests.helpers.api import assert_error, wait_job
from tests.helpers.jobs import CLI, REDIS_URL, cli_env, dead_owner, pg_rq_ctx, rq_ctx, rq_queue  # noqa: F401
from tests.helpers.passes import cancel_then_retry, ingest, kill_a_worker_mid_shard

pytestmark = pytest.mark.model


def _stored(ctx) -> dict[int, bytes]:
    from simsearch.store.models import ImageFeatures

    with ctx.db.session() as s:
        return {i: bytes(f) for i, f in s.execute(select(ImageFeatures.image_id, ImageFeatures.features)).all()}


def test_shards_store_the_features_a_search_would_extract_and_the_estimate_learns_their_rate(ctx, tmp_path):
    from simsearch.errors import Conflict
    from simsearch.ops import jobs as jobs_ops, local_features
    from simsearch.ops.verify import features_from_original
    from simsearch.store.models import ImageFeatures

    ingest(ctx, copy_subset(tmp_path / "pets", 5))  # 10 images
    est = local_features.estimate(ctx, "pets")
    assert est["images"] == 10 and est["basis"] == "probe" and est["seconds_per_image"] > 0  # nothing recorded yet
    made = local_features.create_job(ctx, "pets", shard_size=4, batch_size=3)
    job_id, shard_ids = made["job_id"], made["shards"]
    assert len(shard_ids) == 3 and made["total"] == 10 and made["estimate"]["images"] == 10
    job = jobs_ops.get(ctx, job_id)
    assert job["kind"] == "features" and job["status"] == "running" and job["shards"]["queued"] == 3
    assert job["title"] == "Storing local features (SIFT)"
    assert [c["params"]["images"] for c in job["children"]] == [4, 3, 3]
    assert local_features.create_job(ctx, "pets")["job_id"] == job_id  # asking again joins it

    local_features.execute_shard(ctx, shard_ids[0])
    job = jobs_ops.get(ctx, job_id)
    assert job["status"] == "running" and (job["processed"], job["added"], job["shards"]["done"]) == (4, 4, 1)
    for shard_id in shard_ids[1:]:
        local_features.execute_shard(ctx, shard_id)
    job = jobs_ops.get(ctx, job_id)
    assert job["status"] == "done", job
    assert (job["processed"], job["added"], job["skipped"], job["failed"]) == (10, 10, 0, 0)
    assert local_features.execute_shard(ctx, shard_ids[0])["status"] == "done"  # an ended shard is not run again
    stored = _stored(ctx)
    assert len(stored) == 10 and all(stored[i] == features_from_original(ctx, i) for i in stored)
    with pytest.raises(Conflict):  # nothing lacks them any more
        local_features.start(ctx, None, "pets")

    with ctx.db.session() as s:  # three lose theirs: the next estimate is the recorded rate
        s.execute(delete(ImageFeatures).where(ImageFeatures.image_id.in_(sorted(stored)[:3])))
    after = local_features.estimate(ctx, "pets")
    assert after["basis"] == "recorded" and after["images"] == 3
    assert after["seconds"] == pytest.approx(3 * after["seconds_per_image"], rel=1e-3, abs=0.1)
    report = local_features.store_missing(ctx, "pets")
    assert (report["lacking"], report["stored"], report["unreadable"], report["status"]) == (3, 3, 0, "done")
    assert report["estimate"]["basis"] == "recorded" and len(_stored(ctx)) == 10


def test_a_cancelled_shard_stops_before_its_next_batch_and_a_retry_finishes_the_job(ctx, tmp_path):
    from simsearch.ops import local_features

    ingest(ctx, copy_subset(tmp_path / "pets", 4))  # 8 images
    cancel_then_retry(ctx, local_features.create_job(ctx, "pets", shard_size=4, batch_size=2), local_features.execute_shard, lambda: len(_stored(ctx)))


def test_a_job_whose_command_died_is_ended_as_lost_and_the_same_command_stores_the_rest(ctx, tmp_path):
    """`simsearch features` killed after its first batch leaves its job running, owned by a process
    that no longer exists: `simsearch jobs` (mark_interrupted) ends it as lost, and asking again
    starts a new job over the images still lacking features."""
    from sqlalchemy import update

    from simsearch.jobs.reconcile import mark_interrupted
    from simsearch.ops import jobs as jobs_ops, local_features
    from simsearch.store.models import IngestRun

    ingest(ctx, copy_subset(tmp_path / "pets", 2))  # 4 images
    made = local_features.create_job(ctx, "pets", batch_size=2)
    job_id, (shard_id,) = made["job_id"], made["shards"]

    def die(done, total):
        raise KeyboardInterrupt  # what a killed command leaves: its first batch stored, the shard running

    with pytest.raises(KeyboardInterrupt):
        local_features.execute_shard(ctx, shard_id, progress=die)
    with ctx.db.session() as s:
        s.execute(update(IngestRun).where(IngestRun.id.in_([job_id, shard_id]))
                  .values(owner=dead_owner("cli")))
    assert jobs_ops.get(ctx, job_id)["status"] == "running"  # what the dead command left
    assert mark_interrupted(ctx) == [job_id]
    job = jobs_ops.get(ctx, job_id)
    assert "lost: the process running it stopped after 2 of 4 images" in job["message"], job
    assert "the images whose features are stored are skipped" in job["message"]
    report = local_features.store_missing(ctx, "pets")
    assert report["job_id"] != job_id and (report["lacking"], report["stored"], report["status"]) == (2, 2, "done")
    assert len(_stored(ctx)) == 4


def _hide_first_original(ctx, tmp_path) -> tuple[int, list[tuple[str, os.PathLike]]]:
    """Move the collection's first image's file (and its kept original, if any) away: nothing left
    to read. Returns its id and the [(path, where it was moved)], its source file first."""
    from simsearch.jobs.kept_originals import stored_path
    from simsearch.store.models import Image

    with ctx.db.session() as s:
        lost_id, source, digest = s.execute(select(Image.id, Image.source_path, Image.content_hash)
                                            .order_by(Image.id).limit(1)).one()
    kept = stored_path(ctx.settings, digest)
    moved = [(source, tmp_path / "moved.jpg")] + ([(str(kept), tmp_path / "kept.jpg")] if kept and kept.exists() else [])
    for path, away in moved:
        shutil.move(path, away)
    return lost_id, moved


def test_an_unreadable_original_counts_as_tried_not_lacking_until_a_search_reads_it_again(ctx, tmp_path):
    """The pass records an image whose original cannot be read: the next run, the estimate and the
    API do not take it again, and ``local``'s default (the 90% rule) leaves it out of the whole;
    once its file is back, a search that verifies it stores its features over the record."""
    from simsearch.errors import Conflict
    from simsearch.images import local_features as LF
    from simsearch.ops import local_features
    from simsearch.ops.verify import LOCAL_AUTO_SHARE, candidate_features, local_default
    from simsearch.store import features as stored

    coll_id = ingest(ctx, copy_subset(tmp_path / "pets", 4))  # 8 images
    lost_id, moved = _hide_first_original(ctx, tmp_path)
    source = moved[0][0]
    report = local_features.store_missing(ctx, "pets", shard_size=4, batch_size=3)
    assert (report["lacking"], report["stored"], report["unreadable"], report["status"]) == (8, 7, 1, "done"), report
    assert report["errors"] == [{"file": os.path.basename(source), "reason": local_features.UNREADABLE}]
    with ctx.db.session() as s:
        assert stored.lacking(s, coll_id, LF.METHOD) == ([], set())
        assert stored.tried_unreadable(s, coll_id, LF.METHOD) == 1
    assert local_features.estimate(ctx, "pets")["images"] == 0  # not counted as lacking again
    again = local_features.store_missing(ctx, "pets")
    assert (again["job_id"], again["lacking"], again["unreadable"]) == (None, 0, 0), again
    assert again["message"].startswith("no image lacks its local features (1 image whose original could not be read")
    with pytest.raises(Conflict, match="stored \\(1 image whose original could not be read: tried"):  # POST .../features
        local_features.start(ctx, None, "pets")
    assert 7 / 8 < LOCAL_AUTO_SHARE and ctx.descriptor_coverage(coll_id) == 1.0  # 7 of the 7 it could have
    assert local_default(ctx, coll_id) is True
    assert len(_stored(ctx)) == 8 and _stored(ctx)[lost_id] == b""  # the record: no features

    shutil.move(moved[0][1], source)  # its file is back: a search verifying it reads it
    feats = candidate_features(ctx, [lost_id])
    assert len(feats[lost_id]) > 0
    ctx.descriptors.forget(coll_id)
    with ctx.db.session() as s:
        assert stored.tried_unreadable(s, coll_id, LF.METHOD) == 0
        found, stale = stored.of_images(s, [lost_id], LF.METHOD)
        assert len(stored.image_ids(s, coll_id, LF.METHOD)) == 8
    assert list(found) == [lost_id] and not stale and ctx.descriptor_coverage(coll_id) == 1.0


def test_retry_unreadable_tries_again_the_originals_fixed_since(ctx, tmp_path):
    """An original recorded unreadable is not taken again by a plain pass, even once its file is
    back; with ``retry_unreadable`` (`simsearch features --retry-unreadable`) the record is forgotten
    first and its features are stored, the summary saying how many were tried again."""
    from simsearch.images import local_features as LF
    from simsearch.ops import local_features
    from simsearch.store import features as stored

    coll_id = ingest(ctx, copy_subset(tmp_path / "pets", 2))  # 4 images
    lost_id, moved = _hide_first_original(ctx, tmp_path)
    first = local_features.store_missing(ctx, "pets")
    assert (first["stored"], first["unreadable"], first["retried"]) == (3, 1, 0), first
    for path, away in moved:  # the curator restores the file
        shutil.move(away, path)
    plain = local_features.store_missing(ctx, "pets")  # still recorded as tried: not taken again
    assert (plain["job_id"], plain["lacking"], plain["retried"]) == (None, 0, 0) and _stored(ctx)[lost_id] == b""
    assert local_features.estimate(ctx, "pets", retry_unreadable=True)["images"] == 1  # nothing forgotten by it
    report = local_features.store_missing(ctx, "pets", retry_unreadable=True)
    assert (report["lacking"], report["stored"], report["unreadable"], report["retried"], report["status"]) == \
        (1, 1, 0, 1, "done"), report
    with ctx.db.session() as s:
        assert stored.tried_unreadable(s, coll_id, LF.METHOD) == 0
        found, stale = stored.of_images(s, [lost_id], LF.METHOD)
    assert len(found[lost_id]) > 0 and not stale and len(_stored(ctx)) == 4
    again = local_features.store_missing(ctx, "pets", retry_unreadable=True)  # nothing recorded: nothing to retry
    assert (again["job_id"], again["retried"]) == (None, 0)


@pytest.mark.redis
def test_shards_lost_with_redis_are_queued_again_with_their_function(settings, tmp_path, rq_queue):  # noqa: F811
    import redis
    from rq import Queue
    from rq.job import Job

    from simsearch.jobs.reconcile import reconcile
    from simsearch.jobs.rq import FEATURES_SHARD_TARGET
    from simsearch.jobs.runners import RQRunner
    from simsearch.ops import jobs as jobs_ops, local_features
    from simsearch.store.models import IngestRun
    from tests.helpers.jobs import run_worker_process

    conn = redis.Redis.from_url(REDIS_URL)
    ctx = rq_ctx(settings, rq_queue)
    try:
        ingest(ctx, copy_subset(tmp_path / "pets", 1))  # 2 images
        job_id = local_features.start(ctx, RQRunner(ctx, REDIS_URL, rq_queue), "pets", shard_size=1)["job_id"]
        Queue(rq_queue, connection=conn).delete(delete_jobs=True)  # what a Redis restart does
        with ctx.db.session() as s:
            shard_ids = s.scalars(select(IngestRun.id).where(IngestRun.parent_id == job_id).order_by(IngestRun.id)).all()
        assert sorted(reconcile(ctx, conn, rq_queue)["requeued"]) == shard_ids
        with ctx.db.session() as s:
            owner = s.get(IngestRun, shard_ids[0]).owner[3:]
        assert Job.fetch(owner, connection=conn).args[1] == FEATURES_SHARD_TARGET
        proc = run_worker_process(ctx.settings, rq_queue)
        assert proc.returncode == 0, proc.stderr[-3000:]
        job = jobs_ops.get(ctx, job_id)
        assert job["status"] == "done" and (job["processed"], job["added"]) == (2, 2), job
        assert len(_stored(ctx)) == 2
    finally:
        ctx.close()


def test_the_api_answers_202_with_the_estimate_and_the_job_shows_its_progress(make_app, settings, tmp_path):
    from simsearch.context import AppContext

    ctx = AppContext.open(settings)
    try:
        ingest(ctx, copy_subset(tmp_path / "pets", 3))  # 6 images
    finally:
        ctx.close()
    client = make_app(settings).test_client()
    resp = client.post("/api/collections/pets/features", json={"shard_size": 4})
    assert resp.status_code == 202, resp.get_data(as_text=True)[:500]
    body = resp.get_json()
    assert resp.headers["Location"] == body["status_url"] == f"/api/jobs/{body['job_id']}"
    assert (body["total"], body["shards"], body["runner"], body["collection"]) == (6, 2, "thread", "pets")
    assert body["estimate"]["images"] == 6 and body["estimate"]["basis"] in ("probe", "recorded")
    job = wait_job(client, body["job_id"])
    assert job["status"] == "done" and job["kind"] == "features", job
    assert (job["processed"], job["added"], job["total"]) == (6, 6, 6)
    assert job["shards"]["total"] == 2 and job["shards"]["done"] == 2 and len(job["children"]) == 2
    assert all(c["kind"] == "features_shard" and c["title"].endswith(f"of local features #{body['job_id']}")
               for c in job["children"])
    assert_error(client.post("/api/collections/pets/features", json={}), 409, "conflict", "name")
    assert_error(client.post("/api/collections/nope/features", json={}), 404)
    assert_error(client.post("/api/collections/pets/features", json={"shard_size": 0}), 400, None, "shard_size")
    assert_error(client.post("/api/collections/pets/features", json={"retry_unreadable": "yes"}), 400, None,
                 "retry_unreadable")
    assert_error(client.post("/api/collections/pets/features", json={"retry_unreadable": True}), 409, "conflict",
                 "name")  # none recorded unreadable: nothing to try again


def test_the_command_prints_the_estimate_then_stores_them_and_answers_json(settings, tmp_path):
    from simsearch.context import AppContext

    ctx = AppContext.open(settings)
    try:
        ingest(ctx, copy_subset(tmp_path / "pets", 2))  # 4 images
    finally:
        ctx.close()
    env = cli_env(settings)
    cmd = CLI + ["features", "-c", "pets"]
    est = subprocess.run(cmd + ["--estimate", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert est.returncode == 0, est.stderr[-2000:]
    assert json.loads(est.stdout)["images"] == 4 and json.loads(est.stdout)["basis"] == "probe"
    run = subprocess.run(cmd + ["--progress", "--shard-size", "3"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.startswith("estimate: 4 images lacking local features") and "local features: 4/4 images" in run.stderr
    assert run.stdout.startswith("pets: stored the local features of 4 images of 4 lacking them")
    again = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    out = json.loads(again.stdout)
    assert (out["stored"], out["lacking"], out["job_id"], out["status"]) == (0, 0, None, "done")
    queued = subprocess.run(cmd + ["--queue"], env=env, capture_output=True, text=True, timeout=120)
    assert queued.returncode != 0 and "SIMSEARCH_REDIS_URL" in queued.stderr


@pytest.mark.redis
@pytest.mark.postgres
def test_a_killed_worker_s_shard_is_finished_by_another_without_extracting_the_stored_images_again(
        pg_rq_ctx, tmp_path):  # noqa: F811
    from simsearch.ops import local_features
    from simsearch.store.models import ImageFeatures

    ctx = pg_rq_ctx
    ingest(ctx, copy_subset(tmp_path / "pets", 6))  # 12 images
    before, after = kill_a_worker_mid_shard(
        ctx, ctx.settings.queue, tmp_path, lambda runner: local_features.start(ctx, runner, "pets", batch_size=2),
        lambda: _stored(ctx))
    assert len(after) == 12 and all(after[i] == f for i, f in before.items())  # the same features, not extracted again
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ImageFeatures)) == 12
