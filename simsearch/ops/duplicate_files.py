"""The files of images as the duplicate finder shows them: which images of a collection have
byte-identical copies (``images.file_count > 1``: a partial index answers), and every file of the
images a page or a plan needs, the first path first (no Flask). The rows read here are the
stored values a plan works on; what a page shows of them is a
:class:`~simsearch.ops.duplicate_results.DuplicateImage`."""

from __future__ import annotations

from datetime import timezone

from sqlalchemy import select

from simsearch.ops.duplicate_results import DuplicateFile, DuplicateImage
from simsearch.store import repo
from simsearch.store.models import Image, ImageFile, IngestRun


def file_counts(ctx, collection_id: int, ids=()) -> dict[int, int]:
    """image id -> files, for the collection's images with byte-identical copies (several files:
    the partial index on ``file_count > 1`` answers) and for ``ids``."""
    with ctx.db.session() as s:
        out = dict(s.execute(select(Image.id, Image.file_count)
                             .where(Image.collection_id == collection_id, Image.file_count > 1)).all())
        for chunk in repo.in_chunks(sorted(set(ids) - set(out))):
            out.update(s.execute(select(Image.id, Image.file_count).where(Image.id.in_(chunk))).all())
    return out


def image_rows(ctx, ids) -> dict[int, dict]:
    """image id -> its row and every file of it (the first path first), as stored."""
    rows: dict[int, dict] = {}
    wanted = sorted({int(i) for i in ids})
    with ctx.db.session() as s:
        for chunk in repo.in_chunks(wanted):
            for r in s.execute(select(Image.id, Image.source_path, Image.label, Image.width, Image.height,
                                      Image.thumbnail_hash, Image.file_count, Image.content_hash, IngestRun.source)
                               .outerjoin(IngestRun, IngestRun.id == Image.ingest_run_id).where(Image.id.in_(chunk))):
                rows[r.id] = {"id": r.id, "path": r.source_path, "label": r.label, "width": r.width, "height": r.height,
                              "has_thumbnail": r.thumbnail_hash is not None, "file_count": r.file_count,
                              "content_hash": r.content_hash, "source": r.source, "files": []}
        for chunk in repo.in_chunks(list(rows)):
            for f in s.execute(select(ImageFile.id, ImageFile.image_id, ImageFile.path, ImageFile.size, ImageFile.mtime,
                                      ImageFile.created_at, IngestRun.source)
                               .outerjoin(IngestRun, IngestRun.id == ImageFile.ingest_run_id)
                               .where(ImageFile.image_id.in_(chunk)).order_by(ImageFile.id)):
                rows[f.image_id]["files"].append({"id": f.id, "path": f.path, "size": f.size, "mtime": _aware(f.mtime),
                                                  "created_at": _aware(f.created_at), "source": f.source})
    for r in rows.values():
        if not r["files"]:  # (an image stored before its files were: its first path is its file)
            r["files"] = [{"id": 0, "path": r["path"], "size": None, "mtime": None, "created_at": None,
                           "source": r["source"]}]
        r["files"].sort(key=lambda f: f["path"] != r["path"])  # the first path first
    return rows


def _aware(value):
    """A stored time in UTC (SQLite returns it without its zone)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _iso(value) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def shown(path_view, path: str, source: str | None) -> str:
    return path if path_view is None else path_view(path, source)


def public_image(row: dict, path_view) -> DuplicateImage:
    """An image of a group as responses show it: its first path, every file, their sizes and times."""
    return DuplicateImage(id=row["id"], path=shown(path_view, row["path"], row["source"]), label=row["label"],
                          width=row["width"], height=row["height"], has_thumbnail=row["has_thumbnail"],
                          file_count=len(row["files"]),
                          files=[DuplicateFile(path=shown(path_view, f["path"], f["source"]), size=f["size"],
                                               mtime=_iso(f["mtime"])) for f in row["files"]])
