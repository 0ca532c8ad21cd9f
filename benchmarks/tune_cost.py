"""Where `simsearch tune`'s time goes, and the same scores before and after a change; ONE JSON object.

    nice -n 10 python benchmarks/tune_cost.py                       # flowers102, oxford-buildings at the default cap
    python benchmarks/tune_cost.py --datasets flowers102 --cap 500 --baseline ec52f26 --embed 64

Vectors: benchmarks/tune_sample.py's cache (efficientnet_lite0, fp32; embedded once if missing). Per
dataset, on the sample `tune` draws at ``--cap`` (:func:`simsearch.ops.sampling.stratified_sample`,
seed 0), the two candidate sets `tune` cross-validates (:func:`simsearch.analysis.tuning.cross_validate`,
nested stratified 5-fold):

- ``base``: the nine families (transform x re-ranking) on the base space;
- ``variant``: the two families `tune` scores on each of its 11 pooling / view variants (raw and the
  supervised projection), here on the base vectors: a variant's vectors have the same shape, so this is
  the cost of one of the 11 (``tune_cv_estimate`` = base + 11 x variant).

Each is run with the tuning code of ``--baseline`` (a git revision: its ``simsearch/analysis`` loaded as
a package of its own, in this process) and with the working tree's, one after the other, under cProfile:
``seconds`` (wall, profiler on for both), the phases (cumulative seconds of the inner cross-validation
of the hyper-parameters, within it the transform fits, re-rankings and P@10 scoring; the outer fits,
k-means for ARI, P@10 and neighbour preservation), and ``identical``: every candidate's per-fold P@10,
ARI, preservation and chosen hyper-parameters equal, and the one-standard-error choice the same.

``--embed N``: the variants' embedding pass on N of the dataset's photos as `tune` runs it
(:func:`simsearch.jobs.reembed.embed_batch`: read and decode once, the feature map once per test-time
view for all 11 variant spaces), with the decode timed apart and each view's model seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import ROOT, emit, log  # noqa: E402  benchmarks/harness.py
from tune_sample import DATASETS, sample_of, vectors  # noqa: E402  benchmarks/tune_sample.py

PHASES = {  # name -> (function name, caller name or None: cumulative seconds of the function [called from])
    "inner_cv": ("choose", "cross_validate"),
    "inner_basis": ("principal_basis", "_grid_scores"),
    "inner_fits": ("_variants", "_grid_scores"),
    "inner_qe": ("alpha_qe", "_grid_scores"),
    "inner_dba": ("dba", "_grid_scores"),
    "inner_p_at_10": ("precision_at", "_grid_scores"),
    "outer_basis": ("principal_basis", "cross_validate"),
    "outer_fits": ("fit", "cross_validate"),
    "outer_kmeans_ari": ("_ari", "cross_validate"),
    "outer_rerank": ("_rerank", "cross_validate"),
    "outer_p_at_10": ("precision_at", "cross_validate"),
    "outer_preservation": ("preservation", "cross_validate"),
}


def baseline_package(rev: str, where: Path) -> str:
    """``simsearch/analysis`` at git revision ``rev`` as the package ``baseline_analysis`` under ``where``."""
    where.mkdir(parents=True, exist_ok=True)
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "simsearch/analysis"], check=True,
                         capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=tar, check=True)
    (where / "simsearch" / "analysis").rename(where / "baseline_analysis")
    sys.path.insert(0, str(where))
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], check=True, capture_output=True,
                          text=True).stdout.strip()


def phases(prof: cProfile.Profile, module_dir: str) -> dict:
    stats = pstats.Stats(prof).stats
    out = {}
    for phase, (fn, caller) in PHASES.items():
        total = 0.0
        for (path, _line, name), (_cc, _nc, _tt, ct, callers) in stats.items():
            if name != fn or module_dir not in path:
                continue
            if caller is None:
                total += ct
            else:
                total += sum(c[3] for (cpath, _l, cname), c in callers.items() if cname == caller and module_dir in cpath)
        out[phase] = round(total, 2)
    return out


def run_cv(tuning, x, labels, fams, folds: int, seed: int) -> tuple[list, float, dict]:
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    scores = tuning.cross_validate(x, labels, [tuning.Family(f.transform, f.rerank) for f in fams], n_folds=folds,
                                   seed=seed)
    prof.disable()
    seconds = time.perf_counter() - t0
    return scores, seconds, phases(prof, os.path.dirname(tuning.__file__))


def same(a: list, b: list) -> bool:
    return all(sa.p_at_10 == sb.p_at_10 and sa.ari == sb.ari and sa.kept == sb.kept
               and [s.to_dict() for s in sa.settings] == [s.to_dict() for s in sb.settings] for sa, sb in zip(a, b))


def embed_pass(name: str, n: int, cache: Path) -> dict:
    """The variants' embedding pass of ``tune`` on ``n`` photos of the dataset, decode timed apart."""
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.images import THUMBNAIL_SIDE, decode_image, resize_for_model
    from simsearch.ingest import files_from_folder
    from simsearch.jobs import reembed
    from simsearch.ops.tune import variant_spaces

    home = cache / f"{name}-efficientnet_lite0"
    ctx = AppContext.open(Settings.from_env(home=home, database_url=f"sqlite:///{home / 'db.sqlite'}"),
                          schema="upgrade")
    try:
        files, _ = files_from_folder(DATASETS / name, labels="folders")
        paths = [str(f.path) for f in files][:: max(1, len(files) // n)][:n]
        base = ctx.new_space("efficientnet_lite0")
        spaces = variant_spaces(base)
        reembed.embed_batch(ctx, spaces, paths[:2])  # opens (and converts once) the feature-map model
        size = reembed.feature_map(ctx, spaces).input_size
        t0 = time.perf_counter()
        for p in paths:
            img = decode_image(reembed.read_source(p), source=p, max_pixels=ctx.settings.max_pixels, draft_size=size,
                               draft_long=THUMBNAIL_SIDE)
            resize_for_model(img.image, size)
        decode = time.perf_counter() - t0
        views: dict[str, float] = {}
        t0 = time.perf_counter()
        for start in range(0, len(paths), reembed.BATCH):
            reembed.embed_batch(ctx, spaces, paths[start:start + reembed.BATCH], views)
        total = time.perf_counter() - t0
    finally:
        ctx.close()
    return {"images": len(paths), "spaces": len(spaces), "base": base, "seconds": round(total, 2),
            "ms_per_image": round(1000 * total / len(paths), 1), "decode_ms_per_image": round(1000 * decode / len(paths), 1),
            "view_ms_per_image": {k: round(1000 * v / len(paths), 1) for k, v in views.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="flowers102,oxford-buildings")
    ap.add_argument("--cap", type=int, default=2000, help="The sample cap (tune's default: 2000).")
    ap.add_argument("--baseline", default="ec52f26", help="Git revision whose tuning code is the 'before'.")
    ap.add_argument("--sets", default="base,variant", help="Which candidate sets to run (base, variant).")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embed", type=int, default=0, help="Also time the variants' embedding pass on N photos.")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "simsearch-tune-sample")
    args = ap.parse_args()
    os.environ.setdefault("SIMSEARCH_PRECISION", "fp32")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import sklearn.cluster  # noqa: F401  imported before the timings (both versions import it lazily)

    from simsearch.analysis import tuning

    with tempfile.TemporaryDirectory(prefix="tune-cost-") as tmp:
        rev = baseline_package(args.baseline, Path(tmp))
        from baseline_analysis import tuning as old  # noqa: E402  loaded by baseline_package

        args.cache.mkdir(parents=True, exist_ok=True)
        sets = {"base": tuning.families(), "variant": [tuning.Family("none"), tuning.Family("discriminant")]}
        result = {"benchmark": "tune_cost", "baseline": rev, "cap": args.cap, "folds": args.folds, "seed": args.seed,
                  "threads": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
                  "datasets": {}}
        for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
            v = vectors(name, "efficientnet_lite0", args.cache)
            pick, drawn = sample_of(v["labels"], args.cap, args.seed, args.folds)
            x, labels = v["x"][pick], v["labels"][pick]
            row = {"sample": drawn, "dims": int(x.shape[1]), "sets": {}}
            for key in [s.strip() for s in args.sets.split(",") if s.strip()]:
                fams = sets[key]
                a, sa, pa = run_cv(old, x, labels, fams, args.folds, args.seed)
                log(f"{name} {key}: before {sa:.1f} s")
                b, sb, pb = run_cv(tuning, x, labels, fams, args.folds, args.seed)
                log(f"{name} {key}: after {sb:.1f} s")
                chosen = [m.select(s).family.name for m, s in ((old, a), (tuning, b))]
                row["sets"][key] = {"candidates": len(fams), "before_s": round(sa, 1), "after_s": round(sb, 1),
                                    "speedup": round(sa / sb, 2), "identical": same(a, b), "chosen_before": chosen[0],
                                    "chosen_after": chosen[1], "phases_before": pa, "phases_after": pb,
                                    "load_after": [round(t, 2) for t in os.getloadavg()]}
            if {"base", "variant"} <= set(row["sets"]):
                s = row["sets"]
                row["tune_cv_estimate_s"] = {k: round(s["base"][k] + 11 * s["variant"][k], 1)
                                             for k in ("before_s", "after_s")}
            if args.embed:
                row["embedding"] = embed_pass(name, args.embed, args.cache)
                log(f"{name}: embedding {row['embedding']}")
            result["datasets"][name] = row
    emit(result, indent=1)


if __name__ == "__main__":
    main()
