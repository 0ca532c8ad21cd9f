"""search_image's one-round-trip lookup (plain SQL on SQLite and PostgreSQL) gives the same answers,
in the same error order, as the ORM path."""

from __future__ import annotations


import pytest
from sqlalchemy import select

from simsearch.errors import ImageDecodeError, NotFound
from simsearch.ingest import Ingester, files_from_folder
from simsearch.search import embed_bytes, search_image, search_vector
from simsearch.context import AppContext
from simsearch.store import hot, repo
from simsearch.images import phash
from simsearch.store.models import Image, ImageHashes
from tests.conftest import CATS_DOGS, copy_subset, dataset_files

pytestmark = pytest.mark.model
SPACE = "efficientnet_lite0"


@pytest.fixture
def pets(ctx, tmp_path):
    files, _ = files_from_folder(copy_subset(tmp_path / "pets", 5), labels="folders")
    Ingester(ctx, spaces=[SPACE]).run("pets", files, source="pets")
    return ctx


def _ids(hits):
    return [(h.image_id, round(h.score, 5), h.label, h.path, h.width, h.height) for h in hits]


def test_hot_reads_agree_with_the_orm(pets):
    with pets.db.session() as s:
        coll = repo.get_collection(s, "pets")
    target = hot.search_target(pets.db, "pets", SPACE)
    assert target.collection_id == coll.id and target.has_vectors is True
    with pets.db.session() as s:
        state = repo.index_state(s, coll.id, SPACE)
    assert target.index_generation == (state.generation if state is not None else None)
    assert hot.search_target(pets.db, "pets", f"{SPACE}@max").has_vectors is False
    assert hot.search_target(pets.db, "nope", SPACE) is None
    ids = repo.vector_ids(pets.db.sessionmaker(), coll.id, SPACE)
    rows = hot.hit_rows(pets.db, [int(i) for i in ids] + [987654])
    with pets.db.session() as s:
        orm = {img.id: img for img in s.scalars(select(Image).where(Image.id.in_([int(i) for i in ids])))}
    assert set(rows) == set(orm) and 987654 not in rows
    assert all(rows[i] == (img.source_path, img.label, img.width, img.height, img.file_count) for i, img in orm.items())
    assert hot.hit_rows(pets.db, []) == {}
    with pets.db.session() as s:
        stored = {r.image_id: bytes(r.hashes) for r in s.scalars(select(ImageHashes).where(ImageHashes.method == phash.METHOD))}
    assert stored and all(hot.stored_hashes(pets.db, i, phash.METHOD) == h for i, h in stored.items())
    assert hot.stored_hashes(pets.db, next(iter(stored)), "another-method") is None
    assert hot.stored_hashes(pets.db, 987654, phash.METHOD) is None


def test_search_image_matches_embedding_then_searching(pets):
    # regions=0: the whole image only (the default also searches by an object proposal and fuses:
    # tests/test_region_search.py)
    query = dataset_files(CATS_DOGS / "dogs", 1, start=150)[0].read_bytes()
    with pets.db.session() as s:
        coll_id = repo.get_collection(s, "pets").id
    vec, _ = embed_bytes(pets, SPACE, query, "q.jpg")
    space, hits = search_image(pets, "pets", query, "q.jpg", k=6, regions=0)
    assert space == SPACE and len(hits) == 6
    assert _ids(hits) == _ids(search_vector(pets, coll_id, SPACE, vec, 6))
    _, dogs = search_image(pets, "pets", query, "q.jpg", k=6, label="dogs", regions=0)
    assert _ids(dogs) == _ids(search_vector(pets, coll_id, SPACE, vec, 6, label="dogs"))
    assert {h.label for h in dogs} == {"dogs"}
    assert search_image(pets, "pets", query, "q.jpg", k=6, label="no such label", regions=0)[1] == []


def test_a_default_without_vectors_falls_back_to_the_collections_only_space(pets, settings):
    """The server default (here lite0 with max pooling) has no vectors in this collection, which
    has lite0 average-pooled vectors only: the query is embedded and searched with those."""
    query = dataset_files(CATS_DOGS / "cats", 1, start=150)[0].read_bytes()
    other_default = AppContext.open(settings.replace(default_backbone=f"{SPACE}@max"))
    try:
        space, hits = search_image(other_default, "pets", query, "q.jpg", k=5)
    finally:
        other_default.close()
    _, expected = search_image(pets, "pets", query, "q.jpg", space=SPACE, k=5)
    assert space == SPACE and _ids(hits) == _ids(expected)


def test_errors_name_the_collection_or_space_before_the_image(pets):
    good = dataset_files(CATS_DOGS / "cats", 1, start=150)[0].read_bytes()
    with pytest.raises(NotFound, match="no collection named 'nope'"):
        search_image(pets, "nope", b"not an image", "q.jpg")
    with pytest.raises(NotFound, match="no vectors for backbone 'efficientnet_lite0@max'"):
        search_image(pets, "pets", good, "q.jpg", space=f"{SPACE}@max")
    with pytest.raises(ImageDecodeError) as err:
        search_image(pets, "pets", b"not an image", "upload.jpg")
    assert err.value.source == "upload.jpg"
