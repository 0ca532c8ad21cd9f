"""Stored local features (``image_features``): written at ingest (or by the first search that
verifies an image stored before, or by `simsearch features`), read by the geometric verification
of search results.

An image whose original a features pass could not read or decode has a row of method
:func:`unreadable_mark` (``unreadable:METHOD``) and no features: it counts as tried, not as
lacking (:func:`lacking`, :func:`tried_unreadable`), so the next pass (or ``POST .../features``)
does not take it again unless asked to (``--retry-unreadable``: :func:`forget_unreadable`), and
the share of stored features that ``local``'s default follows leaves it out. Any other method's
row, that one included, is stale to a reader of ``METHOD``: a search that verifies the image tries
its original again, and the features found replace the row."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from simsearch.store import repo, upsert
from simsearch.store.models import Image, ImageFeatures


UNREADABLE = "unreadable:"


def unreadable_mark(method: str) -> str:
    """The method of the row that records an image's features of ``method`` as tried, its original
    unreadable (no features)."""
    return UNREADABLE + method


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


def record_unreadable(session: Session, image_ids, method: str) -> None:
    """Record that the features of ``method`` of these images could not be extracted (their original
    cannot be read or decoded): an :func:`unreadable_mark` row each, replacing a stale one; an image
    whose features of ``method`` were stored meanwhile keeps them."""
    ids = sorted({int(i) for i in image_ids})
    for chunk in repo.in_chunks(ids):
        session.execute(delete(ImageFeatures).where(ImageFeatures.image_id.in_(chunk), ImageFeatures.method != method))
    upsert.insert_missing(session, ImageFeatures.__table__,
                          [{"image_id": i, "method": unreadable_mark(method), "features": b""} for i in ids],
                          keys=["image_id"])


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


def signature(session: Session, collection_id: int, method: str) -> tuple[int, int, int]:
    """``(rows, sum of image ids, largest image id)`` of a collection's features of ``method``: what
    a descriptor index built from them (:mod:`simsearch.index.descriptors`) is checked against (an
    added, deleted or re-extracted image changes it)."""
    q = (select(func.count(ImageFeatures.image_id), func.coalesce(func.sum(ImageFeatures.image_id), 0),
                func.coalesce(func.max(ImageFeatures.image_id), 0))
         .join(Image, Image.id == ImageFeatures.image_id)
         .where(Image.collection_id == int(collection_id), ImageFeatures.method == method))
    n, total, top = session.execute(q).one()
    return int(n), int(total), int(top)


def images_ok(session: Session, collection_id: int) -> int:
    """The collection's images that were ingested (status ok)."""
    return int(session.scalar(select(func.count(Image.id)).where(Image.collection_id == int(collection_id),
                                                                 Image.status == "ok")))


def lacking(session: Session, collection_id: int, method: str) -> tuple[list[int], set[int]]:
    """The collection's ingested images without features of ``method`` (by id), and those of them
    with a row of another (stale) method. Those a pass found unreadable (:func:`record_unreadable`)
    are not lacking: they were tried."""
    tried = unreadable_mark(method)
    rows = session.execute(select(Image.id, ImageFeatures.method)
                           .outerjoin(ImageFeatures, ImageFeatures.image_id == Image.id)
                           .where(Image.collection_id == int(collection_id), Image.status == "ok")
                           .order_by(Image.id)).all()
    ids = [int(i) for i, m in rows if m != method and m != tried]
    return ids, {int(i) for i, m in rows if m is not None and m != method and m != tried}


def tried_unreadable(session: Session, collection_id: int, method: str) -> int:
    """The collection's ingested images whose features of ``method`` a pass could not extract (their
    original unreadable: :func:`record_unreadable`)."""
    return int(session.scalar(select(func.count(ImageFeatures.image_id))
                              .join(Image, Image.id == ImageFeatures.image_id)
                              .where(Image.collection_id == int(collection_id), Image.status == "ok",
                                     ImageFeatures.method == unreadable_mark(method))))


def unreadable_ids(session: Session, collection_id: int, method: str) -> list[int]:
    """The ids (ascending) of the collection's ingested images counted by :func:`tried_unreadable`."""
    return [int(i) for i in session.scalars(select(ImageFeatures.image_id)
                                            .join(Image, Image.id == ImageFeatures.image_id)
                                            .where(Image.collection_id == int(collection_id), Image.status == "ok",
                                                   ImageFeatures.method == unreadable_mark(method))
                                            .order_by(ImageFeatures.image_id))]


def forget_unreadable(session: Session, collection_id: int, method: str) -> int:
    """Delete the collection's :func:`record_unreadable` rows of ``method`` (a curator fixed or
    restored the originals): those images lack their features again and the next pass tries them.
    Returns how many records were deleted."""
    ids = select(Image.id).where(Image.collection_id == int(collection_id)).scalar_subquery()
    return int(session.execute(delete(ImageFeatures).where(ImageFeatures.method == unreadable_mark(method),
                                                           ImageFeatures.image_id.in_(ids))).rowcount or 0)


def of_collection(session: Session, collection_id: int, method: str) -> Iterator[tuple[int, bytes]]:
    """``(image_id, serialised features)`` of a collection's images with features of ``method``, by id."""
    q = (select(ImageFeatures.image_id, ImageFeatures.features).join(Image, Image.id == ImageFeatures.image_id)
         .where(Image.collection_id == int(collection_id), ImageFeatures.method == method)
         .order_by(ImageFeatures.image_id).execution_options(yield_per=2000))
    for i, f in session.execute(q):
        yield int(i), bytes(f)


def image_ids(session: Session, collection_id: int, method: str) -> list[int]:
    """The ids (ascending) of a collection's images with features of ``method``: the set whose
    :func:`signature` names a descriptor index."""
    q = (select(ImageFeatures.image_id).join(Image, Image.id == ImageFeatures.image_id)
         .where(Image.collection_id == int(collection_id), ImageFeatures.method == method)
         .order_by(ImageFeatures.image_id))
    return [int(i) for i in session.execute(q).scalars()]


def methods_of(session: Session, image_ids) -> dict[int, str]:
    """``{image_id: method}`` of these images' stored features (those without have no key): what a
    pass storing features checks before each batch, without reading the features."""
    out: dict[int, str] = {}
    for chunk in repo.in_chunks(sorted({int(i) for i in image_ids})):
        out.update({int(i): m for i, m in session.execute(select(ImageFeatures.image_id, ImageFeatures.method)
                                                          .where(ImageFeatures.image_id.in_(chunk))).all()})
    return out
