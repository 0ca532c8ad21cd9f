"""Queries over the store. Functions take a Session; callers own the transaction."""

from __future__ import annotations

import hashlib
import re
from typing import Iterator

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from simsearch import limits
from simsearch.errors import InvalidInput, NotFound
from simsearch.store import upsert
from simsearch.store.models import Collection, Embedding, Image, IndexState, IngestRun

COLLECTION_NAME = re.compile(limits.COLLECTION_NAME_PATTERN)
# Databases cap the size of an IN list (SQLite's host parameters, PostgreSQL's protocol): ids
# are queried this many at a time.
IN_CHUNK = 5000


def in_chunks(ids, size: int = IN_CHUNK) -> Iterator[list[int]]:
    """``ids`` (any iterable of ints) as lists of at most ``size``, in the order given."""
    id_list = [int(i) for i in ids]
    for start in range(0, len(id_list), size):
        yield id_list[start : start + size]


def validate_collection_name(name: str) -> str:
    if not isinstance(name, str) or not COLLECTION_NAME.match(name):
        raise InvalidInput(
            f"collection name {name!r} is not valid: {limits.COLLECTION_NAME_RULE}",
            field="collection",
        )
    return name


def get_collection(session: Session, name: str) -> Collection:
    coll = session.scalar(select(Collection).where(Collection.name == name))
    if coll is None:
        known = session.scalars(select(Collection.name).order_by(Collection.name)).all()
        hint = f" (known: {', '.join(known)})" if known else " (there are no collections yet: run `simsearch ingest`)"
        raise NotFound(f"no collection named {name!r}{hint}", field="collection")
    return coll


def get_or_create_collection(session: Session, name: str, description: str | None = None) -> Collection:
    """The collection ``name``, created when missing; safe when another process creates it at the
    same moment (both get the one row, see :mod:`simsearch.store.upsert`)."""
    validate_collection_name(name)
    return upsert.ensure_collection(session, name, description)


def get_image(session: Session, image_id: int, collection_id: int | None = None) -> Image:
    img = session.get(Image, image_id)
    if img is None or (collection_id is not None and img.collection_id != collection_id):
        raise NotFound(f"no image with id {image_id}" + (" in this collection" if collection_id else ""), field="image_id")
    return img


def known_hashes(session: Session, collection_id: int) -> dict[str, tuple[int, str]]:
    """content hash -> (image id, status) for every image of the collection."""
    rows = session.execute(
        select(Image.content_hash, Image.id, Image.status).where(Image.collection_id == collection_id)
    ).all()
    return {h: (i, s) for h, i, s in rows}


def embedded_ids(session: Session, collection_id: int, space: str) -> set[int]:
    rows = session.scalars(
        select(Embedding.image_id).join(Image).where(Image.collection_id == collection_id, Embedding.space == space)
    )
    return set(rows)


def vector_to_bytes(vec: np.ndarray) -> bytes:
    return np.ascontiguousarray(vec, dtype="<f4").tobytes()


# Rows a page of :func:`load_vectors` reads (~51 MB of 1280-d vectors): one short statement each.
PAGE = 10_000


def bytes_to_vector(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def load_vectors(session: Session, collection_id: int, space: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64 (N,), vectors float32 (N, D)) of the collection's ok images in ``space``, by id.

    Read in pages of :data:`PAGE` rows by id (each a short statement: one statement streaming a
    million rows outlives the database's statement time limit on a busy machine) into one
    preallocated array (a million 1280-d vectors are 5.1 GB: holding their rows' bytes and a joined
    copy besides would triple that)."""
    where = (Image.collection_id == collection_id, Image.status == "ok", Embedding.space == space)
    count = session.scalar(select(func.count()).select_from(Embedding).join(Image).where(*where)) or 0
    ids = np.zeros(count, np.int64)
    vectors = None
    n, last = 0, None
    while True:
        page = select(Embedding.image_id, Embedding.vector).join(Image).where(*where)
        if last is not None:
            page = page.where(Embedding.image_id > last)
        part = session.execute(page.order_by(Embedding.image_id).limit(PAGE)).all()
        if not part:
            break
        if vectors is None:
            vectors = np.zeros((count, len(part[0][1]) // 4), np.float32)
        if n + len(part) > len(ids):  # rows added since the count
            ids = np.resize(ids, n + len(part))
            vectors = np.resize(vectors, (n + len(part), vectors.shape[1]))
        ids[n:n + len(part)] = [r[0] for r in part]
        vectors[n:n + len(part)] = np.frombuffer(b"".join(r[1] for r in part), dtype="<f4").reshape(len(part), -1)
        n += len(part)
        last = int(part[-1][0])
        if len(part) < PAGE:
            break
    if vectors is None:
        return np.zeros(0, np.int64), np.zeros((0, 0), dtype=np.float32)
    return ids[:n], vectors[:n]


def load_vectors_for_ids(session: Session, space: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of the given image ids in ``space`` (ordered by id)."""
    out_ids: list[int] = []
    chunks: list[bytes] = []
    for part in in_chunks(sorted(int(i) for i in ids)):
        rows = session.execute(
            select(Embedding.image_id, Embedding.vector)
            .where(Embedding.space == space, Embedding.image_id.in_(part))
            .order_by(Embedding.image_id)
        ).all()
        out_ids.extend(r[0] for r in rows)
        chunks.extend(r[1] for r in rows)
    if not out_ids:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    vectors = np.frombuffer(b"".join(chunks), dtype="<f4").astype(np.float32).reshape(len(out_ids), -1)
    return np.asarray(out_ids, dtype=np.int64), vectors


def vector_ids(session: Session, collection_id: int, space: str) -> np.ndarray:
    rows = session.scalars(
        select(Embedding.image_id)
        .join(Image)
        .where(Image.collection_id == collection_id, Image.status == "ok", Embedding.space == space)
        .order_by(Embedding.image_id)
    ).all()
    return np.asarray(rows, dtype=np.int64)


def fingerprint(ids: np.ndarray) -> str:
    """Identifies a set of vector ids: sha256 of the sorted ids."""
    ids = np.sort(np.asarray(ids, dtype="<i8"))
    return hashlib.sha256(ids.tobytes()).hexdigest()


def spaces_of(session: Session, collection_id: int) -> list[str]:
    return list(
        session.scalars(
            select(Embedding.space).join(Image).where(Image.collection_id == collection_id).distinct().order_by(Embedding.space)
        )
    )


def image_counts(session: Session, collection_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Image.status, func.count()).where(Image.collection_id == collection_id).group_by(Image.status)
    ).all()
    counts = {"ok": 0, "failed": 0}
    counts.update({s: n for s, n in rows})
    return counts


def vector_counts(session: Session, collection_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Embedding.space, func.count())
        .join(Image)
        .where(Image.collection_id == collection_id, Image.status == "ok")
        .group_by(Embedding.space)
    ).all()
    return dict(rows)


def labels_for(session: Session, ids: np.ndarray) -> list[str | None]:
    """Labels in the order of ``ids``."""
    if len(ids) == 0:
        return []
    mapping: dict[int, str | None] = {}
    id_list = [int(i) for i in ids]
    for chunk in in_chunks(id_list):
        mapping.update(session.execute(select(Image.id, Image.label).where(Image.id.in_(chunk))).all())
    return [mapping.get(i) for i in id_list]


def index_state(session: Session, collection_id: int, space: str) -> IndexState | None:
    return session.get(IndexState, (collection_id, space))


def record_index_state(session: Session, collection_id: int, space: str, count: int, fp: str,
                       info: dict | None = None) -> IndexState:
    """A new generation of the (collection, space) index state with its vector count and
    fingerprint (race-safe: two processes may record one at once); ``info``: columns of the
    policy's record to set too (kind, params, recall, memory_bytes, build_seconds, checked_count,
    masked)."""
    state = upsert.bump_index_state(session, collection_id, space, count, fp)
    for key, value in (info or {}).items():
        if key not in INDEX_INFO:
            raise ValueError(f"index_states has no column {key!r}")
        setattr(state, key, value)
    session.flush()
    return state


INDEX_INFO = ("kind", "params", "recall", "memory_bytes", "build_seconds", "checked_count", "masked")


def masked_ids(state: IndexState | None) -> np.ndarray:
    """The ids of deleted vectors that the index of ``state`` still holds (masked in searches)."""
    if state is None or not state.masked:
        return np.zeros(0, np.int64)
    return np.frombuffer(state.masked, dtype="<i8").astype(np.int64)


def delete_collection(session: Session, coll: Collection) -> None:
    session.execute(delete(Collection).where(Collection.id == coll.id))


def latest_runs(session: Session, collection_id: int, limit: int = 10, kind: str = "ingest") -> list[IngestRun]:
    """The newest jobs of one ``kind`` (ingest by default; analyses are the other kinds)."""
    return list(
        session.scalars(
            select(IngestRun).where(IngestRun.collection_id == collection_id, IngestRun.kind == kind)
            .order_by(IngestRun.id.desc()).limit(limit)
        )
    )
