"""Sharded ingest jobs (in this process, both databases): the split, each shard's run, the job's
counters as the sums of its shards', the end of the job when the last shard ends, and a failed
shard named in the job's failure."""

from __future__ import annotations

import pytest

from conftest import copy_subset

from simsearch.jobs import shards
from simsearch.store.models import Image, IngestRun
from tests.helpers.jobs import queue_folder


@pytest.mark.parametrize("total,size,expected", [
    (0, 10, []),
    (5, 10, [(0, 5)]),
    (10, 10, [(0, 10)]),
    (11, 10, [(0, 6), (6, 11)]),
    (2001, 1000, [(0, 667), (667, 1334), (1334, 2001)]),
])
def test_plan_splits_into_even_slices_of_at_most_size(total, size, expected):
    assert shards.plan(total, size) == expected
    if expected:
        assert all(stop - start <= size for start, stop in expected)
        assert expected[0][0] == 0 and expected[-1][1] == total


def test_sharded_job_sums_its_shards_and_ends_with_the_last(ctx, tmp_path):
    from simsearch.ops import jobs as jobs_ops

    folder = copy_subset(tmp_path / "pets", 5)  # 10 files
    job_id = queue_folder(ctx, folder, "sharded")
    ids = shards.create_shards(ctx, job_id, 4)
    assert len(ids) == 3 and shards.create_shards(ctx, job_id, 4) == ids  # idempotent
    with ctx.db.session() as s:
        sizes = [s.get(IngestRun, i).total for i in ids]
    assert sizes == [4, 3, 3]

    shown = jobs_ops.get(ctx, job_id)
    assert shown["status"] == "running" and shown["shards"]["total"] == 3 and shown["shards"]["queued"] == 3
    assert [j["id"] for j in jobs_ops.recent(ctx)] == [job_id]  # shards are not listed as jobs

    shards.execute_shard(ctx, ids[0])
    mid = jobs_ops.get(ctx, job_id)
    assert mid["status"] == "running" and mid["processed"] == 4 and mid["added"] == 4
    assert mid["shards"]["done"] == 1
    for i in ids[1:]:
        shards.execute_shard(ctx, i)
    done = jobs_ops.get(ctx, job_id)
    assert done["status"] == "done", done
    assert (done["processed"], done["added"], done["failed"]) == (10, 10, 0)
    assert done["shards"] == {"total": 3, "queued": 0, "running": 0, "done": 3, "failed": 0, "attempts": 3}
    with ctx.db.session() as s:
        assert s.query(Image).count() == 10
    # the job's search index holds every image, and a shard that ended is not run again
    assert ctx.index(_coll_id(ctx, "sharded"), "efficientnet_lite0").ntotal == 10
    assert shards.execute_shard(ctx, ids[0]) == {"run_id": ids[0], "status": "done"}


def test_a_shard_run_again_after_its_worker_died_counts_the_images_of_both_runs(ctx, tmp_path):
    """A worker stored a shard's batches, then died (the shard left ``running``); the shard's next
    run finds its images stored and adds none itself: the job still counts them as added."""
    from simsearch.ops import jobs as jobs_ops

    job_id = queue_folder(ctx, copy_subset(tmp_path / "pets", 3), "rerun")  # 6 files
    first, second = shards.create_shards(ctx, job_id, 3)
    shards.execute_shard(ctx, first)
    with ctx.db.session() as s:  # as its dead worker left it: running, its batches committed
        run = s.get(IngestRun, first)
        run.status, run.finished_at = "running", None
    shards.execute_shard(ctx, first)
    with ctx.db.session() as s:
        run = s.get(IngestRun, first)
        assert (run.attempts, run.added, run.status) == (2, 0, "done")  # its last run's counter: none new
    shards.execute_shard(ctx, second)
    done = jobs_ops.get(ctx, job_id)
    assert (done["status"], done["processed"], done["added"], done["skipped"]) == ("done", 6, 6, 0), done
    assert done["shards"]["attempts"] == 3


def test_a_job_s_progress_reads_no_image_rows_when_each_shard_ran_once(ctx, tmp_path):
    """Progress is read on every poll of a job (``jobs --follow``: every 2 s) and at every shard's
    end: it sums the shards' counters instead of counting the job's images (3 s a call at 82,000
    images on PostgreSQL, growing with the collection); only a shard run twice has its images
    counted."""
    from sqlalchemy import event

    job_id = queue_folder(ctx, copy_subset(tmp_path / "pets", 3), "polled")  # 6 files
    for i in shards.create_shards(ctx, job_id, 3):
        shards.execute_shard(ctx, i)
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(ctx.db.engine, "before_cursor_execute", seen)
    try:
        with ctx.db.session() as s:
            summary = shards.progress(s, job_id)
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", seen)
    assert (summary["processed"], summary["added"], summary["attempts"]) == (6, 6, 2)
    assert statements and not [q for q in statements if "images" in q.lower()], statements


@pytest.mark.parametrize("every,written", [(3600.0, [4, 4, 10]), (0.0, [4, 7, 10])])
def test_shards_sync_the_index_now_and_then_and_the_job_s_end_always(ctx, tmp_path, monkeypatch, every, written):
    """A sync reads every vector id and rewrites the index (O(collection)): a shard does it when the
    index was never written or not for ``SHARD_INDEX_SYNC_EVERY`` seconds; the job's end always."""
    from simsearch.store import repo

    monkeypatch.setattr(shards, "SHARD_INDEX_SYNC_EVERY", every)
    job_id = queue_folder(ctx, copy_subset(tmp_path / "pets", 5), "synced")  # 10 files
    counts = []
    for i in shards.create_shards(ctx, job_id, 4):  # 4, 3, 3 files
        shards.execute_shard(ctx, i)
        with ctx.db.session() as s:
            counts.append(repo.index_state(s, _coll_id(ctx, "synced"), "efficientnet_lite0").vector_count)
    assert counts == written


def test_the_shard_that_finds_its_job_ended_syncs_the_index_whoever_ended_it(ctx, tmp_path, monkeypatch):
    """A worker's maintenance pass (reconcile) may roll the job up and end it before its last shard
    does: the roll-up does no index work (a SIGTERM to an idle worker must not land in a long
    sync), and the shard that then finds its job ended brings the index up to date."""
    from simsearch.store import repo

    monkeypatch.setattr(shards, "SHARD_INDEX_SYNC_EVERY", 3600.0)
    job_id = queue_folder(ctx, copy_subset(tmp_path / "pets", 5), "ended")  # 10 files
    ids = shards.create_shards(ctx, job_id, 4)
    for i in ids[:-1]:
        shards.execute_shard(ctx, i)

    def written() -> int:
        with ctx.db.session() as s:
            return repo.index_state(s, _coll_id(ctx, "ended"), "efficientnet_lite0").vector_count

    real_roll_up, seen = shards.roll_up, []

    def ended_by_another_first(ctx_, parent_id):
        assert real_roll_up(ctx_, parent_id) == "done"  # the maintenance pass ends the job
        seen.append(written())
        return real_roll_up(ctx_, parent_id)  # the shard's own roll-up finds it ended

    monkeypatch.setattr(shards, "roll_up", ended_by_another_first)
    shards.execute_shard(ctx, ids[-1])
    assert seen == [4] and written() == 10


def test_a_shard_that_ends_during_a_roll_up_is_not_counted_short(ctx, tmp_path, monkeypatch):
    """Another process rolls the job up while its last shard commits its end (PostgreSQL: each
    statement sees what was committed when it started). The roll-up reads the shards' states
    before their sums, so it either sees the shard running (the job goes on) or counts all of it:
    the job never ends with sums short of its files. SQLite has one writer: the shard's commit
    waits for the roll-up's transaction, so the race cannot happen there."""
    if ctx.db.dialect != "postgresql":
        pytest.skip("one writer at a time on SQLite: no shard commits during a roll-up")
    job_id = queue_folder(ctx, copy_subset(tmp_path / "pets", 5), "racing")  # 10 files
    ids = shards.create_shards(ctx, job_id, 4)
    real_roll_up = shards.roll_up
    monkeypatch.setattr(shards, "roll_up", lambda ctx_, parent_id: "running")
    for i in ids:
        shards.execute_shard(ctx, i)
    monkeypatch.setattr(shards, "roll_up", real_roll_up)
    last = ids[-1]
    with ctx.db.session() as s:  # the last shard as it was a moment before its end: running, 1 of 3 done
        run = s.get(IngestRun, last)
        ended = {"status": run.status, "processed": run.processed, "finished_at": run.finished_at}
        run.status, run.processed, run.finished_at = "running", 1, None
        s.commit()
    real_progress = shards.progress

    def progress_then_the_shard_commits(session, parent_id, kind="ingest"):
        summary = real_progress(session, parent_id, kind)
        with ctx.db.session() as other:  # the shard's own transaction ends now, while the roll-up runs
            run = other.get(IngestRun, last)
            run.status, run.processed, run.finished_at = ended["status"], ended["processed"], ended["finished_at"]
            other.commit()
        return summary

    monkeypatch.setattr(shards, "progress", progress_then_the_shard_commits)
    first = shards.roll_up(ctx, job_id)
    monkeypatch.setattr(shards, "progress", real_progress)
    with ctx.db.session() as s:
        job = s.get(IngestRun, job_id)
        assert first == "running" or job.processed == 10, (first, job.processed)
    assert shards.roll_up(ctx, job_id) == "done"  # the shard's own roll-up, after its commit
    with ctx.db.session() as s:
        job = s.get(IngestRun, job_id)
        assert (job.status, job.processed, job.added, job.failed) == ("done", 10, 10, 0)


def _coll_id(ctx, name: str) -> int:
    from simsearch.store import repo

    with ctx.db.session() as s:
        return repo.get_collection(s, name).id


def test_a_failed_shard_fails_the_job_naming_it_after_its_last_attempt(ctx, tmp_path):
    from simsearch.jobs.execute import mark_failed
    from simsearch.ops import jobs as jobs_ops

    folder = copy_subset(tmp_path / "pets", 3)  # 6 files
    job_id = queue_folder(ctx, folder, "partly")
    first, second = shards.create_shards(ctx, job_id, 3)
    shards.execute_shard(ctx, first)
    # an attempt that failed (RQ's callback will put it back to queued): the job goes on
    mark_failed(ctx, second, "RuntimeError: boom")
    shards.roll_up_parent_of(ctx, second)
    assert jobs_ops.get(ctx, job_id)["status"] == "running"
    shards.fail_finally(ctx, second, "the worker running it stopped and the queue gave up on it (failed)")
    job = jobs_ops.get(ctx, job_id)
    assert job["status"] == "failed"
    assert job["message"].startswith("1 of 2 shards failed (shard 2): the worker running it stopped")
    assert "ingesting the same files again finishes the job" in job["message"]
    assert job["processed"] == 3 and job["added"] == 3


def test_a_shard_left_running_by_a_dead_worker_runs_again(ctx, tmp_path):
    folder = copy_subset(tmp_path / "pets", 2)
    job_id = queue_folder(ctx, folder, "again")
    first, second = shards.create_shards(ctx, job_id, 2)
    with ctx.db.session() as s:
        s.get(IngestRun, first).status = "running"  # its worker was SIGKILLed mid-way
    shards.execute_shard(ctx, first)
    shards.execute_shard(ctx, second)
    with ctx.db.session() as s:
        assert s.get(IngestRun, first).attempts == 1
        assert s.get(IngestRun, job_id).status == "done"


@pytest.mark.parametrize("kind", ["reembed_shard", "features_shard"])
def test_a_pass_s_shard_run_once_in_a_thread_fails_for_good_and_ends_its_job(ctx, kind, monkeypatch):
    """Both passes' thread targets (``execute_shard_once``) go through :func:`shards.run_once`: a
    failure fails the shard for good (no retry follows) and rolls its job up; success passes through."""
    from simsearch.jobs.rq import THREAD_TARGETS, resolve_target
    from simsearch.store import lifecycle, repo
    from simsearch.store.lifecycle import IMAGE_PASSES, JobKind

    parent_kind = next(k for k, v in IMAGE_PASSES.items() if v == kind)
    module, _, name = THREAD_TARGETS[JobKind(kind)].partition(":")
    once = resolve_target(THREAD_TARGETS[JobKind(kind)])
    with ctx.db.session() as s:
        coll_id = repo.get_or_create_collection(s, "passes").id
    job_id, (first, second) = shards.create_pass(ctx, parent_kind, coll_id, [11, 12], spaces=["efficientnet_lite0"],
                                                 source="test", shard_size=1, batch_size=1)
    ran = []

    def boom(ctx_, shard_id, **_):
        ran.append(shard_id)
        raise RuntimeError("boom")

    monkeypatch.setattr(f"{module}.execute_shard", boom)
    with pytest.raises(RuntimeError, match="boom"):
        once(ctx, first)
    monkeypatch.setattr(f"{module}.execute_shard", lambda ctx_, shard_id, **_: {"run_id": shard_id, "ran": True})
    assert once(ctx, second) == {"run_id": second, "ran": True}  # what the shard function answers
    assert ran == [first]
    with ctx.db.session() as s:
        failed, parent = s.get(IngestRun, first), s.get(IngestRun, job_id)
        assert failed.status == "failed" and lifecycle.is_final(failed.status, failed.params)
        assert "boom" in failed.message
        assert s.get(IngestRun, second).status == "queued"  # untouched: its job waits for it
        assert parent.status == "running"
    lifecycle.finish(ctx.db, second, "done")
    shards.roll_up(ctx, job_id)
    with ctx.db.session() as s:
        parent = s.get(IngestRun, job_id)
        assert parent.status == "failed" and parent.message.startswith("1 of 2 shards failed (shard 1): ")
