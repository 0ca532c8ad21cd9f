"""Stored local features (``image_features``): written at ingest (or by the first search that
verifies an image stored before), read by the geometric verification of search results."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from simsearch.store import repo, upsert
from simsearch.store.models import ImageFeatures


def store(session: Session, features: dict[int, bytes], method: str, *, replace: bool = False) -> None:
    """Store ``{image_id: serialised features}`` of ``method``; an image with a row keeps it unless
    ``replace`` (a stale method's row is replaced by the caller that extracted the current one)."""
    if not features:
        return
    if replace:
        for chunk in repo.in_chunks(sorted(features)):
            session.execute(delete(ImageFeatures).where(ImageFeatures.image_id.in_(chunk)))
    rows = [{"image_id": int(i), "method": method, "features": f} for i, f in sorted(features.items())]
    upsert.insert_missing(session, ImageFeatures.__table__, rows, keys=["image_id"])


def of_images(session: Session, image_ids, method: str) -> tuple[dict[int, bytes], set[int]]:
    """The stored features of ``method`` of these images, and the ids that have a row of another
    (stale) method."""
    found: dict[int, bytes] = {}
    stale: set[int] = set()
    for chunk in repo.in_chunks(sorted({int(i) for i in image_ids})):
        for i, m, f in session.execute(select(ImageFeatures.image_id, ImageFeatures.method, ImageFeatures.features)
                                       .where(ImageFeatures.image_id.in_(chunk))).all():
            if m == method:
                found[i] = f
            else:
                stale.add(i)
    return found, stale
