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
from simsearch.errors import ImageDecodeError, InvalidInput
from simsearch.images import THUMBNAIL_SIDE, DecodedImage, decode_image
from simsearch.images.decode import is_large, release_memory
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
# The query's first pass finds its keypoints on a copy this fraction of its decoded size (at most
# local_features.MAX_SIDE; OpenCV's SIFT doubles the image first). Since the closer look verifies small
# pictures at the file's resolution, the first pass only has to vote the picture's image into the first
# CLOSE_LOOKS, so a 0.75 copy was tried (SIFT and the descriptor search a third cheaper; the default's
# median 11-12% lower): it verified as many wall targets as 1.0 on the development set, but on held-out
# seed 7 the wall mAP@5 fell to 0.925 (0.967 at 1.0): the smallest pictures kept 0-1 votes, under
# CLOSE_MIN_VOTES (0.6 / 0.5 lost 3 / 11 more of the 60 development photos). Not kept
# (docs/region-search.md, "A cheaper first pass").
QUERY_SCALE = 1.0
# The strongest keypoints kept of the query's copy (500 at the decoded size lost 2 of 60 development
# wall photos and saved less than the 0.75 copy).
QUERY_KEYPOINTS = LF.N_QUERY
# JPEGs are decoded at a reduced scale keeping the short side at least this (the default
# backbone's input, as ingest and a search decode them): the features of a query and of a stored
# image then come from pictures of about the same detail.
DECODE_SIDE = 224
# A closer look (:func:`closer_look`) at the first CLOSE_LOOKS images by votes (each with at least
# CLOSE_MIN_VOTES: the fewest keypoints that span an area), in that order, up to the first verified: a small
# picture in a photo (a fifth to a half of its width: 60-160 px of the decoded query) keeps too few
# keypoints for MIN_INLIERS, but its votes say where it is. The region of its voters (those in the
# window of CLOSE_WINDOW of each side that holds the most of them: chance votes scatter over the
# photo, and a picture that needs a closer look is at most about half of it; their bounding box,
# each side moved out by CLOSE_GROW times its size, at least CLOSE_LEAST of the query's side each
# way: a few votes on one corner of the picture still take in the rest of it) is decoded from the
# upload at up to CLOSE_SIDE px long (the file's own pixels, not the draft-decoded copy), its
# keypoints found again and the image verified with them (the same MIN_INLIERS). Chosen by
# reasoning, not tuned on the benchmark's sets (docs/region-search.md, "A closer look").
CLOSE_LOOKS = 2
CLOSE_MIN_VOTES = 3
CLOSE_WINDOW = 0.5
CLOSE_GROW = 0.5
CLOSE_LEAST = 1 / 3
CLOSE_SIDE = LF.MAX_SIDE


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


def decoded_query(ctx, data: bytes, source: str) -> DecodedImage:
    """The upload decoded as a search decodes it (a JPEG's short side reduced to about
    :data:`DECODE_SIDE`); :func:`simsearch.search.search_image_staged` may share it."""
    settings = ctx.settings
    return decode_image(data, source=source, max_pixels=settings.max_pixels, draft_size=DECODE_SIDE,
                        draft_long=THUMBNAIL_SIDE, max_decoded_pixels=min(settings.search_max_pixels, settings.max_pixels))


def _grey(img: DecodedImage, box) -> np.ndarray:
    g = LF.grey_of(img.image)
    if box is not None:
        x0, y0, x1, y1 = pixel_box(box, g.shape[1], g.shape[0])
        g = np.ascontiguousarray(g[y0:y1, x0:x1])
    return g


def _extract(g: np.ndarray, scale: float | None = None) -> LF.LocalFeatures:
    side = min(LF.MAX_SIDE, max(16, round(max(g.shape) * (QUERY_SCALE if scale is None else scale))))
    return LF.extract(g, side, QUERY_KEYPOINTS, LF.DEFAULT_KIND)


def query_features(ctx, data: bytes, source: str, box=None, scale: float | None = None) -> LF.LocalFeatures:
    """The query's features, decoded as :func:`simsearch.search.embed_query` decodes it (inside
    ``box`` when one is given), found on a copy ``scale`` (default :data:`QUERY_SCALE`) times its size."""
    return _extract(_grey(decoded_query(ctx, data, source), box), scale)


def _all_votes(ctx, collection_id: int, query: LF.LocalFeatures):
    """The descriptor search's ``D, I`` and every image's votes (ids and counts, most first)."""
    index = ctx.descriptor_index(collection_id)
    if index is None or len(query) == 0:
        return None, None, np.zeros(0, np.int64), np.zeros(0, np.int64)
    D, I = descriptor_index.search(index, query.desc)
    return (D, I, *local_votes.votes(D, I))


def local_votes_of(ctx, collection_id: int, query: LF.LocalFeatures) -> tuple[list[int], list[int]]:
    """Images of the collection chosen by the query's keypoints (:func:`simsearch.images.local_votes.votes`
    over the collection's descriptor index) and their votes: the :data:`LOCAL_CANDIDATES` with the
    most votes, each with at least :data:`LOCAL_MIN_VOTES`; none when no image has stored features."""
    return _kept(*_all_votes(ctx, collection_id, query)[2:])


def _kept(ids: np.ndarray, counts: np.ndarray) -> tuple[list[int], list[int]]:
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


def local_verified(ctx, collection_id: int, data: bytes, source: str, box=None, *, decoded=None,
                   on_clear=None, stop: threading.Event | None = None) -> tuple[dict[int, int], bool]:
    """The whole local path of a search by upload, for a thread beside the model's forward: the
    query's features, its candidates by local features and their verification
    (:func:`verify_in_vote_order`), and a :func:`closer_look` at the first :data:`CLOSE_LOOKS`
    images by votes, in that order, up to the first verified (by it or before it): ``{image id: inliers}`` of the verified, most inliers first; and whether the
    first by votes is a :func:`clear_winner` (before the closer look, which never makes one).
    ``decoded``: called with the upload decoded (:func:`decoded_query`), to share it; ``on_clear``:
    called with the clear-winner answer as soon as it is known (before the closer look). ``stop``:
    once set (the search has its answer: a close copy), the path stops at its next stage and
    returns ``({}, False)`` (``on_clear`` is then not called)."""
    img = decoded_query(ctx, data, source)
    if decoded is not None:
        decoded(img)
    stopped = stop.is_set if stop is not None else (lambda: False)
    if stopped():
        return {}, False
    g = _grey(img, box)
    query = _extract(g)
    if stopped():
        return {}, False
    D, I, all_ids, all_counts = _all_votes(ctx, collection_id, query)
    ids, counts = _kept(all_ids, all_counts)
    if stopped():
        return {}, False
    found = verify_in_vote_order(ctx, query, ids, counts)
    clear = bool(ids) and ids[0] in found and clear_winner(found[ids[0]], counts, 0)
    if on_clear is not None:
        on_clear(clear)
    for i in [int(i) for i, c in zip(all_ids[:CLOSE_LOOKS], all_counts[:CLOSE_LOOKS]) if c >= CLOSE_MIN_VOTES]:
        if i in found or stopped():  # verified already: no closer look at it or after it
            break
        inliers = closer_look(ctx, data, source, box, (img.width, img.height), g.shape,
                              query.xy[local_votes.voters(D, I, i)], i)
        if inliers >= MIN_INLIERS:
            found = dict(sorted({**found, i: inliers}.items(), key=lambda kv: -kv[1]))
            break
    return found, clear


def closer_look(ctx, data: bytes, source: str, box, size: tuple[int, int], shape: tuple[int, int],
                xy: np.ndarray, image_id: int) -> int:
    """The inliers of ``image_id`` verified against the keypoints of :func:`closer_features` (the
    region of the upload where its voters ``xy`` fell, decoded again); 0 when the region, the decode
    or the image's features (stored, or from its original) are not to be had."""
    settings = ctx.settings
    query = closer_features(data, source, box, size, shape, xy, max_pixels=settings.max_pixels,
                            max_decoded_pixels=min(settings.search_max_pixels, settings.max_pixels))
    if query is None:
        return 0
    feats = candidate_features(ctx, [image_id])
    return LF.verify(query, feats[image_id]).inliers if image_id in feats else 0


def closer_features(data: bytes, source: str, box, size: tuple[int, int], shape: tuple[int, int], xy: np.ndarray,
                    *, max_pixels: int, max_decoded_pixels: int) -> LF.LocalFeatures | None:
    """The keypoints (:data:`LF.N_QUERY <simsearch.images.local_features.N_QUERY>`) of the region
    where ``xy`` fell (keypoints normalised as :func:`query_features` gives them, found on a grey
    copy of ``shape`` (h, w): the query, or its ``box``; the region: their bounding box moved out by
    :data:`CLOSE_GROW`, at least :data:`CLOSE_LEAST` of each side), decoded again from ``data`` (the
    upload, ``size`` (w, h) its full size) so that the region is up to :data:`CLOSE_SIDE` px long;
    None without a region or when the upload cannot be decoded so."""
    xy = np.asarray(xy, np.float32).reshape(-1, 2)
    xy = xy[local_votes.densest(xy, shape[1], shape[0], CLOSE_WINDOW)]
    region = local_votes.region_of(xy, shape[1], shape[0], CLOSE_GROW, CLOSE_LEAST)
    if region is None:
        return None
    if box is not None:  # a region of the box's crop -> of the upload
        bw, bh = box[2] - box[0], box[3] - box[1]
        region = (box[0] + region[0] * bw, box[1] + region[1] * bh, box[0] + region[2] * bw, box[1] + region[3] * bh)
    w, h = size
    s = min(1.0, CLOSE_SIDE / max(1.0, (region[2] - region[0]) * w, (region[3] - region[1]) * h))
    try:
        img = decode_image(data, source=source, max_pixels=max_pixels, draft_size=max(1, int(np.ceil(min(w, h) * s))),
                           draft_long=int(np.ceil(max(w, h) * s)), max_decoded_pixels=max_decoded_pixels)
    except ImageDecodeError:
        return None
    g = _grey(img, region)
    if is_large(img):
        del img
        release_memory()
    return LF.extract(g, CLOSE_SIDE, LF.N_QUERY, LF.DEFAULT_KIND)


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
