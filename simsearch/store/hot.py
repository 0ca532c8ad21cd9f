"""The reads on every search request, as plain SQL on a pooled DBAPI connection.

Search by upload has a budget of 30% of one forward pass for everything that is not the model.
The forward pass evicts the CPU caches, and measured right after it a ten-row read through an ORM
session costs about 1.3 ms, the same read on a pooled DBAPI connection about 0.3 ms. So these two
reads skip the ORM; everything else uses it. The SQL is plain enough for SQLite and PostgreSQL
(tests run it on both).
"""

from __future__ import annotations

from dataclasses import dataclass


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
            cur.close()
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


def hit_rows(db, ids: list[int]) -> dict[int, tuple[str, str | None, int | None, int | None]]:
    """``{image id: (source path, label, width, height)}`` for the ids that exist."""
    if not ids:
        return {}
    sql = f"SELECT id, source_path, label, width, height FROM images WHERE id IN ({', '.join('?' * len(ids))})"
    return {int(r[0]): (r[1], r[2], r[3], r[4]) for r in _rows(db, sql, tuple(int(i) for i in ids))}
