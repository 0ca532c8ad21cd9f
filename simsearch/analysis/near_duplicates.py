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
   crops, a crop of a flipped copy, rotations), when a geometric check of local features
   (:mod:`simsearch.analysis.geometry`) finds one picture a crop, flip, rotation or rescale of the
   other; a pair the check could not look at falls back to a cosine of at least ``strict``.
3. **Grouping** (:func:`representative_groups`): each group is one representative and the
   images verified against *it*: never the transitive closure, so two distinct photos only share
   a group when both are verified copies of the same third image.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simsearch.analysis.duplicates import Group, _pairs
from simsearch.errors import InvalidInput

# HASH_MAX: two pictures whose hashes differ in at most this many of 64 bits (over the hash pairs of
# hash_distance) are the same picture (when their cosine is at least the near floor too). Chosen from
# two distributions (benchmarks/near_duplicates.py): every single transform but a rotation puts 97% of
# its copies at 8 or below (rotations: 90% at 10, then the strict cosine finds them); the distinct
# candidate pairs (a photo and one of its 16 nearest other photos) at 8 or below are 9 of 17,472, and
# double (17) at 10, most of those being different photos of one building from one spot. The duplicate
# finder (simsearch.ops.near_duplicates) and the search's close-copy answer (simsearch.search.close_copy)
# both use it; docs/near-duplicates.md.
HASH_MAX = 8
UNKNOWN = -1  # hash distance of a pair one of whose images has no hashes
GEOMETRY_UNCHECKED = -1  # a pair the geometric check did not look at
GEOMETRY_RESHOT = 2  # rejected: the same rigid scene (the keypoint tests passed) whose pixels differ, shot again
_POPCOUNT = np.array([bin(v).count("1") for v in range(256)], dtype=np.int16)


def hamming(a: Any, b: Any) -> np.ndarray:
    """Bits that differ between uint64 hashes (broadcast)."""
    x = np.ascontiguousarray(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64)))
    if hasattr(np, "bitwise_count"):  # NumPy 2
        return np.bitwise_count(x).astype(np.int16)
    return _POPCOUNT[x.view(np.uint8).reshape(*x.shape, 8)].sum(axis=-1, dtype=np.int16)


def contains(sorted_keys: np.ndarray, keys: Any) -> np.ndarray:
    """Which of ``keys`` are in ``sorted_keys`` (ascending int64): binary search (np.isin took
    53-75 s for 100 keys against 16M on NumPy 2.4)."""
    keys = np.asarray(keys, np.int64)
    if not len(sorted_keys):
        return np.zeros(len(keys), bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[at] == keys


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
    ok = np.flatnonzero(known[i] & known[j])
    for start in range(0, len(ok), 1_000_000):  # in chunks: 16M pairs would copy 1.3 GB of hashes at once
        p = ok[start:start + 1_000_000]
        out[p] = hash_distance(hashes[i[p]], hashes[j[p]])
    return out


def verify(scores: Any, distances: Any, *, floor: float, hash_max: int, strict: float, hash_sure: int = -1,
           geometry: Any = None, confirm_weak: bool = False) -> np.ndarray:
    """Which pairs are near-duplicates. Distance < 0: hashes unknown; ``geometry`` (one per pair,
    as :func:`simsearch.ops.near_geometry.check` gives it): 1 the geometric check accepted the
    pair, 0 it rejected it, :data:`GEOMETRY_RESHOT` it rejected it as the same scene shot again
    (the keypoints agree, the pixels do not), :data:`GEOMETRY_UNCHECKED` not checked (None: none
    checked). A pair is one when

    - its hash distance is <= ``hash_sure`` (the same picture, whatever the vectors say: a
      grayscale copy's cosine falls to 0.45); or
    - its cosine is >= ``floor`` and its hash distance <= ``hash_max`` (with ``confirm_weak``: and
      the geometric check did not find a re-shot); or
    - its cosine is >= ``floor`` and the geometric check accepted it (crops the hashes do not
      cover, a crop of a flipped copy, rotations); or
    - its cosine is >= ``strict`` and it was not checked (a picture unavailable to the check)."""
    s = np.asarray(scores, np.float32)
    d = np.asarray(distances, np.int16)
    g = np.full(s.shape, GEOMETRY_UNCHECKED, np.int8) if geometry is None else np.asarray(geometry, np.int8)
    if s.shape != d.shape or s.shape != g.shape:
        raise InvalidInput("scores, distances and geometry need one value per pair", field="pairs")
    known = d >= 0
    floor_ok = s >= np.float32(floor)
    hashed = floor_ok & known & (d <= hash_max)
    if confirm_weak:
        hashed &= g != GEOMETRY_RESHOT
    return ((known & (d <= hash_sure)) | hashed | (floor_ok & (g == 1))
            | ((s >= np.float32(strict)) & (g == GEOMETRY_UNCHECKED)))


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
    # the greedy pass in plain Python lists (a few microseconds per linked item: NumPy calls per
    # item would cost more than the work)
    adjacency, first, grouped = dst_sorted.tolist(), starts.tolist(), [-1] * n
    members_of: list[list[int]] = []
    reps: list[int] = []
    for u in nodes[rank].tolist():
        if grouped[u] >= 0:
            continue
        free = [v for v in adjacency[first[u]:first[u + 1]] if grouped[v] < 0]
        if not free:
            continue  # every item linked to it is grouped already: it stays alone
        g = len(members_of)
        grouped[u] = g
        for v in free:
            grouped[v] = g
        members_of.append(sorted(set(free) | {u}))
        reps.append(u)
    group_of = np.asarray(grouped, dtype=np.int64)
    if not members_of:
        return []
    # the links inside each group, strongest first
    gi, gj = group_of[i], group_of[j]
    inside = (gi >= 0) & (gi == gj)
    pi, pj, ps, pp, pg = i[inside], j[inside], scores[inside], position[inside], gi[inside]
    porder = np.lexsort((-ps, pg))
    pi, pj, ps, pp, pg = pi[porder], pj[porder], ps[porder], pp[porder], pg[porder]
    bounds = np.searchsorted(pg, np.arange(len(members_of) + 1))
    out = [Group(np.asarray(members_of[g], dtype=np.int64), pi[bounds[g]:bounds[g + 1]], pj[bounds[g]:bounds[g + 1]],
                 ps[bounds[g]:bounds[g + 1]], pp[bounds[g]:bounds[g + 1]], reps[g]) for g in range(len(members_of))]
    out.sort(key=lambda g: (-g.size, -g.max_score, int(g.members[0])))
    return out



def hash_candidates(hashes: Any, *, max_distance: int, bucket_max: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of rows whose hashes ((N,) uint64: the whole pictures') differ in at most
    ``max_distance`` (<= 3) bits, found without comparing all pairs: split into ``max_distance +
    1`` blocks of bits, two hashes that close agree on at least one block (pigeonhole), so only
    rows sharing a block value are compared (O(N log N)). A block value shared by more than ``bucket_max`` rows (a flat
    picture's hash) is skipped. Returns rows ``i < j`` and their distances. These pairs catch copies
    whose vectors moved far (a photo turned grayscale: cosine down to 0.45) that no nearest
    neighbour search offers."""
    h = np.asarray(hashes, np.uint64).reshape(-1)
    if max_distance > 3:
        raise InvalidInput("hash candidates find distances of at most 3 bits", field="max_distance")
    out_i, out_j = [], []
    edges = np.linspace(0, 64, max_distance + 2).round().astype(int)
    for lo, hi in zip(edges[:-1], edges[1:]):
        block = ((h >> np.uint64(lo)) & np.uint64((1 << int(hi - lo)) - 1)).astype(np.int64)
        order = np.argsort(block, kind="stable")
        sb = block[order]
        starts = np.flatnonzero(np.r_[True, sb[1:] != sb[:-1]])
        sizes = np.diff(np.r_[starts, len(sb)])
        for size in range(2, bucket_max + 1):  # buckets of one size at a time: all their pairs at once
            first = starts[sizes == size]
            if not len(first):
                continue
            members = order[first[:, None] + np.arange(size)[None, :]]  # (buckets, size)
            a, b = np.triu_indices(size, 1)
            out_i.append(members[:, a].reshape(-1))
            out_j.append(members[:, b].reshape(-1))
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int16)
    i, j = np.concatenate(out_i), np.concatenate(out_j)
    i, j = np.minimum(i, j), np.maximum(i, j)
    d = hamming(h[i], h[j])
    keep = d <= max_distance
    i, j, d = i[keep], j[keep], d[keep]
    _, first = np.unique(i * len(h) + j, return_index=True)
    return i[first], j[first], d[first]
