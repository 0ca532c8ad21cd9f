"""tune's candidate evaluation and compare's ranking on the default sample, smaller samples and every image; ONE JSON object.

    nice -n 10 python benchmarks/tune_sample.py          # flowers102 and oxford-buildings, caps 2000, 1000, 500, 250 and all
    python benchmarks/tune_sample.py --datasets flowers102 --caps 500 --backbones efficientnet_lite0
    python benchmarks/tune_sample.py --embed-only        # only the (cached) embedding pass

Each dataset (../shared/datasets, ``--labels folders``: in oxford-buildings the 304 unrelated photos
of ``oxford/`` are a label of their own, as ``simsearch tune`` would see them) is embedded once per
backbone (fp32) in a throw-away SQLite home under ``--cache``; the vectors are kept there, so a second
run does not embed again (``embed_seconds`` is then the first run's). Then, for every cap and for
every image (``"all"``):

- the sample ``simsearch tune`` and ``simsearch compare`` draw
  (:func:`simsearch.ops.sampling.stratified_sample`, seed 0): its size, labels, images per label;
- tune's candidate evaluation exactly as ``simsearch.ops.tune`` runs it on one base space
  (``efficientnet_lite0``; the pooling / test-time-view variants are left out: they re-embed the
  images up to four times): :func:`simsearch.analysis.tuning.cross_validate` of every family
  (nested stratified 5-fold CV) and the one-standard-error choice (:func:`tuning.select`); each
  candidate's P@10, ARI, neighbour preservation and the served score (their mean), and the seconds;
- compare's ranking of the backbones: each backbone's leave-one-out P@10 on the sample
  (:func:`simsearch.analysis.knn_precision`, the comparison's headline figure), ranked.

A cap at or above the collection's size draws every image: that cap is not run again, its result
is the ``"all"`` one (``same_as_all``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import ROOT, emit, log  # noqa: E402  benchmarks/harness.py

DATASETS = ROOT.parent / "shared" / "datasets"
if not DATASETS.is_dir():
    DATASETS = Path("/work/shared/datasets")


def vectors(name: str, backbone: str, cache: Path) -> dict:
    """The dataset's vectors in ``backbone``'s space (embedded once, then read from ``cache``)."""
    out = cache / f"{name}-{backbone}.npz"
    if out.exists():
        z = np.load(out, allow_pickle=False)
        return {"x": z["x"], "labels": z["labels"], "embed_seconds": float(z["embed_seconds"]), "cached": True}
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.ops import vectors as vecs

    home = cache / f"{name}-{backbone}"
    settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'db.sqlite'}")
    ctx = AppContext.open(settings, schema="upgrade")
    try:
        files, _ = files_from_folder(DATASETS / name, labels="folders")
        space = ctx.new_space(backbone)
        t0 = time.perf_counter()
        Ingester(ctx, spaces=[space]).run(name, files, source=str(DATASETS / name))
        seconds = time.perf_counter() - t0
        vs = vecs.load(ctx, name, space)
        labels = np.asarray([str(lab) for lab in vs.labels(ctx)])
    finally:
        ctx.close()
    np.savez(out, x=vs.x.astype(np.float32), labels=labels, embed_seconds=seconds)
    log(f"{name}: {len(labels)} images embedded in {backbone} in {seconds:.0f} s")
    return {"x": vs.x, "labels": labels, "embed_seconds": seconds, "cached": False}


def sample_of(labels: np.ndarray, cap: int | None, seed: int, folds: int) -> tuple[np.ndarray, dict]:
    """The rows tune scores (its fallback included: every image when the sample cannot be folded)."""
    from simsearch.analysis import tuning
    from simsearch.errors import InvalidInput
    from simsearch.ops.sampling import stratified_sample

    pick = stratified_sample(labels, cap or len(labels), seed=seed)
    try:
        tuning.check_labelled(np.unique(labels[pick], return_inverse=True)[1], folds)
    except InvalidInput:
        pick = np.arange(len(labels))
    _, counts = np.unique(labels[pick], return_counts=True)
    return pick, {"size": int(len(pick)), "labels": int(len(counts)), "per_label_min": int(counts.min()),
                  "per_label_median": float(np.median(counts)), "per_label_max": int(counts.max())}


def evaluate_candidates(x: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> dict:
    """tune's scoring of the families on one base space and its one-standard-error choice."""
    from simsearch.analysis import tuning

    t0 = time.perf_counter()
    scores = tuning.cross_validate(x, labels, tuning.families(), n_folds=folds, seed=seed)
    best = tuning.select(scores, complexity=lambda sc: sc.family.complexity)  # one base: no base cost
    seconds = time.perf_counter() - t0
    top = max(scores, key=lambda sc: sc.mean)
    rows = [{k: d[k] for k in ("p_at_10_mean", "p_at_10_std", "ari_mean", "kept_mean", "served_mean",
                               "served_std")} | {"candidate": sc.family.name} for sc in scores for d in [sc.to_dict()]]
    return {"chosen": best.family.name, "best_mean": top.family.name, "seconds": round(seconds, 1),
            "candidates": {r.pop("candidate"): r for r in rows}}


def rank_backbones(vecs_by_backbone: dict, pick: np.ndarray) -> dict:
    from simsearch.analysis import knn_precision

    t0 = time.perf_counter()
    p = {b: round(float(knn_precision(v["x"][pick], v["labels"][pick])), 4) for b, v in vecs_by_backbone.items()}
    return {"p_at_10": p, "ranking": sorted(p, key=lambda b: -p[b]), "seconds": round(time.perf_counter() - t0, 2)}


def run_dataset(name: str, backbones: list[str], caps: list[int], folds: int, seed: int, cache: Path,
                compare_only: bool, with_all: bool = True) -> dict:
    vb = {b: vectors(name, b, cache) for b in backbones}
    base = vb[backbones[0]]
    x, labels = base["x"], base["labels"]
    out = {"images": int(len(labels)), "labels": int(len(np.unique(labels))),
           "embed_seconds": {b: round(v["embed_seconds"], 1) for b, v in vb.items()}, "runs": {}}
    for cap in [None] * with_all + sorted(caps, reverse=True):
        key = "all" if cap is None else str(cap)
        pick, drawn = sample_of(labels, cap, seed, folds)
        row = {"sample": drawn}
        if cap is not None and drawn["size"] == len(labels) and with_all:
            out["runs"][key] = {**row, "same_as_all": True}
            continue
        log(f"{name}: {key}: {drawn['size']} images, {drawn['labels']} labels")
        row["compare"] = rank_backbones(vb, pick)
        if not compare_only:
            row["tune"] = evaluate_candidates(x[pick], labels[pick], folds, seed)
            log(f"{name}: {key}: chose {row['tune']['chosen']} in {row['tune']['seconds']} s")
        out["runs"][key] = row
    if not with_all:
        return out
    whole = out["runs"]["all"]
    for key, row in out["runs"].items():
        if key == "all" or row.get("same_as_all"):
            continue
        row["same_ranking_as_all"] = row["compare"]["ranking"] == whole["compare"]["ranking"]
        if "tune" in row:
            row["same_choice_as_all"] = row["tune"]["chosen"] == whole["tune"]["chosen"]
            on_all = sorted(whole["tune"]["candidates"], key=lambda c: -whole["tune"]["candidates"][c]["served_mean"])
            row["rank_of_choice_on_all"] = on_all.index(row["tune"]["chosen"]) + 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="flowers102,oxford-buildings")
    ap.add_argument("--backbones", default="efficientnet_lite0,efficientnet_lite1",
                    help="The first is tune's base; all are ranked as compare ranks them.")
    ap.add_argument("--caps", default="2000,1000,500,250", help="Sample caps besides every image (2000: the default).")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "simsearch-tune-sample",
                    help="Where the embedded vectors are kept between runs.")
    ap.add_argument("--embed-only", action="store_true")
    ap.add_argument("--compare-only", action="store_true", help="Only compare's ranking (no cross-validation).")
    ap.add_argument("--no-all", dest="with_all", action="store_false",
                    help="Only the caps (no run on every image, nothing compared with it).")
    args = ap.parse_args()
    os.environ.setdefault("SIMSEARCH_PRECISION", "fp32")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from simsearch.ops.sampling import CAP, MIN_PER_LABEL

    args.cache.mkdir(parents=True, exist_ok=True)
    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    result = {"benchmark": "tune_sample", "default_cap": CAP, "min_per_label": MIN_PER_LABEL, "folds": args.folds,
              "seed": args.seed, "backbones": backbones, "tune_base": f"{backbones[0]} (fp32), no variants",
              "datasets": {}}
    if args.embed_only:
        for name in names:
            for b in backbones:
                vectors(name, b, args.cache)
        return
    caps = [int(c) for c in args.caps.split(",") if c.strip()]
    for name in names:
        result["datasets"][name] = run_dataset(name, backbones, caps, args.folds, args.seed, args.cache,
                                               args.compare_only, args.with_all)
    emit(result, indent=1)


if __name__ == "__main__":
    main()
