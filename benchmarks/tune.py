"""Cross-validated P@10 of every tuning candidate on the shared labelled photos; prints ONE JSON object.

    python benchmarks/tune.py                       # flowers and cats-dogs (../shared/datasets)
    python benchmarks/tune.py --datasets flowers --folds 5 --seed 0
    python benchmarks/tune.py --concat              # also avg+max pooling concatenated (embeds both)
    python benchmarks/tune.py --no-variants         # without the GeM / flip / multi-scale candidates
    python benchmarks/tune.py --datasets flowers102 --sample 500   # the sample's choice against all images'
    python benchmarks/tune.py --datasets flowers102 --sample 500 --per-label 8   # on a subset (8 per label)

Each dataset is ingested (``--labels folders``, efficientnet_lite0, fp32) into a throw-away SQLite
home, then ``simsearch.ops.tune.tune`` runs exactly as ``simsearch tune`` does: nested stratified
k-fold CV (transforms fitted on the training folds only, held-out images queried against the
training folds), the one-standard-error choice; by default with the pooling and test-time-view
variants of the base (GeM p = 2, 3, 4; +flip; +flip+ms), whose embedding pass is timed. Reported per candidate: P@10 mean and std over
the folds, ARI (k-means at the label count, on the held-out images) mean and std, seconds; and
the raw space's leave-one-out P@10 over the whole collection (what ``simsearch evaluate`` shows).
There are no cat-breed labels in ../shared/datasets (its README), so no breed figure.

With ``--sample N`` each dataset is ingested once, its data directory copied, and ``tune`` run on
the one with ``sample=N`` and on the other with ``sample="all"``: reported are both choices
(``same_choice``), both times, and where the sample's choice ranks among the candidates scored on
all images (``rank_of_sample_choice_on_all``, 1 = the best mean) with its P@10 there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from harness import ROOT, cpu_model, emit, log  # noqa: E402  benchmarks/harness.py

DATASETS = ROOT.parent / "shared" / "datasets"


def _ingest(name: str, home: Path, concat: bool, per_label: int | None) -> tuple[float, int]:
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ingest import Ingester, files_from_folder

    settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'db.sqlite'}")
    ctx = AppContext.open(settings, schema="upgrade")
    try:
        files, _ = files_from_folder(DATASETS / name, labels="folders")
        if per_label:
            seen: dict = {}
            files = [f for f in files if seen.setdefault(f.label, []).append(f) or len(seen[f.label]) <= per_label]
        spaces = [ctx.new_space("efficientnet_lite0")] + ([ctx.new_space("efficientnet_lite0", "max")] if concat else [])
        t0 = time.perf_counter()
        Ingester(ctx, spaces=spaces).run(name, files, source=str(DATASETS / name))
        return time.perf_counter() - t0, len(files)
    finally:
        ctx.close()


def _tune(name: str, home: Path, **kw) -> dict:
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ops.tune import tune

    ctx = AppContext.open(Settings.from_env(home=home, database_url=f"sqlite:///{home / 'db.sqlite'}"), schema="upgrade")
    try:
        return tune(ctx, name, set_default=True, **kw).to_dict()
    finally:
        ctx.close()


def compare_sample(name: str, folds: int, seed: int, concat: bool, variants: bool, sample: int,
                   per_label: int | None, home: Path) -> dict:
    """``tune`` with ``sample`` and with every image on copies of one ingested collection."""
    a, b = home / f"{name}-sample", home / f"{name}-all"
    embed_s, n = _ingest(name, a, concat, per_label)
    shutil.copytree(a, b)
    log(f"{name}: {n} images embedded in {embed_s:.0f} s; tuning on a sample of {sample}")
    out = {"images": n, "per_label": per_label, "embed_seconds": round(embed_s, 1)}
    for key, home_, smp in (("sample", a, sample), ("all", b, "all")):
        r = _tune(name, home_, folds=folds, seed=seed, concat=concat, variants=variants, sample=smp)
        out[key] = {"chosen": r["chosen"], "seconds": r["seconds"], "sample": r["sample"], "embedding": r["embedding"],
                    "candidates": [{k: c.get(k) for k in ("space", "p_at_10_mean", "p_at_10_std", "ari_mean",
                                                          "served_mean", "cv_images")} for c in r["candidates"]]}
        log(f"{name}: {key}: chose {r['chosen']} in {r['seconds']:.0f} s")
    on_all = sorted(out["all"]["candidates"], key=lambda c: -c["served_mean"])
    pos = next((i for i, c in enumerate(on_all) if c["space"] == out["sample"]["chosen"]), None)
    out["same_choice"] = out["sample"]["chosen"] == out["all"]["chosen"]
    out["rank_of_sample_choice_on_all"] = None if pos is None else pos + 1
    out["sample_choice_on_all"] = None if pos is None else on_all[pos]
    out["all_choice_on_all"] = next(c for c in on_all if c["space"] == out["all"]["chosen"])
    return out


def run(name: str, folds: int, seed: int, concat: bool, variants: bool, home: Path) -> dict:
    from simsearch.analysis import knn_precision
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.ops import vectors as vecs
    from simsearch.ops.tune import tune

    settings = Settings.from_env(home=home / name, database_url=f"sqlite:///{home / name / 'db.sqlite'}")
    ctx = AppContext.open(settings, schema="upgrade")
    try:
        files, _ = files_from_folder(DATASETS / name, labels="folders")
        spaces = [ctx.new_space("efficientnet_lite0")] + ([ctx.new_space("efficientnet_lite0", "max")] if concat else [])
        t0 = time.perf_counter()
        Ingester(ctx, spaces=spaces).run(name, files, source=str(DATASETS / name))
        embed_s = time.perf_counter() - t0
        vs = vecs.load(ctx, name, spaces[0])
        loo = knn_precision(vs.x, vs.labels(ctx))
        log(f"{name}: {len(vs)} images embedded in {embed_s:.0f} s; raw leave-one-out P@10 {loo:.3f}; tuning")
        report = tune(ctx, name, set_default=True, folds=folds, seed=seed, concat=concat, variants=variants)
        out = report.to_dict()
        return {"images": report.n_images, "labels": report.n_labels, "raw_loo_p_at_10": round(loo, 4),
                "embed_seconds": round(embed_s, 1), "tune_seconds": report.seconds, "chosen": report.chosen,
                "protocol": report.protocol, "embedding": report.embedding, "notes": report.notes,
                "candidates": [{k: c.get(k) for k in ("space", "p_at_10_mean", "p_at_10_std", "ari_mean", "ari_std",
                                                      "seconds", "embed_seconds")} for c in out["candidates"]]}
    finally:
        ctx.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="flowers,cats-dogs")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concat", action="store_true")
    ap.add_argument("--no-variants", dest="variants", action="store_false")
    ap.add_argument("--sample", type=int, default=None,
                    help="Tune with this sample cap and with every image; compare the choices.")
    ap.add_argument("--per-label", type=int, default=None, help="With --sample: only the first N images of each label.")
    args = ap.parse_args()
    os.environ.setdefault("SIMSEARCH_PRECISION", "fp32")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    result = {"benchmark": "tune", "cpu": cpu_model(), "cores": os.cpu_count(), "load_before": os.getloadavg()[0],
              "folds": args.folds, "variants": args.variants,
              "seed": args.seed, "backbone": "efficientnet_lite0 (fp32)", "datasets": {}}
    with tempfile.TemporaryDirectory(prefix="simsearch-tune-") as tmp:
        for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
            if args.sample:
                result["datasets"][name] = compare_sample(name, args.folds, args.seed, args.concat, args.variants,
                                                          args.sample, args.per_label, Path(tmp))
            else:
                result["datasets"][name] = run(name, args.folds, args.seed, args.concat, args.variants, Path(tmp))
    result["load_after"] = os.getloadavg()[0]
    emit(result, indent=1)


if __name__ == "__main__":
    main()
