"""Writes that any number of processes may run at once: rows keyed by content are inserted with
``INSERT ... ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite) and their ids read back, so a row
another transaction stored first is found, never stored twice and never an error.

- a collection by its name; an image by (collection, content hash); a file of an image by (image,
  path); a thumbnail by content hash (shared by every collection); a vector by (image, space); an
  index state by (collection, space).
- an image's ``file_count`` grows by the file rows a transaction inserted (``file_count + n``: a
  concurrent increment waits for the row and adds to the committed value, never overwrites it).
- PostgreSQL: an insert that meets a row another transaction inserted and has not committed waits
  for that transaction; on commit it does nothing, on rollback it inserts. Each statement then
  sees what was committed before it (READ COMMITTED), so the ids read back are the stored ones.
  Rows are inserted in key order and tables in one order (thumbnails, images, files, then
  promotions and file counts in one pass in image id order, vectors), so two transactions never
  wait for each other in a cycle (no deadlocks).
- SQLite: one writer at a time (the others wait ``busy_timeout``); the same statements.

Functions take a Session; callers own the transaction.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from simsearch.store.models import Collection, Embedding, Image, ImageFile, IndexState, Thumbnail, utcnow

# Rows per INSERT statement (SQLite allows 32,766 parameters; an image row has 13).
ROWS_PER_STATEMENT = 500
# Hashes per SELECT when reading ids back.
KEYS_PER_SELECT = 5000


def _insert(session: Session, table: Table):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the engine accepts only these two (store.db)
        raise NotImplementedError(f"simsearch stores its data in SQLite or PostgreSQL, not {dialect}")
    return insert(table)


def insert_missing(session: Session, table: Table, rows: Sequence[dict], *, keys: Sequence[str],
                   returning: Sequence = ()) -> list:
    """Insert the ``rows`` whose ``keys`` no stored row has (committed, or inserted by a
    transaction that then commits), in the order given; the others are left as they are.
    Returns the ``returning`` columns of the rows this call inserted (``[]`` without them).

    One statement for all the rows (``executemany``): SQLAlchemy compiles it once and caches it,
    and sends the rows as multi-row INSERTs ("insertmanyvalues", up to :data:`ROWS_PER_STATEMENT`
    a statement, in the order given). A statement with the rows written into it was compiled
    afresh for every batch: most of an ingest's store time."""
    if not rows:
        return []
    stmt = _insert(session, table).on_conflict_do_nothing(index_elements=list(keys))
    stmt = stmt.execution_options(insertmanyvalues_page_size=ROWS_PER_STATEMENT)
    if returning:
        return list(session.execute(stmt.returning(*returning), list(rows)).all())
    session.execute(stmt, list(rows))
    return []


def ensure_collection(session: Session, name: str, description: str | None = None) -> Collection:
    """The collection ``name``, created when missing (also when another process creates it at
    the same moment: both get the one row)."""
    coll = session.scalar(select(Collection).where(Collection.name == name))
    if coll is None:
        insert_missing(session, Collection.__table__, [{"name": name, "description": description,
                                                         "created_at": utcnow()}], keys=["name"])
        coll = session.scalar(select(Collection).where(Collection.name == name))
    return coll


def store_thumbnails(session: Session, thumbnails: dict[str, bytes]) -> None:
    """Thumbnails by content hash; a hash already stored keeps its thumbnail."""
    rows = [{"content_hash": h, "mime_type": "image/jpeg", "data": thumbnails[h]} for h in sorted(thumbnails)]
    insert_missing(session, Thumbnail.__table__, rows, keys=["content_hash"])


def store_images(session: Session, collection_id: int, rows: Iterable[dict]) -> dict[str, tuple[int, str, bool]]:
    """Image rows (dicts of :class:`Image` columns, one per content hash) for one collection.
    Returns content hash -> (image id, status, inserted by this call) for every row given: a hash
    the collection already has keeps its row (and counts as not inserted)."""
    now = utcnow()
    table = Image.__table__
    full = [{"collection_id": collection_id, "width": None, "height": None, "label": None, "meta": {},
             "error": None, "thumbnail_hash": None, "ingest_run_id": None, "created_at": now, **r}
            for r in sorted(rows, key=lambda r: r["content_hash"])]
    inserted = {h for (h,) in insert_missing(session, table, full, keys=["collection_id", "content_hash"],
                                             returning=(table.c.content_hash,))}
    out: dict[str, tuple[int, str, bool]] = {}
    wanted = [r["content_hash"] for r in full]
    for start in range(0, len(wanted), KEYS_PER_SELECT):
        found = session.execute(select(Image.content_hash, Image.id, Image.status).where(
            Image.collection_id == collection_id, Image.content_hash.in_(wanted[start:start + KEYS_PER_SELECT])))
        out.update({h: (i, status, h in inserted) for h, i, status in found})
    return out


def image_ids(session: Session, collection_id: int, hashes: Iterable[str]) -> dict[str, tuple[int, str]]:
    """content hash -> (image id, status) of the collection's images among ``hashes``."""
    wanted = sorted(set(hashes))
    out: dict[str, tuple[int, str]] = {}
    for start in range(0, len(wanted), KEYS_PER_SELECT):
        found = session.execute(select(Image.content_hash, Image.id, Image.status).where(
            Image.collection_id == collection_id, Image.content_hash.in_(wanted[start:start + KEYS_PER_SELECT])))
        out.update({h: (i, status) for h, i, status in found})
    return out


def store_files(session: Session, rows: Iterable[dict]) -> set[tuple[int, str]]:
    """File rows (``image_id``, ``path``, ``size``, ``mtime``, ``ingest_run_id``); an (image, path)
    already stored keeps its row. Returns the (image id, path) pairs this call inserted. The
    caller adds them to the images' ``file_count`` (:func:`add_file_counts`)."""
    table = ImageFile.__table__
    now = utcnow()
    unique = {(r["image_id"], r["path"]): r for r in rows}
    full = [{"size": None, "mtime": None, "ingest_run_id": None, "created_at": now, **unique[k]} for k in sorted(unique)]
    got = insert_missing(session, table, full, keys=["image_id", "path"], returning=(table.c.image_id, table.c.path))
    return {(i, p) for i, p in got}


def add_file_count(session: Session, image_id: int, n: int) -> None:
    """``file_count += n`` (negative: files dropped); call in image id order with the other
    updates of images in the transaction (see the module's note on deadlocks)."""
    if n:
        session.execute(update(Image.__table__).where(Image.id == image_id)
                        .values(file_count=Image.__table__.c.file_count + n))


def promote_failed(session: Session, image_id: int, *, width: int, height: int, thumbnail_hash: str) -> bool:
    """Mark an image that failed before as ok (it decodes now); False when it is no longer failed
    (another run promoted it first)."""
    result = session.execute(
        update(Image.__table__).where(Image.id == image_id, Image.status == "failed")
        .values(status="ok", error=None, width=width, height=height, thumbnail_hash=thumbnail_hash))
    return result.rowcount == 1


def store_embeddings(session: Session, rows: Iterable[dict]) -> set[tuple[int, str]]:
    """Vector rows (``image_id``, ``space``, ``dim``, ``vector``, ``seconds``); an (image, space)
    that has a vector keeps it. Returns the (image id, space) pairs this call inserted."""
    table = Embedding.__table__
    now = utcnow()
    full = [{"created_at": now, **r} for r in sorted(rows, key=lambda r: (r["image_id"], r["space"]))]
    got = insert_missing(session, table, full, keys=["image_id", "space"], returning=(table.c.image_id, table.c.space))
    return {(i, sp) for i, sp in got}


def bump_index_state(session: Session, collection_id: int, space: str, count: int, fingerprint: str) -> IndexState:
    """Record a new generation of the (collection, space) index: one more than the last, also
    when two processes record one at the same moment (each gets its own generation)."""
    insert_missing(session, IndexState.__table__, [{"collection_id": collection_id, "space": space, "generation": 0,
                                                    "vector_count": 0, "fingerprint": ""}],
                   keys=["collection_id", "space"])
    session.execute(update(IndexState.__table__)
                    .where(IndexState.collection_id == collection_id, IndexState.space == space)
                    .values(generation=IndexState.generation + 1, vector_count=count, fingerprint=fingerprint,
                            built_at=utcnow()))
    return session.get(IndexState, (collection_id, space), populate_existing=True)
