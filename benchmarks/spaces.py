"""Spaces that mean the same: tune's criterion and calibrated scores on flowers102 (labels on half); prints ONE JSON object.

    python benchmarks/spaces.py                          # embeds ../shared/datasets/flowers102 (efficientnet_lite0)
    python benchmarks/spaces.py --vectors f102.npz       # x (N x 1280), labels, paths: vectors computed before
    python benchmarks/spaces.py --queries 300 --folds 5

1. The collection's labels are kept on a seeded random half of the images (the other half has
   none), as in issue #18's 4,017-photo case.
2. ``simsearch.ops.tune.tune`` runs (no variants, no concatenation): per candidate P@10, ARI,
   neighbour preservation ("kept": a held-out image's raw top-10 still in its top-50) and the
   criterion (their mean); which candidate P@10 alone would pick, and which the criterion picks.
3. The collapse case: a supervised projection to 8 dimensions (shrinkage 0.5), cross-validated
   on the same folds; its P@10, ARI, kept and criterion next to the raw space's.
4. Calibration: the collapse projection is stored as a derived space; for ``--queries`` images of
   the unlabelled half (their true species known from the folder), ``similar`` (k=10) in the raw
   space and in the projection, as the API answers: mean cosine and mean percentile of the hits
   of the same species and of other species, and how well each separates them (ROC AUC).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import ROOT, cpu_model, emit, log  # noqa: E402  benchmarks/harness.py

DATA = ROOT.parent / "shared" / "datasets" / "flowers102"
NAME = "flowers102"
SPACE = "efficientnet_lite0"


def load_collection(ctx, vectors: Path | None) -> dict[int, str]:
    """The collection (embedded, or imported from ``vectors``); returns image id -> true label."""
    from sqlalchemy import select

    from simsearch.store.models import Image

    if vectors is None:
        from simsearch.ingest import Ingester, files_from_folder

        files, _ = files_from_folder(DATA, labels="folders")
        Ingester(ctx, spaces=[SPACE]).run(NAME, files, source=str(DATA))
    else:
        from simsearch.ops.vectors_io import import_vectors

        d = np.load(vectors)
        with tempfile.TemporaryDirectory() as tmp:
            np.savez(Path(tmp) / "v.npz", vectors=d["x"], keys=d["paths"], labels=d["labels"])
            import_vectors(ctx, Path(tmp) / "v.npz", NAME, SPACE, same_model=True)
    with ctx.db.session() as s:
        return dict(s.execute(select(Image.id, Image.label).order_by(Image.id)).all())


def hide_half(ctx, truth: dict[int, str], seed: int) -> set[int]:
    """Remove the labels of a seeded random half; returns the ids that lost theirs."""
    from simsearch.store import bulk

    ids = np.array(sorted(truth))
    hidden = set(np.random.default_rng(seed).permutation(ids)[: len(ids) // 2].tolist())
    with ctx.db.session() as s:
        bulk.set_labels(s, [(i, None) for i in sorted(hidden)])
        s.commit()
    return hidden


def collapse_cv(x, y, folds: int, seed: int) -> dict:
    from simsearch.analysis import tuning
    from simsearch.analysis.transforms import fit_discriminant

    f = tuning.stratified_folds(y, folds, seed)
    sc = {"raw": tuning.CandidateScore(tuning.Family()), "disc8": tuning.CandidateScore(tuning.Family("discriminant"))}
    for fo in range(folds):
        tr, te = f != fo, f == fo
        raw_top = tuning._top(x[te], x[tr], tuning.PRECISION_K)
        lin = fit_discriminant(x[tr], y[tr], 8, 0.5)
        for key, (D, Q) in {"raw": (x[tr], x[te]), "disc8": (lin.apply(x[tr]), lin.apply(x[te]))}.items():
            sc[key].p_at_10.append(tuning.precision_at(Q, y[te], D, y[tr]))
            sc[key].ari.append(tuning._ari(Q, y[te], seed))
            sc[key].kept.append(tuning.preservation(raw_top, Q, D))
    return {k: {m: v.to_dict()[m] for m in ("p_at_10_mean", "ari_mean", "kept_mean", "served_mean")} for k, v in sc.items()}


def calibration(ctx, truth, hidden, spaces, n_queries: int, seed: int) -> dict:
    from sklearn.metrics import roc_auc_score

    from simsearch.ops.search import by_image

    queries = np.random.default_rng(seed).choice(sorted(hidden), min(n_queries, len(hidden)), replace=False)
    out = {}
    for space in spaces:
        cos, pct, same = [], [], []
        for q in queries:
            for r in by_image(ctx, int(q), backbone=space, k=10)["results"]:
                cos.append(r["score"])
                pct.append(r["percentile"])
                same.append(truth[r["image_id"]] == truth[int(q)])
        cos, pct, same = np.array(cos), np.array(pct), np.array(same)
        out[space] = {"hits": int(len(cos)), "same_label_share": round(float(same.mean()), 4),
                      "cosine_same": round(float(cos[same].mean()), 4), "cosine_other": round(float(cos[~same].mean()), 4),
                      "percentile_same": round(float(pct[same].mean()), 1),
                      "percentile_other": round(float(pct[~same].mean()), 1),
                      "auc_cosine": round(float(roc_auc_score(same, cos)), 4),
                      "auc_percentile": round(float(roc_auc_score(same, pct)), 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=Path, help="precomputed efficientnet_lite0 vectors (x, labels, paths)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from simsearch import derived
    from simsearch.analysis.transforms import fit_discriminant
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ops import vectors as vecs
    from simsearch.ops.tune import tune

    with tempfile.TemporaryDirectory() as home:
        settings = Settings.from_env(home=Path(home), database_url=f"sqlite:///{home}/db.sqlite")
        ctx = AppContext.open(settings, schema="upgrade")
        t0 = time.perf_counter()
        truth = load_collection(ctx, args.vectors)
        hidden = hide_half(ctx, truth, args.seed)
        log(f"{len(truth)} images, labels on {len(truth) - len(hidden)} ({time.perf_counter() - t0:.0f} s); tuning")
        t1 = time.perf_counter()
        report = tune(ctx, NAME, folds=args.folds, seed=args.seed, concat=False, variants=False)
        tune_s = time.perf_counter() - t1
        rows = [{k: c.get(k) for k in ("space", "p_at_10_mean", "ari_mean", "kept_mean", "served_mean", "seconds")}
                for c in report.candidates]
        by_p = max(rows, key=lambda r: r["p_at_10_mean"])["space"]
        vs = vecs.load(ctx, NAME, SPACE)
        lab = np.array([i not in hidden for i in vs.ids])
        x, y = vs.x[lab], np.array([truth[int(i)] for i in vs.ids[lab]])
        log("collapse case and calibration")
        collapse = collapse_cv(x, y, args.folds, args.seed)
        lin = fit_discriminant(x, y, 8, 0.5)
        name = f"{SPACE}.discriminant8"
        derived.save(ctx, vs.collection_id, name, [SPACE], {"transform": "discriminant", "rerank": "none", "dims": 8,
                                                           "shrinkage": 0.5}, lin, None)
        calib = calibration(ctx, truth, hidden, [SPACE, name], args.queries, args.seed)
    emit({"benchmark": "spaces", "cpu": cpu_model(), "data": "flowers102 (1,632 photos, 102 species), "
                      "labels kept on a seeded random half", "vectors": str(args.vectors or "embedded now"),
                      "tune": {"seconds": round(tune_s, 1), "protocol": report.protocol, "chosen": report.chosen,
                               "best_by_p_at_10_alone": by_p, "candidates": rows},
                      "collapse_8d_cv": collapse, "calibration": calib}, indent=1)


if __name__ == "__main__":
    main()
