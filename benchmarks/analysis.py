"""Benchmark simsearch.analysis on synthetic embeddings; prints ONE JSON object to stdout.

    python benchmarks/analysis.py                 # full: sweep 100k x 1280, t-SNE 20k (+ sklearn), t-SNE 100k
    python benchmarks/analysis.py --quick         # small sizes, a smoke check in well under a minute
    python benchmarks/analysis.py --skip-sklearn  # leave out scikit-learn's (slow) TSNE

Data: seeded Gaussian clusters in ``--dim`` dimensions (``--clusters`` centres, isotropic noise),
L2-normalised to float32 like real embeddings. The t-SNE runs use the first rows of the same
data set. Progress goes to stderr; timings are wall-clock seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
from harness import emit, log  # noqa: E402  benchmarks/harness.py


def make_data(n: int, dim: int, clusters: int, seed: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Clusters of unequal size: centres ~ N(0, I), points = centre + noise * N(0, I), unit rows."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    weights = rng.uniform(0.5, 1.5, clusters)
    labels = rng.choice(clusters, size=n, p=weights / weights.sum())
    X = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 10_000):
        lab = labels[start : start + 10_000]
        X[start : start + len(lab)] = centres[lab] + noise * rng.standard_normal((len(lab), dim), dtype=np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, labels


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - t0, 2)


def machine() -> dict:
    import faiss
    import openTSNE
    import sklearn

    return {
        "cpu_count": os.cpu_count(),
        "sched_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "openTSNE": openTSNE.__version__,
        "sklearn": sklearn.__version__,
        "faiss_omp_threads": faiss.omp_get_max_threads(),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke check)")
    ap.add_argument("--skip-sklearn", action="store_true", help="do not time sklearn.manifold.TSNE")
    ap.add_argument("--skip-tsne-large", action="store_true", help="do not time the large t-SNE")
    ap.add_argument("--n-sweep", type=int, default=None, help="points for the silhouette sweep (100000)")
    ap.add_argument("--n-tsne", type=int, default=None, help="points for the openTSNE vs sklearn t-SNE (20000)")
    ap.add_argument("--n-tsne-large", type=int, default=None, help="points for the large t-SNE (100000)")
    ap.add_argument("--dim", type=int, default=None, help="dimensions (1280)")
    ap.add_argument("--clusters", type=int, default=8, help="true number of clusters")
    ap.add_argument("--noise", type=float, default=1.0, help="noise std per dimension (centres are unit-variance)")
    ap.add_argument("--sample-size", type=int, default=10_000, help="silhouette sample size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)

    from simsearch.analysis import external_scores, knn_precision, silhouette_sweep, tsne_2d

    quick = args.quick
    n_sweep = args.n_sweep or (3_000 if quick else 100_000)
    n_tsne = args.n_tsne or (1_000 if quick else 20_000)
    n_large = args.n_tsne_large or (3_000 if quick else 100_000)
    dim = args.dim or (64 if quick else 1280)
    n_data = max(n_sweep, n_tsne, 0 if args.skip_tsne_large else n_large)
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None

    log(f"data: {n_data} x {dim}, {args.clusters} clusters")
    X, y = make_data(n_data, dim, args.clusters, args.seed, args.noise)
    result: dict = {
        "quick": quick,
        "data": {"n": n_data, "dim": dim, "clusters": args.clusters, "noise": args.noise, "seed": args.seed,
                 "dtype": "float32", "normalised": True},
        "machine": machine(),
        "loadavg_start": load_start,
    }

    log(f"silhouette sweep k=2..10 on {n_sweep} points")
    Xs, ys = X[:n_sweep], y[:n_sweep]
    sw, secs = timed(silhouette_sweep, Xs, ks=range(2, 11), seed=args.seed, sample_size=args.sample_size)
    result["sweep"] = {
        "n": n_sweep,
        "dim": dim,
        "ks": sw.ks,
        "seconds": secs,
        "best_k": sw.best_k,
        "true_k": args.clusters,
        "sample_size": sw.sample_size,
        "metric": sw.metric,
        "kmeans_backend": sw.backend,
        "scores": [round(s, 4) for s in sw.scores],
        "ari_at_best_k": round(external_scores(ys, sw.labels[sw.best_k])["ari"], 4),
    }
    log(f"sweep: {secs}s, best k {sw.best_k}")

    Xt, yt = X[:n_tsne], y[:n_tsne]
    log(f"openTSNE (tsne_2d) on {n_tsne} points")
    Y, secs = timed(tsne_2d, Xt, seed=args.seed)
    tsne = {"n": n_tsne, "opentsne_seconds": secs,
            "opentsne_knn_precision_2d": round(knn_precision(Y, yt, k=10, metric="euclidean"), 4)}
    log(f"openTSNE: {secs}s")
    if not args.skip_sklearn:
        from sklearn.manifold import TSNE

        log(f"sklearn TSNE (defaults) on {n_tsne} points")
        Ys, secs = timed(TSNE(random_state=args.seed).fit_transform, Xt)
        tsne["sklearn_seconds"] = secs
        tsne["sklearn_knn_precision_2d"] = round(knn_precision(Ys, yt, k=10, metric="euclidean"), 4)
        tsne["speedup"] = round(tsne["sklearn_seconds"] / tsne["opentsne_seconds"], 2)
        log(f"sklearn: {secs}s (speed-up {tsne['speedup']}x)")
    result["tsne"] = tsne

    if not args.skip_tsne_large:
        log(f"openTSNE (tsne_2d) on {n_large} points")
        Yl, secs = timed(tsne_2d, X[:n_large], seed=args.seed)
        result["tsne_large"] = {
            "n": n_large,
            "seconds": secs,
            "knn_precision_2d_sampled": round(
                knn_precision(Yl, y[:n_large], k=10, metric="euclidean", sample_size=10_000, seed=0), 4
            ),
        }
        log(f"large t-SNE: {secs}s")

    result["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    text = json.dumps(emit(result, indent=2), indent=2)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
