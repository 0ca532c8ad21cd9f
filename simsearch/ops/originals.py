"""An image's original file, as ingested: found, checked and opened for streaming
(:func:`open_original`), or read and decoded (:func:`original_picture`).

The database keeps each image's ``source_path`` (where ingest read it) and the SHA-256 of its
bytes. :func:`open_original` serves a file only when its bytes still hash to that value, so the
server only ever hands out content it ingested: a file replaced since (or a symbolic link
re-pointed at another file) is refused, whatever the path now leads to. The path itself is never
taken from a request (the request names an image id).

Errors, each naming the image and why:

- 404 ``not_found``: no such image, or an image created by ``import-vectors`` (a vector without a
  file behind it);
- 409 ``conflict``: the image failed to decode at ingest (there is no image to show);
- 410 ``gone``: the file is no longer where it was ingested from, or it changed since, and its
  bytes are not among the kept originals either. Uploads are deleted when their job ends
  (``SIMSEARCH_UPLOAD_RETENTION_HOURS``), but with ``SIMSEARCH_KEEP_ORIGINALS`` (the default) the
  job's end first keeps each stored image's file in ``<home>/originals/<hh>/<hash>``
  (:mod:`simsearch.jobs.kept_originals`), which is served instead, verified the same way.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from simsearch.digest import import_hash
from simsearch.errors import Conflict, Gone, NotFound, SimsearchError
from simsearch.images.decode import decode_image
from simsearch.jobs.kept_originals import stored_path
from simsearch.paths import uploads_dir
from simsearch.store import repo

CHUNK = 1 << 20
DEFAULT_MIME = "application/octet-stream"
# PIL's format name -> the content type served (MPO: a JPEG with extra frames, as cameras write them).
# Other formats are served as DEFAULT_MIME.
FORMAT_MIME = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "BMP": "image/bmp",
               "TIFF": "image/tiff", "WEBP": "image/webp"}
MIME_TYPES = tuple(dict.fromkeys(FORMAT_MIME.values())) + (DEFAULT_MIME,)


@dataclass
class Original:
    """An open original file (the caller closes ``file``; werkzeug's ``send_file`` does)."""

    image_id: int
    file: BinaryIO
    size: int
    mime_type: str
    format: str | None  # PIL's name: JPEG, PNG, WEBP... (None: PIL does not recognise it now)
    etag: str  # the content hash
    source_path: str


def _gone_reason(ctx, path: str) -> str:
    uploads = uploads_dir(ctx.settings.home).resolve()
    try:
        uploaded = Path(path).resolve().is_relative_to(uploads)
    except (OSError, RuntimeError):
        uploaded = False
    if uploaded and ctx.settings.keep_originals:
        return ("its upload was deleted when its ingest job ended, before originals were kept (SIMSEARCH_KEEP_ORIGINALS "
                "keeps those uploaded since); the thumbnail and vectors remain")
    if uploaded:
        hours = ctx.settings.upload_retention_hours
        kept = "are deleted when their ingest job ends" if hours <= 0 else f"are kept {hours:g} hours after their job"
        return (f"uploaded files {kept} (SIMSEARCH_UPLOAD_RETENTION_HOURS); the thumbnail and vectors remain. "
                "Set SIMSEARCH_KEEP_ORIGINALS or a retention, or ingest from a folder on the server, to keep "
                "originals viewable")
    return "it is no longer at the path it was ingested from (moved or deleted)"


def _format_of(f: BinaryIO) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(f) as im:  # reads the header only
            return im.format
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    finally:
        f.seek(0)


def open_original(ctx, image_id: int) -> Original:
    """The image's original file, open and verified (see the module docstring for the errors)."""
    with ctx.db.session() as s:
        img = repo.get_image(s, image_id)
        path, digest, status, error = img.source_path, img.content_hash, img.status, img.error
    if digest == import_hash(path):
        raise NotFound(f"image {image_id} was imported as a vector (import-vectors): it has no image file",
                       field="image_id")
    if status != "ok":
        raise Conflict(f"image {image_id} could not be decoded when it was ingested ({error or 'failed'}): "
                       "there is no image to show", field="image_id")
    candidates = [path] if path and os.path.isabs(path) else []
    kept = stored_path(ctx.settings, digest)  # served also when keep_originals was turned off since
    if kept is not None:
        candidates.append(str(kept))
    if not candidates:
        raise Gone(f"the original file of image {image_id} is gone: it was ingested without a file path",
                   field="image_id")
    reason = None
    for candidate in candidates:  # where it was ingested from, then the kept originals
        try:
            f, size = _open_verified(candidate, digest)
        except _Missing as why:
            reason = reason or why.reason
            continue
        try:
            fmt = _format_of(f)
        except BaseException:
            f.close()
            raise
        return Original(image_id=image_id, file=f, size=size, mime_type=FORMAT_MIME.get(fmt or "", DEFAULT_MIME),
                        format=fmt, etag=digest, source_path=path)
    if reason == "missing":
        reason = _gone_reason(ctx, path) if path and os.path.isabs(path) else "it was ingested without a file path"
    raise Gone(f"the original file of image {image_id} is gone: {reason}", field="image_id")


def original_picture(ctx, image_id: int, *, draft_size: int, draft_long: int):
    """The image's picture (PIL) from its original file: opened and verified as
    :func:`open_original` serves it, decoded as ingest decodes it (the settings' pixel limit;
    JPEGs at a reduced DCT scale keeping the short side >= ``draft_size`` and the long side >=
    ``draft_long``). None when the file is gone, changed, unreadable or not a usable image: the
    one way the operations that look at originals (geometric checks of searches and of
    near-duplicates) read them."""
    try:
        original = open_original(ctx, image_id)
        with original.file as f:
            data = f.read()
        return decode_image(data, source=original.source_path, max_pixels=ctx.settings.max_pixels,
                            draft_size=draft_size, draft_long=draft_long).image
    except (SimsearchError, OSError):
        return None


class _Missing(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _open_verified(path: str, digest: str) -> tuple[BinaryIO, int]:
    """``path`` open at its start, and its size, if it is a regular file whose bytes hash to
    ``digest``; else :class:`_Missing` with why (``"missing"``: it cannot be opened)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (handed to the caller)
    except OSError:
        raise _Missing("missing") from None
    try:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _Missing("its path no longer names a file")
        h = hashlib.sha256()
        while chunk := f.read(CHUNK):
            h.update(chunk)
        if h.hexdigest() != digest:
            raise _Missing("the file at its path has changed since it was ingested")
        f.seek(0)
        return f, info.st_size
    except BaseException:
        f.close()
        raise
