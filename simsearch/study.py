"""Analysis over a collection's stored vectors: clusters, evaluation, 2-D maps, backbone comparison.

The maths is in :mod:`simsearch.analysis` (pure functions); this module loads vectors from the
database, caches each result in ``analysis_results`` keyed by (collection, space, kind, parameters)
and the fingerprint of the vector ids it was computed from, and reuses it while they are unchanged.
Every function returns a JSON-able dict (the CLI prints it, the API sends it).
"""

from __future__ import annotations

import io
import time

import numpy as np
from sqlalchemy import delete, func, select

from simsearch.errors import Conflict, InvalidInput, SimsearchError
from simsearch.store import repo
from simsearch.store.models import AnalysisResult, Embedding, Image

DEFAULT_KS = tuple(range(2, 11))
SEED = 0


# ---- loading and caching ----------------------------------------------------------------------


def load(services, collection: str, space: str | None):
    """(collection id, space, ids, vectors, fingerprint) of the ok images that have ``space`` vectors.
    The views take it as ``loaded=`` so a caller that needs several of them reads the vectors once."""
    from simsearch.search import resolve_space

    with services.db.session() as s:
        coll_id = repo.get_collection(s, collection).id
    space = resolve_space(services, coll_id, space)
    with services.db.session() as s:
        ids, x = repo.load_vectors(s, coll_id, space)
    return coll_id, space, ids, x, repo.fingerprint(ids)


def _labels(services, ids: np.ndarray) -> list[str | None]:
    with services.db.session() as s:
        return repo.labels_for(s, ids)


def _pack(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _unpack(data: bytes | None) -> dict[str, np.ndarray]:
    if not data:
        return {}
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def cached(services, coll_id: int, space: str, kind: str, params_key: str, fp: str):
    with services.db.session() as s:
        row = s.scalar(select(AnalysisResult).where(
            AnalysisResult.collection_id == coll_id, AnalysisResult.space == space,
            AnalysisResult.kind == kind, AnalysisResult.params_key == params_key))
        if row is None or row.fingerprint != fp:
            return None
        return row.result, _unpack(row.arrays)


def store(services, coll_id: int, space: str, kind: str, params_key: str, fp: str, result: dict,
          arrays: dict[str, np.ndarray] | None = None) -> None:
    with services.db.session() as s:
        s.execute(delete(AnalysisResult).where(
            AnalysisResult.collection_id == coll_id, AnalysisResult.space == space,
            AnalysisResult.kind == kind, AnalysisResult.params_key == params_key))
        s.add(AnalysisResult(collection_id=coll_id, space=space, kind=kind, params_key=params_key, fingerprint=fp,
                             result=result, arrays=_pack(arrays) if arrays else None))


def _need(x: np.ndarray, at_least: int, what: str) -> None:
    if len(x) < at_least:  # a valid request the collection cannot answer yet: 409
        raise Conflict(f"{what} needs at least {at_least} images with vectors; this collection has {len(x)}", field="collection")


def parse_k(k) -> int | None:
    """'auto' or None -> None (choose by silhouette); otherwise an int >= 2."""
    if k is None or (isinstance(k, str) and k.strip().lower() == "auto"):
        return None
    try:
        k = int(k)
    except (TypeError, ValueError):
        raise InvalidInput(f"k must be 'auto' or a whole number >= 2, not {k!r}", field="k")
    if k < 2:
        raise InvalidInput(f"k must be 'auto' or a whole number >= 2, not {k}", field="k")
    return k


# ---- silhouette sweep and clusters ------------------------------------------------------------


def sweep(services, coll_id: int, space: str, ids: np.ndarray, x: np.ndarray, fp: str, ks=DEFAULT_KS):
    """Silhouette per k (cached), with the labels and centroids of every k."""
    from simsearch.analysis import silhouette_sweep

    ks = [k for k in ks if k < len(x)]
    _need(x, 3, "a silhouette sweep")
    key = f"ks={ks[0]}..{ks[-1]};seed={SEED}"
    hit = cached(services, coll_id, space, "sweep", key, fp)
    if hit is not None:
        return hit[0], hit[1], True
    t0 = time.perf_counter()
    res = silhouette_sweep(x, ks=ks, seed=SEED)
    result = {"ks": [int(k) for k in res.ks], "scores": [float(v) for v in res.scores], "best_k": int(res.best_k),
              "sample_size": int(res.sample_size), "seconds": round(time.perf_counter() - t0, 3)}
    arrays = {}
    for k in res.ks:
        arrays[f"labels_{k}"] = np.asarray(res.labels[k], dtype=np.int32)
        arrays[f"centroids_{k}"] = np.asarray(res.centroids[k], dtype=np.float32)
    store(services, coll_id, space, "sweep", key, fp, result, arrays)
    return result, arrays, False


def _clustering(services, coll_id, space, ids, x, fp, k: int | None):
    """(sweep result, chosen k, labels, centroids, from_cache)."""
    from simsearch.analysis import kmeans

    sw, arrays, was_cached = sweep(services, coll_id, space, ids, x, fp)
    chosen = sw["best_k"] if k is None else k
    if chosen >= len(x):
        raise Conflict(f"k = {chosen} must be smaller than the number of images ({len(x)})", field="k")
    if f"labels_{chosen}" in arrays:
        return sw, chosen, arrays[f"labels_{chosen}"], arrays[f"centroids_{chosen}"], was_cached
    key = f"k={chosen};seed={SEED}"
    hit = cached(services, coll_id, space, "kmeans", key, fp)
    if hit is not None:
        return sw, chosen, hit[1]["labels"], hit[1]["centroids"], True
    r = kmeans(x, chosen, seed=SEED)
    store(services, coll_id, space, "kmeans", key, fp, {"k": chosen, "inertia": float(r.inertia)},
          {"labels": np.asarray(r.labels, np.int32), "centroids": np.asarray(r.centroids, np.float32)})
    return sw, chosen, r.labels, r.centroids, False


def cluster_view(services, collection: str, space: str | None = None, k="auto", n_representatives: int = 8) -> dict:
    """kMeans clusters (k chosen by silhouette when 'auto') with sizes, members and representatives."""
    from simsearch.analysis import representatives

    want = parse_k(k)
    coll_id, space, ids, x, fp = load(services, collection, space)
    sw, chosen, labels, centroids, was_cached = _clustering(services, coll_id, space, ids, x, fp, want)
    reps = representatives(x, labels, centroids, n=n_representatives)
    clusters = []
    for c in range(chosen):
        members = ids[labels == c]
        clusters.append({"cluster": c, "size": int(len(members)),
                         "representatives": [int(ids[i]) for i in reps.get(c, [])],
                         "members": [int(i) for i in members]})
    score_at_k = dict(zip(sw["ks"], sw["scores"])).get(chosen)
    if score_at_k is None:  # k outside the sweep: score it on the same kind of sample
        from simsearch.analysis.cluster import silhouette_many

        idx = np.arange(len(x))
        if len(x) > sw["sample_size"]:
            idx = np.sort(np.random.default_rng(SEED).choice(len(x), size=sw["sample_size"], replace=False))
        score_at_k = float(silhouette_many(x[idx], [np.asarray(labels)[idx]])[0])
    return {"collection": collection, "backbone": space, "k": int(chosen), "auto": want is None,
            "silhouette_at_k": score_at_k, "silhouette": sw, "n_images": int(len(ids)), "clusters": clusters,
            "cached": was_cached}


# ---- evaluation against labels ----------------------------------------------------------------


def evaluation_view(services, collection: str, space: str | None = None, k_precision: int = 10, *, loaded=None) -> dict:
    """Silhouette by k and best k; with labels: ARI/NMI/homogeneity/completeness at the best k and at
    the number of distinct labels, and leave-one-out kNN precision@10 (over the labelled images)."""
    from simsearch.analysis import external_scores, kmeans, knn_precision

    coll_id, space, ids, x, fp = loaded or load(services, collection, space)
    sw, arrays, was_cached = sweep(services, coll_id, space, ids, x, fp)
    labels = _labels(services, ids)
    mask = np.array([lab is not None for lab in labels], dtype=bool)
    out = {"collection": collection, "backbone": space, "n_images": int(len(ids)), "silhouette": sw,
           "best_k": sw["best_k"], "n_labelled": int(mask.sum()), "labels": None}
    distinct = sorted({lab for lab in labels if lab is not None})
    out["n_labels"] = len(distinct)
    if mask.sum() < 2 or len(distinct) < 2:
        out["note"] = "no labels (or only one): external scores need at least two distinct labels"
        return out
    y = np.array([lab for lab in labels if lab is not None])
    best = arrays[f"labels_{sw['best_k']}"]
    at_best = external_scores(y, best[mask])
    n_lab = len(distinct)
    if f"labels_{n_lab}" in arrays:
        pred = arrays[f"labels_{n_lab}"]
    elif n_lab < len(x):
        pred = kmeans(x, n_lab, seed=SEED).labels
    else:
        pred = None
    at_labels = external_scores(y, np.asarray(pred)[mask]) if pred is not None else None
    k_eff = min(k_precision, int(mask.sum()) - 1)
    out["labels"] = {
        "at_best_k": {"k": sw["best_k"], **at_best},
        "at_n_labels": {"k": n_lab, **at_labels} if at_labels else None,
        f"knn_precision_at_{k_precision}": float(knn_precision(x[mask], y, k=k_eff)),
        "precision_k": k_eff,
    }
    return out


# ---- 2-D maps ---------------------------------------------------------------------------------


def map_view(services, collection: str, space: str | None = None, method: str = "tsne", *, loaded=None) -> dict:
    """2-D coordinates of every image (t-SNE by default, PCA as an option), with labels and the
    cluster of each image at the automatically chosen k. Cached while the vectors are unchanged."""
    from simsearch.analysis import pca_2d, tsne_2d

    if method not in ("tsne", "pca"):
        raise InvalidInput(f"method must be 'tsne' or 'pca', not {method!r}", field="method")
    coll_id, space, ids, x, fp = loaded or load(services, collection, space)
    _need(x, 3, "a map")
    key = f"method={method};seed={SEED}"
    hit = cached(services, coll_id, space, "map", key, fp)
    was_cached = hit is not None
    if hit is not None:
        info, arrays = hit
        coords = arrays["coords"]
    else:
        t0 = time.perf_counter()
        coords = tsne_2d(x, seed=SEED) if method == "tsne" else pca_2d(x)
        info = {"seconds": round(time.perf_counter() - t0, 3), "n": int(len(ids))}
        store(services, coll_id, space, "map", key, fp, info, {"coords": np.asarray(coords, np.float32)})
    _, chosen, cl_labels, _, _ = _clustering(services, coll_id, space, ids, x, fp, None)
    return {"collection": collection, "backbone": space, "method": method, "n": int(len(ids)),
            "ids": ids.tolist(), "x": coords[:, 0].tolist(), "y": coords[:, 1].tolist(),
            "labels": _labels(services, ids), "clusters": np.asarray(cl_labels).astype(int).tolist(), "k": int(chosen),
            "seconds": info.get("seconds"), "cached": was_cached}


# ---- comparison of backbones ------------------------------------------------------------------


def embed_missing(services, collection: str, space: str, *, show_bar: bool = False, weights: str | None = None) -> dict:
    """Embed the collection's ok images that lack ``space`` vectors, from their source files."""
    from pathlib import Path

    from simsearch.ingest import Ingester, SourceFile

    with services.db.session() as s:
        coll = repo.get_collection(s, collection)
        have = select(Embedding.image_id).where(Embedding.space == space)
        rows = s.scalars(select(Image).where(Image.collection_id == coll.id, Image.status == "ok",
                                             Image.id.not_in(have)).order_by(Image.id)).all()
        files = [SourceFile(name=img.source_path, path=Path(img.source_path), label=img.label, meta=img.meta) for img in rows]
    if not files:
        return {"embedded": 0, "failed": 0, "errors": []}
    report = Ingester(services, spaces=[space], show_bar=show_bar, weights={space: weights} if weights else None).run(
        collection, files, source=f"compare:{space}")
    return {"embedded": report.embedded, "failed": report.failed, "errors": report.errors}


def comparison_view(services, collection: str, spaces: list[str], *, embed: bool = False, with_maps: bool = True,
                    show_bar: bool = False, weights: dict[str, str] | None = None) -> dict:
    """Side-by-side metrics for several backbones on one collection. A backbone whose weights cannot
    be had (or that has no vectors, when ``embed`` is false) is reported unavailable with the reason."""
    from simsearch.analysis import neighbour_overlap
    from simsearch.backbones import get_backbone
    from simsearch.embed import parse_space

    if not spaces:
        raise InvalidInput("give at least one backbone to compare", field="backbones")
    with services.db.session() as s:
        coll = repo.get_collection(s, collection)
        n_ok = repo.image_counts(s, coll.id).get("ok", 0)
    panels, vectors = [], {}
    for space in dict.fromkeys(spaces):
        name, _pooling = parse_space(space)
        b = get_backbone(name)
        panel = {"backbone": space, "dim": b.dim, "input_size": b.input_size, "available": True, "reason": None}
        try:
            if embed:
                w = (weights or {}).get(space) or (weights or {}).get(name)
                services.embedder(space, weights=w).load()
                panel["embedding"] = embed_missing(services, collection, space, show_bar=show_bar, weights=w)
            loaded = load(services, collection, space)  # once per backbone: vectors can be hundreds of MB
            ev = evaluation_view(services, collection, space, loaded=loaded)
            panel.update({"n_images": ev["n_images"], "silhouette": ev["silhouette"], "best_k": ev["best_k"],
                          "labels": ev["labels"]})
            with services.db.session() as s:
                secs, count = s.execute(select(func.avg(Embedding.seconds), func.count()).join(Image).where(
                    Image.collection_id == coll.id, Embedding.space == space)).one()
            panel["embed_seconds_per_image"] = float(secs) if secs is not None else None
            panel["embed_seconds_total"] = float(secs * count) if secs is not None else None
            if with_maps:
                mv = map_view(services, collection, space, loaded=loaded)
                panel["map"] = {k: mv[k] for k in ("ids", "x", "y", "labels", "clusters", "k")}
            vectors[space] = (loaded[2], loaded[3])
        except SimsearchError as exc:
            panel.update(available=False, reason=exc.message)
        panels.append(panel)
    overlap = []
    names = list(vectors)
    for i, a in enumerate(names):
        for bname in names[i + 1:]:
            ids_a, xa = vectors[a]
            ids_b, xb = vectors[bname]
            common, ia, ib = np.intersect1d(ids_a, ids_b, return_indices=True)
            if len(common) > 11:
                overlap.append({"a": a, "b": bname, "k": 10, "n": int(len(common)),
                                "jaccard": float(neighbour_overlap(xa[ia], xb[ib], k=10))})
    return {"collection": collection, "n_images": n_ok, "backbones": panels, "neighbour_overlap": overlap}
