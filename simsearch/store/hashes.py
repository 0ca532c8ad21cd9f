"""Stored perceptual hashes (``image_hashes``): written at ingest, read by the near-duplicate finder."""

from __future__ import annotations

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from simsearch.store import repo, upsert
from simsearch.store.models import Image, ImageHashes


def store(session: Session, hashes: dict[int, bytes], method: str, *, replace: bool = False) -> None:
    """Store ``{image_id: hashes}`` of ``method``; an image with a row keeps it unless ``replace``
    (a stale method's row is replaced by the caller that computed the current one)."""
    if not hashes:
        return
    if replace:
        for chunk in repo.in_chunks(sorted(hashes)):
            session.execute(delete(ImageHashes).where(ImageHashes.image_id.in_(chunk)))
    rows = [{"image_id": int(i), "method": method, "hashes": h} for i, h in sorted(hashes.items())]
    upsert.insert_missing(session, ImageHashes.__table__, rows, keys=["image_id"])


def of_collection(session: Session, collection_id: int, method: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The ids (ascending) of the collection's images with hashes of ``method``, and their hashes
    ((M, width) uint64). One query over the collection (no IN lists)."""
    rows = session.execute(select(ImageHashes.image_id, ImageHashes.hashes).join(Image, Image.id == ImageHashes.image_id)
                           .where(Image.collection_id == collection_id, ImageHashes.method == method)
                           .order_by(ImageHashes.image_id)).all()
    rows = [(i, h) for i, h in rows if h is not None and len(h) == 8 * width]
    ids = np.fromiter((i for i, _ in rows), dtype=np.int64, count=len(rows))
    out = np.frombuffer(b"".join(h for _, h in rows), dtype="<u8").reshape(len(rows), width).astype(np.uint64)
    return ids, out
