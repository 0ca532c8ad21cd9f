"""Store: schema from migrations, constraints and vector round trips, on SQLite and PostgreSQL."""

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from simsearch.errors import InvalidInput, NotFound, SchemaOutdated
from simsearch.store import repo
from simsearch.store.db import Database
from simsearch.store.models import Collection, Embedding, Image
from tests.helpers.db import add_images


def migrated(url: str) -> Database:
    db = Database(url)
    db.upgrade()
    return db


def test_migrations_create_schema(db_url):
    db = Database(db_url)
    assert db.table_names() == []  # opening a database never migrates it
    with pytest.raises(SchemaOutdated, match="no simsearch schema yet: run `simsearch db upgrade`"):
        db.check_schema()
    db.upgrade()
    assert {"collections", "images", "embeddings", "thumbnails", "index_states", "ingest_runs",
            "analysis_results", "alembic_version"} <= set(db.table_names())
    db.check_schema()
    db.upgrade()  # running the migrations again is a no-op
    assert db.revision()[0] == db.revision()[1]
    db.dispose()


def test_sqlite_uses_wal(tmp_path):
    db = migrated(f"sqlite:///{tmp_path / 'x.db'}")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_vectors_round_trip_exactly(db_url):
    db = migrated(db_url)
    coll_id, ids, vecs = add_images(db, n=7, dim=16)
    with db.session() as s:
        got_ids, got = repo.load_vectors(s, coll_id, "efficientnet_lite0")
        assert got_ids.tolist() == ids.tolist()
        np.testing.assert_array_equal(got, vecs)
        sub_ids, sub = repo.load_vectors_for_ids(s, "efficientnet_lite0", ids[[4, 1]])
        assert sub_ids.tolist() == sorted(ids[[4, 1]].tolist())
        np.testing.assert_array_equal(sub, vecs[[1, 4]])
        assert repo.vector_counts(s, coll_id) == {"efficientnet_lite0": 7}
        assert repo.labels_for(s, ids[:3]) == ["b", "a", "b"]
        img = s.get(Image, int(ids[3]))
        assert img.meta == {"i": 3}
    db.dispose()


@pytest.mark.parametrize("page", [1, 3, 7, 50])
def test_vectors_read_in_pages_by_id(db_url, monkeypatch, page):
    """load_vectors reads short pages by id (a million rows in one statement outlive the
    statement time limit): any page size gives every vector once, in id order."""
    monkeypatch.setattr(repo, "PAGE", page)
    db = migrated(db_url)
    coll_id, ids, vecs = add_images(db, n=7, dim=16)
    with db.session() as s:
        got_ids, got = repo.load_vectors(s, coll_id, "efficientnet_lite0")
    assert got_ids.tolist() == ids.tolist()
    np.testing.assert_array_equal(got, vecs)
    db.dispose()


def test_content_hash_unique_per_collection(db_url):
    db = migrated(db_url)
    add_images(db, "one", n=2)
    add_images(db, "two", n=2)  # same hashes pattern but different collection prefix -> fine
    with pytest.raises(IntegrityError):
        with db.session() as s:
            coll = repo.get_collection(s, "one")
            s.add(Image(collection_id=coll.id, content_hash="one-0-0000", source_path="/dup.jpg"))
            s.flush()
    db.dispose()


def test_delete_collection_cascades(db_url):
    db = migrated(db_url)
    add_images(db, "gone", n=3)
    keep_id, _, _ = add_images(db, "kept", n=2)
    with db.session() as s:
        repo.delete_collection(s, repo.get_collection(s, "gone"))
    with db.session() as s:
        assert s.scalars(select(Collection.name)).all() == ["kept"]
        assert len(s.scalars(select(Embedding)).all()) == 2
    db.dispose()


def test_collection_names_and_lookup_errors(db_url):
    db = migrated(db_url)
    with db.session() as s:
        for bad in ["", "has space", "../etc", "-x", "a" * 101]:
            with pytest.raises(InvalidInput, match="collection name"):
                repo.get_or_create_collection(s, bad)
        with pytest.raises(NotFound, match="no collection named 'nope'"):
            repo.get_collection(s, "nope")
        with pytest.raises(NotFound, match="no image with id 999"):
            repo.get_image(s, 999)
    db.dispose()


def test_bad_database_url():
    with pytest.raises(InvalidInput, match="not a database URL"):
        Database("not a url at all")
