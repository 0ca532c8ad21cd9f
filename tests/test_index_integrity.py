"""Index files carry a checksum: damaged, truncated or unchecked files are detected when opened and
rebuilt from the database, with the same search results as before (both databases)."""

from __future__ import annotations

import logging

import faiss
import numpy as np
import pytest

from simsearch.context import AppContext
from simsearch.errors import IndexCorrupt
from simsearch.index import integrity
from simsearch.index.faiss_index import build_index, index_ids, load_index, save_index
from simsearch.search import similar_to
from simsearch.store import repo
from tests.conftest import copy_subset
from tests.helpers.db import SPACE, ingest
from tests.helpers.db import add_images

QUERIES = 3


@pytest.fixture
def pets(ctx, tmp_path):
    """12 real cats-dogs images ingested with efficientnet_lite0; (collection id, index path, image ids)."""
    ingest(ctx, copy_subset(tmp_path / "pets", 6))
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, "pets").id
        ids = repo.vector_ids(s, coll_id, SPACE)
    ctx.index(coll_id, SPACE)
    return coll_id, ctx.indexes.path_for(coll_id, SPACE), ids


def results(ctx, ids) -> list[list[tuple[int, float]]]:
    return [[(h.image_id, round(h.score, 6)) for h in similar_to(ctx, int(i), k=5)[2]] for i in ids[:QUERIES]]


def vector_block(ctx, coll_id: int, path) -> tuple[int, int]:
    """(offset, length) of the stored vectors inside the index file, found by their bytes."""
    with ctx.db.session() as s:
        _, x = repo.load_vectors(s, coll_id, SPACE)
    data = path.read_bytes()
    start = data.find(np.ascontiguousarray(x, dtype="<f4").tobytes())
    assert start > 0, "the vectors are stored as they are in a flat index"
    return start, x.nbytes


def reopened(ctx, coll_id: int, caplog, match: str):
    """Open the index as a new process would; the damage must be logged and the index rebuilt."""
    ctx.indexes.forget(coll_id)
    with caplog.at_level(logging.WARNING, logger="simsearch.index"):
        caplog.clear()
        loaded = ctx.index(coll_id, SPACE)
    assert loaded.rebuilt and loaded.ntotal == 12
    warned = " ".join(r.getMessage() for r in caplog.records if r.name == "simsearch.index")
    assert match in warned and "rebuilding from the database" in warned
    return loaded


def test_zeroed_vectors_are_detected_and_rebuilt_with_the_same_results(ctx, settings, pets, caplog):
    coll_id, path, ids = pets
    before = results(ctx, ids)
    assert before[0][0][1] > 0.5  # real neighbours
    start, length = vector_block(ctx, coll_id, path)
    damaged = bytearray(path.read_bytes())
    lo, hi = start + length // 3, start + 2 * length // 3  # a stretch in the middle of the vector data
    damaged[lo:hi] = bytes(hi - lo)
    path.write_bytes(bytes(damaged))
    # What FAISS alone makes of it: a valid index with the right ids, and wrong vectors (the old
    # id check would have trusted it).
    plain = faiss.read_index(str(path))
    assert plain.ntotal == 12 and sorted(index_ids(plain).tolist()) == ids.tolist()
    with pytest.raises(IndexCorrupt, match="checksum mismatch"):
        load_index(path)

    reopened(ctx, coll_id, caplog, "checksum mismatch")
    assert results(ctx, ids) == before
    integrity.verify(path)  # the rebuilt file is whole again
    # a new process (a new context) opens the rebuilt file without rebuilding, same answers
    other = AppContext.open(settings)
    try:
        assert not other.index(coll_id, SPACE).rebuilt and results(other, ids) == before
    finally:
        other.close()


def test_truncated_file_is_detected_and_rebuilt(ctx, pets, caplog):
    coll_id, path, ids = pets
    before = results(ctx, ids)
    start, length = vector_block(ctx, coll_id, path)
    with open(path, "r+b") as fh:
        fh.truncate(start + length // 2)  # cut inside the vectors: the trailer is gone with the end
    reopened(ctx, coll_id, caplog, "no checksum")
    assert results(ctx, ids) == before


def test_file_without_checksum_is_rebuilt_once(ctx, pets, caplog):
    coll_id, path, ids = pets
    before = results(ctx, ids)
    faiss.write_index(load_index(path), str(path))  # as an older simsearch wrote it: no trailer
    reopened(ctx, coll_id, caplog, "no checksum")
    assert results(ctx, ids) == before
    assert integrity.read_trailer(path)["ntotal"] == 12
    ctx.indexes.forget(coll_id)
    assert not ctx.index(coll_id, SPACE).rebuilt  # checked and trusted from now on


def test_one_megabyte_zeroed_in_a_large_vector_block_is_detected(ctx, caplog):
    coll_id, ids, vecs = add_images(ctx.db, n=400, dim=1280)  # 2 MB of vectors
    loaded = ctx.index(coll_id, SPACE)
    path = ctx.indexes.path_for(coll_id, SPACE)
    _, before = loaded.search(vecs[:5], 3)
    data = bytearray(path.read_bytes())
    start = bytes(data).find(vecs.tobytes())
    assert start > 0
    mid = start + vecs.nbytes // 2
    data[mid - (1 << 19): mid + (1 << 19)] = bytes(1 << 20)
    path.write_bytes(bytes(data))
    ctx.indexes.forget(coll_id)
    with caplog.at_level(logging.WARNING, logger="simsearch.index"):
        again = ctx.index(coll_id, SPACE)
    assert again.rebuilt and "checksum mismatch" in caplog.text
    _, after = again.search(vecs[:5], 3)
    assert after.tolist() == before.tolist() and after[:, 0].tolist() == ids[:5].tolist()


def test_trailer_records_what_it_covers(tmp_path):
    x = np.eye(4, dtype=np.float32)
    path = tmp_path / "a.faiss"
    save_index(build_index(np.array([5, 6, 7, 8]), x), path)
    record = integrity.verify(path)
    assert record["algorithm"] == "crc32" and record["ntotal"] == 4 and record["size"] < path.stat().st_size
    assert index_ids(faiss.read_index(str(path))).tolist() == [5, 6, 7, 8]  # plain FAISS still reads it
    data = path.read_bytes()
    for damaged, match in ((data[:-1], "no checksum"), (data[:10] + data, "truncated"), (b"", "no checksum"),
                           (data[:-12].replace(b'"ntotal":4', b'"ntotal":5') + data[-12:], "says 5")):
        path.write_bytes(damaged)
        with pytest.raises(IndexCorrupt, match=match):
            load_index(path)
