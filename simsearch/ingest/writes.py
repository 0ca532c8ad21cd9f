"""The store step of an ingest: one embedded batch -> thumbnails, images and vectors, as upserts
keyed by content (:mod:`simsearch.store.upsert`), so any number of runs may store overlapping
files into the same or different collections at once.

What a run saw when it started (which hashes were stored) only spares it decoding files that are
already complete; what it stores and what it counts comes from the database: an image another
run stored first is found and counted as already present, a vector another run stored first is
kept and not counted, and an image that failed before and decodes now is promoted to ok by
exactly one run.

Every file that resolved to an image is recorded as one of its files (path, size, mtime, run),
keyed by (image, path): a file with the bytes of an image the collection has under another path
is a *duplicate file* (counted, and kept as a path of the image); the same file ingested again
adds nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy.orm import Session

from simsearch.images.local_features import METHOD as FEATURES_METHOD
from simsearch.images.phash import METHOD as HASH_METHOD
from simsearch.ingest.sources import SourceFile
from simsearch.store import features as stored_features
from simsearch.store import hashes as stored_hashes
from simsearch.store import repo, upsert


@dataclass
class Prepared:
    """What a decode thread made of one file."""

    src: SourceFile
    hash: str | None = None
    error: str | None = None
    skip: bool = False  # already fully present
    width: int = 0
    height: int = 0
    thumbnail: bytes | None = None  # None: the image was stored (ok) when the run started
    pixels: dict[int, np.ndarray] = field(default_factory=dict)  # input size -> uint8 (S,S,3)
    hashes: bytes | None = None  # perceptual hashes (simsearch.images.phash), with the thumbnail
    features: bytes | None = None  # local features (simsearch.images.local_features), with the thumbnail
    need: tuple[str, ...] = ()  # spaces still to embed
    size: int | None = None  # bytes read
    mtime: datetime | None = None  # the file's modification time (None: not a file on disk)


@dataclass
class Stored:
    """What storing one batch did."""

    added: int = 0  # images this batch stored (new, or failed before and ok now)
    skipped: int = 0  # already present: before the run, or stored by another run meanwhile
    duplicates: int = 0  # files with the bytes of an image stored under another path (a new path of it)
    failed: int = 0
    embedded: int = 0  # vectors this batch stored
    errors: list[dict] = field(default_factory=list)
    images: dict[str, tuple[int, str]] = field(default_factory=dict)  # hash -> (id, status) now
    vectors: dict[str, set[int]] = field(default_factory=dict)  # space -> image ids with a vector now


def store_batch(session: Session, batch: list[Prepared], vectors: dict[str, dict[int, np.ndarray]],
                per_image_seconds: dict[str, float], *, collection_id: int, run_id: int) -> Stored:
    """Store one embedded batch in ``session``'s transaction (a few bulk statements, not one per
    row): ``vectors`` is {space: {batch position: vector}} for every position and space in its
    ``need``."""
    out = Stored()
    good: dict[int, Prepared] = {}  # batch position -> a file that decoded (and is not a duplicate)
    rows: dict[str, dict] = {}  # content hash -> image row
    for i, p in enumerate(batch):
        if p.error:
            out.failed += 1
            out.errors.append({"file": p.src.name, "reason": p.error})
        elif p.skip:
            pass  # (counted below: already present, or a new path of its image)
        else:
            good[i] = p
            rows[p.hash] = {"content_hash": p.hash, "source_path": p.src.name, "width": p.width, "height": p.height,
                            "label": p.src.label, "meta": p.src.meta, "status": "ok", "thumbnail_hash": p.hash,
                            "ingest_run_id": run_id}
    for p in batch:  # a file that fails is recorded, unless its content is stored (or stored now)
        if p.error and p.hash is not None and p.hash not in rows:
            rows[p.hash] = {"content_hash": p.hash, "source_path": p.src.name, "label": p.src.label,
                            "meta": p.src.meta, "status": "failed", "error": p.error, "ingest_run_id": run_id}
    paths = {h: {p.src.name for p in batch if p.hash == h} for h in rows}
    for h, row in rows.items():  # a new image starts with the batch's files of its bytes (all new to it)
        row["file_count"] = len(paths[h])
    stored: dict[str, tuple[int, str, bool]] = {}
    if rows:
        # Thumbnails first: images refer to them. A file without one was stored (ok, so with its
        # thumbnail) when the run started; thumbnails are never deleted.
        upsert.store_thumbnails(session, {p.hash: p.thumbnail for p in good.values() if p.thumbnail is not None})
        stored = upsert.store_images(session, collection_id, rows.values())
    ids = {h: (i, status) for h, (i, status, _) in stored.items()}
    ids.update(upsert.image_ids(session, collection_id, {p.hash for p in batch if p.hash is not None} - set(ids)))
    # The files: every one whose image exists (one deleted since the run started is passed over).
    new_files = upsert.store_files(session, [
        {"image_id": ids[p.hash][0], "path": p.src.name, "size": p.size, "mtime": p.mtime, "ingest_run_id": run_id}
        for p in batch if p.hash in ids])
    inserted_images = {i for i, _, inserted in stored.values() if inserted}
    grown = Counter(i for i, _ in new_files if i not in inserted_images)  # (a new image's count is set)
    promote = {stored[p.hash][0]: i for i, p in good.items()
               if not stored[p.hash][2] and stored[p.hash][1] == "failed"}
    promoted: set[int] = set()
    for image_id in sorted(set(promote) | set(grown)):  # promotions and file counts in id order
        if image_id in promote:
            p = good[promote[image_id]]
            if upsert.promote_failed(session, image_id, width=p.width, height=p.height, thumbnail_hash=p.hash):
                promoted.add(image_id)
        upsert.add_file_count(session, image_id, grown.get(image_id, 0))
    found: list[int] = []  # positions of files whose image was stored before (ok)
    for i, p in good.items():
        image_id, status, inserted = stored[p.hash]
        if inserted or image_id in promoted:
            out.added += 1
        elif (image_id, p.src.name) in new_files:
            out.duplicates += 1
        else:
            found.append(i)
        out.images[p.hash] = (image_id, "ok")
    for p in batch:
        if p.skip and not p.error:
            if p.hash in ids and (ids[p.hash][0], p.src.name) in new_files:
                out.duplicates += 1
            else:
                out.skipped += 1
    for h, (image_id, status, _) in stored.items():
        out.images.setdefault(h, (image_id, status))
    embeddings = []
    for i, p in good.items():
        image_id = out.images[p.hash][0]
        for sp in p.need:
            vec = vectors[sp][i]
            embeddings.append({"image_id": image_id, "space": sp, "dim": int(vec.shape[0]),
                               "vector": repo.vector_to_bytes(vec), "seconds": per_image_seconds[sp]})
            out.vectors.setdefault(sp, set()).add(image_id)
    stored_hashes.store(session, {out.images[p.hash][0]: p.hashes for p in good.values() if p.hashes}, HASH_METHOD)
    stored_features.store(session, {out.images[p.hash][0]: p.features for p in good.values() if p.features},
                          FEATURES_METHOD)
    new_vectors = upsert.store_embeddings(session, embeddings)
    out.embedded = len(new_vectors)
    # A file whose image was there already counts as already present unless it got a vector of a
    # new space here (then it counts as neither, as before: its vectors are in ``embedded``).
    new_for = {image_id for image_id, _ in new_vectors}
    out.skipped += sum(1 for i in found if out.images[good[i].hash][0] not in new_for)
    return out
