"""Analysis over a collection's stored vectors: clusters, evaluation against the labels, 2-D maps.

The maths is in :mod:`simsearch.analysis` (pure functions over numpy arrays); this module reads
the vectors (:mod:`simsearch.ops.vectors`), keeps every result in the result cache
(:mod:`simsearch.store.results`) keyed by the fingerprint of the vectors (and of the labels, for
what is scored against them), and returns typed results (:mod:`simsearch.ops.analysis_results`).

Each operation comes in two forms:

- ``lookup_*``: cheap (reads ids, labels and the cache, never the vectors, never computes):
  the cached result for the current vectors, or None. It validates the parameters against the
  collection as the computation would, so bad input fails here, not later in a job.
- the computation itself (:func:`clusters`, :func:`evaluate`, :func:`map_2d`): reuses whatever
  is cached, computes the rest (seconds to minutes), stores it and reports ``progress``.

The web API answers from ``lookup_*`` and runs the computation as a background job; the CLI
computes in the foreground. The backbone comparison is in :mod:`simsearch.ops.comparison`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from simsearch.errors import Conflict, InvalidInput
from simsearch.ops import vectors as vecs
from simsearch.ops.analysis_results import (NO_LABELS_NOTE, PRECISION_AT, ClusterMembers, ClusterResult, Contingency,
                                             Evaluation, ExternalScores, LabelPrecision, LabelScores, MapResult,
                                             SilhouetteSweep)
from simsearch.ops.vectors import VectorSet
from simsearch.store import results
from simsearch.store.results import ResultKey
from simsearch import limits
from simsearch.analysis import (auto_sweep, external_scores, k_grid, knn_precision_per_point, pca_2d, representatives,
                                tsne_2d)
from simsearch.analysis.k_auto import assign_clusters

SEED = 0
METHODS = ("tsne", "pca")
# Part of the cache keys of assembled results: bump it when their stored shape changes.
FORMAT = "v2"  # v2: k chosen over a range growing with the collection (analysis.k_auto.auto_sweep)
# How the sweep is computed: k_grid, sample fit, mean-centred cosine silhouette; auto2: every image
# assigned at the best k only (the other k: their labels on the sample, assigned when asked for).
SWEEP_FORMAT = "auto2"
EVALUATION_FORMAT = "v2"  # v2: per-label precision and the cluster/label contingency table

Progress = Callable[[str, int, int], None]  # (what is being done, steps done, steps in all)


class Steps:
    """Reports numbered steps to a ``progress`` callback (or to nothing)."""

    def __init__(self, progress: Progress | None, total: int):
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message, min(self.done, self.total), self.total)
        self.done += 1

    def finish(self, message: str = "done") -> None:
        if self.progress is not None:
            self.progress(message, self.total, self.total)


def parse_k(k) -> int | None:
    """'auto' or None -> None (choose by the silhouette sweep); otherwise an int in 2..200 (simsearch.limits.ClusterK,
    the API's and the CLI's limit)."""
    k = limits.check(limits.ClusterK, k, "k")
    return None if k == "auto" else k


def parse_method(method: str) -> str:
    if method not in METHODS:
        raise InvalidInput(f"method must be 'tsne' or 'pca', not {method!r}", field="method")
    return method


def _need(n: int, at_least: int, what: str) -> None:
    if n < at_least:  # a valid request this collection cannot answer yet: 409
        raise Conflict(f"{what} needs at least {at_least} images with vectors; this collection has {n}",
                           field="collection")


def _check_k(k: int | None, n: int) -> None:
    if k is not None and k >= n:
        raise Conflict(f"k = {k} must be smaller than the number of images ({n})", field="k")


# ---- silhouette sweep and k-means -------------------------------------------------------------


def _sweep_key(vs: VectorSet, ks: list[int]) -> ResultKey:
    return ResultKey(vs.collection_id, vs.space, "sweep", f"{SWEEP_FORMAT};ks={ks[0]}..{ks[-1]};seed={SEED}",
                     vs.fingerprint)


def _sweep_ks(n: int) -> list[int]:
    """The k the sweep tries for ``n`` images (:func:`simsearch.analysis.k_auto.k_grid`)."""
    _need(n, 3, "a silhouette sweep")
    return k_grid(n)


def sweep(ctx, vs: VectorSet) -> tuple[SilhouetteSweep, dict[str, np.ndarray], bool]:
    """Silhouette per k over loaded vectors (k over :func:`_sweep_ks`), and whether it came from
    the cache. Arrays: ``labels_<best_k>`` / ``centroids_<best_k>`` (every image, at the best k
    only), ``sample_rows`` (the positions of the sample the k were fitted and scored on),
    ``sample_labels_<k>`` (that sample's clusters at every k), ``fitted_<k>`` (the centres as
    fitted, at every k) and ``mean`` (what the vectors were centred on, when they were)."""
    ks = _sweep_ks(len(vs))
    key = _sweep_key(vs, ks)
    hit = results.get(ctx.db, key)
    if hit is not None:
        return SilhouetteSweep.model_validate(hit.info), hit.arrays, True
    t0 = time.perf_counter()
    res = auto_sweep(vs.x, ks=ks, seed=SEED)
    sw = SilhouetteSweep(ks=[int(k) for k in res.ks], scores=[float(s) for s in res.scores], best_k=int(res.best_k),
                         sample_size=int(res.sample_size), seconds=round(time.perf_counter() - t0, 3),
                         metric=res.metric, centred=res.centred)
    arrays = {"sample_rows": np.asarray(res.sample_indices, dtype=np.int64)}
    if res.mean is not None:
        arrays["mean"] = np.asarray(res.mean, dtype=np.float32)
    for k in res.ks:
        arrays[f"sample_labels_{k}"] = np.asarray(res.sample_labels[k], dtype=np.int32)
        arrays[f"fitted_{k}"] = np.asarray(res.fitted[k], dtype=np.float32)
    for k in res.labels:
        arrays[f"labels_{k}"] = np.asarray(res.labels[k], dtype=np.int32)
        arrays[f"centroids_{k}"] = np.asarray(res.centroids[k], dtype=np.float32)
    results.put(ctx.db, key, sw.to_dict(), arrays)
    return sw, arrays, False


def _kmeans_at(ctx, vs: VectorSet, k: int, sweep_arrays: dict) -> tuple[np.ndarray, np.ndarray, float | None]:
    """(labels, centroids, silhouette) at ``k`` for every image. A k of the sweep (silhouette None:
    the sweep has it): its labels when the sweep assigned every image at k (its best k), else one
    pass assigning every image to the centres the sweep fitted at k. Another k: k-means fitted and
    scored on the sample exactly as the sweep fits each k, then one pass for k alone. Both cached."""
    if f"labels_{k}" in sweep_arrays:
        return sweep_arrays[f"labels_{k}"], sweep_arrays[f"centroids_{k}"], None
    key = ResultKey(vs.collection_id, vs.space, "kmeans", f"{SWEEP_FORMAT};k={k};seed={SEED}", vs.fingerprint)
    hit = results.get(ctx.db, key)
    if hit is not None:
        return hit.arrays["labels"], hit.arrays["centroids"], hit.info.get("silhouette")
    if f"fitted_{k}" in sweep_arrays:
        rows = sweep_arrays["sample_rows"]
        known = sweep_arrays[f"sample_labels_{k}"] if len(rows) == len(vs) else None  # the sample was every image
        r = assign_clusters(vs.x, sweep_arrays[f"fitted_{k}"], sweep_arrays.get("mean"), labels=known)
        labels, centroids, inertia, score = r.labels, r.centroids, r.inertia, None
    else:
        r = auto_sweep(vs.x, ks=[k], seed=SEED)
        labels, centroids, inertia = r.labels[k], r.centroids[k], r.inertias[k]
        score = None if np.isnan(r.scores[0]) else float(r.scores[0])
    labels, centroids = np.asarray(labels, np.int32), np.asarray(centroids, np.float32)
    results.put(ctx.db, key, {"k": k, "inertia": float(inertia), "silhouette": score},
                {"labels": labels, "centroids": centroids})
    return labels, centroids, score


# ---- clusters ---------------------------------------------------------------------------------


def _clusters_key(vs: VectorSet, k: int | None, n_representatives: int) -> ResultKey:
    params = f"{FORMAT};k={k or 'auto'};reps={n_representatives};seed={SEED}"
    return ResultKey(vs.collection_id, vs.space, "clusters", params, vs.fingerprint)


def _clusters_args(k, n_representatives) -> tuple[int | None, int]:
    try:
        n_reps = int(n_representatives)
    except (TypeError, ValueError):
        n_reps = 0
    if n_reps < 1:
        raise InvalidInput(f"representatives must be a whole number >= 1, not {n_representatives!r}",
                           field="representatives")
    return parse_k(k), n_reps


def lookup_clusters(ctx, collection: str, space: str | None = None, k="auto",
                    n_representatives: int = 8, *, vectors: VectorSet | None = None) -> ClusterResult | None:
    """The cached :func:`clusters` result for the current vectors, or None. ``vectors``: the
    collection's :func:`~simsearch.ops.vectors.peek` when the caller has it already."""
    want, n_reps = _clusters_args(k, n_representatives)
    vs = vectors or vecs.peek(ctx, collection, space)
    _sweep_ks(len(vs))
    _check_k(want, len(vs))
    hit = results.get(ctx.db, _clusters_key(vs, want, n_reps), arrays=())
    return ClusterResult.model_validate({**hit.info, "cached": True}) if hit is not None else None


def clusters(ctx, collection: str, space: str | None = None, k="auto", n_representatives: int = 8, *,
             progress: Progress | None = None) -> ClusterResult:
    """k-means clusters (k chosen by silhouette when 'auto') with sizes, members and representatives."""
    want, n_reps = _clusters_args(k, n_representatives)
    steps = Steps(progress, 3)
    cached = lookup_clusters(ctx, collection, space, k, n_reps)  # without reading the vectors
    if cached is not None:
        steps.finish()
        return cached
    steps("reading the vectors")
    vs = vecs.load(ctx, collection, space)
    ks = _sweep_ks(len(vs))
    _check_k(want, len(vs))
    key = _clusters_key(vs, want, n_reps)
    hit = results.get(ctx.db, key, arrays=())
    if hit is not None:
        steps.finish()
        return ClusterResult.model_validate({**hit.info, "cached": True})
    steps(f"k-means for k = {ks[0]}..{ks[-1]} and silhouette over {len(vs)} vectors")
    sw, arrays, _ = sweep(ctx, vs)
    chosen = sw.best_k if want is None else want
    _check_k(chosen, len(vs))
    steps(f"clusters at k = {chosen} and their representatives")
    labels, centroids, outside = _kmeans_at(ctx, vs, chosen, arrays)
    reps = representatives(vs.x, labels, centroids, n=n_reps)
    ids = vs.ids
    groups = [ClusterMembers(cluster=c, size=int((labels == c).sum()), representatives=[int(ids[i]) for i in reps.get(c, [])],
                      members=[int(i) for i in ids[labels == c]]) for c in range(chosen)]
    score = sw.score_at(chosen) if outside is None else outside  # k outside the sweep: scored as the sweep scores
    result = ClusterResult(collection=collection, backbone=vs.space, k=int(chosen), auto=want is None,
                           silhouette_at_k=score, silhouette=sw, n_images=len(vs), clusters=groups,
                           cached=False)
    results.put(ctx.db, key, result.to_dict())
    steps.finish()
    return result


def sweep_assignments(ctx, vs: VectorSet) -> dict[int, np.ndarray]:
    """k -> the cluster of each of ``vs``'s images (in the order of its ids) at every k of the
    silhouette sweep, for the images of the sweep's sample (all images up to
    :data:`simsearch.analysis.k_auto.SWEEP_SAMPLE`); -1 for the others. From the cache, else
    computed (the vectors are then read)."""
    ks = _sweep_ks(len(vs))
    names = ["sample_rows"] + [f"sample_labels_{k}" for k in ks]
    hit = results.get(ctx.db, _sweep_key(vs, ks), arrays=names)
    if hit is None or any(name not in hit.arrays for name in names):
        loaded = vs if vs.x is not None else vecs.load(ctx, vs.collection, vs.space)
        if loaded.fingerprint != vs.fingerprint:
            raise Conflict(f"the images of collection {vs.collection!r} changed meanwhile: try again", field="collection")
        _, arrays, _ = sweep(ctx, loaded)
    else:
        arrays = hit.arrays
    rows = np.asarray(arrays["sample_rows"], dtype=np.int64)
    out = {}
    for k in ks:
        full = np.full(len(vs), -1, dtype=np.int32)
        full[rows] = arrays[f"sample_labels_{k}"]
        out[k] = full
    return out


# ---- evaluation against labels ----------------------------------------------------------------


def _evaluation_key(vs: VectorSet, labels: list) -> ResultKey:
    fp = vecs.combined_fingerprint(vs.fingerprint, vecs.labels_fingerprint(labels))
    return ResultKey(vs.collection_id, vs.space, "evaluation", f"{EVALUATION_FORMAT};precision_k={PRECISION_AT};seed={SEED}", fp)


def _per_label(y: np.ndarray, per_point: np.ndarray) -> list[LabelPrecision]:
    """Mean kNN precision of each label's images, by label."""
    names, codes = np.unique(y, return_inverse=True)
    sums, counts = np.bincount(codes, per_point), np.bincount(codes)
    return [LabelPrecision(label=str(n), n=int(c), precision=float(t / c)) for n, t, c in zip(names, sums, counts)]


def _contingency(y: np.ndarray, pred: np.ndarray, k: int) -> Contingency:
    """Images of each label (rows) in each cluster (columns 0..k-1)."""
    names, codes = np.unique(y, return_inverse=True)
    counts = np.zeros((len(names), k), np.int64)
    np.add.at(counts, (codes, np.asarray(pred, np.int64)), 1)
    return Contingency(k=int(k), labels=[str(n) for n in names], clusters=list(range(k)), counts=counts.tolist())


def lookup_evaluation(ctx, collection: str, space: str | None = None, *,
                      vectors: VectorSet | None = None) -> Evaluation | None:
    """The cached :func:`evaluate` result for the current vectors and labels, or None."""
    vs = vectors or vecs.peek(ctx, collection, space)
    _sweep_ks(len(vs))
    hit = results.get(ctx.db, _evaluation_key(vs, vs.labels(ctx)), arrays=())
    return Evaluation.model_validate(hit.info) if hit is not None else None


def evaluate(ctx, collection: str, space: str | None = None, *,
             vectors: VectorSet | None = None, progress: Progress | None = None) -> Evaluation:
    """Silhouette by k and best k; with labels: ARI/NMI/homogeneity/completeness at the best k and at
    the number of distinct labels, and leave-one-out kNN precision@10 (over the labelled images).
    ``vectors``: already loaded vectors of the collection (saves reading them again)."""
    steps = Steps(progress, 3)
    steps("reading the vectors")
    vs = vectors if vectors is not None and vectors.x is not None else vecs.load(ctx, collection, space)
    labels = vs.labels(ctx)
    key = _evaluation_key(vs, labels)
    hit = results.get(ctx.db, key, arrays=())
    if hit is not None:
        steps.finish()
        return Evaluation.model_validate(hit.info)
    steps(f"k-means and silhouette over {len(vs)} vectors")
    sw, arrays, _ = sweep(ctx, vs)
    mask = np.array([lab is not None for lab in labels], dtype=bool)
    distinct = sorted({lab for lab in labels if lab is not None})
    scores = None
    if mask.sum() >= 2 and len(distinct) >= 2:
        steps("scores against the labels and kNN precision")
        y = np.array([lab for lab in labels if lab is not None])
        at_best = external_scores(y, arrays[f"labels_{sw.best_k}"][mask])
        n_lab = len(distinct)
        at_labels = None
        table_k, table_pred = sw.best_k, np.asarray(arrays[f"labels_{sw.best_k}"])
        if n_lab < len(vs):
            pred, _, _ = _kmeans_at(ctx, vs, n_lab, arrays)
            at_labels = ExternalScores(k=n_lab, **external_scores(y, np.asarray(pred)[mask]))
            table_k, table_pred = n_lab, np.asarray(pred)
        k_eff = min(PRECISION_AT, int(mask.sum()) - 1)
        _, per_point = knn_precision_per_point(vs.x[mask], y, k=k_eff)
        scores = LabelScores(at_best_k=ExternalScores(k=sw.best_k, **at_best), at_n_labels=at_labels,
                             knn_precision_at_10=float(per_point.mean()), precision_k=k_eff,
                             per_label=_per_label(y, per_point), contingency=_contingency(y, table_pred[mask], table_k))
    ev = Evaluation(collection=collection, backbone=vs.space, n_images=len(vs), silhouette=sw, best_k=sw.best_k,
                    n_labelled=int(mask.sum()), n_labels=len(distinct), labels=scores,
                    note=NO_LABELS_NOTE if scores is None else None)
    results.put(ctx.db, key, ev.to_dict())
    steps.finish()
    return ev


# ---- 2-D maps ---------------------------------------------------------------------------------


def _map_key(vs: VectorSet, method: str) -> ResultKey:
    return ResultKey(vs.collection_id, vs.space, "map", f"{FORMAT};method={method};seed={SEED}", vs.fingerprint)


def _map_result(vs: VectorSet, method: str, stored, labels: list, cached: bool) -> MapResult:
    coords = stored.arrays["coords"]
    return MapResult(collection=vs.collection, backbone=vs.space, method=method, n=len(stored.arrays["ids"]),
                     ids=stored.arrays["ids"], x=coords[:, 0], y=coords[:, 1], labels=labels,
                     clusters=stored.arrays["clusters"], k=int(stored.info["k"]), seconds=stored.info.get("seconds"),
                     cached=cached)


def lookup_map(ctx, collection: str, space: str | None = None, method: str = "tsne", *,
               vectors: VectorSet | None = None) -> MapResult | None:
    """The cached :func:`map_2d` result for the current vectors (labels read now), or None."""
    method = parse_method(method)
    vs = vectors or vecs.peek(ctx, collection, space)
    _need(len(vs), 3, "a map")
    hit = results.get(ctx.db, _map_key(vs, method))
    if hit is None or not np.array_equal(hit.arrays.get("ids"), vs.ids):
        return None
    return _map_result(vs, method, hit, vs.labels(ctx), cached=True)


def map_2d(ctx, collection: str, space: str | None = None, method: str = "tsne", *,
           vectors: VectorSet | None = None, progress: Progress | None = None) -> MapResult:
    """2-D coordinates of every image (t-SNE by default, PCA as an option), with labels and the
    cluster of each image at the automatically chosen k. Cached while the vectors are unchanged."""
    method = parse_method(method)
    steps = Steps(progress, 3)
    steps("reading the vectors")
    vs = vectors if vectors is not None and vectors.x is not None else vecs.load(ctx, collection, space)
    _need(len(vs), 3, "a map")
    key = _map_key(vs, method)
    hit = results.get(ctx.db, key)
    if hit is not None and np.array_equal(hit.arrays.get("ids"), vs.ids):
        steps.finish()
        return _map_result(vs, method, hit, vs.labels(ctx), cached=True)
    steps(f"{'t-SNE' if method == 'tsne' else 'PCA'} of {len(vs)} vectors")
    t0 = time.perf_counter()
    coords = np.asarray(tsne_2d(vs.x, seed=SEED) if method == "tsne" else pca_2d(vs.x), np.float32)
    seconds = round(time.perf_counter() - t0, 3)
    ks = _sweep_ks(len(vs))
    steps(f"k-means for k = {ks[0]}..{ks[-1]} and silhouette over {len(vs)} vectors (map colours)")
    sw, arrays, _ = sweep(ctx, vs)
    clusters_at_k = np.asarray(arrays[f"labels_{sw.best_k}"], np.int32)
    stored = results.StoredResult(info={"seconds": seconds, "n": len(vs), "k": sw.best_k},
                                  arrays={"ids": vs.ids, "coords": coords, "clusters": clusters_at_k})
    results.put(ctx.db, key, stored.info, stored.arrays)
    steps.finish()
    return _map_result(vs, method, stored, vs.labels(ctx), cached=False)
