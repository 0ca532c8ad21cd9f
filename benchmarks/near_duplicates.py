"""The near-duplicate tier on realistic photo sets with planted copies; prints ONE JSON object.

    python benchmarks/near_duplicates.py                   # flowers102 + oxford-buildings, 60 originals x 26 copies
    python benchmarks/near_duplicates.py --quick           # 300 photos, 12 originals (a smoke run)
    python benchmarks/near_duplicates.py --scale 1000000   # the pipeline's steps on N synthetic vectors

What it does (files in a temporary folder, never in the repository):

1. Every photo of ``../shared/datasets/flowers102`` and ``oxford-buildings`` (2,641) is a distinct
   photo; ``--originals`` of them (half from each set, seeded, spread over the classes) also get a
   copy for each transform of ``benchmarks/near_copies.py`` (24 single ones: resize 50/25%, JPEG
   q30-90, centred crops 5/7/10/15% a side, off-centre crops of 5/10/15%, flip, 3- and 6-degree
   rotations, brightness, saturation/tint, grayscale, a caption, a watermark, PNG, WebP; and 7
   combinations, a flipped off-centre crop among them).
2. All are ingested with the real pipeline (default backbone, fp32, perceptual hashes at ingest)
   into a temporary SQLite collection; the op (:mod:`simsearch.ops.duplicates`) finds the near
   tier's groups at its defaults.
3. Reported:
   - **recall per transform**: the share of copies in the same group as their original;
   - **distinct photos grouped**: photos (originals or not) in a group with another distinct
     photo (the copies do not count), the share of all distinct photos, and the most distinct
     photos in one group; the pairs of distinct photos grouped are listed (paths), because the
     data sets hold natural duplicates and bursts: judge them by looking;
   - the distributions the constants are set from: the hash distance and cosine of
     (original, copy) pairs per transform, and of *distinct* candidate pairs (each photo's nearest
     neighbours); the cosine of each photo to its most similar distinct photo (quantiles);
   - the same figures for the previous method (cosine >= 0.855, single-linkage) on the same pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import cpu_model, log  # noqa: E402  benchmarks/harness.py (puts the repository on sys.path)
import near_copies  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASETS = (ROOT.parent / "shared" / "datasets").resolve()
SETS = ("flowers102", "oxford-buildings")
OLD_THRESHOLD = 0.855  # the previous near tier: one cosine threshold, single-linkage


def dataset_photos() -> list[tuple[str, Path]]:
    out = []
    for ds in SETS:
        for cls in sorted(p for p in (DATASETS / ds).iterdir() if p.is_dir()):
            out += [(f"{ds}-{cls.name}", f) for f in sorted(cls.iterdir()) if f.suffix.lower() in (".jpg", ".jpeg")]
    return out


def pick(photos, n: int, seed: int) -> list[int]:
    """n photos, half from each set, seeded, spread over the classes (round robin)."""
    rng = np.random.default_rng(seed)
    out = []
    for ds in SETS:
        by_class: dict[str, list[int]] = {}
        for k, (label, _) in enumerate(photos):
            if label.startswith(ds):
                by_class.setdefault(label, []).append(k)
        pools = [list(rng.permutation(v)) for _, v in sorted(by_class.items())]
        rng.shuffle(pools)
        chosen: list[int] = []
        while len(chosen) < n // 2 and any(pools):
            for pool in pools:
                if pool and len(chosen) < n // 2:
                    chosen.append(int(pool.pop()))
        out += chosen
    return sorted(out)


def build(folder: Path, photos, originals, transforms) -> None:
    for k, (label, path) in enumerate(photos):
        (folder / label).mkdir(parents=True, exist_ok=True)
        (folder / label / f"p{k:04d}.jpg").write_bytes(path.read_bytes())
    for k in originals:
        label, path = photos[k]
        data = path.read_bytes()
        for t in transforms:
            name = f"p{k:04d}__{t.replace('+', '_')}{near_copies.extension(t)}"
            (folder / label / name).write_bytes(near_copies.make_copy(data, t))


def source_of(path: str) -> tuple[int, str]:
    stem = Path(path).stem
    k, _, t = stem.partition("__")
    return int(k[1:]), t


def q(a, qs=(0.5, 0.9, 0.97, 1.0)) -> dict:
    a = np.asarray(a, dtype=np.float64)
    if not len(a):
        return {}
    return {f"p{round(x * 100, 1):g}": round(float(np.quantile(a, x)), 4) for x in qs}


def grouping_figures(groups_rows: list[np.ndarray], src: np.ndarray, kind: np.ndarray, transforms) -> dict:
    """Recall per transform and distinct photos grouped, from groups given as arrays of rows."""
    n = len(src)
    group_of = np.full(n, -1)
    for g, rows in enumerate(groups_rows):
        group_of[rows] = g
    orig_row = {int(s): r for r, (s, k) in enumerate(zip(src, kind)) if k == ""}
    recall = {}
    for t in transforms:
        rows = np.flatnonzero(kind == t.replace("+", "_"))
        hit = [group_of[r] >= 0 and group_of[r] == group_of[orig_row[int(src[r])]] for r in rows]
        recall[t] = round(float(np.mean(hit)), 4) if hit else None
    distinct_in = []  # per group: the distinct photos (sources) it holds
    for rows in groups_rows:
        distinct_in.append(sorted({int(s) for s in src[rows]}))
    grouped = sorted({s for d in distinct_in if len(d) > 1 for s in d})
    n_distinct = int((kind == "").sum())
    return {"recall": recall, "groups": len(groups_rows),
            "distinct_photos_grouped_with_another": len(grouped),
            "distinct_share": round(len(grouped) / max(1, n_distinct), 4),
            "most_distinct_in_one_group": max((len(d) for d in distinct_in), default=0),
            "groups_with_several_distinct": [d for d in distinct_in if len(d) > 1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--originals", type=int, default=60)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-pairs", type=Path, default=None, help="also write the candidate pairs (image rows, cosine, "
                                                                 "hash distance, geometric verdict) and each row's source "
                                                                 "photo and transform to this .npz, to study other rules")
    ap.add_argument("--scale", type=int, default=0, help="instead: the pipeline on N synthetic vectors")
    ap.add_argument("--no-index", action="store_true", help="with --scale: candidate pairs made up (each vector and "
                                                            "16 random others, the planted copies among them) instead of "
                                                            "searched: times the steps after the index search")
    args = ap.parse_args()
    if args.scale:
        print(json.dumps(scale(args.scale, seed=args.seed, index=not args.no_index), indent=1))
        return
    os.environ["SIMSEARCH_PRECISION"] = "fp32"
    os.environ.setdefault("SIMSEARCH_REDIS_URL", "")
    from sqlalchemy import select

    from simsearch.analysis.duplicates import groups_from_pairs
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ingest.pipeline import Ingester
    from simsearch.ingest.sources import files_from_folder
    from simsearch.ops import duplicates as dup
    from simsearch.ops import near_duplicates as near
    from simsearch.ops import near_geometry
    from simsearch.ops import vectors as vecs
    from simsearch.store.models import Image

    photos = dataset_photos()
    if args.quick:
        photos = [photos[k] for k in pick(photos, 300, args.seed)]
        args.originals = 12
    originals = pick(photos, args.originals, args.seed + 1)
    transforms = near_copies.SINGLE + near_copies.COMBINED
    out: dict = {"benchmark": "near_duplicates", "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
                 "platform": platform.platform(), "python": platform.python_version(), "data": list(SETS),
                 "distinct_photos": len(photos), "originals": len(originals), "transforms": list(transforms),
                 "constants": {"near_floor": dup.NEAR_THRESHOLD, "hash_max": near.HASH_MAX, "hash_sure": near.HASH_SURE,
                               "strict_cosine": near.STRICT_COSINE, "neighbours": dup.NEIGHBOURS,
                               "geometry_floor": near_geometry.GEOMETRY_FLOOR, "confirm_weak": near.CONFIRM_WEAK}}
    with tempfile.TemporaryDirectory(prefix="simsearch-neardup-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        build(tmp / "photos", photos, originals, transforms)
        log(f"{len(photos)} photos and {len(originals) * len(transforms)} copies written ({time.perf_counter() - t0:.0f} s)")
        settings = Settings.from_env(home=tmp / "home", database_url=f"sqlite:///{tmp / 'home' / 'db.sqlite'}")
        ctx = AppContext.open(settings, schema="upgrade")
        try:
            space = ctx.new_space(settings.default_backbone)
            files, _ = files_from_folder(tmp / "photos", labels="folders")
            t0 = time.perf_counter()
            report = Ingester(ctx, spaces=[space]).run("neardup", files, source=str(tmp / "photos"))
            out["ingest"] = {"files": report.total, "added": report.added, "failed": report.failed,
                             "seconds": round(time.perf_counter() - t0, 1)}
            log(f"ingested: {out['ingest']}")
            t0 = time.perf_counter()
            ps = dup.pairs(ctx, "neardup", space)
            out["pairs_seconds"] = round(time.perf_counter() - t0, 2)
            vs = vecs.load(ctx, "neardup", space)
            with ctx.db.session() as s:
                paths = dict(s.execute(select(Image.id, Image.source_path)
                                       .where(Image.collection_id == vs.collection_id)).all())
            src, kind = zip(*(source_of(paths[int(i)]) for i in vs.ids))
            src, kind = np.asarray(src), np.asarray(kind)
            row = {int(i): r for r, i in enumerate(vs.ids)}
            if args.save_pairs:
                np.savez_compressed(args.save_pairs, a=np.array([row[int(x)] for x in ps.a]),
                                    b=np.array([row[int(x)] for x in ps.b]), score=ps.score, distance=ps.distance,
                                    geometry=ps.geometry, geometry_share=ps.geometry_share, src=src, kind=kind)
            # the distributions
            out.update(distributions(ctx, vs, src, kind, ps, transforms))
            # the op's near tier at its defaults
            t0 = time.perf_counter()
            res = dup.groups(ctx, ps, tier="near", per_page=None)
            out["group_seconds"] = round(time.perf_counter() - t0, 3)
            new = grouping_figures([np.array([row[m.id] for m in g.images]) for g in res.groups],
                                   src, kind, transforms)
            # the same pairs under other rules: weak hash matches of re-shots kept (CONFIRM_WEAK off),
            # and without the geometric check (hashes, then the strict cosine: the rule before it)
            ids = np.unique(np.concatenate([ps.a, ps.b]))
            pi, pj = np.searchsorted(ids, ps.a), np.searchsorted(ids, ps.b)
            variants = {}
            for name, confirm, geo in (("weak_hash_matches_of_reshots_kept", False, ps.geometry),
                                       ("without_geometry", False, None)):
                saved, near.CONFIRM_WEAK = near.CONFIRM_WEAK, confirm
                try:
                    found = near.tier_groups(len(ids), pi, pj, ps.score, ps.distance, "near", dup.NEAR_THRESHOLD,
                                             dup.NEAR_THRESHOLD, geometry=geo)
                finally:
                    near.CONFIRM_WEAK = saved
                fig = grouping_figures([np.array([row[int(ids[m])] for m in g.members]) for g in found],
                                       src, kind, transforms)
                several = fig.pop("groups_with_several_distinct")
                fig["distinct_pairs_grouped"] = [[str(photos[a][1].relative_to(DATASETS)) for a in d] for d in several]
                fig["single_transforms_min_recall"] = min(fig["recall"][t] for t in near_copies.SINGLE)
                variants[name] = fig
            out["other_rules"] = variants
            # the previous method on the same candidate pairs
            ids = np.unique(np.concatenate([ps.a, ps.b]))
            old_groups = groups_from_pairs(len(ids), np.searchsorted(ids, ps.a), np.searchsorted(ids, ps.b),
                                           ps.score, OLD_THRESHOLD)
            old = grouping_figures([np.array([row[int(ids[m])] for m in g.members]) for g in old_groups],
                                   src, kind, transforms)
            for name, fig in (("near_tier", new), ("previous_cosine_0.855_single_linkage", old)):
                several = fig.pop("groups_with_several_distinct")
                fig["distinct_pairs_grouped"] = [
                    [str(photos[a][1].relative_to(DATASETS)) for a in d] for d in several][: 60 if name == "near_tier" else 5]
                single = [fig["recall"][t] for t in near_copies.SINGLE]
                fig["single_transforms_min_recall"] = min(single)
                out[name] = fig
            log(f"near tier: distinct share {new['distinct_share']}, most distinct in a group "
                f"{new['most_distinct_in_one_group']}, min single recall {new['single_transforms_min_recall']}")
        finally:
            ctx.close()
    out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)
    out["load_average_at_end"] = os.getloadavg()
    print(json.dumps(out, indent=1))


def distributions(ctx, vs, src, kind, ps, transforms) -> dict:
    """Hash distance and cosine of (original, copy) pairs per transform, of distinct candidate
    pairs, and each photo's most similar distinct photo."""
    from simsearch.analysis.near_duplicates import pair_hash_distance
    from simsearch.images import phash
    from simsearch.store import hashes as stored_hashes

    with ctx.db.session() as s:
        have, H = stored_hashes.of_collection(s, vs.collection_id, phash.METHOD, phash.N_HASHES)
    assert np.array_equal(have, vs.ids), "every image has hashes after ingest"
    known = np.ones(len(H), bool)
    X = vs.x
    orig_row = {int(s): r for r, (s, k) in enumerate(zip(src, kind)) if k == ""}
    per_t = {}
    for t in transforms:
        rows = np.flatnonzero(kind == t.replace("+", "_"))
        o = np.array([orig_row[int(src[r])] for r in rows])
        d = pair_hash_distance(H, known, o, rows)
        c = np.einsum("ij,ij->i", X[o], X[rows])
        per_t[t] = {"hash_distance": q(d), "cosine_min": round(float(c.min()), 4), "cosine": q(c, (0.03, 0.1, 0.5))}
    # distinct candidate pairs: both images distinct photos of different sources
    id_row = {int(i): r for r, i in enumerate(vs.ids)}
    ra, rb = np.array([id_row[int(a)] for a in ps.a]), np.array([id_row[int(b)] for b in ps.b])
    distinct = (src[ra] != src[rb]) & (kind[ra] == "") & (kind[rb] == "")
    dd, dc = ps.distance[distinct], ps.score[distinct]
    counts = {str(t): int((dd <= t).sum()) for t in (6, 8, 10, 12, 14, 16)}
    # the geometric check: pairs it looked at and accepted, per transform (original, copy) and distinct
    geo = {}
    pair_at = {(min(int(x), int(y)), max(int(x), int(y))): p for p, (x, y) in enumerate(zip(ra, rb))}
    for t in transforms:
        rows = np.flatnonzero(kind == t.replace("+", "_"))
        ps_idx = [pair_at.get((min(orig_row[int(src[r])], r), max(orig_row[int(src[r])], r))) for r in rows]
        ps_idx = [p for p in ps_idx if p is not None]
        g = ps.geometry[ps_idx] if ps_idx else np.zeros(0, np.int8)
        geo[t] = {"candidate_pairs": len(ps_idx), "checked": int((g >= 0).sum()), "accepted": int((g == 1).sum())}
    gd = ps.geometry[distinct]
    geo["distinct_candidate_pairs"] = {"checked": int((gd >= 0).sum()), "accepted": int((gd == 1).sum()),
                                       "accepted_pairs": [[int(src[ra[p]]), int(src[rb[p]])]
                                                          for p in np.flatnonzero(distinct & (ps.geometry == 1))][:60]}
    geo["all_pairs"] = {"candidate_pairs": int(len(ps.a)), "checked": int((ps.geometry >= 0).sum()),
                        "accepted": int((ps.geometry == 1).sum()), "images": int(len(vs.ids)),
                        "seconds": ps.info.get("geometry_seconds")}
    photo = np.flatnonzero(kind == "")
    P = X[photo]
    best = np.full(len(photo), -1.0, np.float32)
    for s0 in range(0, len(photo), 1024):
        S = P[s0:s0 + 1024] @ P.T
        S[np.arange(S.shape[0]), np.arange(s0, s0 + S.shape[0])] = -1
        best[s0:s0 + 1024] = S.max(axis=1)
    return {"copies": per_t, "geometry": geo,
            "distinct_candidate_pairs": {"n": int(distinct.sum()), "cosine_floor": float(ps.info.get("floor", 0)),
                                         "hash_distance_at_or_below": counts,
                                         "hash_distance": q(dd, (0.0001, 0.001, 0.01, 0.5)),
                                         "cosine_of_those_at_or_below_10": q(dc[dd <= 10], (0.0, 0.5, 1.0))},
            "nearest_distinct_photo_cosine": q(best, (0.5, 0.9, 0.99, 0.995, 0.999, 1.0))}


def scale(n: int, seed: int = 0, k: int | None = None, index: bool = True) -> dict:
    """The near tier's steps on ``n`` synthetic vectors (benchmarks/synthetic.py) with 1% planted
    copies: the candidate search (each vector's ``k`` nearest in the index a
    collection of ``n`` vectors gets from the index policy, built and tuned as simsearch does),
    hash distances and verification, grouping around representatives."""
    from simsearch.analysis.duplicates import candidate_pairs
    from simsearch.analysis.near_duplicates import (contains, hash_candidates, pair_hash_distance,
                                                    representative_groups, verify)
    from simsearch.ops import duplicates as dup
    from simsearch.index import kinds, policy
    from simsearch.ops import near_duplicates as near
    from synthetic import Synthetic, real_embeddings

    k = k or dup.NEIGHBOURS
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    X = Synthetic.fit(real_embeddings()).generate(n, seed)
    # planted copies: 1% of the rows are a copy of another row (vector noise as a re-encoded copy
    # shows, hashes a few bits off); the rest get independent random hashes
    m = n // 100
    rows = rng.choice(n, 2 * m, replace=False)
    copy, orig = rows[:m], rows[m:]
    X[copy] = X[orig] + 0.02 * rng.standard_normal((m, X.shape[1])).astype(np.float32) * X[orig].std()
    X[copy] = np.maximum(X[copy], 0)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    H = rng.integers(0, 2**63, (n, 5), dtype=np.int64).astype(np.uint64)
    flips = rng.integers(0, 64, (m, 4))
    H[copy] = H[orig]
    for f in range(flips.shape[1]):
        H[copy, 0] ^= (np.uint64(1) << flips[:, f].astype(np.uint64))
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if index:
        built = policy.build(np.arange(n, dtype=np.int64), X, policy.IndexPolicy())  # the kind a collection of n gets
        if built.params:
            kinds.get(built.kind).set_params(built.index, built.params)
        index_info = {"kind": built.kind, "params": built.params, "recall_at_10": round(float(built.recall), 4)}
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if index:
        i, j, s = candidate_pairs(X, built.index.search, k=k, floor=dup.CANDIDATES, block=dup.BLOCK,
                                  widen_above=dup.WIDEN_ABOVE, max_k=dup.MAX_NEIGHBOURS)
    else:  # made-up candidates: every vector with k random others and the planted pairs, scored exactly
        index_info = "none: candidate pairs made up (--no-index)"
        a = np.r_[np.repeat(np.arange(n), k), copy]
        b = np.r_[rng.integers(0, n, n * k), orig]
        keep = a != b
        a, b = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
        s = np.concatenate([np.einsum("ij,ij->i", X[a[c:c + 50_000]], X[b[c:c + 50_000]])
                            for c in range(0, len(a), 50_000)]).astype(np.float32)
        s = np.maximum(s, np.float32(dup.CANDIDATES))  # as if all were neighbours above the floor
        i, j = a, b
    search_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    hi, hj, _ = hash_candidates(H[:, 0], max_distance=near.HASH_SURE)
    new = ~contains(np.sort(i * n + j), hi * n + hj)
    i, j = np.r_[i, hi[new]], np.r_[j, hj[new]]
    s = np.r_[s, np.einsum("ij,ij->i", X[hi[new]], X[hj[new]])].astype(np.float32)
    hash_candidates_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    d = pair_hash_distance(H, np.ones(n, bool), i, j)
    ok = verify(s, d, floor=dup.NEAR_THRESHOLD, hash_max=near.HASH_MAX, strict=near.STRICT_COSINE,
                hash_sure=near.HASH_SURE)
    groups = representative_groups(n, i, j, s, mask=ok)
    group_s = time.perf_counter() - t0
    found = {(int(min(a, b)), int(max(a, b))) for a, b in zip(copy, orig)}
    got = set()
    group_of = np.full(n, -1, np.int64)
    for gi, g in enumerate(groups):
        group_of[np.asarray(g.members, np.int64)] = gi
        for mbr in g.members:
            if mbr != g.representative:
                got.add((min(int(mbr), g.representative), max(int(mbr), g.representative)))
    # where a planted copy is lost: not a candidate pair, a candidate that failed verification, or a
    # verified pair whose two ends went to different groups (each group is one representative and
    # what links to it: a dense neighbourhood can take the original and leave the copy out)
    key = np.minimum(i, j) * n + np.maximum(i, j)
    order = np.argsort(key)
    planted = np.minimum(copy, orig).astype(np.int64) * n + np.maximum(copy, orig)
    pos = np.clip(np.searchsorted(key[order], planted), 0, len(key) - 1)
    candidate = key[order][pos] == planted
    verified = candidate & ok[order][pos]
    same = (group_of[copy] >= 0) & (group_of[copy] == group_of[orig])
    fates = {"not_a_candidate": int((~candidate).sum()), "candidate_not_verified": int((candidate & ~verified).sum()),
             "verified_other_groups": int((verified & ~same).sum()), "same_group": int(same.sum())}
    return {"benchmark": "near_duplicates_scale", "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "n": n,
            "dim": int(X.shape[1]), "neighbours": k, "planted_copies": m,
            "index": index_info,
            "generate_seconds": round(gen_s, 1), "index_build_seconds": round(build_s, 1),
            "candidate_search_seconds": round(search_s, 1), "hash_candidates_seconds": round(hash_candidates_s, 2),
            "candidate_pairs": int(len(i)),
            "verify_and_group_seconds": round(group_s, 2), "groups": len(groups),
            "planted_copies_grouped_with_their_original": round(len(found & got) / max(1, m), 4),
            "planted_copies_in_their_originals_group": round(float(same.mean()), 4), "planted_copies_fate": fates,
            "group_sizes": {str(q): int(v) for q, v in zip((0.5, 0.99, 1.0), np.quantile([len(g.members) for g in groups] or [0], (0.5, 0.99, 1.0)))},
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)}


if __name__ == "__main__":
    main()
