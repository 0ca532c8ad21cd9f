"""Geometric verification of a search by image: the top candidates of the ranking are checked for
the query's picture with local features and a homography (Philbin et al. 2007), and those that
hold it rank first.

A photo of a painting on a wall, of a print on a desk or of a façade seen from elsewhere shares
its global CNN vector with many look-alikes; local features matched under one plane-to-plane
mapping (:mod:`simsearch.images.local_features`) tell the very picture from the look-alikes. The
fused ranking (whole image and object proposals, :func:`simsearch.search.search_image`) chooses
the :data:`CANDIDATES` candidates; each is verified against the query's features. Candidates with
at least :data:`MIN_INLIERS` inliers are *verified*: they come first, by inliers (more first);
the others keep their order after them. A close copy is verified too (with many inliers), so it
stays first; an ordinary photo of the same species or subject is not, so same-class retrieval
keeps its order.

Candidate features are stored at ingest (``image_features``); an image stored before has them
extracted from its original file the first time a search verifies it, and stored. An image
without a readable original is left unverified (it keeps its place).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from simsearch.analysis.regions import pixel_box
from simsearch.errors import InvalidInput
from simsearch.images import THUMBNAIL_SIDE, decode_image
from simsearch.images import local_features as LF
from simsearch.images import local_votes
from simsearch.index import descriptors as descriptor_index
from simsearch.ops.originals import original_picture
from simsearch.store import features as stored

# The candidates verified: the fused ranking's best this many (each costs one match and one
# homography fit, ~2-5 ms on one core of the development machine; docs/region-search.md gives
# the in-context benchmark's recall of the target within the top 10 / 20 / 50).
CANDIDATES = 20
# Inliers a candidate needs to count as the same picture, calibrated on 5,256 pairs of distinct
# photos (benchmarks/verify_calibration.py: different flowers102 photos of one species and of
# different species, photos of different oxford-buildings landmarks): 99.9% of them reach at most
# 6, and 2 pairs (0.04%, both of one species' photos) reach 12 or more: a false-accept rate under
# 0.1%. The wall photos' targets reach 11 to 150 (a picture of ~100 px in a small photo gives few).
MIN_INLIERS = 12
# Candidates by local features (:func:`local_candidates`): the images with the most votes of the
# query's keypoints (each keypoint's nearest stored descriptor, ratio-tested), at most this many,
# each with at least this many votes (docs/region-search.md, "Candidates by local features").
LOCAL_CANDIDATES = 5
LOCAL_MIN_VOTES = 5
# ``local`` is on by default where at least this share of a collection's images have stored features.
LOCAL_AUTO_SHARE = 0.9
# Verification of local candidates (:func:`verify_in_vote_order`) stops at a candidate with at least
# this many inliers whose votes are at least CLEAR_VOTES times the next one's.
CLEAR_INLIERS = 3 * MIN_INLIERS
CLEAR_VOTES = 2.0
# Helper threads of a process (the local path of concurrent searches), and FAISS's OpenMP threads in each.
HELPER_THREADS = 4
FAISS_THREADS = 1
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
# The query's keypoints are found on a copy this fraction of its decoded size (at most
# local_features.MAX_SIDE). OpenCV's SIFT doubles the image first, so half the size would cost about
# a quarter, but on the wall photos it found a third of the keypoints and verified half the targets
# where the decoded size verified 95% (0.75: 80%; docs/region-search.md).
QUERY_SCALE = 1.0
# JPEGs are decoded at a reduced scale keeping the short side at least this (the default
# backbone's input, as ingest and a search decode them): the features of a query and of a stored
# image then come from pictures of about the same detail.
DECODE_SIDE = 224


def local_default(ctx, collection_id: int) -> bool:
    """``local``'s default for a search of this collection: on where images' features are stored at
    ingest (``SIMSEARCH_LOCAL_FEATURES``), or where at least :data:`LOCAL_AUTO_SHARE` of the
    collection's images have stored features (stored after ingest: ``simsearch features``); off
    elsewhere (the query's SIFT would search an index holding few of the images)."""
    return bool(ctx.settings.local_features) or ctx.descriptor_coverage(collection_id) >= LOCAL_AUTO_SHARE


def check_verify(value, field: str = "verify") -> bool:
    """Whether to verify: a boolean (or ``'true'``/``'false'``/``'1'``/``'0'``...), else
    :class:`InvalidInput` naming ``field``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "1", "yes", "on", "false", "0", "no", "off"}:
        return value.strip().lower() in {"true", "1", "yes", "on"}
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise InvalidInput(f"{field} must be true or false (verify the top results' geometry or not), got {value!r}",
                       field=field)


def query_features(ctx, data: bytes, source: str, box=None, scale: float | None = None) -> LF.LocalFeatures:
    """The query's features, decoded as :func:`simsearch.search.embed_query` decodes it (inside
    ``box`` when one is given), found on a copy ``scale`` (default :data:`QUERY_SCALE`) times its size."""
    settings = ctx.settings
    img = decode_image(data, source=source, max_pixels=settings.max_pixels, draft_size=DECODE_SIDE,
                       draft_long=THUMBNAIL_SIDE, max_decoded_pixels=min(settings.search_max_pixels, settings.max_pixels))
    g = LF.grey_of(img.image)
    if box is not None:
        x0, y0, x1, y1 = pixel_box(box, g.shape[1], g.shape[0])
        g = np.ascontiguousarray(g[y0:y1, x0:x1])
    side = min(LF.MAX_SIDE, max(16, round(max(g.shape) * (QUERY_SCALE if scale is None else scale))))
    return LF.extract(g, side, LF.N_QUERY, LF.DEFAULT_KIND)


def local_votes_of(ctx, collection_id: int, query: LF.LocalFeatures) -> tuple[list[int], list[int]]:
    """Images of the collection chosen by the query's keypoints (:func:`simsearch.images.local_votes.votes`
    over the collection's descriptor index) and their votes: the :data:`LOCAL_CANDIDATES` with the
    most votes, each with at least :data:`LOCAL_MIN_VOTES`; none when no image has stored features."""
    index = ctx.descriptor_index(collection_id)
    if index is None or len(query) == 0:
        return [], []
    D, I = descriptor_index.search(index, query.desc)
    ids, counts = local_votes.votes(D, I)
    keep = counts >= LOCAL_MIN_VOTES
    return [int(i) for i in ids[keep][:LOCAL_CANDIDATES]], [int(c) for c in counts[keep][:LOCAL_CANDIDATES]]


def local_candidates(ctx, collection_id: int, query: LF.LocalFeatures) -> list[int]:
    """The images of :func:`local_votes_of`, most votes first."""
    return local_votes_of(ctx, collection_id, query)[0]


def verify_in_vote_order(ctx, query: LF.LocalFeatures, ids: list[int], counts: list[int]) -> dict[int, int]:
    """The candidates ``ids`` (most ``counts`` of votes first) verified in that order: ``{image id:
    inliers}`` of those with at least :data:`MIN_INLIERS`, most inliers first. It stops at a clear
    winner (:data:`CLEAR_INLIERS` inliers or more, and :data:`CLEAR_VOTES` times the votes of the
    next candidate): the others are not verified (they keep the vectors' order)."""
    if not ids or len(query) == 0:
        return {}
    feats = candidate_features(ctx, ids)
    found: dict[int, int] = {}
    for n, i in enumerate(ids):
        inliers = LF.verify(query, feats[i]).inliers if i in feats else 0
        if inliers >= MIN_INLIERS:
            found[i] = inliers
            if clear_winner(inliers, counts, n):
                break
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))


def clear_winner(inliers: int, counts: list[int], n: int) -> bool:
    """Whether the ``n``-th candidate by votes (``counts``), verified with ``inliers``, is a clear
    winner: at least :data:`CLEAR_INLIERS` inliers and :data:`CLEAR_VOTES` times the next one's votes."""
    return inliers >= CLEAR_INLIERS and (n + 1 == len(counts) or counts[n] >= CLEAR_VOTES * counts[n + 1])


def local_verified(ctx, collection_id: int, data: bytes, source: str, box=None) -> tuple[dict[int, int], bool]:
    """The whole local path of a search by upload, for a thread beside the model's forward: the
    query's features, its candidates by local features and their verification
    (:func:`verify_in_vote_order`): ``{image id: inliers}`` of the verified, most inliers first;
    and whether the first by votes is a :func:`clear_winner`."""
    query = query_features(ctx, data, source, box)
    ids, counts = local_votes_of(ctx, collection_id, query)
    found = verify_in_vote_order(ctx, query, ids, counts)
    return found, bool(ids) and ids[0] in found and clear_winner(found[ids[0]], counts, 0)


def run_beside(fn, *args, **kw) -> Future:
    """``fn(*args, **kw)`` on this process's pool of helper threads (:data:`HELPER_THREADS`): OpenCV,
    FAISS and the model's runtime release the GIL, so the local path runs beside the forward."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(HELPER_THREADS, thread_name_prefix="simsearch-local",
                                       initializer=_one_faiss_thread)
    return _POOL.submit(fn, *args, **kw)


def _one_faiss_thread() -> None:
    """A helper thread searches with one OpenMP thread (the forward holds the other core; OpenMP's
    spin-waiting on a busy core costs more than it saves)."""
    import faiss

    faiss.omp_set_num_threads(FAISS_THREADS)


def features_from_original(ctx, image_id: int) -> bytes | None:
    """An image's features extracted from its original file (decoded as ingest decodes it), or
    None when the file cannot be read or decoded."""
    picture = original_picture(ctx, image_id, draft_size=DECODE_SIDE, draft_long=THUMBNAIL_SIDE)
    return None if picture is None else LF.serialise(LF.of_picture(picture))


def candidate_features(ctx, image_ids: list[int]) -> dict[int, LF.LocalFeatures]:
    """The stored features of these images; those without (or with stale ones) are extracted from
    their originals and stored first."""
    with ctx.db.session() as s:
        found, stale = stored.of_images(s, image_ids, LF.METHOD)
    missing = [i for i in image_ids if i not in found]
    if missing:
        new = {i: b for i in missing if (b := features_from_original(ctx, i)) is not None}
        if new:
            with ctx.db.session() as s:
                stored.store(s, new, LF.METHOD, replace=bool(stale & set(new)))
            found.update(new)
    return {i: LF.deserialise(b) for i, b in found.items()}


def rerank(query: LF.LocalFeatures, hits: list, feats: dict[int, LF.LocalFeatures],
           min_inliers: int = MIN_INLIERS) -> tuple[list, dict[int, int]]:
    """``hits`` (objects with ``image_id``, best first) with the verified ones first (by inliers,
    more first; ties keep their order) and the others after them in their order; and the inliers
    of each hit verified."""
    inliers = {h.image_id: LF.verify(query, feats[h.image_id]).inliers for h in hits if h.image_id in feats}
    good = [h for h in hits if inliers.get(h.image_id, 0) >= min_inliers]
    good.sort(key=lambda h: -inliers[h.image_id])
    ids = {h.image_id for h in good}
    return good + [h for h in hits if h.image_id not in ids], inliers


def verified_hits(ctx, query: LF.LocalFeatures, hits: list, k: int, *, fused: bool = True, local=(),
                  extra: list = ()) -> list:
    """``hits`` (the vectors' ranking) re-ranked by verification, the first ``k``: the top
    :data:`CANDIDATES` of ``hits`` (``fused``), those in ``local`` (candidates by local features)
    and ``extra`` (the hits of local candidates outside ``hits``) are verified against ``query``;
    the verified come first by inliers (:func:`rerank`), then the rest of ``hits`` in their order
    (an ``extra`` hit that is not verified is left out)."""
    local = set(local)
    check = [h for n, h in enumerate(hits) if (fused and n < CANDIDATES) or h.image_id in local] + list(extra)
    if not check or len(query) == 0:
        return hits[:k]
    ranked, inliers = rerank(query, check, candidate_features(ctx, [h.image_id for h in check]))
    good = [h for h in ranked if inliers.get(h.image_id, 0) >= MIN_INLIERS]
    ids = {h.image_id for h in good}
    return (good + [h for h in hits if h.image_id not in ids])[:k]
