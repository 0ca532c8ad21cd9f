"""Uploaded originals kept after their job: a content-addressed store ``<home>/originals/<hh>/<hash>``.

Files uploaded through the browser or the API are staged under ``<home>/uploads/<run id>/`` and
that folder is deleted when the job ends (``SIMSEARCH_UPLOAD_RETENTION_HOURS``). With
``SIMSEARCH_KEEP_ORIGINALS`` (on by default) the job's end first links (or, across file systems,
copies) the file of every image the run stored into this store, named by the image's
``content_hash`` (SHA-256 of its bytes), so ``GET /api/images/<id>/file`` can still serve it. One
file per content: the same picture uploaded to two collections is stored once, and it is removed
when the last image with that hash is deleted (:func:`forget`).

Nothing here raises into its caller: keeping or forgetting originals never fails a job or a delete.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Iterable

from sqlalchemy import select

from simsearch.jobs.manifest import run_folder
from simsearch.paths import originals_dir
from simsearch.store import repo
from simsearch.store.models import Collection, Image, IngestRun

log = logging.getLogger("simsearch.jobs")

HASH = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1000  # hashes per IN (...)


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def store_dir(settings) -> Path:
    return originals_dir(settings.home)


def stored_path(settings, content_hash: str) -> Path | None:
    """Where the original with this hash is (or would be) kept; None for a value that is not a
    SHA-256 hex digest (never a path built from anything else)."""
    if not isinstance(content_hash, str) or not HASH.match(content_hash):
        return None
    return store_dir(settings) / content_hash[:2] / content_hash


def keep_run(ctx, run_id: int) -> int:
    """Keep the originals of the images job ``run_id`` (or its shards) stored from its upload
    folder; call it before the folder is deleted. Returns how many files were added to the store."""
    folder = run_folder(ctx.settings, run_id).resolve()
    if not ctx.settings.keep_originals or not folder.is_dir():
        return 0
    with ctx.db.session() as s:
        runs = [run_id, *s.scalars(select(IngestRun.id).where(IngestRun.parent_id == run_id))]
        rows: list[tuple[str, str]] = []
        for chunk in repo.in_chunks(runs):
            rows.extend(s.execute(select(Image.content_hash, Image.source_path)
                                  .where(Image.ingest_run_id.in_(chunk), Image.status == "ok")).all())
    kept = 0
    for digest, source in rows:
        dest = stored_path(ctx.settings, digest)
        if dest is None or dest.exists():
            continue
        try:
            src = Path(source).resolve()
            if not src.is_relative_to(folder) or not src.is_file():
                continue  # stored from elsewhere (a server folder), or already gone
            _link_or_copy(src, dest)
            kept += 1
        except OSError:
            log.exception("ingest job %s: could not keep the original of image %s", run_id, digest[:12])
    if kept:
        log.info("ingest job %s: kept %d uploaded original(s)", run_id, kept)
    return kept


def _link_or_copy(src: Path, dest: Path) -> None:
    """Put ``src``'s bytes at ``dest`` atomically: a hard link (same file system: no bytes copied),
    else a copy; written under a temporary name first, so a reader never sees half a file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}")
    try:
        try:
            os.link(src, tmp)
        except OSError:  # another file system, or links not supported
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def forget(ctx, hashes: Iterable[str]) -> int:
    """Remove the kept originals among ``hashes`` that no image (in any collection) has any more;
    call it after deleting images. Returns how many files were removed. Never raises."""
    try:
        root = store_dir(ctx.settings)
        if not root.is_dir():
            return 0
        candidates = sorted({h for h in hashes if (p := stored_path(ctx.settings, h)) is not None and p.exists()})
        if not candidates:
            return 0
        still: set[str] = set()
        with ctx.db.session() as s:  # per collection: the (collection, hash) unique index answers
            for coll_id in s.scalars(select(Collection.id)):
                for chunk in _chunks(candidates):
                    still.update(s.scalars(select(Image.content_hash).where(Image.collection_id == coll_id,
                                                                            Image.content_hash.in_(chunk))))
        removed = 0
        for h in candidates:
            if h in still:
                continue
            try:
                stored_path(ctx.settings, h).unlink(missing_ok=True)
                removed += 1
            except OSError:
                log.exception("could not remove the kept original %s", h[:12])
        return removed
    except Exception:  # deleting images must not fail because their originals could not be removed
        log.exception("could not remove kept originals")
        return 0


def kept_of_collection(ctx, collection_id: int) -> list[str]:
    """The hashes of the collection's images that have a kept original (read before deleting it,
    for :func:`forget` after; in a session of its own, so a failure here cannot spoil the delete's
    transaction). Never raises."""
    try:
        root = store_dir(ctx.settings)
        if not root.is_dir():
            return []
        kept = sorted(p.name for sub in root.iterdir() if sub.is_dir() for p in sub.iterdir() if HASH.match(p.name))
        out: list[str] = []
        with ctx.db.session() as s:
            for chunk in _chunks(kept):
                out.extend(s.scalars(select(Image.content_hash).where(Image.collection_id == collection_id,
                                                                      Image.content_hash.in_(chunk))))
        return out
    except Exception:
        log.exception("could not list the kept originals of collection %s", collection_id)
        return []
