"""Vectors in and out: import an ``.npz`` of vectors computed elsewhere, export a collection's vectors.

The CLI (``simsearch import-vectors``, ``simsearch export``) and the API (``POST`` / ``GET
/api/collections/<name>/vectors``) both call these two operations.

**Import** (:func:`import_vectors`). The file (:mod:`.vectors_file`) is checked first: shapes and
types, keys (unique, non-empty), labels, metadata, and every vector (no NaN, no infinity, no zero
vector; the row and its key are named), its dimension against the space's (a backbone's output
size, or that of vectors already imported into that name). Each key then names an image of the
collection: the ``ok`` image whose ``source_path`` equals the key (the newest, if several), else a
new image row with no file behind it: ``source_path`` = the key, no thumbnail, ``content_hash`` =
SHA-256 of ``simsearch-import\\0`` + key, so a key is one image per collection and never collides
with a file's content hash. An image that already has a vector in the space keeps it when the
imported one is identical (a re-import is a no-op) and is refused otherwise (409: replacing vectors
under unchanged ids would leave indexes and cached analyses stale). Vectors are L2-normalised as
they are stored (similarity is their inner product); unit-length rows are kept bit for bit.
Everything is written in one transaction, after the checks (bulk COPY / executemany,
:mod:`simsearch.store.bulk`): on any error nothing is stored. The index is then brought up to date.

**Export** (:func:`export_stream`): ``ids`` (int64), ``keys`` (first paths: the import keys for
imported images), ``paths`` (every file of the image, its byte-identical copies too, as a JSON
array of strings, the first first), ``labels`` (``""`` for none), ``metadata`` (JSON objects as
strings) and ``vectors`` (float32, N x D), streamed: the vectors are read a block at a time.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import func, select

from simsearch.digest import import_hash  # noqa: F401  (also imported from here by tests)
from simsearch.errors import Conflict, InvalidInput
from simsearch.ops import vectors_origin
from simsearch.ops.vectors_file import (CHUNK_ROWS, Array, VectorsFile, check_keys, check_labels, check_metadata,
                                        npz_stream, string_chunks, unit_rows)
from simsearch.spaces import check_space_name, parse
from simsearch.store import bulk, repo
from simsearch.store.models import Embedding, Image, ImageFile, IngestRun
from simsearch import provenance
from simsearch.embedding.backbones import get_backbone
from simsearch.ops.search import collection_space


def _space_dim(session, space: str, is_backbone: bool) -> int | None:
    if is_backbone:
        return get_backbone(parse(space).backbone).dim
    return session.scalar(select(Embedding.dim).where(Embedding.space == space).limit(1))


def _stored(session, space: str, ids: np.ndarray) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for part in repo.in_chunks(ids):
        out.update(session.execute(select(Embedding.image_id, Embedding.vector)
                                   .where(Embedding.space == space, Embedding.image_id.in_(part))).all())
    return out


def import_vectors(ctx, source, collection: str, space: str | None, *, name: str = "the file", update_index: bool = True,
                   progress=None, same_model: bool = False) -> dict:
    """Import a vectors file (a path or a seekable binary file) into ``collection`` (created if
    new) under ``space`` (a backbone's space, or any valid name for vectors made elsewhere; None:
    the one the file's fingerprint names). :mod:`.vectors_origin` refuses a model mix-up
    (``same_model``: the caller vouches that a file without a fingerprint is the backbone's).
    ``progress(message, done, total)``: called as each step starts, and at the end."""
    steps = 3 if update_index else 2

    def step(message: str, done: int) -> None:
        if progress is not None:
            progress(message, done, steps)

    t0 = time.perf_counter()
    repo.validate_collection_name(collection)
    if space is not None:
        check_space_name(space)
    vf = VectorsFile.open(source, name)
    try:
        n, dim = vf.shape
        space, made_by = vectors_origin.target(ctx, collection, space, vf.fingerprint(), name, dim,
                                                   same_model=same_model)
        is_backbone = check_space_name(space)
        step(f"checking {n:,} keys, labels and metadata", 0)
        keys = vf.strings("keys", n)
        check_keys(keys)
        labels = vf.strings("labels", n)
        labels = check_labels(labels, keys) if labels is not None else None
        metas = vf.strings("metadata", n)
        metas = check_metadata(metas, keys) if metas is not None else None
        with ctx.db.session() as s:
            coll = repo.get_or_create_collection(s, collection)
            coll_id = coll.id
            bulk.lock_collection(s, coll_id)
            expected = _space_dim(s, space, is_backbone)
            if expected is not None and expected != dim:
                whose = "the backbone's output" if is_backbone else "the vectors already imported there"
                raise InvalidInput(f"vectors have {dim} dimensions, but {space} vectors have {expected} ({whose})",
                                   field="vectors")
            by_path = dict(s.execute(select(Image.source_path, Image.id).where(
                Image.collection_id == coll_id, Image.status == "ok").order_by(Image.id)).all())  # newest wins
            image_of = np.fromiter((by_path.get(k, 0) for k in keys), dtype=np.int64, count=n)
            matched = image_of > 0
            stored = _stored(s, space, image_of[matched])
            same = _check_vectors(vf, keys, image_of, stored, space)
            new_rows = np.flatnonzero(~matched)
            image_of[new_rows] = bulk.new_image_ids(s, len(new_rows))
            bulk.insert_images(s, coll_id, image_of[new_rows], [import_hash(keys[r]) for r in new_rows],
                               [keys[r] for r in new_rows], [labels[r] if labels else None for r in new_rows],
                               [metas[r] if metas else {} for r in new_rows])
            relabel = [(int(image_of[r]), labels[r]) for r in np.flatnonzero(matched) if labels and labels[r] is not None]
            bulk.set_labels(s, relabel)
            now, dialect = datetime.now(timezone.utc), ctx.db.dialect

            def blocks():  # read, normalise and encode the next block while the last one is written
                for start, block in vf.chunks():
                    x, r = unit_rows(block, start, keys)
                    keep = ~same[start:start + len(x)]
                    yield r, bulk.prepare_vectors(dialect, image_of[start:start + len(x)][keep], space, x[keep], now)

            rescaled = 0
            step(f"writing {n:,} vectors ({dim}-d)", 1)
            for r, prepared in prefetched(blocks()):
                rescaled += r
                bulk.write_vectors(s, prepared, now)
    finally:
        vf.close()
    vectors_origin.record(ctx, coll_id, space, made_by)
    bulk.analyze(ctx.db)  # fresh statistics: the planner must not take a million new rows for none
    stored_seconds = time.perf_counter() - t0
    out = {"collection": collection, "backbone": space, "imported_space": not is_backbone, "dim": dim, "rows": n,
           "vectors_added": int(n - same.sum()), "already_present": int(same.sum()), "images_created": len(new_rows),
           "images_matched": int(matched.sum()), "labels_set": sum(1 for lab in labels if lab) if labels else 0,
           "normalised": rescaled,
           "ignored_arrays": sorted(vf.ignored + [m for m in ("ids", "paths") if m in vf.members]),
           "seconds": round(stored_seconds, 3), "rate": round(n / stored_seconds, 1) if stored_seconds else None, "index": None}
    if update_index:
        step("bringing the index up to date", 2)
        t1 = time.perf_counter()
        loaded = ctx.sync_index(coll_id, space)
        out["index"] = {"vectors": loaded.ntotal, "seconds": round(time.perf_counter() - t1, 3)}
    step("done", steps)
    return out


def prefetched(items: Iterator, depth: int = 2) -> Iterator:
    """``items`` produced on a thread of their own, ``depth`` ahead of the consumer (numpy and
    reading release the GIL: the next block is prepared while the database takes the last).
    The producer's exception is raised here; leaving early stops it."""
    done, box = object(), queue.Queue(depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, done))
        except BaseException as exc:  # noqa: BLE001 (handed to the consumer)
            put((False, exc))

    thread = threading.Thread(target=run, name="simsearch-vectors-read", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = box.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _check_vectors(vf: VectorsFile, keys: list[str], image_of: np.ndarray, stored: dict[int, bytes], space: str) -> np.ndarray:
    """Check every vector (pass 1, before anything is written); returns the rows whose image
    already holds exactly this vector. A different stored vector is a Conflict naming the row."""
    same = np.zeros(len(keys), dtype=bool)
    for start, block in vf.chunks(check_crc=True):
        x, _ = unit_rows(block, start, keys)
        if not stored:
            continue
        for j in range(len(x)):
            have = stored.get(int(image_of[start + j]))
            if have is None:
                continue
            if have != x[j].tobytes():
                raise Conflict(f"row {start + j} (key {keys[start + j][:200]!r}): image {int(image_of[start + j])} already "
                               f"has a different {space} vector; import into another space name, or delete the image "
                               "first", field="vectors")
            same[start + j] = True
    return same


# ---- export -----------------------------------------------------------------------------------

def export_stream(ctx, collection: str, space: str | None = None, *,
                  key_view: Callable[[str, str | None], str] | None = None) -> tuple[dict, Iterator[bytes]]:
    """``(info, bytes of the .npz)``: the collection and space are checked now (404 / 400), the
    file is produced as the iterator is consumed. ``key_view(path, ingest source)``: how keys are
    shown (the API hides server paths); default: as stored."""
    coll_id, space = collection_space(ctx, collection, space)
    with ctx.db.session() as s:
        n, dim = s.execute(select(func.count(), func.max(Embedding.dim)).join(Image).where(
            Image.collection_id == coll_id, Image.status == "ok", Embedding.space == space)).one()
    info = {"collection": collection, "backbone": space, "vectors": int(n), "dim": int(dim or 0),
            "filename": f"{collection}-{space}.npz", "fingerprint": provenance.ensure(ctx, coll_id, space)}
    return info, _npz(ctx, coll_id, space, key_view, info["fingerprint"])


def _npz(ctx, coll_id: int, space: str, key_view, made_by: dict | None = None) -> Iterator[bytes]:
    with ctx.db.session() as s:
        if ctx.db.dialect == "postgresql":  # one snapshot for the rows and their vectors
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        rows = s.execute(select(Image.id, Image.source_path, Image.label, Image.meta, IngestRun.source)
                         .join(Embedding, Embedding.image_id == Image.id)
                         .outerjoin(IngestRun, IngestRun.id == Image.ingest_run_id)
                         .where(Image.collection_id == coll_id, Image.status == "ok", Embedding.space == space)
                         .order_by(Image.id)).all()
        dim = s.scalar(select(Embedding.dim).join(Image).where(Image.collection_id == coll_id, Embedding.space == space).limit(1))
        ids = np.fromiter((r[0] for r in rows), dtype="<i8", count=len(rows))
        keys = [key_view(r[1], r[4]) if key_view else r[1] for r in rows]
        more = _copies(s, coll_id, key_view)  # images with several files (few: a partial index finds them)
        paths = [json.dumps(more.get(r[0]) or [key], ensure_ascii=False) for r, key in zip(rows, keys)]
        labels = [r[2] or "" for r in rows]
        metas = [json.dumps(r[3] or {}, ensure_ascii=False, sort_keys=True) for r in rows]
        del rows
        arrays = [Array("ids", "<i8", (len(ids),), [ids.tobytes()])]
        for name, values in (("keys", keys), ("paths", paths), ("labels", labels), ("metadata", metas)):
            dtype, chunks = string_chunks(values)
            arrays.append(Array(name, dtype, (len(values),), chunks))
        arrays.append(Array("vectors", "<f4", (len(ids), int(dim or 0)), _vector_blocks(s, space, ids, int(dim or 0))))
        if made_by is not None:  # what made the vectors (simsearch.provenance): an import checks it
            dtype, chunks = string_chunks([json.dumps(made_by, sort_keys=True)])
            arrays.append(Array("fingerprint", dtype, (1,), chunks))
        yield from npz_stream(arrays)


def _copies(s, coll_id: int, key_view) -> dict[int, list[str]]:
    """image id -> every path of it (the first first), for the collection's images with several files."""
    out: dict[int, list[tuple[bool, str]]] = {}
    rows = s.execute(select(ImageFile.image_id, ImageFile.path, Image.source_path, IngestRun.source)
                     .join(Image, Image.id == ImageFile.image_id)
                     .outerjoin(IngestRun, IngestRun.id == ImageFile.ingest_run_id)
                     .where(Image.collection_id == coll_id, Image.file_count > 1).order_by(ImageFile.id))
    for image_id, path, first, source in rows:
        out.setdefault(image_id, []).append((path != first, key_view(path, source) if key_view else path))
    return {i: [p for _, p in sorted(v, key=lambda t: t[0])] for i, v in out.items()}


def _vector_blocks(s, space: str, ids: np.ndarray, dim: int) -> Iterator[bytes]:
    """The vectors of ``ids`` (ascending) a block at a time: a range scan of the embeddings' primary
    key (no join: the ids were chosen by the first query), other collections' ids in the range dropped."""
    for start in range(0, len(ids), CHUNK_ROWS):
        want = ids[start:start + CHUNK_ROWS]
        rows = s.execute(select(Embedding.image_id, Embedding.vector).where(
            Embedding.space == space, Embedding.image_id.between(int(want[0]), int(want[-1])))
            .order_by(Embedding.image_id)).all()
        wanted = set(want.tolist())
        got = [r for r in rows if r[0] in wanted]
        data = b"".join(r[1] for r in got)
        if len(got) != len(want) or len(data) != len(want) * dim * 4:
            raise Conflict("the collection's vectors changed during the export (images added or deleted): export again",
                           field="collection")
        yield data
