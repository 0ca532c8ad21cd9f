"""Scores that mean the same in every space: a hit's cosine as a percentile of the collection's
neighbour similarities in that space.

A cosine is no measure a person can read across spaces: on flowers102 an image's ten nearest
neighbours are at 0.74 (same species) and 0.70 (another) in the raw EfficientNet-Lite0 space, but
at 0.93 and 0.88 in an 8-dimensional supervised projection of it. So each search result also
carries ``percentile``: the share (0-100) of *typical nearest-neighbour similarities* of the
collection in that space that the hit's cosine reaches. The reference is the similarity of up to
:data:`SAMPLE` seeded stored images to each of their :data:`K` nearest neighbours (themselves left
out), read from the space's index, as 101 quantiles. 50 is a typical top-10 neighbour of this
collection, 95 one closer than nearly all of them, 5 a weak match; random pairs score near 0.
It is kept per process and space, and recomputed when the space's vector count moved by more
than :data:`DRIFT`. Measured on flowers102 (``benchmarks/spaces.py``, docs/spaces.md).

A percentile rather than a rank (which carries nothing about how good the match is) or a
probability of the same label (which needs labels the collection may not have).
"""

from __future__ import annotations

import threading

import numpy as np

from simsearch.analysis.calibration import neighbour_quantiles, percentile
from simsearch.store import repo

SAMPLE = 300
K = 10
DRIFT = 0.1
_CACHE: dict[tuple[str, int, str], tuple[int, np.ndarray]] = {}
_LOCK = threading.Lock()


def reference(ctx, collection_id: int, space: str) -> np.ndarray | None:
    """The space's neighbour-similarity quantiles (None with fewer than K + 2 vectors)."""
    index = ctx.index(collection_id, space)
    n = int(index.ntotal)
    key = (str(ctx.db.url), collection_id, space)  # (another database may have a collection of the same id)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None and abs(hit[0] - n) <= DRIFT * max(hit[0], 1):
        return hit[1]
    with ctx.db.session() as s:
        ids = repo.vector_ids(s, collection_id, space)
        if len(ids) < K + 2:
            return None
        pick = np.sort(np.random.default_rng(0).choice(ids, min(SAMPLE, len(ids)), replace=False))
        got, x = repo.load_vectors_for_ids(s, space, pick)
    scores, found = index.search(x, K + 1)
    sims = [sc[(f >= 0) & (f != i)][:K] for sc, f, i in zip(scores, found, got)]
    sims = np.concatenate(sims) if sims else np.zeros(0)
    if len(sims) == 0:
        return None
    q = neighbour_quantiles(sims)
    with _LOCK:
        _CACHE[key] = (n, q)
    return q


def annotate(ctx, collection_id: int, space: str, results: list[dict]) -> list[dict]:
    """Add ``percentile`` (see the module) to each result dict (None when the space is too small)."""
    if not results:
        return results
    q = reference(ctx, collection_id, space)
    pct = percentile(q, [r["score"] for r in results]) if q is not None else [None] * len(results)
    for r, p in zip(results, pct):
        r["percentile"] = None if p is None else round(float(p), 1)
    return results
