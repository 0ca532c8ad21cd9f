"""Duplicate groups from pairs of similar items: the pure maths of the duplicate finder.

A *pair* is two rows (``i < j``) of an embedding set with their cosine similarity; how the
candidate pairs are found (a kNN search in blocks, never an N x N matrix) is the caller's
business (:mod:`simsearch.ops.duplicates`). Here:

- :func:`groups_from_pairs`: the pairs at or above a threshold, joined into groups (connected
  components, union-find): A~B and B~C put A, B and C in one group even when A~C is below it;
  groups come sorted by size, then by their strongest pair.
- :func:`pair_precision_recall`: how well predicted groups match true groups, counted over pairs
  of items (the measure the calibration benchmark and the tests report).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simsearch.errors import InvalidInput


def _pairs(i: Any, j: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i = np.asarray(i, dtype=np.int64).reshape(-1)
    j = np.asarray(j, dtype=np.int64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if not (len(i) == len(j) == len(scores)):
        raise InvalidInput(f"pairs need as many i, j and scores (got {len(i)}, {len(j)}, {len(scores)})", field="pairs")
    return i, j, scores


def union_find(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """The component of each of ``n`` items joined by the edges ``(i[e], j[e])``: an (n,) array
    whose value is the smallest item of the component (so equal values = one component).
    (SciPy's connected components in C: a million pairs take a fraction of a second.)"""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    graph = sp.csr_matrix((np.ones(len(i), dtype=np.int8), (np.asarray(i), np.asarray(j))), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    smallest = np.full(labels.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(n, dtype=np.int64))
    return smallest[labels]


@dataclass
class Group:
    """One group: its items (row numbers, ascending) and the pairs that joined it (at or above the
    threshold), strongest first."""

    members: np.ndarray  # int64 (m,)
    pair_i: np.ndarray  # int64 (p,) row numbers
    pair_j: np.ndarray
    pair_scores: np.ndarray  # float32 (p,)
    pair_index: np.ndarray  # int64 (p,) positions of these pairs in the arrays given
    representative: int = -1  # the row every member was verified against (grouping around representatives)

    @property
    def size(self) -> int:
        return int(len(self.members))

    @property
    def max_score(self) -> float:
        return float(self.pair_scores[0])

    @property
    def min_score(self) -> float:
        return float(self.pair_scores[-1])


def groups_from_pairs(n: int, i: Any, j: Any, scores: Any, threshold: float, *,
                      mask: Any = None) -> list[Group]:
    """Groups of the ``n`` items joined by the pairs with ``scores >= threshold`` (and ``mask``
    true, when given: e.g. only pairs confirmed identical), largest first, then by strongest pair,
    then by first item. Items in no such pair are in no group."""
    i, j, scores = _pairs(i, j, scores)
    if len(i) and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= n):
        raise InvalidInput(f"pair rows must be in [0, {n})", field="pairs")
    keep = scores >= np.float32(threshold)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool).reshape(-1)
        if len(mask) != len(i):
            raise InvalidInput("mask needs one value per pair", field="mask")
        keep &= mask
    position = np.flatnonzero(keep)
    i, j, scores = i[keep], j[keep], scores[keep]
    if not len(i):
        return []
    roots = union_find(n, i, j)
    in_pair = np.zeros(n, bool)
    in_pair[i] = in_pair[j] = True
    members = np.flatnonzero(in_pair)
    member_roots = roots[members]
    order = np.argsort(member_roots, kind="stable")
    members, member_roots = members[order], member_roots[order]
    starts = np.flatnonzero(np.r_[True, member_roots[1:] != member_roots[:-1]])
    by_root = {int(member_roots[s]): members[s:e] for s, e in zip(starts, np.r_[starts[1:], len(members)])}
    # pairs by component, strongest first within each
    pair_roots = roots[i]
    porder = np.lexsort((-scores, pair_roots))
    i, j, scores, pair_roots, position = i[porder], j[porder], scores[porder], pair_roots[porder], position[porder]
    pstarts = np.flatnonzero(np.r_[True, pair_roots[1:] != pair_roots[:-1]])
    out = []
    for s, e in zip(pstarts, np.r_[pstarts[1:], len(i)]):
        root = int(pair_roots[s])
        out.append(Group(by_root[root], i[s:e], j[s:e], scores[s:e], position[s:e]))
    out.sort(key=lambda g: (-g.size, -g.max_score, int(g.members[0])))
    return out


def group_labels(n: int, groups: list[Group]) -> np.ndarray:
    """(n,) group number of each item: its group's position in ``groups``, or -1 for none."""
    out = np.full(n, -1, dtype=np.int64)
    for g_no, g in enumerate(groups):
        out[g.members] = g_no
    return out


def _same_pairs(labels: np.ndarray) -> int:
    """How many unordered pairs of items share a label (label -1 = in no group: shares nothing)."""
    _, counts = np.unique(labels[labels >= 0], return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def pair_precision_recall(predicted: Any, truth: Any) -> dict:
    """Precision and recall over pairs of items: a pair is *predicted* when both items are in the
    same predicted group, *true* when they are in the same true group (-1: in none). Precision:
    the share of predicted pairs that are true (1.0 when nothing is predicted); recall: the share
    of true pairs predicted (1.0 when there are none). Returns counts too."""
    p = np.asarray(predicted, dtype=np.int64).reshape(-1)
    t = np.asarray(truth, dtype=np.int64).reshape(-1)
    if len(p) != len(t):
        raise InvalidInput(f"predicted and truth label {len(p)} and {len(t)} items", field="truth")
    both = (p >= 0) & (t >= 0)
    # pairs in the same predicted group and the same true group: pairs sharing the combined label
    combined = np.full(len(p), -1, dtype=np.int64)
    if both.any():
        _, inverse = np.unique(np.stack([p[both], t[both]], axis=1), axis=0, return_inverse=True)
        combined[both] = inverse.reshape(-1)
    tp, n_pred, n_true = _same_pairs(combined), _same_pairs(p), _same_pairs(t)
    return {"precision": tp / n_pred if n_pred else 1.0, "recall": tp / n_true if n_true else 1.0,
            "true_positive_pairs": tp, "predicted_pairs": n_pred, "true_pairs": n_true}


def candidate_pairs(X: Any, search, *, k: int, floor: float, block: int = 1024, progress=None,
                    widen_above: float | None = None, max_k: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of rows of ``X`` (L2-normalised, (N, D)) with cosine similarity >= ``floor``
    among each row's ``k`` nearest neighbours, each pair once (``i < j``), scored exactly.

    ``search(queries, k)`` answers a block of query rows with ``(scores, rows)`` (N_q, k) arrays,
    rows -1 for none: an index over the same rows (exact or approximate: its scores only pick the
    candidates; every kept pair is re-scored from ``X``). Memory is O(block * k + pairs), never
    N x N; time is that of N / block searches.

    ``widen_above``: a row whose ``k``-th neighbour still scores at least this much sits in a group
    of more than ``k`` near-identical items (an image with dozens of copies): it is searched again
    with 4x the neighbours, up to ``max_k``, so every member of a large group meets the others
    (without it, a group of more than ``k`` may miss some of its pairs). Rows of ordinary photos
    never reach it, so the cost stays that of the first pass.
    ``progress(done, total)`` is told after each block."""
    X = np.asarray(X, dtype=np.float32)
    n = X.shape[0] if X.ndim == 2 else 0
    if X.ndim != 2:
        raise InvalidInput(f"X must be (N, D), not {X.shape}", field="X")
    k = int(min(k, max(n - 1, 0)))
    out_i, out_j, out_s = [], [], []
    for start in range(0, n if k > 0 else 0, block):
        q = np.arange(start, min(n, start + block), dtype=np.int64)
        width = k
        while q.size:
            _, rows = search(X[q], width + 1)  # +1: a row is usually its own first neighbour
            rows = np.asarray(rows, dtype=np.int64)
            a = np.repeat(q, rows.shape[1])
            b = rows.reshape(-1)
            ok = (b >= 0) & (b != a)
            a, b = a[ok], b[ok]
            lo, hi = np.minimum(a, b), np.maximum(a, b)
            s = np.einsum("ij,ij->i", X[lo], X[hi])
            keep = s >= np.float32(floor)
            out_i.append(lo[keep]), out_j.append(hi[keep]), out_s.append(s[keep])
            if widen_above is None or width >= min(max_k, n - 1):
                break
            last = rows[:, -1]
            full = last >= 0
            full[full] = np.einsum("ij,ij->i", X[q[full]], X[last[full]]) >= np.float32(widen_above)
            q, width = q[full], int(min(max_k, n - 1, width * 4))
        if progress is not None:
            progress(min(n, start + block), n)
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    i, j, s = np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_s).astype(np.float32)
    key = i * n + j
    _, first = np.unique(key, return_index=True)  # a pair found from both ends, kept once
    return i[first], j[first], s[first]
