"""The reads on every search request, as plain SQL on a pooled DBAPI connection.

Search by upload has a budget of 30% of one forward pass for everything that is not the model.
The forward pass evicts the CPU caches, and measured right after it a ten-row read through an ORM
session costs about 1.3 ms, the same read on a pooled DBAPI connection about 0.3 ms. So these two
reads skip the ORM; everything else uses it. The SQL is plain enough for SQLite and PostgreSQL
(tests run it on both).

The driver's own errors (no SQLAlchemy in between) are mapped here as SQLAlchemy's are elsewhere:
a lost, refused or timed-out connection is :class:`~simsearch.errors.DatabaseUnavailable` (503)
and the broken connection is dropped from the pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from simsearch.store.db import storage_error, unavailable


@dataclass(frozen=True)
class SearchTarget:
    collection_id: int
    has_vectors: bool  # of the space asked about
    index_generation: int | None  # None: no index_states row yet
    default_space: str | None = None  # the collection's own default (simsearch tune --set-default)


def _rows(db, sql: str, params: tuple) -> list[tuple]:
    placeholder = "?" if db.dialect == "sqlite" else "%s"
    conn = db.engine.raw_connection()  # from the pool; close() returns it (rolled back)
    try:
        cur = conn.cursor()
        try:
            cur.execute(sql.replace("?", placeholder), params)
            return cur.fetchall()
        finally:
            try:
                cur.close()
            except Exception:  # a cursor of a connection that broke: the error above says why
                pass
    except Exception as exc:
        err = unavailable(exc) or storage_error(exc)
        if err is None:
            raise
        if unavailable(exc) is not None:
            conn.invalidate()  # never hand this connection out again
        raise err from None
    finally:
        conn.close()


_TARGET_SQL = """
SELECT c.id,
       EXISTS (SELECT 1 FROM embeddings e JOIN images i ON i.id = e.image_id
               WHERE i.collection_id = c.id AND e.space = ?),
       (SELECT s.generation FROM index_states s WHERE s.collection_id = c.id AND s.space = ?),
       c.default_space
FROM collections c WHERE c.name = ?
"""


def search_target(db, collection: str, space: str) -> SearchTarget | None:
    """The collection's id, whether it has vectors of ``space`` and its index generation in one
    round trip; None when there is no such collection."""
    rows = _rows(db, _TARGET_SQL, (space, space, collection))
    if not rows:
        return None
    coll_id, has_vectors, generation, default = rows[0]
    return SearchTarget(int(coll_id), bool(has_vectors), None if generation is None else int(generation), default)


def hit_rows(db, ids: list[int]) -> dict[int, tuple[str, str | None, int | None, int | None, int]]:
    """``{image id: (first path, label, width, height, file count)}`` for the ids that exist."""
    if not ids:
        return {}
    sql = f"SELECT id, source_path, label, width, height, file_count FROM images WHERE id IN ({', '.join('?' * len(ids))})"
    return {int(r[0]): (r[1], r[2], r[3], r[4], int(r[5])) for r in _rows(db, sql, tuple(int(i) for i in ids))}


@dataclass(frozen=True)
class SimilarSource:
    """An ingested image as a similar-by-id query needs it, read in one round trip."""
    image_id: int
    collection_id: int
    collection: str
    status: str
    error: str | None
    path: str
    label: str | None
    vector: bytes | None  # of the space asked about; None: the image has no such vector
    index_generation: int | None
    default_space: str | None = None  # the collection's own default (simsearch tune --set-default)


_SOURCE_SQL = """
SELECT i.id, i.collection_id, c.name, i.status, i.error, i.source_path, i.label, e.vector,
       (SELECT s.generation FROM index_states s WHERE s.collection_id = i.collection_id AND s.space = ?),
       c.default_space
FROM images i JOIN collections c ON c.id = i.collection_id
LEFT JOIN embeddings e ON e.image_id = i.id AND e.space = ?
WHERE i.id = ?
"""


def similar_source(db, image_id: int, space: str) -> SimilarSource | None:
    """The image, its collection, its vector of ``space`` and that index's generation; None when
    there is no such image."""
    rows = _rows(db, _SOURCE_SQL, (space, space, int(image_id)))
    if not rows:
        return None
    r = rows[0]
    return SimilarSource(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], r[6],
                         None if r[7] is None else bytes(r[7]), None if r[8] is None else int(r[8]), r[9])


def run_sources(db, ids) -> dict[int, str]:
    """``{image id: the source of the ingest run that stored it}`` for the ids that have one."""
    ids = sorted({int(i) for i in ids})
    out: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        sql = ("SELECT i.id, r.source FROM images i JOIN ingest_runs r ON r.id = i.ingest_run_id "
               f"WHERE i.id IN ({', '.join('?' * len(part))})")
        out.update({int(image_id): source for image_id, source in _rows(db, sql, tuple(part))})
    return out


def label_ids(db, collection_id: int, label: str) -> list[int]:
    """The ids of the collection's ingested images with this label (a search's filter)."""
    sql = "SELECT id FROM images WHERE collection_id = ? AND label = ? AND status = 'ok'"
    return [r[0] for r in _rows(db, sql, (int(collection_id), label))]


def stored_hashes(db, image_id: int, method: str) -> bytes | None:
    """The image's stored perceptual hashes of ``method`` (``image_hashes``), or None (a search's
    check that its first hit is a close copy of the query)."""
    rows = _rows(db, "SELECT hashes FROM image_hashes WHERE image_id = ? AND method = ?", (int(image_id), method))
    return bytes(rows[0][0]) if rows and rows[0][0] is not None else None
