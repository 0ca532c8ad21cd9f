"""Near-duplicates that do not chain: candidate pairs verified by perceptual hashes, grouped around
representatives. Pure functions over numpy arrays (the op, :mod:`simsearch.ops.duplicates`, finds
the candidate pairs in the collection's index and reads the stored hashes).

Why: one cosine threshold with single-linkage grouping joins look-alikes through chains (photo A
is close to B, B to C, ... : one group of 553 different flower photos). Here:

1. **Candidates**: each image's nearest neighbours in the index whose cosine is at least the near
   tier's floor (loose: it only has to keep the transformed copies).
2. **Verification** (:func:`verify`): a candidate pair is a near-duplicate when its perceptual
   hashes agree (:func:`hash_distance` <= ``hash_max``: the same picture, resized, re-compressed,
   re-coloured, flipped, centre-cropped, captioned) or, where hashes are known to fail (off-centre
   crops, rotations), when its cosine is at least ``strict`` (far above that of distinct photos).
3. **Grouping** (:func:`representative_groups`): each group is one representative and the
   images verified against *it*: never the transitive closure, so two distinct photos only share
   a group when both are verified copies of the same third image.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simsearch.analysis.duplicates import Group, _pairs
from simsearch.errors import InvalidInput

UNKNOWN = -1  # hash distance of a pair one of whose images has no hashes
_POPCOUNT = np.array([bin(v).count("1") for v in range(256)], dtype=np.int16)


def hamming(a: Any, b: Any) -> np.ndarray:
    """Bits that differ between uint64 hashes (broadcast)."""
    x = np.ascontiguousarray(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64)))
    if hasattr(np, "bitwise_count"):  # NumPy 2
        return np.bitwise_count(x).astype(np.int16)
    return _POPCOUNT[x.view(np.uint8).reshape(*x.shape, 8)].sum(axis=-1, dtype=np.int16)


def hash_distance(ha: Any, hb: Any) -> np.ndarray:
    """(P,) smallest Hamming distance between the pictures of two images' hashes ((P, 5) uint64 as
    :func:`simsearch.images.phash.image_hashes` computes them: full, mirror, centre 90/80/70%):
    full vs full, full vs mirror (a flip), and each one's full vs the other's centres (a crop)."""
    ha, hb = np.atleast_2d(np.asarray(ha, np.uint64)), np.atleast_2d(np.asarray(hb, np.uint64))
    if ha.shape != hb.shape or ha.shape[1] != 5:
        raise InvalidInput(f"hashes must be two (P, 5) arrays, not {ha.shape} and {hb.shape}", field="hashes")
    d = [hamming(ha[:, 0], hb[:, 0]), hamming(ha[:, 0], hb[:, 1])]
    d += [hamming(ha[:, 0], hb[:, c]) for c in (2, 3, 4)] + [hamming(hb[:, 0], ha[:, c]) for c in (2, 3, 4)]
    return np.min(np.stack(d, axis=1), axis=1)


def pair_hash_distance(hashes: np.ndarray, known: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """:func:`hash_distance` of the pairs of rows ``(i, j)`` of ``hashes`` ((N, 5)); :data:`UNKNOWN`
    where ``known`` (N,) is false for either row."""
    i, j = np.asarray(i, np.int64), np.asarray(j, np.int64)
    out = np.full(len(i), UNKNOWN, dtype=np.int16)
    ok = known[i] & known[j]
    if ok.any():
        out[ok] = hash_distance(hashes[i[ok]], hashes[j[ok]])
    return out


def verify(scores: Any, distances: Any, *, floor: float, hash_max: int, strict: float) -> np.ndarray:
    """Which pairs are near-duplicates: cosine >= ``floor`` and hash distance <= ``hash_max``
    (known), or cosine >= ``strict`` (hashes unknown or not agreeing)."""
    s = np.asarray(scores, np.float32)
    d = np.asarray(distances, np.int16)
    if s.shape != d.shape:
        raise InvalidInput("scores and distances need one value per pair", field="pairs")
    return ((s >= np.float32(floor)) & (d >= 0) & (d <= hash_max)) | (s >= np.float32(strict))


def representative_groups(n: int, i: Any, j: Any, scores: Any, *, mask: Any = None,
                          priority: Any = None) -> list[Group]:
    """Groups of ``n`` items around representatives: the pairs ``(i, j)`` (where ``mask``, when
    given, is true) are the links; an item with the most links (then the highest ``priority``,
    e.g. its pixel count, then the strongest links, then the lowest row) not yet grouped becomes a
    representative, and its group is it and every not yet grouped item linked *to it*. Repeated
    until no link joins two ungrouped items. So every member is linked to its representative:
    a chain A-B-C with A and C unlinked is never one group around A or C (around B it is: B is
    a verified near-duplicate of both).

    Each group lists the links among its members (strongest first; ``pair_index`` = their
    positions in the arrays given). Groups sorted as
    :func:`simsearch.analysis.duplicates.groups_from_pairs` sorts them: largest first, then by
    strongest link, then by first member. Time O(n + links log links)."""
    i, j, scores = _pairs(i, j, scores)
    if len(i) and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= n):
        raise InvalidInput(f"pair rows must be in [0, {n})", field="pairs")
    keep = np.ones(len(i), bool) if mask is None else np.asarray(mask, dtype=bool).reshape(-1)
    if len(keep) != len(i):
        raise InvalidInput("mask needs one value per pair", field="mask")
    keep &= i != j
    position = np.flatnonzero(keep)
    i, j, scores = i[keep], j[keep], scores[keep]
    if not len(i):
        return []
    prio = np.zeros(n, np.float64) if priority is None else np.asarray(priority, np.float64).reshape(-1)
    if len(prio) != n:
        raise InvalidInput("priority needs one value per item", field="priority")
    # both directions, as adjacency lists (CSR) by node
    src = np.concatenate([i, j])
    dst = np.concatenate([j, i])
    degree = np.bincount(src, minlength=n)
    strength = np.bincount(src, weights=np.tile(scores.astype(np.float64), 2), minlength=n)
    order = np.argsort(src, kind="stable")
    dst_sorted = dst[order]
    starts = np.r_[0, np.cumsum(degree)]
    nodes = np.flatnonzero(degree)
    rank = np.lexsort((nodes, -strength[nodes], -prio[nodes], -degree[nodes]))  # the last key sorts first
    group_of = np.full(n, -1, dtype=np.int64)
    members_of: list[np.ndarray] = []
    reps: list[int] = []
    for u in nodes[rank]:
        if group_of[u] >= 0:
            continue
        linked = dst_sorted[starts[u]:starts[u + 1]]
        free = np.unique(linked[group_of[linked] < 0])
        if not len(free):
            continue  # every item linked to it is grouped already: it stays alone
        g = len(members_of)
        group_of[u] = g
        group_of[free] = g
        members_of.append(np.sort(np.r_[u, free]))
        reps.append(int(u))
    if not members_of:
        return []
    # the links inside each group, strongest first
    gi, gj = group_of[i], group_of[j]
    inside = (gi >= 0) & (gi == gj)
    pi, pj, ps, pp, pg = i[inside], j[inside], scores[inside], position[inside], gi[inside]
    porder = np.lexsort((-ps, pg))
    pi, pj, ps, pp, pg = pi[porder], pj[porder], ps[porder], pp[porder], pg[porder]
    bounds = np.searchsorted(pg, np.arange(len(members_of) + 1))
    out = [Group(members_of[g], pi[bounds[g]:bounds[g + 1]], pj[bounds[g]:bounds[g + 1]],
                 ps[bounds[g]:bounds[g + 1]], pp[bounds[g]:bounds[g + 1]], reps[g]) for g in range(len(members_of))]
    out.sort(key=lambda g: (-g.size, -g.max_score, int(g.members[0])))
    return out

