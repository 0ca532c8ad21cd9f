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
    D, I = np.asarray(D, np.float64), np.asarray(I, np.int64)
    if D.shape != I.shape or D.ndim != 2:
        raise InvalidInput(f"D and I must be (n, k) arrays of one shape, got {D.shape} and {I.shape}", field="D")
    if D.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    own = owners(I)
    other = (own != own[:, :1]) & (own >= 0)
    has_other = other.any(axis=1)
    d_other = np.where(has_other, D[np.arange(len(D)), other.argmax(axis=1)], np.inf)
    ok = (own[:, 0] >= 0) & (D[:, 0] < ratio * ratio * d_other)  # squared distances: the ratio squared
    chosen = np.unique(I[ok, 0])
    if len(chosen) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ids, counts = np.unique(owners(chosen), return_counts=True)
    order = np.lexsort((ids, -counts))
    return ids[order], counts[order]


def candidates(D: np.ndarray, I: np.ndarray, n: int, min_votes: int, ratio: float = RATIO) -> list[int]:
    """The (at most ``n``) images with the most votes (:func:`votes`), each with at least ``min_votes``."""
    ids, counts = votes(D, I, ratio)
    return [int(i) for i in ids[counts >= min_votes][:n]]
