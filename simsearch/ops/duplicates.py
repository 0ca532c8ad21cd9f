"""The duplicate finder: groups of a collection's images in three tiers (no Flask).

- **exact**: files with the same bytes, and the same pixels in files with other bytes (metadata
  rewritten or stripped, a lossless re-save). Ingest stores an image once per collection per
  content hash and keeps every file with its bytes as one of its files (``image_files``): an image
  with several files is a group of byte-identical files (read from ``images.file_count``, no
  vectors needed). A pair of images is exact when its vectors agree (cosine >=
  :data:`EXACT_MIN_COSINE`) and its stored thumbnails decode to identical pixels (a thumbnail's
  pixels are a deterministic function of the image's decoded pixels; its bytes are not quite:
  Pillow copies a JPEG comment into it).
- **near**: the same photo transformed (resized, re-compressed, slightly cropped, flipped):
  cosine >= :data:`NEAR_THRESHOLD`, calibrated on transformed copies.
- **similar**: other photos of similar content: cosine >= a threshold of the user's choosing
  (default :data:`SIMILAR_DEFAULT`, at least :data:`simsearch.limits.DUPLICATES_THRESHOLD_MIN`).

Each tier includes the pairs of the tiers above it. How: the collection's vectors of one space
(the default: the space the thresholds were calibrated in) are searched against the collection's
own FAISS index in blocks, each image's :data:`NEIGHBOURS` nearest (never an N x N matrix); the
pairs at or above the lowest accepted threshold are re-scored exactly, checked for identity, and
kept in the result cache (:mod:`simsearch.store.results`) while the vectors are unchanged. A
request then only groups the cached pairs (union-find, :mod:`simsearch.analysis.duplicates`) at
its tier's threshold and reads the images of the page it shows (every path of each).

Every path of each image: :mod:`simsearch.ops.duplicate_files`. Acting on groups (preview, then
apply "keep one, remove the rest") and exporting them: :mod:`simsearch.ops.duplicate_actions`.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from simsearch import limits
from simsearch.analysis.duplicates import candidate_pairs, groups_from_pairs
from simsearch.errors import InvalidInput
from simsearch.images.phash import METHOD
from simsearch.ops import near_duplicates as near
from simsearch.ops import near_geometry
from simsearch.ops import duplicate_files as files
from simsearch.ops import vectors as vecs
from simsearch.ops.duplicate_results import (DuplicateGroup, DuplicateImage, DuplicatePair, Duplicates, TierCount,
                                             TierThresholds)
from simsearch.store import repo, results
from simsearch.store.models import Image, Thumbnail
from simsearch.store.results import ResultKey

# ---- the thresholds: cosine similarity of L2-normalised efficientnet_lite0 vectors ----------------
# Calibrated by benchmarks/duplicates_calibration.py (its JSON and the README's "Duplicates" have every
# figure): 60 photos of ../shared/datasets (30 cats-dogs, 30 flowers) with 16 copies each, among all
# 700 photos, ingested with the real pipeline (fp32).
# NEAR_THRESHOLD: the near tier's cosine floor for pairs whose perceptual hashes agree
# (simsearch/ops/near_duplicates.py; docs/near-duplicates.md; benchmarks/near_duplicates.py): the lowest
# threshold a user may ask for. Copies below it (grayscale, 15% crops, harsh combinations: cosine down to
# 0.45) are found when their hashes agree to HASH_SURE bits, among the candidates from CANDIDATES up and
# the pairs of (nearly) equal hashes.
NEAR_THRESHOLD = 0.70
# SIMILAR_DEFAULT: a choice, described by measurement: at 0.80, 15% of the photos have a look-alike
# (another photo at or above it); 64% of those share their label.
SIMILAR_DEFAULT = 0.80
# Exact: vectors this close (identical pixels give identical vectors up to float rounding), then
# the thumbnails' pixels decide. Benchmark: 120 of 120 metadata-only copies found, no other pair.
EXACT_MIN_COSINE = 0.9999
# The figures the UI quotes (from the same run).
CALIBRATION = {"photos": 700, "copies": 960, "similar_distinct_share": 0.15, "similar_same_label": 0.64,
               # benchmarks/near_duplicates.py (seed 0): 2,641 photos of flowers102 + oxford-buildings, 60 with 31
               # copies each; the geometric check finds the off-centre, flipped and rotated crops, the widened
               # search every copy of a photo with many (seed 0 after widening: every single transform >= 0.983)
               "near_photos": 2641, "near_single_transforms": 24, "near_single_at_097": 24,
               "near_distinct_share": 0.0106, "near_distinct_most": 3, "old_near_distinct_share": 0.123}

TIERS = ("exact", "near", "similar")
NEIGHBOURS = 16  # each image's nearest others searched for pairs
BLOCK = 1024  # query rows per index search
FLOOR = limits.DUPLICATES_THRESHOLD_MIN  # the lowest threshold a user may ask for
CANDIDATES = 0.60  # nearest-neighbour pairs below it are never kept: below every measured copy but grayscale
# An image whose NEIGHBOURS-th nearest still scores this much has more copies than NEIGHBOURS: it is
# searched again with more (analysis.duplicates.candidate_pairs). Re-encoded, resized or recoloured
# copies score 0.9-1.0 while the nearest *distinct* photos of the shared sets are at 0.75-0.9 (the
# 99th percentile of each photo's most similar other photo is 0.926, and the 16th is far lower).
WIDEN_ABOVE = 0.90
MAX_NEIGHBOURS = 256
FORMAT = "v4"  # part of the cache key: bump when the stored pairs change (v2: hash distances, v3: geometry, v4: widening)
PAIRS_SHOWN = 50  # pairs listed per group (the strongest)

MEANING = {
    "exact": "Same pixels: files with identical bytes (one image, several paths), and files whose bytes differ but "
             "whose pixels do not (the metadata was rewritten or stripped, or the image was re-saved losslessly: "
             "the vectors and the thumbnails' pixels are identical). Keeping one loses nothing.",
    "near": "The same photo, transformed: resized, re-compressed, cropped by a few percent, flipped, slightly "
            "rotated, re-coloured, captioned. Nearest neighbours (cosine at or above the threshold) confirmed by "
            "perceptual hashes of the pictures or by a geometric check of local features (off-centre crops, flipped "
            "crops, rotations); each group is one image and the images confirmed against it, so look-alikes never chain.",
    "similar": "Different photos that look alike (the same scene, a burst, the same kind of subject): cosine "
               "similarity at or above a threshold you choose. Not duplicates: look before deleting.",
}


def parse_tier(tier) -> str:
    if tier not in TIERS:
        raise InvalidInput(f"tier must be one of {', '.join(TIERS)}, not {tier!r}", field="tier")
    return tier


def tier_threshold(tier: str, threshold) -> float:
    """The threshold a tier groups at: the given one (near and similar; checked even for exact,
    which ignores it: identical pixels are identical at any threshold), else the tier's default."""
    parse_tier(tier)
    if threshold is not None:
        threshold = float(limits.check(limits.DuplicatesThreshold, threshold, "threshold"))
    if tier == "exact":
        return EXACT_MIN_COSINE
    if threshold is None:
        return NEAR_THRESHOLD if tier == "near" else SIMILAR_DEFAULT
    return threshold


def thresholds() -> TierThresholds:
    return TierThresholds(exact_min_cosine=EXACT_MIN_COSINE, near=NEAR_THRESHOLD, similar_default=SIMILAR_DEFAULT,
                          minimum=FLOOR)


def calibration_text() -> dict:
    """The calibration's figures in words, for the near and similar thresholds."""
    c = CALIBRATION
    return {
        "near_text": (f"on {c['near_photos']:,} distinct photos (flowers102 and oxford-buildings) with planted copies, "
                      f"{c['near_single_at_097']} of {c['near_single_transforms']} single transforms (resize to 25-50%, "
                      f"JPEG quality 30-90, centred and off-centre crops of 5-15%, flip, 3- and 6-degree rotations, "
                      f"brightness, colour, grayscale, caption, watermark, PNG, WebP) had at least 97% of their copies "
                      f"grouped with the original (centred crops of 10-15%: 87-95%), and {c['near_distinct_share']:.1%} "
                      f"of the distinct photos were grouped with another one, at most {c['near_distinct_most']} in a group "
                      f"(most of them bursts; one cosine threshold grouped {c['old_near_distinct_share']:.0%})."),
        "similar_text": (f"At the default {SIMILAR_DEFAULT:g}, {c['similar_distinct_share']:.0%} of the benchmark's "
                         f"photos had a look-alike, and {c['similar_same_label']:.0%} of those shared their label "
                         f"(cat or dog, flower species)."),
    }


def describe(tier: str, threshold: float) -> str:
    """What a tier at a threshold means, in words (the UI and the CLI show it)."""
    if tier == "near" and threshold == NEAR_THRESHOLD:
        return MEANING["near"] + " Calibrated: " + calibration_text()["near_text"]
    return MEANING[tier]


# ---- the pairs (computed once per set of vectors, cached) --------------------------------------------


def _key(vs: vecs.VectorSet) -> ResultKey:
    return ResultKey(vs.collection_id, vs.space, "duplicates", f"k={NEIGHBOURS};floor={CANDIDATES};{FORMAT};{METHOD}",
                     vs.fingerprint)


class PairSet:
    """The candidate pairs of a collection's vectors: image ids ``a < b``, cosine ``score`` and
    ``exact`` (identical pixels), with the set's ``info`` (images, seconds, index kind)."""

    def __init__(self, collection: str, space: str, info: dict, arrays: dict, cached: bool,
                 collection_id: int | None = None):
        self.collection, self.space, self.info, self.cached = collection, space, info, cached
        self.collection_id = collection_id
        self.a = np.asarray(arrays.get("a", np.zeros(0)), dtype=np.int64)
        self.b = np.asarray(arrays.get("b", np.zeros(0)), dtype=np.int64)
        self.score = np.asarray(arrays.get("score", np.zeros(0)), dtype=np.float32)
        self.exact = np.asarray(arrays.get("exact", np.zeros(0)), dtype=bool)
        self.distance = np.asarray(arrays.get("distance", np.full(len(self.a), -1)), dtype=np.int16)  # hashes
        self.geometry = np.asarray(arrays.get("geometry", np.full(len(self.a), -1)), dtype=np.int8)  # near_geometry
        self.geometry_share = np.asarray(arrays.get("geometry_share", np.full(len(self.a), -1)), dtype=np.float32)


def lookup_pairs(ctx, collection: str, space: str | None) -> PairSet | None:
    """The cached pairs of the collection's current vectors, or None (cheap: never reads vectors)."""
    vs = near.peek(ctx, collection, space)
    hit = results.get(ctx.db, _key(vs))
    return None if hit is None else PairSet(collection, vs.space, hit.info, hit.arrays, True, vs.collection_id)


def pairs(ctx, collection: str, space: str | None, progress=None) -> PairSet:
    """The pairs of the collection's vectors: cached, or computed and stored (seconds to minutes)."""
    vs = near.peek(ctx, collection, space)  # a backbone space: the thresholds' own (never a derived one)
    hit = results.get(ctx.db, _key(vs))
    if hit is not None:
        return PairSet(collection, vs.space, hit.info, hit.arrays, True, vs.collection_id)
    say = progress or (lambda message, done, total: None)
    say("reading the vectors", 0, 5)
    vs = vecs.load(ctx, collection, vs.space)
    t0 = time.perf_counter()
    index = ctx.index(vs.collection_id, vs.space)

    def search(queries: np.ndarray, k: int):
        scores, ids = index.search(queries, k)
        at = np.minimum(np.searchsorted(vs.ids, ids), max(len(vs.ids) - 1, 0))
        rows = np.where((ids >= 0) & (vs.ids[at] == ids), at, -1) if len(vs.ids) else np.full(ids.shape, -1)
        return scores, rows

    def searched(done: int, total: int) -> None:
        say(f"searching each image's {NEIGHBOURS} nearest ({done} of {total})", 1, 5)

    i, j, s = candidate_pairs(vs.x, search, k=NEIGHBOURS, floor=CANDIDATES, block=BLOCK, progress=searched,
                              widen_above=WIDEN_ABOVE, max_k=MAX_NEIGHBOURS)
    i, j, s = near.with_hash_candidates(  # + pairs of (nearly) equal hashes, wherever their vectors are
        ctx, vs, i, j, s,
        progress=lambda done, total: say(f"hashing images stored before hashes were kept ({done} of {total})", 1, 5))
    a, b = vs.ids[i], vs.ids[j]
    vs.x = None  # (the vectors are not needed any more: free them before the thumbnails are read)
    say("checking identical images", 2, 5)
    exact = _identical(ctx, a, b, s)
    say("comparing perceptual hashes", 3, 5)
    distance = near.pair_hash_distances(ctx, vs.collection_id, a, b)
    t1 = time.perf_counter()
    geometry, geo_share = near_geometry.check(
        ctx, a, b, s, distance, hash_sure=near.HASH_SURE,
        progress=lambda done, total: say(f"checking the geometry of pairs the hashes do not settle ({done} of {total})",
                                         4, 5))
    info = {"n_images": len(vs), "pairs": int(len(a)), "neighbours": NEIGHBOURS, "floor": CANDIDATES,
            "index_kind": getattr(index, "kind", None), "seconds": round(time.perf_counter() - t0, 3),
            "geometry_pairs": int((geometry >= 0).sum()), "geometry_seconds": round(time.perf_counter() - t1, 3)}
    arrays = {"a": a, "b": b, "score": s.astype(np.float32), "exact": exact, "distance": distance,
              "geometry": geometry, "geometry_share": geo_share}
    results.put(ctx.db, _key(vs), info, arrays)
    say("done", 5, 5)
    return PairSet(collection, vs.space, info, arrays, False, vs.collection_id)


def _pixels_digest(thumbnail: bytes) -> str | None:
    """The digest of a stored thumbnail's decoded pixels (its bytes may also carry the source's JPEG
    comment, which Pillow writes along: not part of the picture)."""
    import io

    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(thumbnail)) as im:
            im.load()
            return hashlib.sha256(f"{im.mode}{im.size}".encode() + im.tobytes()).hexdigest()
    except Exception:  # an unreadable thumbnail: nothing to compare
        return None


def _identical(ctx, a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Which pairs have identical pixels as far as the store can tell: vectors at least
    :data:`EXACT_MIN_COSINE` alike and thumbnails of identical pixels."""
    out = np.zeros(len(a), dtype=bool)
    close = np.flatnonzero(s >= np.float32(EXACT_MIN_COSINE))
    if not len(close):
        return out
    ids = sorted({int(x) for x in np.concatenate([a[close], b[close]])})
    digest: dict[int, str] = {}
    with ctx.db.session() as sess:
        for chunk in repo.in_chunks(ids):
            for image_id, data in sess.execute(select(Image.id, Thumbnail.data)
                                               .join(Thumbnail, Thumbnail.content_hash == Image.thumbnail_hash)
                                               .where(Image.id.in_(chunk))):
                digest[image_id] = _pixels_digest(data)
    for p in close:
        da, db_ = digest.get(int(a[p])), digest.get(int(b[p]))
        out[p] = da is not None and da == db_
    return out


# ---- groups (per request, from the cached pairs and the files) ---------------------------------


@dataclass
class DupGroup:
    """One group of a tier: its images (ids, ascending), its strongest pairs (image id a, image id b,
    similarity, identical pixels), and, once known, how many files its images have."""

    images: list[int]
    pairs: list[tuple[int, int, float, bool]]
    pairs_total: int
    max_similarity: float
    min_similarity: float
    files: int = 0
    identical_files: bool = False  # some image of it has byte-identical files (several paths)


def _groups(ps: PairSet, tier: str, threshold: float):
    ids = np.unique(np.concatenate([ps.a, ps.b])) if len(ps.a) else np.zeros(0, np.int64)
    i, j = np.searchsorted(ids, ps.a), np.searchsorted(ids, ps.b)
    if tier != "exact":  # verified pairs around representatives: no chains
        return near.tier_groups(len(ids), i, j, ps.score, ps.distance, tier, threshold, NEAR_THRESHOLD,
                                geometry=ps.geometry), ids
    return groups_from_pairs(len(ids), i, j, ps.score, np.float32(-1.0), mask=ps.exact), ids


def _pair_groups(ps: PairSet, tier: str, threshold: float) -> list[DupGroup]:
    """The groups of images joined by the tier's pairs (the near and similar tiers; the exact
    tier's identical pixels), largest first."""
    found, ids = _groups(ps, tier, threshold)
    out = []
    for g in found:
        pairs = [(int(ids[x]), int(ids[y]), float(sc), bool(ps.exact[p]))
                 for x, y, sc, p in zip(g.pair_i[:PAIRS_SHOWN], g.pair_j[:PAIRS_SHOWN], g.pair_scores[:PAIRS_SHOWN],
                                        g.pair_index[:PAIRS_SHOWN])]
        out.append(DupGroup([int(ids[m]) for m in g.members], pairs, int(len(g.pair_i)), g.max_score, g.min_score))
    return out


def collection_id_of(ctx, ps: PairSet) -> int:
    if ps.collection_id is None:
        with ctx.db.session() as s:
            ps.collection_id = repo.get_collection(s, ps.collection).id
    return ps.collection_id


def _exact_groups(ctx, ps: PairSet) -> list[DupGroup]:
    """The exact tier: images with identical pixels (confirmed pairs), and images with
    byte-identical files (one image, several paths; ingest stores their bytes once), most files
    first. An image with copies that has identical-pixel siblings is in their group."""
    pixel = _pair_groups(ps, "exact", EXACT_MIN_COSINE)
    grouped = {i for g in pixel for i in g.images}
    counts = files.file_counts(ctx, collection_id_of(ctx, ps), grouped)
    out = pixel + [DupGroup([i], [], 0, 1.0, 1.0) for i in sorted(counts) if counts[i] > 1 and i not in grouped]
    for g in out:
        g.files = sum(counts.get(i, 1) for i in g.images)
        g.identical_files = any(counts.get(i, 1) > 1 for i in g.images)
    out.sort(key=lambda g: (-g.files, -len(g.images), g.images[0]))
    return out


def tier_groups(ctx, ps: PairSet, tier: str, threshold: float) -> list[DupGroup]:
    """Every group of a tier (at ``threshold``, see :func:`tier_threshold`), in the order pages show them."""
    if tier == "exact":
        return _exact_groups(ctx, ps)
    return _pair_groups(ps, tier, threshold)


def tier_counts(ps: PairSet, ctx=None) -> dict[str, TierCount]:
    """Groups, grouped images (and for exact, with ``ctx``, files) of each tier at its default threshold."""
    out = {}
    for tier in TIERS:
        if tier == "exact" and ctx is not None:
            groups = _exact_groups(ctx, ps)
            out[tier] = TierCount(groups=len(groups), images=sum(len(g.images) for g in groups),
                                  files=sum(g.files for g in groups))
            continue
        groups, _ = _groups(ps, tier, tier_threshold(tier, None))
        out[tier] = TierCount(groups=len(groups), images=int(sum(g.size for g in groups)))
    return out


def check_page(page: int, per_page: int | None) -> None:
    limits.check(limits.Page, page, "page")
    if per_page is not None:
        limits.check(limits.PerPage, per_page, "per_page")


def groups(ctx, ps: PairSet, *, tier: str = "near", threshold=None, page: int = 1,
           per_page: int | None = limits.PER_PAGE_DEFAULT, path_view=None) -> Duplicates:
    """One page of a tier's groups, largest first: each with its images (id, first path, every
    file, label, size, thumbnail) and its strongest pairs. ``per_page`` None: every group on one
    page. ``path_view(path, ingest source)``: how paths are shown (the API hides server paths)."""
    tier = parse_tier(tier)
    t = tier_threshold(tier, threshold)
    check_page(page, per_page)
    found = tier_groups(ctx, ps, tier, t)
    per_page = per_page or max(1, len(found))
    shown = found[(page - 1) * per_page: page * per_page]
    rows = files.image_rows(ctx, {i for g in shown for i in g.images})
    out_groups = []
    for n, g in enumerate(shown, start=(page - 1) * per_page + 1):
        members = [files.public_image(rows[i], path_view) for i in g.images if i in rows]  # (deleted since: left out)
        pair_rows = [DuplicatePair(a=a, b=b, similarity=round(sc, 6), identical=ident) for a, b, sc, ident in g.pairs]
        out_groups.append(DuplicateGroup[DuplicateImage](group=n, size=len(members), files=sum(m.file_count for m in members),
                                         identical_files=any(m.file_count > 1 for m in members),
                                         max_similarity=round(g.max_similarity, 6),
                                         min_similarity=round(g.min_similarity, 6),
                                         images=members, pairs=pair_rows, pairs_total=g.pairs_total))
    total = len(found)
    return Duplicates(collection=ps.collection, backbone=ps.space, tier=tier,
                      threshold=None if tier == "exact" else round(t, 6),
                      meaning=describe(tier, t), thresholds=thresholds(),
                      n_images=int(ps.info.get("n_images", 0)), total_groups=total,
                      grouped_images=int(sum(len(g.images) for g in found)), tiers=tier_counts(ps, ctx),
                      page=page, per_page=per_page, pages=max(1, math.ceil(total / per_page)),
                      groups=out_groups, cached=ps.cached, seconds=ps.info.get("seconds"))


def find(ctx, collection: str, space: str | None = None, *, tier: str = "near", threshold=None, page: int = 1,
         per_page: int | None = limits.PER_PAGE_DEFAULT, progress=None) -> Duplicates:
    """Pairs (cached or computed now) and one page of a tier's groups: the CLI's and the benchmark's call."""
    tier = parse_tier(tier)
    tier_threshold(tier, threshold)  # bad input fails before the computation
    check_page(page, per_page)
    return groups(ctx, pairs(ctx, collection, space, progress), tier=tier, threshold=threshold, page=page,
                  per_page=per_page)
