"""The near and similar tiers of the duplicate finder (:mod:`simsearch.ops.duplicates`): which
space their thresholds hold in, the perceptual hashes of the candidate pairs, and the groups.

- **The space.** The near tier's cosine constants were measured in the raw space of the default
  backbone (efficientnet_lite0 vectors, L2-normalised). A derived space (``simsearch tune
  --set-default``: a supervised projection to 8 dimensions, a concatenation) has other cosines:
  there the same thresholds grouped 3,976 of 4,011 photos into one group. So the duplicate finder
  always works in a *backbone* space: the one asked for or the collection's default, and when that
  is a derived space, the backbone it is made from (:func:`peek`).
- **The hashes.** Images ingested since migration 0008 have their perceptual hashes
  (:mod:`simsearch.images.phash`) stored; images stored before are hashed from their stored
  thumbnails the first time the pairs are computed (:func:`pair_hash_distances`, with progress,
  a few milliseconds an image on a few threads), and stored, so it happens once.
- **The groups.** Near: candidate pairs verified by hashes (or a strict cosine where hashes fail),
  grouped around representatives (:mod:`simsearch.analysis.near_duplicates`). Similar: pairs at or
  above the user's cosine threshold, grouped around representatives too (no chains of look-alikes).
"""

from __future__ import annotations

import numpy as np

from simsearch import derived
from simsearch.images import phash
from simsearch.ops import vectors as vecs
from simsearch.store import hashes as stored_hashes
from simsearch.store import repo
from simsearch.store.models import Image, Thumbnail

# ---- the constants (benchmarks/near_duplicates.py measures them; docs/near-duplicates.md) ----------
# HASH_MAX: two pictures whose hashes differ in at most this many of 64 bits (over the hash pairs of
# hash_distance) are the same picture. Chosen from the distribution of distances between *distinct*
# photos: for 3.5M pairs of the 2,641 photos of flowers102 and oxford-buildings, 42 (1.2e-5) are at
# 10 or below (most of them real duplicates), and for independent random bits the chance is 2e-6;
# every single transform but rotation and off-centre crops puts 97% of its copies at 8 or below.
HASH_MAX = 10
# STRICT_COSINE: a pair this alike is a near-duplicate without agreeing hashes (hashes miss
# rotations and off-centre crops). Set above the 99.9th percentile of the cosine between a photo and
# its most similar *distinct* photo (see the benchmark).
STRICT_COSINE = 0.93


def peek(ctx, collection: str, space: str | None) -> vecs.VectorSet:
    """The ids of the backbone space the duplicate finder compares (see the module's docstring):
    ``space`` or the collection's default, replaced by its base backbone when it is derived."""
    vs = vecs.peek(ctx, collection, space)
    d = derived.get(ctx, vs.collection_id, vs.space)
    if d is None:
        return vs
    bases = list(d.bases)
    base = ctx.settings.default_backbone if ctx.settings.default_backbone in bases else bases[0]
    return vecs.peek(ctx, collection, base)


def _backfill(ctx, ids: list[int], progress) -> None:
    """Hash the stored thumbnails of ``ids`` (images stored before hashes were kept) and store them."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import select

    def one(item):
        image_id, data = item
        try:
            return image_id, phash.to_bytes(phash.thumbnail_hashes(data))
        except Exception:  # an unreadable thumbnail: the pair is judged by its cosine alone
            return image_id, None

    done = 0
    with ThreadPoolExecutor(4, thread_name_prefix="phash") as pool:
        for chunk in repo.in_chunks(ids, 500):
            with ctx.db.session() as s:
                rows = s.execute(select(Image.id, Thumbnail.data)
                                 .join(Thumbnail, Thumbnail.content_hash == Image.thumbnail_hash)
                                 .where(Image.id.in_(chunk))).all()
            found = {i: h for i, h in pool.map(one, rows) if h is not None}
            with ctx.db.session() as s:
                stored_hashes.store(s, found, phash.METHOD, replace=True)
                s.commit()
            done += len(chunk)
            progress(done, len(ids))


def pair_hash_distances(ctx, collection_id: int, a: np.ndarray, b: np.ndarray, progress=None) -> np.ndarray:
    """The hash distance of each pair ``(a, b)`` of image ids (-1 where one has no hashes); images
    without hashes (stored before they were kept) are hashed from their thumbnails first."""
    from simsearch.analysis.near_duplicates import pair_hash_distance

    say = progress or (lambda done, total: None)
    with ctx.db.session() as s:
        have, _ = stored_hashes.of_collection(s, collection_id, phash.METHOD, phash.N_HASHES)
    involved = np.unique(np.concatenate([a, b])) if len(a) else np.zeros(0, np.int64)
    missing = np.setdiff1d(involved, have)
    if len(missing):
        _backfill(ctx, [int(x) for x in missing], say)
    with ctx.db.session() as s:
        have, hashes = stored_hashes.of_collection(s, collection_id, phash.METHOD, phash.N_HASHES)
    if not len(have) or not len(a):
        return np.full(len(a), -1, np.int16)
    ra = np.minimum(np.searchsorted(have, a), len(have) - 1)
    rb = np.minimum(np.searchsorted(have, b), len(have) - 1)
    known = np.zeros(len(have) + 1, bool)
    known[:len(have)] = True
    ra = np.where(have[ra] == a, ra, len(have))
    rb = np.where(have[rb] == b, rb, len(have))
    table = np.concatenate([hashes, np.zeros((1, phash.N_HASHES), np.uint64)])
    return pair_hash_distance(table, known, ra, rb)


def tier_groups(n: int, i: np.ndarray, j: np.ndarray, score: np.ndarray, distance: np.ndarray | None,
                tier: str, threshold: float):
    """The groups of the near or similar tier over the cached pairs (rows ``i``, ``j`` of ``n``)."""
    from simsearch.analysis.near_duplicates import representative_groups, verify

    if tier == "near":
        d = distance if distance is not None else np.full(len(i), -1, np.int16)
        mask = verify(score, d, floor=threshold, hash_max=HASH_MAX, strict=max(STRICT_COSINE, threshold))
    else:
        mask = score >= np.float32(threshold)
    return representative_groups(n, i, j, score, mask=mask)
