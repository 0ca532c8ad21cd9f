"""Bulk writes of images and vectors inside the caller's transaction (``simsearch import-vectors``).

PostgreSQL: binary ``COPY``; the vectors' COPY rows have a fixed size, so a block of them is built
by numpy in one go (no Python loop per row), and each block is its own statement, well inside the
statement timeout. SQLite: ``executemany``. New image ids are taken beforehand (PostgreSQL: from
the sequence; SQLite: after the largest id, under the write lock :func:`lock_collection` takes),
so no statement has to read ids back.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from simsearch.store.models import Collection, Embedding, Image

ROWS_PER_STATEMENT = 20_000
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def lock_collection(session: Session, collection_id: int) -> None:
    """Serialise bulk writers of one collection: a row lock on PostgreSQL; on SQLite this first
    write takes the database's write lock for the rest of the transaction."""
    session.execute(update(Collection).where(Collection.id == collection_id).values(name=Collection.name))


def new_image_ids(session: Session, n: int) -> np.ndarray:
    """``n`` unused image ids (call after :func:`lock_collection`)."""
    if n == 0:
        return np.zeros(0, np.int64)
    if _dialect(session) == "postgresql":
        rows = session.execute(text("SELECT nextval(pg_get_serial_sequence('images', 'id')) FROM generate_series(1, :n)"),
                               {"n": n}).scalars().all()
        return np.asarray(rows, dtype=np.int64)
    top = session.scalar(select(Image.id).order_by(Image.id.desc()).limit(1)) or 0
    return np.arange(top + 1, top + 1 + n, dtype=np.int64)


def insert_images(session: Session, collection_id: int, ids, content_hashes, paths, labels, metas) -> None:
    """New ``ok`` image rows without thumbnails (all lists in the order of ``ids``), each with its
    path as its one file (``file_count`` 1, the column's default)."""
    now = datetime.now(timezone.utc)
    if _dialect(session) == "postgresql":
        raw = session.connection().connection.driver_connection
        with raw.cursor() as cur:
            for start in range(0, len(ids), ROWS_PER_STATEMENT):
                stop = start + ROWS_PER_STATEMENT
                with cur.copy("COPY images (id, collection_id, content_hash, source_path, label, meta, status, created_at) "
                              "FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int4", "int4", "text", "text", "text", "text", "text", "timestamptz"])
                    for row in zip(ids[start:stop], content_hashes[start:stop], paths[start:stop], labels[start:stop],
                                   metas[start:stop]):
                        copy.write_row((int(row[0]), collection_id, row[1], row[2], row[3], _json(row[4]), "ok", now))
                with cur.copy("COPY image_files (image_id, path, created_at) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int4", "text", "timestamptz"])
                    for image_id, path in zip(ids[start:stop], paths[start:stop]):
                        copy.write_row((int(image_id), path, now))
        return
    at = _sqlite_datetime(session, now)
    conn = session.connection()
    for start in range(0, len(ids), ROWS_PER_STATEMENT):
        stop = start + ROWS_PER_STATEMENT
        conn.exec_driver_sql(
            "INSERT INTO images (id, collection_id, content_hash, source_path, label, meta, status, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'ok', ?)",
            [(int(i), collection_id, h, p, lab, _json(m), at)
             for i, h, p, lab, m in zip(ids[start:stop], content_hashes[start:stop], paths[start:stop],
                                        labels[start:stop], metas[start:stop])])
        conn.exec_driver_sql("INSERT INTO image_files (image_id, path, created_at) VALUES (?, ?, ?)",
                             [(int(i), p, at) for i, p in zip(ids[start:stop], paths[start:stop])])


def _json(meta: dict) -> str:
    """A meta column's JSON text (binary COPY hands a json column the text's bytes as they are)."""
    return json.dumps(meta, ensure_ascii=False) if meta else "{}"


def set_labels(session: Session, pairs: list[tuple[int, str]]) -> None:
    """``(image id, label)`` pairs: new labels of existing images."""
    if pairs:
        session.execute(update(Image), [{"id": i, "label": lab} for i, lab in pairs])


def prepare_vectors(dialect: str, ids: np.ndarray, space: str, vectors: np.ndarray, now: datetime):
    """What :func:`write_vectors` sends for one block of vectors (no database access: a reading
    thread can prepare the next block while the last one is written)."""
    ids = np.asarray(ids, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype="<f4")
    if dialect == "postgresql":
        return [_copy_rows(ids[i:i + ROWS_PER_STATEMENT], space, vectors[i:i + ROWS_PER_STATEMENT], now)
                for i in range(0, len(ids), ROWS_PER_STATEMENT)]
    dim = int(vectors.shape[1])
    return [(int(i), space, dim, v.tobytes()) for i, v in zip(ids, vectors)]


def write_vectors(session: Session, prepared, now: datetime) -> None:
    """Store a block from :func:`prepare_vectors`: PostgreSQL binary COPY (one statement per
    ROWS_PER_STATEMENT rows, TOAST-compressed with LZ4 where available), SQLite executemany."""
    if _dialect(session) == "postgresql":
        _lz4(session)
        raw = session.connection().connection.driver_connection
        with raw.cursor() as cur:
            for rows in prepared:
                with cur.copy("COPY embeddings (image_id, space, dim, vector, created_at) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(_COPY_HEADER)
                    copy.write(rows)
                    copy.write(_COPY_TRAILER)
        return
    at = _sqlite_datetime(session, now)
    conn = session.connection()
    for start in range(0, len(prepared), ROWS_PER_STATEMENT):
        conn.exec_driver_sql("INSERT INTO embeddings (image_id, space, dim, vector, created_at) VALUES (?, ?, ?, ?, ?)",
                             [(*row, at) for row in prepared[start:start + ROWS_PER_STATEMENT]])


def _lz4(session: Session) -> None:
    """TOAST-compress this transaction's vectors with LZ4 where the server has it (PostgreSQL 14+
    built with lz4). Vectors are 5 KB, so PostgreSQL compresses them; real pooled features are ~40%
    exact zeros, so its default pglz does compress them (by ~5%), at ~20 MB/s, a quarter of the
    rate of the COPY itself; LZ4 stores them as small at ~100 MB/s. Reading needs no setting: each
    value records its method."""
    if session.scalar(text("SELECT count(*) FROM pg_settings WHERE name = 'default_toast_compression' "
                           "AND 'lz4' = ANY(enumvals)")):
        session.execute(text("SET LOCAL default_toast_compression = 'lz4'"))


def _sqlite_datetime(session: Session, value: datetime):
    """``value`` as SQLAlchemy stores a DateTime column on this database (raw statements skip its types)."""
    dialect = session.get_bind().dialect
    process = Embedding.__table__.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    return process(value) if process else value


def _copy_rows(ids: np.ndarray, space: str, vectors: np.ndarray, now: datetime) -> memoryview:
    """PostgreSQL binary COPY rows of embeddings (without the stream's header and trailer). Every
    row has the same size, so the block is one uint8 array filled column-wise by numpy."""
    name = space.encode("utf-8")
    n, dim = vectors.shape
    head = np.dtype([("fields", ">i2"), ("id_len", ">i4"), ("id", ">i4"), ("space_len", ">i4"), ("space", f"S{len(name)}"),
                     ("dim_len", ">i4"), ("dim", ">i4"), ("vec_len", ">i4")])
    tail = np.dtype([("at_len", ">i4"), ("at", ">i8")])
    first = np.empty(n, dtype=head)
    first["fields"], first["id_len"], first["id"] = 5, 4, ids
    first["space_len"], first["space"] = len(name), name
    first["dim_len"], first["dim"], first["vec_len"] = 4, dim, dim * 4
    last = np.array([(8, (now - _PG_EPOCH) // timedelta(microseconds=1))], dtype=tail)
    a, b = head.itemsize, head.itemsize + dim * 4
    rows = np.empty((n, b + tail.itemsize), dtype=np.uint8)
    rows[:, :a] = first.view(np.uint8).reshape(n, a)
    rows[:, a:b] = vectors.view(np.uint8).reshape(n, dim * 4)
    rows[:, b:] = last.view(np.uint8)
    return memoryview(rows).cast("B")


def analyze(db) -> None:
    """Refresh the planner's statistics of the tables a bulk write filled (PostgreSQL: until
    autovacuum gets to them, a table it believes empty gets nested-loop plans that read it once per
    row; 26 s instead of 15 ms for one block of an export at 20,000 rows). SQLite: nothing."""
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(text("ANALYZE images"))
            conn.execute(text("ANALYZE embeddings"))
            conn.execute(text("ANALYZE image_files"))
            conn.commit()
