"""Indexes opened memory-mapped (SIMSEARCH_INDEX_MMAP): processes that map one file get the same
results as an index read into memory; updates go to a copy that is saved and mapped in its place;
a file replaced by a rename leaves a mapped reader on the old one; damaged files are still caught."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simsearch.errors import IndexCorrupt
from simsearch.index import kinds
from simsearch.index.faiss_index import LoadedIndex, build_index, index_ids, load_index, save_index
from simsearch.index.policy import IndexPolicy
from simsearch.store import repo
from tests.helpers.db import SPACE, add_images, clustered, delete_images, insert_vectors

REPO_ROOT = Path(__file__).resolve().parents[1]
SEARCHER = """
import json, sys
import numpy as np
from simsearch.index.faiss_index import LoadedIndex, load_index
loaded = LoadedIndex(index=load_index(__import__("pathlib").Path(sys.argv[1]), mmap=True), fingerprint="", generation=0)
q = np.load(sys.argv[2])
scores, ids = loaded.search(q, 10)
print(json.dumps({"ids": ids.tolist(), "scores": scores.round(5).tolist()}))
"""


def _index(tmp_path, kind: str, n: int = 3000):
    x = clustered(n, seed=1)
    ids = np.arange(1000, 1000 + n, dtype=np.int64)
    index = build_index(ids, x, kind=kind)
    path = tmp_path / f"{kind}.faiss"
    save_index(index, path)
    return path, index, x


@pytest.mark.parametrize("kind", ["flat", "hnsw_sq8", "ivf_sq8"])
def test_two_processes_mapping_one_file_get_the_same_results(tmp_path, kind):
    path, index, x = _index(tmp_path, kind)
    np.save(tmp_path / "q.npy", x[:25])
    in_memory = LoadedIndex(index=load_index(path), fingerprint="", generation=0)
    expected_scores, expected_ids = in_memory.search(x[:25], 10)
    env_path = str(REPO_ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", SEARCHER, str(path), str(tmp_path / "q.npy")], cwd=env_path,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": env_path})
             for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1]
    assert outs[0]["ids"] == expected_ids.tolist()
    assert np.allclose(outs[0]["scores"], expected_scores, atol=1e-4)


def test_a_mapped_reader_keeps_the_file_it_opened_when_another_replaces_it(tmp_path):
    path, index, x = _index(tmp_path, "flat", n=500)
    mapped = LoadedIndex(index=load_index(path, mmap=True), fingerprint="", generation=0)
    before = mapped.search(x[:5], 3)[1].tolist()
    other = build_index(np.arange(5000, 5200, dtype=np.int64), clustered(200, seed=9), kind="flat")
    save_index(other, path)  # another process's atomic save: temp file, rename
    assert mapped.search(x[:5], 3)[1].tolist() == before  # the old inode, still mapped and whole
    assert index_ids(load_index(path, mmap=True)).tolist() == list(range(5000, 5200))


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_files_are_caught_before_mapping(tmp_path, damage):
    path, _, _ = _index(tmp_path, "flat", n=300)
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3] ^= 0xFF
    path.unlink()  # a new file (never write into a file that a process may map)
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt):
        load_index(path, mmap=True)


def test_manager_maps_and_updates_through_a_copy(ctx):
    assert ctx.indexes.mmap
    coll_id, ids, vecs = add_images(ctx.db, n=10, dim=8)
    built = ctx.index(coll_id, SPACE)
    assert built.rebuilt and built.mapped  # the builder maps the file it saved too
    ctx.indexes.forget(coll_id)
    opened = ctx.index(coll_id, SPACE)
    assert opened.mapped and not opened.rebuilt
    add_images(ctx.db, n=4, dim=8, seed=7)
    delete_images(ctx.db, ids[:3])
    grown = ctx.sync_index(coll_id, SPACE)
    assert grown.mapped and grown.index is not opened.index and grown.ntotal == 11
    assert opened.ntotal == 10  # the old generation is untouched
    with ctx.db.session() as s:
        db_ids, db_vecs = repo.load_vectors(s, coll_id, SPACE)
    assert sorted(index_ids(grown.index).tolist()) == db_ids.tolist()
    _, found = grown.search(db_vecs, 1)
    assert found[:, 0].tolist() == db_ids.tolist()


def test_an_approximate_kind_is_updated_and_compacted_mapped(sqlite_settings):
    from simsearch.context import AppContext

    ctx = AppContext.open(sqlite_settings.replace(exact_threshold=1000, index_type="ivf_sq8"))
    try:
        ctx.indexes.policy = IndexPolicy(exact_threshold=1000, sample_queries=200, kind="ivf_sq8")
        x = clustered(2400, seed=3)
        coll_id, ids = insert_vectors(ctx.db, x)
        first = ctx.index(coll_id, SPACE)
        assert first.kind == "ivf_sq8" and first.mapped
        coll_id, more = insert_vectors(ctx.db, clustered(100, seed=4), first=len(ids))
        grown = ctx.sync_index(coll_id, SPACE)
        assert grown.mapped and grown.ntotal == 2500 and ctx.indexes.builds == 1
        delete_images(ctx.db, ids[1::8])  # beyond 10% masked: compacted in place, on a copy
        compacted = ctx.sync_index(coll_id, SPACE)
        assert compacted.mapped and not len(compacted.masked) and ctx.indexes.builds == 1
        left = np.setdiff1d(np.concatenate([ids, more]), ids[1::8])
        assert sorted(index_ids(compacted.index).tolist()) == left.tolist()
        assert not np.isin(compacted.search(x[::50], 10)[1], ids[1::8]).any()
    finally:
        ctx.close()


def test_mapping_off_reads_into_memory_and_foreign_kinds_never_map(ctx, tmp_path):
    ctx.indexes.mmap = False
    coll_id, _, _ = add_images(ctx.db, n=6, dim=8)
    assert not ctx.index(coll_id, SPACE).mapped
    assert kinds.behaviour("hnsw_flat").maps_file is False
    assert all(kinds.get(name).maps_file for name in kinds.names())
