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
  thumbnails the first time the pairs are computed (:func:`with_hash_candidates`, with progress,
  a few milliseconds an image on 4 threads), and stored, so it happens once.
- **The candidates.** Each image's nearest neighbours at cosine >= the near floor, and the pairs
  whose whole-picture hashes are at most :data:`HASH_SURE` bits apart (found from the hashes:
  a grayscale copy's vectors can be farther apart than a look-alike's).
- **The geometric check.** The candidate pairs at cosine >= 0.80 the hashes do not settle (more
  than HASH_SURE bits apart) are checked with local features (:mod:`simsearch.ops.near_geometry`,
  :mod:`simsearch.analysis.geometry`): off-centre crops, crops of flipped copies, rotations.
- **The groups.** Near: candidate pairs verified by hashes or by the geometric check (a strict
  cosine only where a pair could not be checked), grouped around representatives
  (:mod:`simsearch.analysis.near_duplicates`). Similar: pairs at or
  above the user's cosine threshold, grouped around representatives too (no chains of look-alikes).
"""

from __future__ import annotations

import numpy as np

from simsearch import derived
from simsearch.analysis.near_duplicates import (HASH_MAX, contains, hash_candidates, pair_hash_distance,
                                               representative_groups, verify)
from simsearch.images import phash
from simsearch.ops import vectors as vecs
from simsearch.store import hashes as stored_hashes
from simsearch.store import repo
from simsearch.store.models import Image, Thumbnail

# ---- the constants (benchmarks/near_duplicates.py measures them; docs/near-duplicates.md) ----------
# HASH_MAX (imported above: simsearch.analysis.near_duplicates, shared with the search's close-copy answer).
# HASH_SURE: at most this many bits apart, the pictures are the same whatever the cosine (a grayscale
# or strongly re-coloured copy's vectors move far: cosine down to 0.45). Among the 3.5M pairs of
# distinct photos of that calibration, one is at 4 bits or fewer and none at 2 (random bits: 1e-16); such pairs
# are found from the hashes themselves (:func:`simsearch.analysis.near_duplicates.hash_candidates`).
HASH_SURE = 2
# STRICT_COSINE: a pair this alike is a near-duplicate without agreeing hashes when the geometric check
# could not look at it (a picture unavailable: simsearch/ops/near_geometry.py; checked pairs take its verdict). Set above the 99.9th percentile of the cosine between a photo and
# its most similar *distinct* photo (0.926 on flowers102 + oxford-buildings; the pairs above it are
# mostly bursts: benchmark).
STRICT_COSINE = 0.93
# CONFIRM_WEAK: a pair whose hashes agree only weakly (HASH_SURE < distance <= HASH_MAX) is refused when
# the geometric check found the same rigid scene whose pixels differ (a re-shot: photos of one building
# from one spot on other days pass the hashes). A pair the check rejects for its keypoints (a caption
# over a third of the picture leaves too few) keeps the hashes' word. docs/near-duplicates.md.
CONFIRM_WEAK = True


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


def _hashes(ctx, collection_id: int, ids: np.ndarray, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(ids with hashes, their hashes) of the collection, after hashing those of ``ids`` that have
    none (from their thumbnails)."""
    say = progress or (lambda done, total: None)
    with ctx.db.session() as s:
        have, hashes = stored_hashes.of_collection(s, collection_id, phash.METHOD, phash.N_HASHES)
    missing = np.setdiff1d(np.asarray(ids, np.int64), have)
    if not len(missing):
        return have, hashes
    _backfill(ctx, [int(x) for x in missing], say)
    with ctx.db.session() as s:
        return stored_hashes.of_collection(s, collection_id, phash.METHOD, phash.N_HASHES)


def with_hash_candidates(ctx, vs: vecs.VectorSet, i: np.ndarray, j: np.ndarray, s: np.ndarray,
                         progress=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidate pairs (rows of ``vs``, vectors loaded) and the pairs whose whole-picture hashes
    are at most :data:`HASH_SURE` apart, scored from the vectors, each once."""
    have, hashes = _hashes(ctx, vs.collection_id, vs.ids, progress)
    at = np.minimum(np.searchsorted(have, vs.ids), max(len(have) - 1, 0))
    known = np.flatnonzero(have[at] == vs.ids) if len(have) else np.zeros(0, np.int64)
    hi, hj, _ = hash_candidates(hashes[at[known], 0], max_distance=HASH_SURE)
    if not len(hi):
        return i, j, s
    hi, hj = known[hi], known[hj]
    hs = np.einsum("ij,ij->i", vs.x[hi], vs.x[hj]).astype(np.float32)
    n = len(vs.ids)
    old = i * n + j
    new = ~contains(np.sort(old), hi * n + hj)
    return np.r_[i, hi[new]], np.r_[j, hj[new]], np.r_[s, hs[new]].astype(np.float32)


def pair_hash_distances(ctx, collection_id: int, a: np.ndarray, b: np.ndarray, progress=None) -> np.ndarray:
    """The hash distance of each pair ``(a, b)`` of image ids (-1 where one has no hashes); images
    without hashes (stored before they were kept) are hashed from their thumbnails first."""
    involved = np.unique(np.concatenate([a, b])) if len(a) else np.zeros(0, np.int64)
    have, hashes = _hashes(ctx, collection_id, involved, progress)
    if not len(have) or not len(a):
        return np.full(len(a), -1, np.int16)
    # rows of the table: the images with hashes, then one "unknown" row
    ra, rb = (np.minimum(np.searchsorted(have, x), len(have) - 1) for x in (a, b))
    ra, rb = np.where(have[ra] == a, ra, len(have)), np.where(have[rb] == b, rb, len(have))
    known = np.r_[np.ones(len(have), bool), False]
    table = np.concatenate([hashes, np.zeros((1, phash.N_HASHES), np.uint64)])
    return pair_hash_distance(table, known, ra, rb)


def tier_groups(n: int, i: np.ndarray, j: np.ndarray, score: np.ndarray, distance: np.ndarray | None,
                tier: str, threshold: float, near_floor: float = 0.60, geometry: np.ndarray | None = None):
    """The groups of the near or similar tier over the cached pairs (rows ``i``, ``j`` of ``n``);
    ``near_floor``: the near tier's default threshold; ``geometry``: the geometric check's verdicts
    (:func:`simsearch.ops.near_geometry.check`; None: pairs cached before it existed)."""
    if tier == "near":
        # at the default floor, pictures whose hashes agree to HASH_SURE bits are near-duplicates at any
        # cosine; a threshold the user gives (>= 0.70, above the floor) is one every near pair must reach
        d = distance if distance is not None else np.full(len(i), -1, np.int16)
        sure = HASH_SURE if threshold <= near_floor else -1
        mask = verify(score, d, floor=threshold, hash_max=HASH_MAX, strict=max(STRICT_COSINE, threshold),
                      hash_sure=sure, geometry=geometry, confirm_weak=CONFIRM_WEAK)
    else:
        mask = score >= np.float32(threshold)
    return representative_groups(n, i, j, score, mask=mask)
