"""The near tier's geometric check (:mod:`simsearch.analysis.geometry`) over a collection's
candidate pairs: which pairs need it, the pictures it reads, and a bounded per-run cache.

- **Which pairs**: :func:`needs_check`: candidate pairs at cosine >= :data:`GEOMETRY_FLOOR` whose
  perceptual hashes do not already make them near-duplicates on their own: the hash distance is
  above ``HASH_SURE`` (the weak hash matches, which the check confirms, and the pairs the hashes
  reject, which it can rescue: off-centre crops, a crop of a flipped copy, rotations) or unknown.
- **The pictures**: each image's original file as ingested (verified against its content hash:
  :func:`simsearch.ops.originals.original_picture`, also the kept originals), JPEGs decoded at a
  reduced DCT scale; where the file is gone, its stored thumbnail (256 px). An image neither can
  give is left unchecked (its pairs keep the strict-cosine fallback).
- **Cost**: features are computed once per image per run, in an LRU cache of
  :data:`CACHE_IMAGES` images (two ORB sets of at most ``N_FEATURES`` keypoints: ~50 KB each),
  pairs processed in chunks sorted by their first image, on :data:`THREADS` threads (OpenCV
  releases the GIL). docs/near-duplicates.md has the measured cost per pair and per image.
"""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select

from simsearch.analysis import geometry
from simsearch.analysis.near_duplicates import GEOMETRY_RESHOT, GEOMETRY_UNCHECKED
from simsearch.jobs.kept_originals import stored_path
from simsearch.ops.originals import original_picture
from simsearch.store import repo
from simsearch.store.models import Image, Thumbnail

GEOMETRY_FLOOR = 0.80  # pairs below this cosine are never checked (docs/near-duplicates.md: the copies' cosines)
CACHE_IMAGES = 4096
CHUNK = 1024  # pairs per chunk
THREADS = 2


def needs_check(score: np.ndarray, distance: np.ndarray, *, hash_sure: int, floor: float = GEOMETRY_FLOOR) -> np.ndarray:
    """Which candidate pairs the geometric check looks at (see the module docstring)."""
    s, d = np.asarray(score, np.float32), np.asarray(distance, np.int16)
    return (s >= np.float32(floor)) & ((d > hash_sure) | (d < 0))


def _sources(ctx, ids: list[int]) -> dict[int, tuple[bool, bytes | None]]:
    """Per image id: whether its original may be on this machine (an absolute path, or a kept
    original), and its stored thumbnail's bytes; one query for all of them (a query or two an
    image cost a tenth of the check on a bucket's collection, whose originals are never here)."""
    out: dict[int, tuple[bool, bytes | None]] = {}
    with ctx.db.session() as s:
        for chunk in repo.in_chunks(ids):
            for image_id, path, digest, data in s.execute(
                    select(Image.id, Image.source_path, Image.content_hash, Thumbnail.data)
                    .outerjoin(Thumbnail, Image.thumbnail_hash == Thumbnail.content_hash).where(Image.id.in_(chunk))):
                kept = stored_path(ctx.settings, digest)
                out[image_id] = (bool(path and os.path.isabs(path)) or (kept is not None and kept.exists()), data)
    return out


def _picture(ctx, image_id: int, source: tuple[bool, bytes | None] | None):
    """The image's picture (PIL, RGB) from its original file, else its thumbnail; None if neither
    (``source``: :func:`_sources`' row; None: the image is gone)."""
    if source is None:
        return None
    local, thumbnail = source
    picture = original_picture(ctx, image_id, draft_size=geometry.SIDE // 2, draft_long=geometry.SIDE) if local else None
    if picture is not None or thumbnail is None:
        return picture
    try:  # gone, changed, unreadable, in a bucket: the thumbnail
        with PILImage.open(io.BytesIO(thumbnail)) as im:
            return im.convert("RGB")
    except Exception:
        return None


class _Cache:
    def __init__(self, ctx, size: int):
        self.ctx, self.size, self.items = ctx, size, OrderedDict()

    def fill(self, ids, pool) -> None:
        missing = [i for i in dict.fromkeys(ids) if i not in self.items]
        sources = _sources(self.ctx, missing) if missing else {}

        def one(image_id):
            pic = _picture(self.ctx, image_id, sources.get(image_id))
            try:
                return image_id, None if pic is None else geometry.features(pic)
            except Exception:  # a picture too small or odd for keypoints
                return image_id, None

        for image_id, feats in pool.map(one, missing):
            self.items[image_id] = feats
        for i in ids:
            self.items.move_to_end(i)
        while len(self.items) > max(self.size, len(set(ids))):
            self.items.popitem(last=False)


def check(ctx, a: np.ndarray, b: np.ndarray, score: np.ndarray, distance: np.ndarray, *, hash_sure: int,
          progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(verdict, share) per pair of image ids ``(a, b)``: verdict 1 accepted, 0 rejected by the
    rule (:func:`simsearch.analysis.geometry.verify`), :data:`GEOMETRY_RESHOT` rejected as the same
    scene shot again (keypoints agree, pixels differ), :data:`GEOMETRY_UNCHECKED` not checked (not
    needed, or a picture unavailable); share: the check's inlier share (-1 unchecked)."""
    verdict = np.full(len(a), GEOMETRY_UNCHECKED, np.int8)
    share = np.full(len(a), -1.0, np.float32)
    todo = np.flatnonzero(needs_check(score, distance, hash_sure=hash_sure))
    if not len(todo):
        return verdict, share
    say = progress or (lambda done, total: None)
    todo = todo[np.argsort(np.minimum(a[todo], b[todo]), kind="stable")]  # locality for the cache
    cache = _Cache(ctx, CACHE_IMAGES)

    def judge(p):
        fa, fb = cache.items.get(int(a[p])), cache.items.get(int(b[p]))
        if fa is None or fb is None:
            return p, None
        return p, geometry.verify(fa, fb)

    with ThreadPoolExecutor(THREADS, thread_name_prefix="geometry") as pool:
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start:start + CHUNK]
            cache.fill([int(x) for x in np.r_[a[chunk], b[chunk]]], pool)
            for p, v in pool.map(judge, chunk.tolist()):
                if v is not None:
                    verdict[p] = 1 if v.accepted else GEOMETRY_RESHOT if v.reshot else 0
                    share[p] = v.share
            say(min(start + CHUNK, len(todo)), len(todo))
    return verdict, share
