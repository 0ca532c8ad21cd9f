"""Candidates by local features: each keypoint of a query votes for the image that holds its
nearest stored descriptor (Sivic & Zisserman 2003, "Video Google"; Philbin et al. 2007), a
candidate source that does not depend on the query's global vector.

A photo of a painting on a wall shares few of its global CNN features with the painting (the wall,
the room and the frame dilute them), but a good share of its SIFT keypoints are the painting's:
their nearest descriptors among all the stored ones belong to the painting's image. Counting those
votes per image ranks the painting among the first few candidates even when its global cosine
puts it past the 50th; geometric verification (:func:`simsearch.images.local_features.verify`)
then confirms it.

Pure numpy over the result of a nearest-neighbour search (``D``, ``I``: the ``k`` nearest stored
descriptors of each query keypoint, squared L2 distances, best first; ``-1`` where none): no
global state. Stored descriptors are numbered ``image_id * KEYPOINT_SLOTS + keypoint`` so that one
integer names both the image and the keypoint (:func:`descriptor_ids`, :func:`owners`).
"""

from __future__ import annotations

import numpy as np

from simsearch.errors import InvalidInput

# Descriptor ids: image id times this plus the keypoint's index (stored images keep at most a few
# hundred keypoints: simsearch.images.local_features.N_FEATURES). 2^10 leaves image ids up to 2^53.
KEYPOINT_SLOTS = 1024
# Lowe's ratio test across images: a keypoint votes only when its nearest stored descriptor is this
# much closer (in L2) than the nearest one of *another* image. Comparing with the second nearest
# overall would reject the picture's own twin keypoints (one place, two orientations) and a close
# copy's duplicates; another image's descriptor is what a chance match looks like.
RATIO = 0.8


def descriptor_ids(image_id: int, n: int) -> np.ndarray:
    """The ids of an image's ``n`` stored descriptors."""
    if n > KEYPOINT_SLOTS:
        raise InvalidInput(f"at most {KEYPOINT_SLOTS} keypoints per image can be indexed, got {n}", field="n")
    return np.int64(image_id) * KEYPOINT_SLOTS + np.arange(n, dtype=np.int64)


def owners(ids: np.ndarray) -> np.ndarray:
    """The image id of each descriptor id (``-1`` stays ``-1``)."""
    ids = np.asarray(ids, np.int64)
    return np.where(ids >= 0, ids // KEYPOINT_SLOTS, -1)


def votes(D: np.ndarray, I: np.ndarray, ratio: float = RATIO) -> tuple[np.ndarray, np.ndarray]:
    """``(image_ids, counts)``, most votes first (ties: the smaller id first). A query keypoint
    votes for the image of its nearest stored descriptor when that one passes the ratio test
    against the nearest descriptor of another image among the ``k`` (when all ``k`` are of one
    image it passes); a stored descriptor counts once however many query keypoints chose it (a
    repeated texture in the query cannot add up), so each image's count is the number of its
    keypoints that a query keypoint matched."""
    ok, I = _passing(D, I, ratio)
    if I.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    chosen = np.unique(I[ok, 0])
    if len(chosen) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ids, counts = np.unique(owners(chosen), return_counts=True)
    order = np.lexsort((ids, -counts))
    return ids[order], counts[order]


def _passing(D: np.ndarray, I: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Which query keypoints pass the ratio test of :func:`votes` ((n,) bools), and ``I`` as int64."""
    D, I = np.asarray(D, np.float64), np.asarray(I, np.int64)
    if D.shape != I.shape or D.ndim != 2:
        raise InvalidInput(f"D and I must be (n, k) arrays of one shape, got {D.shape} and {I.shape}", field="D")
    if D.size == 0:
        return np.zeros(len(D), bool), I
    own = owners(I)
    other = (own != own[:, :1]) & (own >= 0)
    has_other = other.any(axis=1)
    d_other = np.where(has_other, D[np.arange(len(D)), other.argmax(axis=1)], np.inf)
    return (own[:, 0] >= 0) & (D[:, 0] < ratio * ratio * d_other), I  # squared distances: the ratio squared


def voters(D: np.ndarray, I: np.ndarray, image_id: int, ratio: float = RATIO) -> np.ndarray:
    """Which query keypoints ((n,) bools) vote for ``image_id`` (:func:`votes`: their nearest stored
    descriptor is that image's and passes the ratio test)."""
    ok, I = _passing(D, I, ratio)
    if I.size == 0:
        return ok
    return ok & (owners(I[:, 0]) == image_id)


def densest(xy: np.ndarray, width: int, height: int, window: float) -> np.ndarray:
    """Which of the keypoints ``xy`` ((n, 2), normalised by the long side of a picture ``width`` x
    ``height`` px) lie in the window of ``window`` of each side, centred on one of them, that holds
    the most ((n,) bools; ties: the first keypoint's window). A picture's votes gather where it is;
    chance votes scatter over the photo and would stretch their bounding box over all of it."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    if len(xy) == 0 or width <= 0 or height <= 0:
        return np.zeros(len(xy), bool)
    long = float(max(width, height))
    f = xy * long / np.array([width, height], np.float64)  # fractions of each side
    near = np.all(np.abs(f[:, None, :] - f[None, :, :]) <= window / 2 + 1e-9, axis=2)  # (n, n): j in i's window
    return near[int(np.argmax(near.sum(axis=1)))]


def region_of(xy: np.ndarray, width: int, height: int, grow: float, least: float) -> tuple[float, float, float, float] | None:
    """The region of a picture ``width`` x ``height`` px around the keypoints ``xy`` ((n, 2), normalised
    by its long side, as :mod:`simsearch.images.local_features` gives them), as a normalised box
    ``(x0, y0, x1, y1)``: their bounding box, each side moved out by ``grow`` times the box's size,
    then widened about its centre to at least ``least`` of the picture's side in each direction,
    clipped to the picture. None without keypoints or for an empty picture."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    if len(xy) == 0 or width <= 0 or height <= 0:
        return None
    long = float(max(width, height))
    fx, fy = xy[:, 0] * long / width, xy[:, 1] * long / height  # fractions of each side
    box = []
    for lo, hi in ((fx.min(), fx.max()), (fy.min(), fy.max())):
        size = hi - lo
        lo, hi = lo - grow * size, hi + grow * size
        if hi - lo < least:
            mid = (lo + hi) / 2
            lo, hi = mid - least / 2, mid + least / 2
        if lo < 0:
            lo, hi = 0.0, hi - lo
        if hi > 1:
            lo, hi = lo - (hi - 1), 1.0
        box.append((max(0.0, lo), min(1.0, hi)))
    (x0, x1), (y0, y1) = box
    return (float(x0), float(y0), float(x1), float(y1))


def candidates(D: np.ndarray, I: np.ndarray, n: int, min_votes: int, ratio: float = RATIO) -> list[int]:
    """The (at most ``n``) images with the most votes (:func:`votes`), each with at least ``min_votes``."""
    ids, counts = votes(D, I, ratio)
    return [int(i) for i in ids[counts >= min_votes][:n]]
