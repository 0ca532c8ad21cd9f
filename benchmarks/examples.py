"""Searches with several examples (docs/search-examples.md): do negative examples push the unwanted
images down without losing the wanted ones, and how do the alternatives compare?

Protocol, on a labelled collection already ingested (flowers102 by default): for every label with
at least 12 images, 3 seeded positives; the plain search by them (their mean direction) ranks
the collection; the label most frequent among its top 60 that is not the wanted one is the
"look-alike", and its 2 best-ranked images are the negatives (what a curator marks "less like
this"). Reported per method: the wanted label's and the look-alike's share of the top k (the
examples left out). Methods: ``plain`` (no negatives), ``examples`` (simsearch.analysis.examples,
weight 1 and 2), ``rocchio`` (query = mean(P) - b * mean(N)), ``subtract`` (mean cosine to P - w * max
cosine to N).

    python benchmarks/examples.py --home /tmp/f102 --collection f102 [--k 20] [--seed 0]

(ingest first: ``SIMSEARCH_HOME=/tmp/f102 simsearch ingest ../shared/datasets/flowers102 -c f102
--labels folders``)."""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from harness import emit, log

from simsearch.analysis import examples as E
from simsearch.analysis.transforms import normalise
from simsearch.config import Settings
from simsearch.context import AppContext
from simsearch.space_defaults import resolve_space
from simsearch.store import repo


def methods(X: np.ndarray, P: np.ndarray, N: np.ndarray) -> dict[str, np.ndarray]:
    c = P.mean(axis=0)
    out = {"plain": X @ c, "examples": E.scores(X, P, N).score, "examples w=2": E.scores(X, P, N, weight=2.0).score}
    for b in (0.5, 1.0):
        q = c - b * N.mean(axis=0)
        out[f"rocchio b={b}"] = X @ (q / np.linalg.norm(q))
    for w in (0.5, 1.0):
        out[f"subtract w={w}"] = X @ c - w * (X @ N.T).max(axis=1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--collection", default="f102")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ctx = AppContext.open(Settings.from_env(home=args.home))
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, args.collection).id
    space = resolve_space(ctx, coll_id, None)
    with ctx.db.session() as s:
        ids, X = repo.load_vectors(s, coll_id, space)
        labels = np.asarray(repo.labels_for(s, ids), dtype=object)
    X = normalise(X)
    rng = np.random.default_rng(args.seed)
    shares: dict[str, list[tuple[float, float]]] = {}
    for label in sorted(set(labels) - {None}):
        members = np.flatnonzero(labels == label)
        if len(members) < 12:
            continue
        pos = rng.choice(members, 3, replace=False)
        order = np.argsort(-(X @ X[pos].mean(axis=0)))[:60]
        wrong = Counter(lab for lab in labels[order] if lab != label)
        if not wrong:
            continue
        other = wrong.most_common(1)[0][0]
        neg = [i for i in order if labels[i] == other][:2]
        leave_out = set(pos) | set(neg)
        for name, score in methods(X, X[pos], X[neg]).items():
            top = [i for i in np.argsort(-score, kind="stable") if i not in leave_out][:args.k]
            shares.setdefault(name, []).append((float(np.mean(labels[top] == label)), float(np.mean(labels[top] == other))))
    n = len(shares["plain"])
    log(f"{n} labels, {len(X)} images in {space}")
    emit({"collection": args.collection, "space": space, "images": len(X), "labels": n, "k": args.k, "seed": args.seed,
          "methods": {name: {"wanted_share": round(float(np.mean([w for w, _ in v])), 4),
                             "look_alike_share": round(float(np.mean([o for _, o in v])), 4)} for name, v in shares.items()}})


if __name__ == "__main__":
    main()
