"""Search with several examples, as the API, the CLI and the search page offer it: "more like
these, less like those" (docs/search-examples.md).

Positive and negative examples are images of the collection (ids) or uploaded files, all in one
space: the one named, else the collection's default (:mod:`simsearch.space_defaults`). The
index is searched with the positives' mean direction; the candidates are scored against every
example from their stored vectors (:mod:`simsearch.analysis.examples`), and the candidate list is
widened until no unscored image can enter the top k.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from simsearch import derived, limits, provenance
from simsearch.analysis import examples as E
from simsearch.analysis.calibration import score_at
from simsearch.errors import Conflict, InvalidInput, SimsearchError
from simsearch.ops import calibration
from simsearch.ops.search import collection_space
from simsearch.search import Hit, embed_bytes, validate_k, vector_of_upload
from simsearch.spaces import is_backbone_space
from simsearch.store import hot, repo
from simsearch.store.models import Image, max_id

MAX_CANDIDATES = 5_000  # widening stops here (the result is then marked "exact": false)
WIDEN = 4


@dataclass
class Upload:
    """An uploaded example: the file's bytes and its name (for messages and the response)."""
    data: bytes
    filename: str | None = None


def _ids(values, field: str) -> list[int]:
    ids = limits.check(limits.ExampleIds, list(values or []), field)
    return list(dict.fromkeys(ids))  # given twice: once


def _uploads(values, field: str) -> list[Upload]:
    files = list(values or [])
    if len(files) > limits.EXAMPLE_FILES_MAX:
        raise InvalidInput(f"{field} has too many files (at most {limits.EXAMPLE_FILES_MAX})", field=field)
    return files


def check_options(k, threshold, min_percentile, unlike_weight) -> tuple[int, float | None, float | None, float]:
    """The options of :func:`search`, checked (400 naming the field) before anything is read."""
    k = validate_k(k)
    threshold = None if threshold is None else limits.check(limits.ScoreThreshold, threshold, "threshold")
    if min_percentile is not None:
        min_percentile = limits.check(limits.MinPercentile, min_percentile, "min_percentile")
    unlike_weight = limits.check(limits.UnlikeWeight, unlike_weight, "unlike_weight")
    return k, threshold, min_percentile, unlike_weight


def _stored(ctx, collection_id: int, space: str, ids: list[int], field: str) -> np.ndarray:
    """The stored vectors of example images, in ``ids``' order; 400 naming ``field`` for an id
    that is not an ingested image of the collection or has no vector in ``space``."""
    if not ids:
        return np.zeros((0, 0), np.float32)
    top = max_id(ctx.db.dialect)  # a larger id cannot exist (and PostgreSQL's driver would refuse it)
    with ctx.db.session() as s:
        rows = {r.id: r for r in s.execute(select(Image.id, Image.collection_id, Image.status)
                                           .where(Image.id.in_([i for i in ids if i <= top]))).all()}
        for i in ids:
            row = rows.get(i)
            if row is None:
                raise InvalidInput(f"{field}: there is no image {i}", field=field)
            if row.collection_id != collection_id:
                raise InvalidInput(f"{field}: image {i} is in another collection", field=field)
            if row.status != "ok":
                raise InvalidInput(f"{field}: image {i} failed to ingest; it has no vector", field=field)
        got, x = repo.load_vectors_for_ids(s, space, np.asarray(ids, np.int64))
    by_id = {int(i): row for i, row in zip(got, x)}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise InvalidInput(f"{field}: image {missing[0]} has no vector in {space}, the space searched; every example "
                           "must be in one space (embed the image there, or search another space)", field=field)
    return np.stack([by_id[i] for i in ids])


def _embedded(ctx, collection_id: int, space: str, files: list[Upload], field: str) -> np.ndarray:
    """Uploaded examples embedded in ``space`` (the whole image; for a derived space, with each
    base backbone, transformed): 409 for a space of imported vectors, 400 naming ``field`` for a
    file that is not an image."""
    if not files:
        return np.zeros((0, 0), np.float32)
    d = None if is_backbone_space(space) else derived.get(ctx, collection_id, space)
    if d is None and not is_backbone_space(space):
        raise Conflict(f"{space} holds imported vectors: no model here can embed {field}; give examples by image id",
                       field=field)
    out = []
    for n, f in enumerate(files):
        source = f.filename or f"{field} {n + 1}"
        try:
            if d is not None:
                out.append(vector_of_upload(ctx, d, f.data, source)[0])
            else:
                provenance.check_query(ctx, collection_id, space)
                out.append(embed_bytes(ctx, space, f.data, source)[0])
        except SimsearchError as exc:
            if exc.field in ("image", None) and exc.http_status == 400:
                exc.field = field
            raise
    return np.stack(out).astype(np.float32)


def _rows(*parts: np.ndarray) -> np.ndarray:
    parts = [p for p in parts if len(p)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def _rank(ctx, collection_id: int, space: str, P: np.ndarray, N: np.ndarray, exclude: set[int], k: int,
          threshold: float | None, weight: float, allowed: np.ndarray | None) -> tuple[list, int, bool]:
    """(the best ``k`` as (id, Scored row) pairs, candidates scored, exact)."""
    index = ctx.index(collection_id, space)
    q = E.direction(P)
    n = k + len(exclude) if not len(N) else max(WIDEN * (k + len(exclude)), 100)
    while True:
        n = min(n, MAX_CANDIDATES)
        _, found = index.search(q, n, allowed_ids=allowed)
        found = [int(i) for i in found[0] if i >= 0]
        with ctx.db.session() as s:
            got, x = repo.load_vectors_for_ids(s, space, np.asarray([i for i in found if i not in exclude], np.int64))
        sc = E.scores(x, P, N if len(N) else None, weight=weight) if len(got) else None
        best = E.top(sc.score, k, threshold) if sc is not None else np.zeros(0, np.int64)
        exhausted = len(found) < n
        # the unscored candidates' like is at most the last scored one's (the index ranks by like)
        bound = None if exhausted else float(sc.like.min()) if sc is not None else float("inf")
        done = E.settled(sc.score[best] if sc is not None else np.zeros(0), k, bound, threshold)
        if done or n >= MAX_CANDIDATES:
            return [(int(got[j]), sc, j) for j in best], len(got), done
        n *= WIDEN


def search(ctx, collection: str, *, like=(), unlike=(), like_files=(), unlike_files=(), backbone: str | None = None,
           k: int = 10, label: str | None = None, threshold: float | None = None, min_percentile: float | None = None,
           unlike_weight: float = E.UNLIKE_WEIGHT) -> dict:
    """The images most like the positive examples and least like the negative ones (see the
    module). ``like``/``unlike``: image ids of the collection; ``like_files``/``unlike_files``:
    :class:`Upload` s; ``threshold``: leave out scores below it; ``min_percentile``: leave out
    results below that percentile (turned into a score threshold with the space's reference)."""
    k, threshold, min_percentile, unlike_weight = check_options(k, threshold, min_percentile, unlike_weight)
    like_ids, unlike_ids = _ids(like, "like"), _ids(unlike, "unlike")
    like_files, unlike_files = _uploads(like_files, "like_image"), _uploads(unlike_files, "unlike_image")
    if not like_ids and not like_files:
        raise InvalidInput("give at least one positive example: an image id in like, or a file in like_image",
                           field="like")
    both = set(like_ids) & set(unlike_ids)
    if both:
        raise InvalidInput(f"unlike: image {min(both)} is also a positive example", field="unlike")
    t0 = time.perf_counter()
    coll_id, space = collection_space(ctx, collection, backbone)
    P = _rows(_stored(ctx, coll_id, space, like_ids, "like"), _embedded(ctx, coll_id, space, like_files, "like_image"))
    N = _rows(_stored(ctx, coll_id, space, unlike_ids, "unlike"),
              _embedded(ctx, coll_id, space, unlike_files, "unlike_image"))
    cut = threshold
    reference = calibration.reference(ctx, coll_id, space) if min_percentile is not None else None
    if reference is not None:
        at = score_at(reference, min_percentile)
        cut = at if cut is None else max(cut, at)
    allowed = None if label is None else np.asarray(hot.label_ids(ctx.db, coll_id, label), np.int64)
    ranked, scored, exact = ([], 0, True) if allowed is not None and not len(allowed) else _rank(
        ctx, coll_id, space, P, N, set(like_ids) | set(unlike_ids), k, cut, unlike_weight, allowed)
    refs = [{"image_id": i} for i in unlike_ids] + [{"filename": f.filename, "bytes": len(f.data)} for f in unlike_files]
    rows = hot.hit_rows(ctx.db, [i for i, _, _ in ranked])
    results = []
    for i, sc, j in ranked:
        if i not in rows:
            continue
        hit = Hit(i, float(sc.score[j]), *rows[i]).to_dict()
        hit["like"] = round(float(sc.like[j]), 6)
        hit["unlike"] = None if sc.unlike is None else round(float(sc.unlike[j]), 6)
        hit["penalty"] = None if sc.penalty is None else round(float(sc.penalty[j]), 6)
        hit["unlike_example"] = None if sc.nearest_unlike is None else refs[int(sc.nearest_unlike[j])]
        results.append(hit)
    results = calibration.annotate(ctx, coll_id, space, results)
    if min_percentile is not None:
        results = [r for r in results if r["percentile"] is None or r["percentile"] >= round(min_percentile, 1)]
    return {"collection": collection, "backbone": space, "k": k,
            "like": [{"image_id": i} for i in like_ids] + [{"filename": f.filename, "bytes": len(f.data)} for f in like_files],
            "unlike": refs, "threshold": threshold, "min_percentile": min_percentile,
            "score_threshold": None if cut is None else round(float(cut), 6),
            "percentile_applied": min_percentile is None or reference is not None,
            "unlike_weight": unlike_weight, "results": results, "candidates": scored, "exact": exact,
            "seconds": round(time.perf_counter() - t0, 4)}
