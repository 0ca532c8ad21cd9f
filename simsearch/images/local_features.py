"""Local features of a picture and their geometric verification: the classic instance-retrieval
check (Philbin et al. 2007, "Object retrieval with large vocabularies and fast spatial matching").

A global CNN vector says "these look alike"; it cannot say "this is the same picture, seen in
another place" when the picture fills a third of a photo of a wall. Local features can: keypoints
with descriptors are matched between the two images, and the matches that agree on one plane-to-
plane mapping (a homography, fitted with RANSAC) are counted. Many agreeing matches are
overwhelming evidence of the same flat object (a painting, a print, a page, a façade); two
different photos of the same subject, or unrelated photos, agree on few.

- :func:`extract`: keypoints and descriptors of a grey uint8 image, on a copy whose long side is at
  most ``max_side``. Coordinates are normalised by that copy's long side (x in 0..1, y in
  0..height/width for a landscape picture, and the other way round), so features of the same
  picture extracted at any size agree, and a homography between two sets is in those units.
- :func:`serialise` / :func:`deserialise`: a compact byte string (a 8-byte header, then float16
  coordinates and the uint8 descriptors) for a table or a cache.
- :func:`verify`: match two sets (nearest neighbour with Lowe's ratio test) and fit a homography
  with RANSAC (OpenCV's MAGSAC++); the number of inliers is the score. A query (a whole scene)
  is extracted with more keypoints (:data:`N_QUERY`) than a stored image (:data:`N_FEATURES`).

Pure CPU work with OpenCV (``opencv-python-headless``), no global state. A mirrored copy is not
verified (a mirror is no homography of the plane that keeps its orientation): a caller that wants
mirrors extracts features of the flipped image too.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from simsearch.errors import InvalidInput

# The detectors: SIFT (OpenCV main since 4.4; 128-byte descriptors, compared by L2) and ORB (32-byte
# binary descriptors, compared by Hamming distance: ~4x smaller and faster to match, less
# discriminative under scale and lighting changes). Codes are stored in the serialised header.
KINDS = {"sift": 1, "orb": 2}
DESC_BYTES = {"sift": 128, "orb": 32}
# What :func:`extract` uses by default: SIFT. On the in-context benchmark's wall photos (a picture
# pasted at 30-70% of a 720 x 480 photo, decoded as a search decodes it), SIFT verified 20 of 20
# targets with >= 15 inliers where ORB verified 7-11 of 20 (its binary tests do not survive the
# relighting, perspective and JPEG; docs/region-search.md); ORB is ~10x cheaper to extract.
DEFAULT_KIND = "sift"
# The long side of the grey copy the features are found on. A search decodes an upload at about
# the model's input (a JPEG's short side >= 224 px, so ~300-450 px long), ingest likewise: 512 px
# leaves those as they are and caps larger images (SIFT's time grows with the area).
MAX_SIDE = 512
# Keypoints kept per stored image (the strongest by detector response): each costs 132 bytes
# (SIFT) or 36 (ORB) when stored, and matching time grows with it. A picture that fills the image
# keeps a few hundred anyway.
N_FEATURES = 300
# Keypoints of a query: more, because the query is a whole scene (a wall, a room) in which the
# picture sought may hold only 10-25% of the keypoints (measured on the benchmark's wall photos).
N_QUERY = 1000
# Lowe's ratio test (Lowe 2004 used 0.8): a match is kept only when its nearest neighbour is this
# much closer than the second nearest, which discards most matches of repeated texture.
RATIO = 0.8
# RANSAC's reprojection threshold, in the normalised units above (a fraction of the long side):
# 1% is ~5 px of a 512-px copy, room for a keypoint's position noise after a resize and JPEG.
REPROJ = 0.01
# The homography is fitted on coordinates in pixels of a copy this long (the normalised ones times
# this): OpenCV's MAGSAC++ found 0-10 inliers where RANSAC found 70-190 when given coordinates in
# 0..1 (its noise model expects pixel-sized errors), and the same as RANSAC on this scale, 2-3x faster.
FIT_SCALE = 1000.0
# Two keypoints closer than this (normalised units: a 500th of the long side, ~1 px of a 512-px
# copy) are one place (SIFT gives a place with two dominant orientations two keypoints).
PLACE = 500
# Fewer tentative matches than this cannot give a meaningful homography (4 are its minimum; with so
# few every fit has all of them as inliers): the pair is not verified.
MIN_MATCHES = 8
# A homography that changes areas by more than this factor (or mirrors: a negative determinant) is
# a degenerate fit of chance matches, not a view of the same plane: a picture a tenth of a photo's
# side against the whole picture is an area ratio of 100.
MAX_AREA_RATIO = 200.0

# What a stored image's features are (:func:`of_picture`); a stored row of another method is stale.
METHOD = f"{DEFAULT_KIND}-{N_FEATURES}@{MAX_SIDE}:v1"

_HEADER = struct.Struct("<4sBBH")  # magic, version, kind code, number of keypoints
_MAGIC = b"SSLF"
_VERSION = 1


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints of one picture: ``xy`` (n, 2) float32 normalised by the long side, ``desc`` (n, d)
    uint8 (d = :data:`DESC_BYTES` of ``kind``)."""

    xy: np.ndarray
    desc: np.ndarray
    kind: str = DEFAULT_KIND

    def __len__(self) -> int:
        return int(self.xy.shape[0])


@dataclass(frozen=True)
class Match:
    """The result of :func:`verify`: ``inliers`` (matches that agree with the homography),
    ``inlier_ratio`` (inliers / tentative matches; 0 without any), ``matches`` (tentative matches
    after the ratio test) and ``homography`` (3x3, mapping a's normalised points onto b's; None
    when no acceptable one was found)."""

    inliers: int
    inlier_ratio: float
    matches: int
    homography: np.ndarray | None


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {kind!r}", field="kind")
    return kind


def _detector(kind: str, n: int):
    import cv2

    if kind == "sift":
        # OpenCV's defaults (Lowe's 3 layers per octave, contrast 0.04, edge 10, sigma 1.6), uint8 descriptors
        return cv2.SIFT_create(n, 3, 0.04, 10, 1.6, cv2.CV_8U)
    return cv2.ORB_create(nfeatures=n)


def extract(gray: np.ndarray, max_side: int = MAX_SIDE, n: int = N_FEATURES, kind: str = DEFAULT_KIND) -> LocalFeatures:
    """The (at most ``n``) strongest keypoints of ``gray`` ((h, w) uint8) and their descriptors,
    found on a copy whose long side is at most ``max_side`` px."""
    import cv2

    _check_kind(kind)
    g = np.asarray(gray)
    if g.ndim != 2 or g.dtype != np.uint8:
        raise InvalidInput(f"expected a grey uint8 image (h, w), got shape {g.shape} {g.dtype}", field="gray")
    if max_side < 16 or n < 1:
        raise InvalidInput(f"max_side must be >= 16 and n >= 1, got {max_side} and {n}", field="max_side")
    h, w = g.shape
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        g = cv2.resize(g, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    d = DESC_BYTES[kind]
    if min(g.shape) < 16:
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, d), np.uint8), kind)
    kps, desc = _detector(kind, n).detectAndCompute(np.ascontiguousarray(g), None)
    if desc is None or not kps:
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, d), np.uint8), kind)
    order = np.argsort([-k.response for k in kps], kind="stable")[:n]  # SIFT may return a few over n (ties)
    xy = np.asarray([kps[i].pt for i in order], np.float32) / float(max(g.shape))
    return LocalFeatures(xy, np.ascontiguousarray(np.asarray(desc, np.uint8)[order]), kind)


def grey_of(image) -> np.ndarray:
    """A picture (PIL image or (h, w, 3) uint8 array) as a grey uint8 array."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return np.asarray(image.convert("L"))
    a = np.asarray(image, dtype=np.uint8)
    return a if a.ndim == 2 else np.asarray(Image.fromarray(a).convert("L"))


def of_picture(image, n: int = N_FEATURES) -> LocalFeatures:
    """The default features (:data:`METHOD` with ``n`` = :data:`N_FEATURES`) of a picture as
    ingest decodes it (PIL image or (h, w, 3) uint8 array)."""
    return extract(grey_of(image), MAX_SIDE, n, DEFAULT_KIND)


def serialise(f: LocalFeatures) -> bytes:
    """A compact byte string: header, float16 coordinates (a 2000th of the long side at worst: a
    fraction of a pixel of the copy), descriptors."""
    n = len(f)
    if n > 0xFFFF:
        raise InvalidInput(f"at most 65535 keypoints can be stored, got {n}", field="n")
    return (_HEADER.pack(_MAGIC, _VERSION, KINDS[_check_kind(f.kind)], n)
            + np.asarray(f.xy, "<f2").tobytes() + np.asarray(f.desc, np.uint8).tobytes())


def deserialise(data: bytes) -> LocalFeatures:
    """The inverse of :func:`serialise`; :class:`InvalidInput` for bytes it did not write."""
    if len(data) < _HEADER.size:
        raise InvalidInput("local features: too short for a header", field="features")
    magic, version, code, n = _HEADER.unpack_from(data)
    kind = next((k for k, c in KINDS.items() if c == code), None)
    if magic != _MAGIC or version != _VERSION or kind is None:
        raise InvalidInput("local features: not written by this version of simsearch", field="features")
    d = DESC_BYTES[kind]
    if len(data) != _HEADER.size + n * (4 + d):
        raise InvalidInput(f"local features: {len(data)} bytes do not hold {n} keypoints", field="features")
    xy = np.frombuffer(data, "<f2", 2 * n, _HEADER.size).astype(np.float32).reshape(n, 2)
    desc = np.frombuffer(data, np.uint8, n * d, _HEADER.size + 4 * n).reshape(n, d).copy()
    return LocalFeatures(xy, desc, kind)


def _hamming_ratio_matches(query: np.ndarray, train: np.ndarray, ratio: float) -> np.ndarray:
    """(m, 3) rows (distance, query index, train index) of the binary descriptors of ``query``
    whose nearest in ``train`` (at least 2 rows) passes the ratio test, in query order: what
    OpenCV's Hamming ``BFMatcher.knnMatch(k=2)`` and the ratio test give (a nearest neighbour tied
    with the second fails the test, so how ties are broken does not matter), from FAISS's exact
    Hamming k-NN on one thread: 4x less CPU than the matcher (0.9 ms against 3.3 ms for 500 x 500
    ORB descriptors on one core; docs/near-duplicates.md)."""
    import faiss

    threads = faiss.omp_get_max_threads()  # (per calling thread) one thread: the callers run pairs in parallel
    faiss.omp_set_num_threads(1)
    try:
        dist, idx = faiss.knn_hamming(np.ascontiguousarray(query, np.uint8), np.ascontiguousarray(train, np.uint8), 2)
    finally:
        faiss.omp_set_num_threads(threads)
    d = dist.astype(np.float64)
    q = np.flatnonzero(d[:, 0] < ratio * d[:, 1])
    return np.stack([d[q, 0], q.astype(np.float64), idx[q, 0].astype(np.float64)], axis=1).reshape(-1, 3)


def _first(keys: np.ndarray) -> np.ndarray:
    """Which entries of ``keys`` (1-D) are the first of their value."""
    keep = np.zeros(len(keys), bool)
    keep[np.unique(keys, return_index=True)[1]] = True
    return keep


def _first_row(rows: np.ndarray) -> np.ndarray:
    """Which rows of ``rows`` ((m, c) int64) are the first of their value: rows as one integer each
    when they fit (``np.unique(axis=0)`` sorts structured rows, several times slower), the same answer."""
    if not len(rows):
        return np.zeros(0, bool)
    low = rows.min(axis=0)
    dims = rows.max(axis=0) - low + 1
    if float(np.prod(dims.astype(np.float64))) >= 2.0 ** 62:
        keep = np.zeros(len(rows), bool)
        keep[np.unique(rows, axis=0, return_index=True)[1]] = True
        return keep
    return _first(np.ravel_multi_index(tuple((rows - low).T), tuple(int(d) for d in dims)))


def tentative_matches(a: LocalFeatures, b: LocalFeatures, ratio: float = RATIO) -> np.ndarray:
    """(m, 2) index pairs (into a, into b) whose nearest neighbour passes the ratio test, one to
    one: a keypoint of either set keeps its closest match only, and SIFT's twin keypoints (one place,
    two orientations) count once, so a few repeated places cannot add up to many inliers."""
    import cv2

    if a.kind != b.kind:
        raise InvalidInput(f"cannot match {a.kind} features with {b.kind} features", field="kind")
    if len(a) < 2 or len(b) < 2:
        return np.zeros((0, 2), np.int64)
    # each keypoint of the smaller set looks for its two nearest in the larger (a query's scene has
    # more keypoints than a stored picture): fewer matches to read back, the same ratio test
    flip = len(b) < len(a)
    if a.kind == "orb":
        m = _hamming_ratio_matches(b.desc, a.desc, ratio) if flip else _hamming_ratio_matches(a.desc, b.desc, ratio)
    else:
        matcher, da, db = cv2.BFMatcher(cv2.NORM_L2), a.desc.astype(np.float32), b.desc.astype(np.float32)
        knn = matcher.knnMatch(db, da, k=2) if flip else matcher.knnMatch(da, db, k=2)
        m = np.asarray([(x[0].distance, x[0].queryIdx, x[0].trainIdx) for x in knn
                        if len(x) == 2 and x[0].distance < ratio * x[1].distance], np.float64).reshape(-1, 3)
    m = m[np.argsort(m[:, 0], kind="stable")]  # best first
    ia, ib = (m[:, 2], m[:, 1]) if flip else (m[:, 1], m[:, 2])
    ia, ib = ia.astype(np.int64), ib.astype(np.int64)
    keep = _first(ia) & _first(ib)  # one to one: the best match of each keypoint
    places = np.rint(np.concatenate([a.xy[ia], b.xy[ib]], axis=1) * PLACE).astype(np.int64)
    keep &= _first_row(places)
    pairs = np.stack([ia[keep], ib[keep]], axis=1)
    return pairs.reshape(-1, 2)


def _acceptable(h: np.ndarray | None) -> bool:
    if h is None or not np.all(np.isfinite(h)):
        return False
    det = float(np.linalg.det(h[:2, :2] / h[2, 2])) if abs(h[2, 2]) > 1e-12 else 0.0
    return 1.0 / MAX_AREA_RATIO < det < MAX_AREA_RATIO


def verify(a: LocalFeatures, b: LocalFeatures, *, ratio: float = RATIO, reproj: float = REPROJ) -> Match:
    """Match ``a`` against ``b`` and count the matches one homography explains (MAGSAC++)."""
    import cv2

    pairs = tentative_matches(a, b, ratio)
    m = len(pairs)
    if m < MIN_MATCHES:
        return Match(0, 0.0, m, None)
    src = a.xy[pairs[:, 0]].reshape(-1, 1, 2) * FIT_SCALE
    dst = b.xy[pairs[:, 1]].reshape(-1, 1, 2) * FIT_SCALE
    h, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, reproj * FIT_SCALE, maxIters=2000, confidence=0.995)
    if h is None or mask is None:
        return Match(0, 0.0, m, None)
    s = np.diag([FIT_SCALE, FIT_SCALE, 1.0])
    h = np.linalg.inv(s) @ h @ s  # back to the normalised units
    if not _acceptable(h):
        return Match(0, 0.0, m, None)
    inliers = int(mask.sum())
    return Match(inliers, inliers / m, m, h)
