"""Browsing collections (no Flask): the home page's cards, the ingest runs a grid can be filtered
by, and removing several images at once (their files on disk are not touched)."""

from __future__ import annotations

from sqlalchemy import delete as sql_delete, func, select

from simsearch import limits
from simsearch.errors import InvalidInput, NotFound
from simsearch.jobs import kept_originals
from simsearch.jobs.status import iso
from simsearch.space_defaults import default_of
from simsearch.store import repo
from simsearch.store.models import Collection, Embedding, Image, ImageFile, IngestRun, max_id

COVERS = 4  # cover thumbnails on a collection's card
MAX_IDS = limits.LABEL_IDS_MAX


def cards(ctx) -> list[dict]:
    """Every collection, by name, as the home page shows it: counts of images (ok, failed),
    labels and files, its default space (None: no vectors, or several and none chosen), and up
    to :data:`COVERS` cover images (the first image of each of its most frequent labels, then
    its first images)."""
    with ctx.db.session() as s:
        colls = [(c.id, c.name, c.description) for c in s.scalars(select(Collection).order_by(Collection.name))]
    out = []
    for coll_id, name, description in colls:
        with ctx.db.session() as s:
            counts = repo.image_counts(s, coll_id)
            labels = s.execute(select(Image.label, func.count(), func.min(Image.id))
                               .where(Image.collection_id == coll_id, Image.status == "ok", Image.label.is_not(None),
                                      Image.thumbnail_hash.is_not(None))
                               .group_by(Image.label).order_by(func.count().desc(), Image.label)).all()
            label_count = s.scalar(select(func.count(func.distinct(Image.label)))
                                   .where(Image.collection_id == coll_id, Image.label.is_not(None))) or 0
            files = s.scalar(select(func.sum(Image.file_count)).where(Image.collection_id == coll_id)) or 0
            covers = [first for _, _, first in labels[:COVERS]]
            if len(covers) < COVERS:
                more = s.scalars(select(Image.id).where(Image.collection_id == coll_id, Image.thumbnail_hash.is_not(None),
                                                        Image.id.not_in(covers or [0]))
                                 .order_by(Image.id).limit(COVERS - len(covers)))
                covers += list(more)
        out.append({"name": name, "description": description, "images_ok": counts.get("ok", 0),
                    "images_failed": counts.get("failed", 0), "labels": label_count, "files": files,
                    "default_space": default_of(ctx, coll_id), "covers": covers})
    return out


def ingest_runs(ctx, name: str) -> list[dict]:
    """The collection's ingest jobs that brought images (newest first): ``id``, ``source``,
    ``created_at``, ``images`` (how many of its images came from the job or one of its shards)."""
    with ctx.db.session() as s:
        coll = repo.get_collection(s, name)
        runs = s.execute(select(IngestRun.id, IngestRun.parent_id, IngestRun.source, IngestRun.created_at)
                         .where(IngestRun.collection_id == coll.id, IngestRun.kind == "ingest")).all()
        counts = dict(s.execute(select(ImageFile.ingest_run_id, func.count(func.distinct(ImageFile.image_id)))
                                .join(Image, Image.id == ImageFile.image_id)
                                .where(Image.collection_id == coll.id, ImageFile.ingest_run_id.is_not(None))
                                .group_by(ImageFile.ingest_run_id)).all())
    top = {}
    for run_id, parent, source, created in runs:
        if parent is None:
            top.setdefault(run_id, {"id": run_id, "source": source, "created_at": iso(created), "images": 0})
    for run_id, parent, _, _ in runs:
        root = parent if parent is not None else run_id
        if root in top:
            top[root]["images"] += counts.get(run_id, 0)
    return sorted((r for r in top.values() if r["images"]), key=lambda r: -r["id"])


def _check_ids(image_ids) -> list[int]:
    if not isinstance(image_ids, list) or not image_ids:
        raise InvalidInput("image_ids must be a non-empty list of image ids", field="image_ids")
    if len(image_ids) > MAX_IDS:
        raise InvalidInput(f"at most {MAX_IDS} image ids at once", field="image_ids")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in image_ids):
        raise InvalidInput("image_ids must all be whole numbers", field="image_ids")
    return sorted(set(image_ids))


def remove_images(ctx, name: str, image_ids) -> dict:
    """Remove images from a collection, with their vectors (their indexes follow, as for one
    image); all or none: 404 listing the ids that are not in the collection. The image files
    themselves are not touched; a kept original goes once no image has its content."""
    wanted = _check_ids(image_ids)
    top = max_id(ctx.db.dialect)
    with ctx.db.session() as s:
        coll = repo.get_collection(s, name)
        coll_id = coll.id
        found: dict[int, str] = {}
        for chunk in repo.in_chunks([i for i in wanted if 0 < i <= top]):
            found.update(s.execute(select(Image.id, Image.content_hash)
                                   .where(Image.collection_id == coll_id, Image.id.in_(chunk))).all())
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFound(f"{len(missing)} of the image ids are not in collection {name!r}", field="image_ids",
                           details={"missing": missing[:100]})
        spaces: set[str] = set()
        removed = 0
        for chunk in repo.in_chunks(wanted):
            spaces.update(s.scalars(select(Embedding.space).where(Embedding.image_id.in_(chunk)).distinct()))
            removed += s.execute(sql_delete(Image).where(Image.collection_id == coll_id, Image.id.in_(chunk))
                                 .execution_options(synchronize_session=False)).rowcount or 0
        if removed != len(wanted):  # a parallel removal took some: all or none (the error rolls back)
            raise NotFound(f"{len(wanted) - removed} of the images were removed meanwhile; nothing was removed",
                           field="image_ids")
    ctx.indexes.images_deleted(coll_id, sorted(spaces))
    kept_originals.forget(ctx, found.values())
    return {"collection": name, "removed": removed, "image_ids": wanted}
