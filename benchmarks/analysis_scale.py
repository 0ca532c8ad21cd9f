"""Analysis at scale: the 2-D map (t-SNE) and the k-means silhouette sweep k = 2..10 of N vectors
derived from real embeddings (benchmarks/synthetic.py). Prints one JSON object.

The map is what the map job computes: t-SNE fitted on a seeded sample of 100,000 vectors
(simsearch.analysis.TSNE_FIT_MAX) and every other vector placed into it among its nearest
sampled neighbours. The sweep is what the clusters job computes: FAISS k-means for each k on all
N vectors, the silhouette on a seeded 10,000-vector sample. Also reported: how well the placed
points keep their neighbourhoods (the fraction of each placed point's 10 nearest map neighbours,
among the fitted points, that are among its 50 nearest neighbours in the original space,
against the same figure for fitted points: a cheap trustworthiness check on 2,000 points).

Usage: python benchmarks/analysis_scale.py [--n 1000000] [--skip-map] [--skip-sweep]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import numpy as np

from harness import emit, log  # noqa: E402  benchmarks/harness.py


def peak_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 2)


def neighbourhood_kept(x: np.ndarray, coords: np.ndarray, rows: np.ndarray, among: np.ndarray) -> float:
    """Mean fraction of each row's 10 nearest map neighbours (among ``among``) that are among
    its 50 nearest neighbours in the original space (among ``among``)."""
    import faiss

    hi = faiss.IndexFlatIP(x.shape[1])
    hi.add(np.ascontiguousarray(x[among]))
    lo = faiss.IndexFlatL2(2)
    lo.add(np.ascontiguousarray(coords[among]))
    _, orig = hi.search(np.ascontiguousarray(x[rows]), 51)
    _, mapped = lo.search(np.ascontiguousarray(coords[rows]), 11)
    kept = []
    for i, r in enumerate(rows):
        o = set(among[orig[i]].tolist()) - {r}
        m = [j for j in among[mapped[i]].tolist() if j != r][:10]
        kept.append(len(o.intersection(m)) / len(m))
    return round(float(np.mean(kept)), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-map", action="store_true")
    ap.add_argument("--skip-sweep", action="store_true")
    args = ap.parse_args()

    from synthetic import Synthetic, real_embeddings

    from simsearch.analysis import TSNE_FIT_MAX, silhouette_sweep, tsne_2d
    from simsearch.embedding.runtimes import cpu_summary

    out = {"benchmark": "analysis_scale", **cpu_summary(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
           "load_average_before": [round(v, 2) for v in os.getloadavg()], "n": args.n, "dim": None}
    t0 = time.perf_counter()
    x = Synthetic.fit(real_embeddings()).generate(args.n, args.seed)
    out["dim"] = int(x.shape[1])
    out["generate_seconds"] = round(time.perf_counter() - t0, 1)
    log(f"{args.n} x {x.shape[1]} vectors in {out['generate_seconds']} s")
    if not args.skip_sweep:
        t0 = time.perf_counter()
        sw = silhouette_sweep(x, ks=range(2, 11), seed=args.seed)
        out["sweep_seconds"] = round(time.perf_counter() - t0, 1)
        out["sweep_best_k"] = int(sw.best_k)
        out["sweep_scores"] = [round(float(s), 4) for s in sw.scores]
        log(f"sweep k=2..10 in {out['sweep_seconds']} s (best k {sw.best_k})")
    if not args.skip_map:
        t0 = time.perf_counter()
        coords = tsne_2d(x, seed=args.seed)
        out["map_seconds"] = round(time.perf_counter() - t0, 1)
        out["map_fitted_points"] = min(args.n, TSNE_FIT_MAX)
        log(f"map in {out['map_seconds']} s")
        rng = np.random.default_rng(args.seed)
        fit = np.sort(rng.choice(args.n, min(args.n, TSNE_FIT_MAX), replace=False)) if args.n > TSNE_FIT_MAX \
            else np.arange(args.n)
        placed = np.setdiff1d(np.arange(args.n), fit)
        check = np.random.default_rng(1)
        out["neighbourhood_kept_fitted"] = neighbourhood_kept(x, coords, check.choice(fit, 2000, replace=False), fit)
        if len(placed):
            out["neighbourhood_kept_placed"] = neighbourhood_kept(
                x, coords, check.choice(placed, 2000, replace=False), np.union1d(fit, placed[:0]))
    out["peak_memory_gb"] = peak_gb()
    out["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    out["targets"] = {"map_at_most_900_s": (out.get("map_seconds"), out.get("map_seconds", 1e9) <= 900),
                      "sweep_at_most_60_s": (out.get("sweep_seconds"), out.get("sweep_seconds", 1e9) <= 60)}
    emit(out, indent=2)


if __name__ == "__main__":
    main()
