"""FAISS index as a derived cache: exact results, atomic saves, and rebuilds from the database."""

import numpy as np
import pytest

from simsearch.index.faiss_index import build_index, index_ids, load_index, save_index
from simsearch.errors import IndexCorrupt
from simsearch.store import repo
from tests.helpers.db import add_images

SPACE = "efficientnet_lite0"


def test_flat_index_is_exact_and_uses_image_ids():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.arange(1000, 1200, dtype=np.int64)
    index = build_index(ids, x)
    scores, got = index.search(x[:5], 3)
    assert got[:, 0].tolist() == ids[:5].tolist()
    brute = x[:5] @ x.T
    np.testing.assert_allclose(scores, -np.sort(-brute, axis=1)[:, :3], rtol=1e-5)
    assert index_ids(index).tolist() == ids.tolist()


def test_hnsw_above_threshold_finds_the_exact_neighbour_mostly():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = build_index(np.arange(3000), x, hnsw_threshold=1000)
    _, got = index.search(x[:100], 1)
    assert (got[:, 0] == np.arange(100)).mean() >= 0.98


def test_save_is_atomic_and_round_trips(tmp_path):
    x = np.eye(4, dtype=np.float32)
    path = tmp_path / "i" / "a.faiss"
    save_index(build_index(np.array([5, 6, 7, 8]), x), path)
    save_index(build_index(np.array([5, 6]), x[:2]), path)  # replaces in one step
    assert [p.name for p in path.parent.iterdir()] == ["a.faiss"]  # no temp files left behind
    assert index_ids(load_index(path)).tolist() == [5, 6]


def test_load_rejects_missing_and_corrupt(tmp_path):
    with pytest.raises(IndexCorrupt, match="missing"):
        load_index(tmp_path / "none.faiss")
    bad = tmp_path / "bad.faiss"
    bad.write_bytes(b"this is not faiss")
    with pytest.raises(IndexCorrupt, match="unreadable"):
        load_index(bad)


def test_index_rebuilt_when_missing_corrupt_or_stale(ctx):
    coll_id, ids, vecs = add_images(ctx.db, n=10, dim=8)
    loaded = ctx.index(coll_id, SPACE)
    assert loaded.ntotal == 10 and loaded.rebuilt
    path = ctx.indexes.path_for(coll_id, SPACE)
    assert path.exists()
    gen = loaded.generation

    # A fresh process (new cache) opens the saved file and checks it against the DB: no rebuild.
    ctx.indexes.forget(coll_id)
    again = ctx.index(coll_id, SPACE)
    assert not again.rebuilt and again.ntotal == 10 and again.generation == gen

    # Corrupt file -> rebuilt from the database.
    ctx.indexes.forget(coll_id)
    path.write_bytes(b"garbage")
    fixed = ctx.index(coll_id, SPACE)
    assert fixed.rebuilt and fixed.ntotal == 10
    assert index_ids(load_index(path)).tolist() == ids.tolist()

    # Stale: the database gained vectors the file lacks -> the missing ones are added.
    ctx.indexes.forget(coll_id)
    add_images(ctx.db, n=4, dim=8, seed=7)
    with ctx.db.session() as s:
        db_ids = repo.vector_ids(s, coll_id, SPACE)
    grown = ctx.index(coll_id, SPACE)
    assert grown.ntotal == 14 and sorted(index_ids(grown.index).tolist()) == db_ids.tolist()
    with ctx.db.session() as s:
        state = repo.index_state(s, coll_id, SPACE)
        assert state.vector_count == 14 and state.generation > gen

    # Missing file -> rebuilt.
    ctx.indexes.forget(coll_id)
    path.unlink()
    assert ctx.index(coll_id, SPACE).ntotal == 14


def test_cached_index_follows_generation(ctx):
    coll_id, ids, vecs = add_images(ctx.db, n=6, dim=8)
    first = ctx.index(coll_id, SPACE)
    add_images(ctx.db, n=3, dim=8, seed=3)
    ctx.sync_index(coll_id, SPACE)  # what an ingest does when it finishes
    assert ctx.index(coll_id, SPACE).ntotal == 9
    assert first.ntotal == 6  # the old object is untouched; readers switch to the new generation


def test_search_results_match_brute_force_and_label_filter(ctx):
    from simsearch.search import search_vector

    coll_id, ids, vecs = add_images(ctx.db, n=20, dim=8)
    hits = search_vector(ctx, coll_id, SPACE, vecs[3], 5, exclude=int(ids[3]))
    expected = np.argsort(-(vecs @ vecs[3]))[1:6]
    assert [h.image_id for h in hits] == ids[expected].tolist()
    only_a = search_vector(ctx, coll_id, SPACE, vecs[3], 5, label="a")
    assert only_a and all(h.label == "a" for h in only_a)


def _delete_images(db, ids) -> None:
    from sqlalchemy import delete

    from simsearch.store.models import Image

    with db.session() as s:
        s.execute(delete(Image).where(Image.id.in_([int(i) for i in ids])))


def test_layout_and_removing_a_collection(ctx):
    coll_id, _, _ = add_images(ctx.db, n=5, dim=8)
    other_id, _, _ = add_images(ctx.db, n=3, dim=8, name="other")
    ctx.index(coll_id, SPACE)
    ctx.index(other_id, SPACE)
    path = ctx.indexes.path_for(coll_id, SPACE)
    assert path.exists() and path.parent.name == f"collection-{coll_id}"
    ctx.indexes.remove_collection(coll_id)
    assert not path.parent.exists() and ctx.indexes.cached(coll_id, SPACE) is None
    assert ctx.indexes.cached(other_id, SPACE) is not None and ctx.indexes.path_for(other_id, SPACE).exists()


def test_large_indexes_follow_deletions_in_the_background(ctx, monkeypatch):
    from simsearch.index import manager

    coll_id, ids, _ = add_images(ctx.db, n=12, dim=8)
    ctx.index(coll_id, SPACE)
    _delete_images(ctx.db, ids[:2])
    monkeypatch.setattr(manager, "BACKGROUND_UPDATE_AT", 1_000)  # small: updated on the caller's thread
    assert ctx.indexes.images_deleted(coll_id, [SPACE]) == []
    assert ctx.indexes.cached(coll_id, SPACE).ntotal == 10
    _delete_images(ctx.db, ids[2:4])
    monkeypatch.setattr(manager, "BACKGROUND_UPDATE_AT", 5)  # large: a background update
    [pending] = ctx.indexes.images_deleted(coll_id, [SPACE])
    assert pending.result(timeout=60).ntotal == 8
    assert ctx.indexes.cached(coll_id, SPACE).ntotal == 8


def test_a_failed_background_update_is_logged_and_the_next_query_rebuilds(ctx, monkeypatch, caplog):
    coll_id, ids, _ = add_images(ctx.db, n=6, dim=8)
    assert ctx.index(coll_id, SPACE).ntotal == 6
    _delete_images(ctx.db, ids[:1])

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ctx.indexes, "_sync", disk_full)
    with caplog.at_level("ERROR", logger="simsearch.index"):
        future = ctx.indexes.sync_in_background(coll_id, SPACE)
        with pytest.raises(OSError):
            future.result(timeout=60)
        ctx.indexes.shutdown(wait=True)  # the failure callback has run
    assert any("failed" in r.getMessage() and r.exc_info for r in caplog.records), caplog.records
    assert ctx.indexes.cached(coll_id, SPACE) is None  # dropped: not trusted any more
    monkeypatch.undo()
    assert ctx.index(coll_id, SPACE).ntotal == 5
