"""How well ``cluster -k auto`` chooses k, and what the sweep costs at scale. Prints ONE JSON object.

    python benchmarks/k_auto.py                          # the four labelled sets, then the sweep at 100k
    python benchmarks/k_auto.py --scale 100000,1000000   # sweep timings at these sizes (synthetic vectors)
    python benchmarks/k_auto.py --scale ""               # quality only

Quality: each set of ``../shared/datasets`` (cats-dogs, flowers, flowers102, oxford-buildings) is
embedded with efficientnet_lite0 (avg pool, fp32; cached in ``--cache``), labels = subfolders
(oxford-buildings: 16 landmarks and ``oxford``, the unrelated photos, as a 17th label). For each
candidate criterion, the k it picks and the ARI / NMI (scikit-learn) of the k-means clusters at
that k against the labels, beside the same figures at k = the number of labels:

- ``silhouette_2_10``: what ``k auto`` did before: mean euclidean silhouette over k = 2..10,
  k-means on the stored vectors (``silhouette_sweep``);
- ``silhouette_raw``: the same silhouette over the growing range (``k_grid``), k-means fitted on
  the sample of the stored vectors (``auto_sweep(centre=False, metric="euclidean")``);
- ``silhouette_centred`` (the choice): cosine silhouette of the mean-centred vectors over the
  growing range (``auto_sweep()``, what ``k auto`` runs now), for seeds 0, 1 and 2;
- ``calinski_harabasz`` (highest) and ``davies_bouldin`` (lowest): scikit-learn's scores of the
  same clusterings as ``silhouette_centred`` (seed 0), on the same vectors.

Scale: the sweep at N synthetic vectors derived from the real ones (benchmarks/synthetic.py),
the new ``auto_sweep`` (17 k, 2..200 fitted and scored on a 10,000 sample, every point assigned
at the chosen k only) and a later pick of another k (the largest: fit + one pass), beside, up to
``--previous-max``, the previous sweep (every point assigned at all 17 k) and the old
``silhouette_sweep`` over k = 2..10; wall-clock.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from harness import ROOT, cpu_model, emit, log  # noqa: E402  benchmarks/harness.py

DATASETS = ROOT.parent / "shared" / "datasets"
SETS = ("cats-dogs", "flowers", "flowers102", "oxford-buildings")


def embeddings(name: str, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, labels) of every photo of ``DATASETS/name`` (sorted paths; label = first folder)."""
    path = cache / f"k_auto-{name}.npz"
    if path.exists():
        d = np.load(path)
        return d["x"], d["labels"]
    from simsearch.embedding.embedder import Embedder
    from simsearch.spaces import parse, space_key
    from simsearch.images import load_image, resize_for_model, scan_images

    root = (DATASETS / name).resolve()
    paths = sorted(scan_images(root))
    weights = Path(os.environ.get("SIMSEARCH_WEIGHTS_DIR", cache / "simsearch-weights"))
    emb = Embedder(parse(space_key("efficientnet_lite0", "avg", "fp32")), weights, runtime="auto", device="cpu")
    log(f"embedding {len(paths)} photos of {name}")
    parts = []
    for start in range(0, len(paths), 32):
        parts.append(emb.embed(np.stack([resize_for_model(load_image(p).image, emb.input_size)
                                         for p in paths[start:start + 32]])))
    x = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
    labels = np.array([p.relative_to(root).parts[0] for p in paths])
    np.savez(path, x=x, labels=labels)
    return x, labels


def scores(y, pred) -> dict:
    from sklearn import metrics

    return {"ari": round(float(metrics.adjusted_rand_score(y, pred)), 3),
            "nmi": round(float(metrics.normalized_mutual_info_score(y, pred)), 3)}


def quality(name: str, x: np.ndarray, y: np.ndarray) -> dict:
    from sklearn import metrics

    from simsearch.analysis import auto_sweep, k_grid, silhouette_sweep

    n, true_k = len(x), len(set(y.tolist()))
    out = {"n": n, "labels": true_k, "ks": k_grid(n), "candidates": {}}
    t0 = time.perf_counter()
    at_true = auto_sweep(x, ks=[true_k])
    out["at_label_count"] = {"k": true_k, **scores(y, at_true.labels[true_k])}
    old = silhouette_sweep(x, ks=range(2, 11))
    out["candidates"]["silhouette_2_10"] = {"k": old.best_k, **scores(y, old.labels[old.best_k]),
                                            "curve": [round(s, 4) for s in old.scores]}
    raw = auto_sweep(x, centre=False, metric="euclidean")
    out["candidates"]["silhouette_raw"] = {"k": raw.best_k, **scores(y, raw.labels[raw.best_k]),
                                           "curve": [round(s, 4) for s in raw.scores]}
    runs = []
    for seed in (0, 1, 2):
        res = auto_sweep(x, seed=seed, assign=k_grid(n) if seed == 0 else None)  # seed 0: every k, for CH / DB
        runs.append({"seed": seed, "k": res.best_k, **scores(y, res.labels[res.best_k]),
                     "curve": [round(s, 4) for s in res.scores]})
        if seed == 0:
            chosen = res
    out["candidates"]["silhouette_centred"] = runs
    ch = [metrics.calinski_harabasz_score(x, chosen.labels[k]) for k in chosen.ks]
    db = [metrics.davies_bouldin_score(x, chosen.labels[k]) for k in chosen.ks]
    k_ch, k_db = chosen.ks[int(np.argmax(ch))], chosen.ks[int(np.argmin(db))]
    out["candidates"]["calinski_harabasz"] = {"k": k_ch, **scores(y, chosen.labels[k_ch])}
    out["candidates"]["davies_bouldin"] = {"k": k_db, **scores(y, chosen.labels[k_db])}
    out["best_ari_on_the_grid"] = max(({"k": k, **scores(y, chosen.labels[k])} for k in chosen.ks), key=lambda r: r["ari"])
    out["seconds"] = round(time.perf_counter() - t0, 1)
    log(f"{name}: picked " + ", ".join(f"{c}: k={v['k'] if isinstance(v, dict) else [r['k'] for r in v]}"
                                       for c, v in out["candidates"].items()) + f" ({out['seconds']} s)")
    return out


def scale(sizes: list[int], seed: int, old_too: bool = True, previous_max: int = 100_000) -> list[dict]:
    """Time the sweep at each N. Beside it, for N <= ``previous_max``: the previous sweep (the same
    fits, then one pass assigning every point at all 17 k: ``auto_sweep(assign=ks)``) and, with
    ``old_too``, the first one (k = 2..10 on all points, ``silhouette_sweep``)."""
    import resource

    from synthetic import Synthetic, real_embeddings

    from simsearch.analysis import auto_sweep, silhouette_sweep

    model = Synthetic.fit(real_embeddings())
    rows = []
    for n in sizes:
        t0 = time.perf_counter()
        x = model.generate(n, seed)
        row = {"n": n, "dim": int(x.shape[1]), "generate_seconds": round(time.perf_counter() - t0, 1),
               "load_before": round(os.getloadavg()[0], 2)}
        t0 = time.perf_counter()
        new = auto_sweep(x, seed=seed)
        row["auto_sweep_seconds"] = round(time.perf_counter() - t0, 1)
        row["auto_sweep_ks"] = new.ks
        row["auto_sweep_best_k"] = new.best_k
        row["assigned_k"] = sorted(new.labels)
        row["sum_of_k"] = int(sum(new.ks))
        t0 = time.perf_counter()
        other_k = new.ks[-1]
        at_other = auto_sweep(x, seed=seed, ks=[other_k])  # a k picked on the curve later: fit + one pass
        row[f"another_k_{other_k}_seconds"] = round(time.perf_counter() - t0, 1)
        del at_other
        if n <= previous_max:
            t0 = time.perf_counter()
            prev = auto_sweep(x, seed=seed, assign=new.ks)
            row["previous_sweep_all_k_assigned_seconds"] = round(time.perf_counter() - t0, 1)
            assert prev.scores == new.scores and prev.best_k == new.best_k
            assert np.array_equal(prev.labels[new.best_k], new.labels[new.best_k])
            del prev
            if old_too:
                t0 = time.perf_counter()
                old = silhouette_sweep(x, ks=range(2, 11), seed=seed)
                row["old_sweep_2_10_seconds"] = round(time.perf_counter() - t0, 1)
                row["old_sweep_best_k"] = old.best_k
                del old
        row["peak_memory_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 2)
        row["load_after"] = round(os.getloadavg()[0], 2)
        log(f"{n} x {x.shape[1]}: auto_sweep {row['auto_sweep_seconds']} s, previous (all k assigned) "
            f"{row.get('previous_sweep_all_k_assigned_seconds')} s, old 2..10 sweep {row.get('old_sweep_2_10_seconds')} s")
        rows.append(row)
        del x, new
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(SETS))
    ap.add_argument("--scale", default="100000", help="comma-separated N for the timing (empty: none)")
    ap.add_argument("--no-old", dest="old", action="store_false", help="skip the k = 2..10 sweep")
    ap.add_argument("--previous-max", type=int, default=100_000,
                    help="largest N at which the previous sweeps are timed beside the new one")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default="/tmp", help="folder for the embeddings' .npz")
    args = ap.parse_args()
    os.environ.setdefault("SIMSEARCH_PRECISION", "fp32")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from simsearch.analysis.k_auto import SWEEP_SAMPLE

    out = {"benchmark": "k_auto", "cpu": cpu_model(), "cores": os.cpu_count(), "load_before": round(os.getloadavg()[0], 2),
           "backbone": "efficientnet_lite0 (avg pool, fp32)", "sweep_sample": SWEEP_SAMPLE, "datasets": {}}
    for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        x, y = embeddings(name, Path(args.cache))
        out["datasets"][name] = quality(name, x, y)
    sizes = [int(s) for s in args.scale.split(",") if s.strip()]
    if sizes:
        out["scale"] = scale(sizes, args.seed, args.old, args.previous_max)
    out["load_after"] = round(os.getloadavg()[0], 2)
    emit(out, indent=1)


if __name__ == "__main__":
    main()
