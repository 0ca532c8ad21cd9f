"""Images: one image, a filtered page of a collection's images, labels, renaming, deletion, thumbnails."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sqlalchemy import delete as sql_delete, func, select, update

from simsearch import limits
from simsearch.errors import InvalidInput, NotFound
from simsearch.jobs import kept_originals
from simsearch.ops import image_filters
from simsearch.jobs.status import iso
from simsearch.store import repo
from simsearch.store.models import Collection, Embedding, Image, ImageFile, IngestRun, Thumbnail, max_id

DEFAULT_PER_PAGE = limits.PER_PAGE_DEFAULT
MAX_PER_PAGE = limits.PER_PAGE_MAX
MAX_PAGE = limits.PAGE_MAX
MAX_LABEL_IDS = limits.LABEL_IDS_MAX
MAX_LABEL_LENGTH = limits.LABEL_MAX
META_KEY = re.compile(limits.META_KEY_PATTERN)
STATUSES = ("ok", "failed")


def image_record(img: Image, collection: str | None, *, size: int | None = None) -> dict:
    """An image as data; ``has_thumbnail`` tells callers whether to link one; ``size``: its
    file's size in bytes (None: not recorded, or not looked up)."""
    return {
        "id": img.id,
        "collection": collection,
        "path": img.source_path,
        "label": img.label,
        "width": img.width,
        "height": img.height,
        "status": img.status,
        "error": img.error,
        "meta": img.meta or {},
        "created_at": iso(img.created_at),
        "has_thumbnail": bool(img.thumbnail_hash),
        "file_count": img.file_count or 1,
        "size": size,
    }


def files_of(session, image_id: int) -> list[dict]:
    """Every file of an image, the first (its ``path``) first: path, size, mtime, ``source`` (the
    source of the ingest run that read it, for showing the path relative to it)."""
    rows = session.execute(select(ImageFile.path, ImageFile.size, ImageFile.mtime, IngestRun.source)
                           .outerjoin(IngestRun, IngestRun.id == ImageFile.ingest_run_id)
                           .where(ImageFile.image_id == image_id).order_by(ImageFile.id)).all()
    return [{"path": path, "size": size, "mtime": iso(mtime), "source": source} for path, size, mtime, source in rows]


def get(ctx, image_id: int) -> dict:
    """One image, with its collection's name and the backbones (spaces) it has vectors in."""
    with ctx.db.session() as s:
        img = repo.get_image(s, image_id)
        coll = s.get(Collection, img.collection_id)
        out = image_record(img, coll.name)
        out["backbones"] = sorted(s.scalars(select(Embedding.space).where(Embedding.image_id == image_id)))
        files = files_of(s, image_id)
        files.sort(key=lambda f: f["path"] != img.source_path)  # the first path first (stable: then by id)
        out["files"] = files
        out["size"] = next((f["size"] for f in files if f["size"] is not None), None)
    return out


def check_meta_key(key: str, field: str) -> str:
    if not META_KEY.match(key):
        raise InvalidInput(f"bad metadata key {key!r}: use letters, digits, '_', '-', '.', ' '", field=field)
    return key


def check_page(page: int, per_page: int) -> None:
    limits.check(limits.Page, page, "page")
    limits.check(limits.PerPage, per_page, "per_page")


def list_page(ctx, name: str, *, page: int = 1, per_page: int = DEFAULT_PER_PAGE, label: str | None = None,
              status: str | None = None, meta: dict[str, str] | None = None, sort: str | None = None,
              path_view=None, **filters) -> dict:
    """A page of a collection's images, filtered by label, status and metadata values (``meta``:
    key -> the value it must have, all must match) and by the sort and filters of
    :mod:`simsearch.ops.image_filters` (``labelled``, ``path``, ``min_size``, ``max_size``,
    ``added_after``, ``added_before``, ``run``), ordered by ``sort`` (default: by id).
    ``path_view(path, source)``: how a response shows a path (the ``path`` filter matches that)."""
    check_page(page, per_page)
    if status not in (None, *STATUSES):
        raise InvalidInput(f"status must be 'ok' or 'failed', not {status!r}", field="status")
    browse = image_filters.check(sort=sort, **filters)
    meta = dict(meta or {})
    for key in meta:
        check_meta_key(key, f"meta.{key}")
    with ctx.db.session() as s:
        coll = repo.get_collection(s, name)
        q = select(Image).where(Image.collection_id == coll.id)
        if label is not None:
            q = q.where(Image.label == label)
        if status is not None:
            q = q.where(Image.status == status)
        for key, value in meta.items():
            q = q.where(Image.meta[key].as_string() == value)
        q = image_filters.apply(s, q, browse, coll.id, path_view=path_view)
        total = s.scalar(select(func.count()).select_from(q.order_by(None).subquery()))
        rows = s.scalars(q.offset((page - 1) * per_page).limit(per_page)).all()
        sizes = _sizes(s, [img.id for img in rows])
        items = [image_record(img, coll.name, size=sizes.get(img.id)) for img in rows]
    return {"collection": name, "page": page, "per_page": per_page, "total": total,
            "pages": max(1, math.ceil(total / per_page)), "sort": browse.sort,
            "filters": {"label": label, "status": status, "meta": meta, **browse.shown}, "images": items}


def _sizes(s, ids: list[int]) -> dict[int, int]:
    """image id -> its file size in bytes (for the ids with a recorded size)."""
    if not ids:
        return {}
    rows = s.execute(select(ImageFile.image_id, func.max(ImageFile.size)).where(ImageFile.image_id.in_(ids))
                     .group_by(ImageFile.image_id)).all()
    return {i: size for i, size in rows if size is not None}


def clean_label(label, *, field: str = "label") -> str | None:
    """A label as stored: stripped, 1-200 characters; None stays None (no label)."""
    if label is None:
        return None
    if not isinstance(label, str) or not label.strip() or len(label.strip()) > MAX_LABEL_LENGTH:
        raise InvalidInput(f"label must be a non-empty string of at most {MAX_LABEL_LENGTH} characters, or null", field=field)
    return label.strip()


def set_labels(ctx, name: str, image_ids, label=...) -> dict:
    """Set (or with ``None`` remove) the label of images of a collection; all or none: 404
    listing the ids that are not in the collection. ``label`` must be given (``...``: it was not)."""
    if not isinstance(image_ids, list) or not image_ids:
        raise InvalidInput("image_ids must be a non-empty list of image ids", field="image_ids")
    if len(image_ids) > MAX_LABEL_IDS:
        raise InvalidInput(f"at most {MAX_LABEL_IDS} image ids at once", field="image_ids")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in image_ids):
        raise InvalidInput("image_ids must all be whole numbers", field="image_ids")
    if label is ...:
        raise InvalidInput("give the label to set ('label': null removes it)", field="label")
    label = clean_label(label)
    wanted = sorted(set(image_ids))
    top = max_id(ctx.db.dialect)
    storable = [i for i in wanted if 0 < i <= top]  # others cannot exist (and the driver refuses them)
    with ctx.db.session() as s:
        coll = repo.get_collection(s, name)
        found: set[int] = set()
        for chunk in repo.in_chunks(storable):
            found.update(s.scalars(select(Image.id).where(Image.collection_id == coll.id, Image.id.in_(chunk))))
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFound(f"{len(missing)} of the image ids are not in collection {name!r}", field="image_ids",
                           details={"missing": missing[:100]})
        for chunk in repo.in_chunks(wanted):
            s.execute(update(Image).where(Image.id.in_(chunk)).values(label=label))
    return {"collection": name, "label": label, "updated": len(wanted)}


def label_images(ctx, name: str, image_ids, label: str | None) -> int:
    """Set the (already checked) label of the images of collection ``name`` among ``image_ids``,
    any number of them (ids no longer in the collection are passed over); returns how many."""
    updated = 0
    with ctx.db.session() as s:
        coll = repo.get_collection(s, name)
        for chunk in repo.in_chunks(sorted({int(i) for i in image_ids})):
            res = s.execute(update(Image).where(Image.collection_id == coll.id, Image.id.in_(chunk)).values(label=label))
            updated += res.rowcount or 0
    return updated


def set_label(ctx, image_id: int, label=...) -> dict:
    """Set (``None``: remove) one image's label; returns the image as :func:`get` does."""
    if label is ...:
        raise InvalidInput("give the label to set ('label': null removes it)", field="label")
    label = clean_label(label)
    with ctx.db.session() as s:
        img = repo.get_image(s, image_id)
        img.label = label
    return get(ctx, image_id)


def brief(ctx, image_ids) -> dict[int, dict]:
    """image id -> {image_id, path, label} for the ids that exist."""
    out = {}
    with ctx.db.session() as s:
        for chunk in repo.in_chunks(sorted({int(i) for i in image_ids})):
            rows = s.execute(select(Image.id, Image.source_path, Image.label).where(Image.id.in_(chunk))).all()
            out.update({i: {"image_id": i, "path": path, "label": label} for i, path, label in rows})
    return out


IMAGE_NAME = re.compile(limits.IMAGE_NAME_PATTERN)


def renamed_path(path: str, name: str) -> str:
    """``path`` with its last component (the file name) replaced by ``name``:
    ``/photos/cats/1.jpg`` -> ``/photos/cats/kitten.jpg``; a key without a folder becomes ``name``."""
    head, sep, _ = path.rpartition("/")
    return head + sep + name


def rename(ctx, image_id: int, name) -> dict:
    """Give an image a new file name (its folder is kept): the name it is shown under, and where
    ``compare`` reads the file again when it embeds it with another backbone (rename the file
    itself first). Its vectors, label and thumbnail are unchanged. Returns the image as :func:`get`."""
    if not isinstance(name, str) or not IMAGE_NAME.match(name) or len(name) > limits.FILENAME_MAX:
        raise InvalidInput(f"name {name!r} is not valid: use {limits.IMAGE_NAME_RULE} "
                           f"(at most {limits.FILENAME_MAX} characters)", field="name")
    with ctx.db.session() as s:
        img = repo.get_image(s, image_id)
        old, new = img.source_path, renamed_path(img.source_path, name)
        img.source_path = new
        if new != old and s.scalar(select(ImageFile.id).where(ImageFile.image_id == image_id, ImageFile.path == new)) is None:
            # its first file is renamed with it (a path it already has as another file stays one row)
            s.execute(update(ImageFile).where(ImageFile.image_id == image_id, ImageFile.path == old).values(path=new))
    return get(ctx, image_id)


def selection(ctx, name: str, image_ids) -> list[dict]:
    """``{"id", "path", "label", "files"}`` of each of ``image_ids`` (a selection on the map or the
    browse grid), in the order given (duplicates once); ``files``: every file of the image
    (``path``, ``source``), the first first. 404 listing the ids that are not in the collection."""
    if not isinstance(image_ids, list) or not image_ids:
        raise InvalidInput("image_ids must be a non-empty list of image ids", field="image_ids")
    if len(image_ids) > MAX_LABEL_IDS:
        raise InvalidInput(f"at most {MAX_LABEL_IDS} image ids at once", field="image_ids")
    wanted = list(dict.fromkeys(int(i) for i in image_ids))
    top = max_id(ctx.db.dialect)
    found: dict[int, dict] = {}
    with ctx.db.session() as s:
        coll = repo.get_collection(s, name)
        for chunk in repo.in_chunks(sorted(i for i in wanted if 0 < i <= top)):
            rows = s.execute(select(Image.id, Image.source_path, Image.label)
                             .where(Image.collection_id == coll.id, Image.id.in_(chunk))).all()
            found.update({i: {"id": i, "path": path, "label": label} for i, path, label in rows})
        files = _files_of_many(s, sorted(found))
    missing = [i for i in wanted if i not in found]
    if missing:
        raise NotFound(f"{len(missing)} of the image ids are not in collection {name!r}", field="image_ids",
                       details={"missing": missing[:100]})
    for i, rec in found.items():  # every file, the first (its path) first
        rec["files"] = sorted(files.get(i) or [{"path": rec["path"], "source": None}], key=lambda f: f["path"] != rec["path"])
    return [found[i] for i in wanted]


def _files_of_many(s, ids: list[int]) -> dict[int, list[dict]]:
    """image id -> its files (``path``, ``source``: the source of the run that read it), by file id."""
    out: dict[int, list[dict]] = {}
    for chunk in repo.in_chunks(ids):
        rows = s.execute(select(ImageFile.image_id, ImageFile.path, IngestRun.source)
                         .outerjoin(IngestRun, IngestRun.id == ImageFile.ingest_run_id)
                         .where(ImageFile.image_id.in_(chunk)).order_by(ImageFile.image_id, ImageFile.id)).all()
        for image_id, path, source in rows:
            out.setdefault(image_id, []).append({"path": path, "source": source})
    return out


def delete(ctx, image_id: int) -> dict:
    """Delete an image and its vectors; its indexes follow (large ones in the background). Its
    kept original goes too, unless another image (in any collection) has the same content."""
    with ctx.db.session() as s:
        img = repo.get_image(s, image_id)
        coll_id, digest = img.collection_id, img.content_hash
        spaces = sorted(s.scalars(select(Embedding.space).where(Embedding.image_id == image_id)))
        # by its id, counting the rows: of parallel deletes one deletes it, the others are 404
        if s.execute(sql_delete(Image).where(Image.id == image_id).execution_options(synchronize_session=False)).rowcount != 1:
            raise NotFound(f"no image with id {image_id} (deleted meanwhile)", field="image_id")
        s.expunge(img)
    ctx.indexes.images_deleted(coll_id, spaces)
    kept_originals.forget(ctx, [digest])
    return {"deleted": image_id}


@dataclass
class ThumbnailData:
    data: bytes
    mime_type: str
    etag: str


def thumbnail(ctx, image_id: int) -> ThumbnailData:
    with ctx.db.session() as s:
        img = repo.get_image(s, image_id)
        thumb = s.get(Thumbnail, img.thumbnail_hash) if img.thumbnail_hash else None
        if thumb is None:
            raise NotFound(f"image {image_id} has no thumbnail ({img.error or 'not decoded'})", field="image_id")
        return ThumbnailData(thumb.data, thumb.mime_type, thumb.content_hash)
