"""The index policy and its recall contract: the kind by size, tuning to the target recall, the
recall check catching a bad parameter set, deletes and adds without a rebuild, filtered searches
keeping the target. Small thresholds keep it fast (a few thousand 32-d vectors); seeded, no timings."""

from __future__ import annotations

import numpy as np
import pytest

from simsearch.index import kinds
from simsearch.index.faiss_index import index_ids, load_index, save_index
from simsearch.index.policy import IndexPolicy, build, ground_truth, measure, recall_of
from simsearch.store import repo
from tests.helpers.db import SPACE, clustered, delete_images, insert_vectors, state_of

POLICY = IndexPolicy(exact_threshold=1000, sample_queries=200)



@pytest.fixture(autouse=True)
def one_faiss_thread():
    """Small indexes build faster on one thread, and far faster when other processes keep the
    cores busy (OpenMP's threads spin waiting for each other)."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture
def pctx(sqlite_settings):
    """An application context whose indexes follow :data:`POLICY` (approximate from 1,000 vectors)."""
    from simsearch.context import AppContext

    ctx = AppContext.open(sqlite_settings.replace(exact_threshold=1000))
    ctx.indexes.policy = POLICY
    yield ctx
    ctx.close()



def test_policy_chooses_the_kind_by_size():
    p = IndexPolicy(exact_threshold=1000)
    assert p.kind_for(999) == "flat" and p.kind_for(1000) == "ivf_pq_refine"
    # an approximate index stays so down to half the threshold (no flapping), then exact again
    assert p.kind_for(600, current="ivf_pq_refine") == "ivf_pq_refine" and p.kind_for(499, current="ivf_sq8") == "flat"
    assert IndexPolicy(exact_threshold=1000, kind="hnsw_sq8").kind_for(5000) == "hnsw_sq8"
    assert IndexPolicy(exact_threshold=1000, kind="flat").kind_for(10**7) == "flat"
    # the old HNSW-flat files are replaced
    assert p.kind_for(5000, current="hnsw_flat") == "ivf_pq_refine"


def test_settings_reach_the_policy(sqlite_settings):
    from simsearch.context import AppContext

    ctx = AppContext.open(sqlite_settings.replace(exact_threshold=123, target_recall=0.9, index_type="ivf_sq8"))
    try:
        assert (ctx.indexes.policy.exact_threshold, ctx.indexes.policy.target_recall, ctx.indexes.policy.kind) == (123, 0.9, "ivf_sq8")
    finally:
        ctx.close()


def test_collection_crossing_the_threshold_gets_a_tuned_approximate_index(pctx):
    x = clustered(1800)
    coll_id, ids = insert_vectors(pctx.db, x[:600])
    small = pctx.index(coll_id, SPACE)
    assert small.kind == "flat" and small.ntotal == 600
    st = state_of(pctx, coll_id)
    assert st.kind == "flat" and st.recall == 1.0
    builds = pctx.indexes.builds
    _, more = insert_vectors(pctx.db, x[600:], first=600)
    big = pctx.sync_index(coll_id, SPACE)
    assert big.kind == "ivf_pq_refine" and big.ntotal == 1800 and big.rebuilt
    assert pctx.indexes.builds == builds + 1  # the kind changed: one rebuild
    st = state_of(pctx, coll_id)
    assert st.kind == "ivf_pq_refine" and st.recall >= 0.95 and st.checked_count == 1800
    assert set(st.params) == {"nprobe", "nlist", "k_factor"} and st.memory_bytes > 0 and st.build_seconds >= 0
    # the state as `simsearch collections` and the API show it
    from simsearch.ops.collections import summary

    shown = summary(pctx, "c")["backbones"][SPACE]["index"]
    assert shown["kind"] == "ivf_pq_refine" and shown["recall"] == st.recall and shown["target_recall"] == 0.95


@pytest.mark.parametrize("kind", ["ivf_pq_refine", "ivf_sq8", "hnsw_sq8"])
def test_each_kind_is_tuned_to_the_target(kind):
    x = clustered(3000, seed=1)
    ids = np.arange(10, 3010, dtype=np.int64)
    policy = IndexPolicy(exact_threshold=1000, kind=kind, sample_queries=200)
    built = build(ids, x, policy)
    assert built.kind == kind and built.recall >= 0.95 and built.curve
    # on other queries (not the tuning sample) the recall holds too
    other = IndexPolicy(sample_queries=300, seed=7)
    assert measure(lambda q, k: built.index.search(q, k), ground_truth(ids, x, other), 10) >= 0.93


def test_the_recall_check_detects_a_bad_parameter_set(pctx):
    coll_id, ids = insert_vectors(pctx.db, clustered(2500, seed=2))
    good = pctx.index(coll_id, SPACE)
    assert good.kind == "ivf_pq_refine"
    builds = pctx.indexes.builds
    # sabotage: one list probed, no re-ranking beyond k (as a careless hand-tuning would)
    path = pctx.indexes.path_for(coll_id, SPACE)
    bad = load_index(path)
    kinds.get("ivf_pq_refine").set_params(bad, {"nprobe": 1, "k_factor": 1})
    save_index(bad, path)
    pctx.indexes.forget(coll_id)
    report = pctx.indexes.check_recall(coll_id, SPACE)
    assert report["recall_before"] < 0.95 <= report["recall"] and report["action"] == "retuned"
    assert report["params"]["nprobe"] > 1 and pctx.indexes.builds == builds  # re-tuned, not rebuilt
    st = state_of(pctx, coll_id)
    assert st.recall == report["recall"] and st.params == report["params"]
    assert kinds.get("ivf_pq_refine").get_params(load_index(path)) == report["params"]  # saved with the file


@pytest.mark.parametrize("kind", ["ivf_pq_refine", "ivf_sq8", "hnsw_sq8"])
def test_deletes_without_a_rebuild(pctx, kind):
    pctx.indexes.policy = IndexPolicy(exact_threshold=1000, sample_queries=200, kind=kind)
    x = clustered(2400, seed=3)
    coll_id, ids = insert_vectors(pctx.db, x)
    first = pctx.index(coll_id, SPACE)
    assert first.kind == kind
    builds = pctx.indexes.builds
    gone = ids[::25]  # 96 ids, 4%
    delete_images(pctx.db, gone)
    pctx.indexes.images_deleted(coll_id, [SPACE])
    after = pctx.indexes.cached(coll_id, SPACE)
    assert pctx.indexes.builds == builds and not after.rebuilt and after.ntotal == 2400 - len(gone)
    # masked: the same FAISS index object, nothing written, the ids kept in the state
    assert after.index is first.index and set(after.masked.tolist()) == set(gone.tolist())
    assert set(repo.masked_ids(state_of(pctx, coll_id)).tolist()) == set(gone.tolist())
    _, found = after.search(x[::25], 10)  # the deleted vectors themselves
    assert not np.isin(found, gone).any()
    # another process opens the file with the mask from the state: no rebuild either
    pctx.indexes.forget(coll_id)
    again = pctx.index(coll_id, SPACE)
    assert pctx.indexes.builds == builds and again.ntotal == after.ntotal
    assert not np.isin(again.search(x[::25], 10)[1], gone).any()
    # beyond 10% masked the index is compacted: IVF lists and codes in place, HNSW rebuilt
    more = ids[1::8]
    delete_images(pctx.db, more)
    compacted = pctx.sync_index(coll_id, SPACE)
    left = np.setdiff1d(ids, np.union1d(gone, more))
    assert not len(compacted.masked) and repo.masked_ids(state_of(pctx, coll_id)).size == 0
    assert sorted(index_ids(compacted.index).tolist()) == left.tolist() == sorted(index_ids(load_index(
        pctx.indexes.path_for(coll_id, SPACE))).tolist())
    assert pctx.indexes.builds == builds + (kind == "hnsw_sq8")
    queries = clustered(200, seed=11)
    want = left[np.argsort(-(queries @ x[left - ids[0]].T), axis=1)[:, :10]]
    _, got = compacted.search(queries, 10)
    assert np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)]) >= 0.93  # renumbered right


@pytest.mark.parametrize("kind", ["ivf_pq_refine", "hnsw_sq8"])
def test_adds_without_a_rebuild_and_the_recall_checked_after_growth(pctx, kind):
    pctx.indexes.policy = IndexPolicy(exact_threshold=1000, sample_queries=200, kind=kind)
    x = clustered(2600, seed=4)
    coll_id, ids = insert_vectors(pctx.db, x[:2000])
    pctx.index(coll_id, SPACE)
    builds = pctx.indexes.builds
    _, new = insert_vectors(pctx.db, x[2000:2100], first=2000)  # 5%: appended
    grown = pctx.sync_index(coll_id, SPACE)
    assert pctx.indexes.builds == builds and not grown.rebuilt and grown.ntotal == 2100
    assert state_of(pctx, coll_id).checked_count == 2000
    _, found = grown.search(x[2000:2100], 1)
    assert (found[:, 0] == new).mean() >= 0.95  # the new vectors are found
    _, more = insert_vectors(pctx.db, x[2100:], first=2100)  # now 30% more than when last checked
    grown = pctx.sync_index(coll_id, SPACE)
    st = state_of(pctx, coll_id)
    assert pctx.indexes.builds == builds and grown.ntotal == 2600
    assert st.checked_count == 2600 and st.recall >= 0.95


def test_filtered_searches_keep_the_recall_target(pctx):
    x = clustered(3000, seed=5)
    labels = np.where(np.arange(3000) % 50 == 0, "rare", np.where(np.arange(3000) % 3 == 0, "third", "rest"))
    coll_id, ids = insert_vectors(pctx.db, x, labels=labels.tolist())
    pctx.indexes.policy = IndexPolicy(exact_threshold=1000, sample_queries=200, exact_subset=200)
    loaded = pctx.index(coll_id, SPACE)
    assert loaded.kind == "ivf_pq_refine"
    queries = clustered(200, seed=6)
    for label in ("rare", "third"):  # 60 vectors: scored exactly; 1,000: a selector with more lists probed
        allowed = ids[labels == label]
        sub = x[labels == label]
        want = allowed[np.argsort(-(queries @ sub.T), axis=1)[:, :10]]
        _, got = loaded.search(queries, 10, allowed_ids=allowed)
        assert np.isin(got, allowed).all()
        recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)])
        assert recall >= 0.95, (label, recall)
    # through the search API, with deleted images masked too
    from simsearch.search import search_vector

    delete_images(pctx.db, ids[labels == "third"][:20])
    pctx.indexes.images_deleted(coll_id, [SPACE])
    hits = search_vector(pctx, coll_id, SPACE, queries[0], 10, label="third")
    assert len(hits) == 10 and all(h.label == "third" for h in hits)


def test_recall_ignores_the_query_itself():
    from simsearch.index.policy import Truth

    truth = Truth(np.zeros((1, 2), np.float32), np.array([5]), np.array([[5, 1, 2]]), np.array([0]), 0.0)
    assert recall_of(truth, np.array([[5, 1, 9]]), 2) == 0.5


def test_tuning_queries_are_held_out_of_the_index():
    x = clustered(2000, seed=10)
    ids = np.arange(1, 2001, dtype=np.int64)
    truth = ground_truth(ids, x, POLICY, held_out=True)
    assert len(truth.query_ids) == 200 and truth.neighbours.shape == (200, 10)
    assert not np.isin(truth.neighbours, truth.query_ids).any()  # neighbours among the others only
    exact = np.argsort(-(truth.queries @ x.T), axis=1)
    for row, got in zip(exact[:20], truth.neighbours[:20]):
        assert got.tolist() == [i for i in ids[row] if i not in set(truth.query_ids.tolist())][:10]


def test_the_cli_shows_the_policy_and_runs_the_recall_check(tmp_path):
    from click.testing import CliRunner

    from simsearch.cli import cli
    from simsearch.config import Settings
    from simsearch.store.db import Database

    home = tmp_path / "home"
    env = {"SIMSEARCH_HOME": str(home), "SIMSEARCH_DATABASE_URL": f"sqlite:///{home / 'db.sqlite'}",
           "SIMSEARCH_EXACT_THRESHOLD": "1000", "SIMSEARCH_INDEX_TYPE": "ivf_sq8", "SIMSEARCH_REDIS_URL": ""}
    settings = Settings.from_env(home=home, database_url=env["SIMSEARCH_DATABASE_URL"])
    settings.ensure_dirs()
    db = Database.from_settings(settings)
    db.upgrade()
    insert_vectors(db, clustered(1500, seed=8), name="big")
    db.dispose()
    runner = CliRunner()
    out = runner.invoke(cli, ["collections"], env=env, catch_exceptions=False).output
    assert "1500 vectors in the database, 1500 in the index" in out
    assert "index: ivf_sq8, recall@10 " in out and "(target 0.95) at nprobe=" in out and "built in" in out
    checked = runner.invoke(cli, ["reindex", "--check-recall", "--json"], env=env, catch_exceptions=False)
    (row,) = __import__("json").loads(checked.output)
    assert row["kind"] == "ivf_sq8" and row["action"] == "ok" and row["recall"] >= 0.95


def test_a_large_compaction_runs_in_the_background_while_searches_use_the_masked_index(pctx, monkeypatch):
    import threading

    from simsearch.index import manager, policy as policy_module

    pctx.indexes.policy = IndexPolicy(exact_threshold=1000, sample_queries=200, kind="hnsw_sq8")  # compacted by a rebuild
    monkeypatch.setattr(manager, "BACKGROUND_UPDATE_AT", 1000)  # "large" from 1,000 vectors
    x = clustered(2000, seed=9)
    coll_id, ids = insert_vectors(pctx.db, x)
    first = pctx.index(coll_id, SPACE)
    builds = pctx.indexes.builds
    release = threading.Event()
    real_build = policy_module.build

    def slow_build(*args, **kwargs):  # hold the rebuild until the searches below are done
        release.wait(60)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(manager, "build", slow_build)  # the policy's build, as the manager imported it
    gone = ids[::5]  # 20%: beyond the 10% that may stay masked
    delete_images(pctx.db, gone)
    interim = pctx.sync_index(coll_id, SPACE)
    assert interim.index is first.index and len(interim.masked) == len(gone)  # correct meanwhile
    assert "compaction" in pctx.indexes.building(coll_id, SPACE)
    assert pctx.index(coll_id, SPACE) is interim  # the previous generation while the build runs
    assert not np.isin(interim.search(x[::5], 10)[1], gone).any()
    release.set()
    pctx.indexes.shutdown(wait=True)
    done = pctx.index(coll_id, SPACE)
    assert pctx.indexes.builds == builds + 1 and done.rebuilt and not len(done.masked) and done.ntotal == 1600
    assert pctx.indexes.building(coll_id, SPACE) is None
    # the rebuild was a job: running while it ran (asserted above through building()), done now
    from simsearch.jobs.status import job_dict
    from simsearch.store.models import IngestRun

    with pctx.db.session() as s:
        (job,) = [job_dict(r, "c") for r in s.query(IngestRun).filter_by(kind="index").all()]
    assert job["status"] == "done" and job["backbones"] == [SPACE] and "compaction" in job["source"]
    assert job["message"].startswith("rebuilt: hnsw_sq8, recall@10 ") and job["processed"] == job["total"] == 1600
    assert job["started_at"] and job["finished_at"]


def test_a_failed_background_rebuild_is_a_failed_job(pctx, monkeypatch):
    from simsearch.index import manager
    from simsearch.store.models import IngestRun

    pctx.indexes.policy = IndexPolicy(exact_threshold=1000, sample_queries=200, kind="hnsw_sq8")
    monkeypatch.setattr(manager, "BACKGROUND_UPDATE_AT", 1000)
    x = clustered(2000, seed=10)
    coll_id, ids = insert_vectors(pctx.db, x)
    pctx.index(coll_id, SPACE)

    def broken_build(*args, **kwargs):
        raise MemoryError("no room for the new index")

    monkeypatch.setattr(manager, "build", broken_build)  # the policy's build, as the manager imported it
    delete_images(pctx.db, ids[::5])
    pctx.sync_index(coll_id, SPACE)
    pctx.indexes.shutdown(wait=True)
    with pctx.db.session() as s:
        (run,) = s.query(IngestRun).filter_by(kind="index").all()
        assert run.status == "failed" and "MemoryError: no room for the new index" in run.message
        assert "the next search rebuilds the index" in run.message
