"""Calibration of geometric verification's threshold: inliers of pairs of DISTINCT photos; prints ONE JSON object.

    python benchmarks/verify_calibration.py            # ~9k pairs (~5 min on 2 busy cores)
    python benchmarks/verify_calibration.py --quick    # ~2k pairs

A search verifies its top candidates (simsearch/ops/verify.py): a candidate with at least
``MIN_INLIERS`` inliers ranks first. A false accept puts a different picture above the ranking of
the vectors. This measures how many inliers pairs of photos that are NOT the same picture reach,
with the features and decoding a search uses (the query: its first pass's ``QUERY_KEYPOINTS`` keypoints
on a copy ``QUERY_SCALE`` times the photo decoded as an upload is; the candidate: ``N_FEATURES`` keypoints, as ingest stores them):

- **same_species**: every ordered pair of the first 4 photos of each flowers102 species (different
  photos of one kind of flower: the hardest look-alikes of that set);
- **other_species**: each of those photos against 8 photos of other species drawn at random;
- **other_landmark**: each of the first 6 photos of each oxford-buildings landmark against 8
  photos of other landmarks drawn at random.

Pairs of photos of the SAME landmark are reported apart (**same_landmark**): they may show the same
façade, a true match of the object (not of the photo), so they are no false accepts.
With ``--closer`` every pair is verified a second time as a search's closer look would verify it
(``simsearch.ops.verify.closer_features``: the region of the query where its keypoints that match
the candidate fell, decoded again from the file at up to ``CLOSE_SIDE`` px, its keypoints found
again): a worst case, since a search looks closer only at the first image by votes when it did not
verify; reported as ``closer`` (the same groups), with the pairs that had enough matching keypoints
(``CLOSE_MIN_VOTES``) for a region.

Reported per group and over all distinct pairs: quantiles and maximum of the inliers, and the
false-accept rate (share of pairs with >= T inliers) for a range of T, with the smallest T whose
rate is below 0.1%.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from harness import cpu_model, log  # noqa: E402  benchmarks/harness.py (puts the repository on sys.path)

ROOT = Path(__file__).resolve().parents[1]
DATASETS = (ROOT.parent / "shared" / "datasets").resolve()
THRESHOLDS = (8, 10, 12, 15, 20, 25, 30, 40)


def _files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: (len(p.name), p.name))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="30 species and 8 landmarks, 4 others each")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--closer", action="store_true", help="also verify each pair by a closer look (see above)")
    ap.add_argument("--query-scale", type=float, default=None, help="the first pass's QUERY_SCALE (default: the module's)")
    args = ap.parse_args()
    from simsearch.images import THUMBNAIL_SIDE, decode_image
    from simsearch.images import local_features as LF
    from simsearch.ops import verify as V

    if args.query_scale is not None:
        V.QUERY_SCALE = args.query_scale

    rng = np.random.default_rng(args.seed)
    species = sorted(p for p in (DATASETS / "flowers102").iterdir() if p.is_dir())
    landmarks = sorted(p for p in (DATASETS / "oxford-buildings").iterdir() if p.is_dir() and p.name != "oxford")
    if args.quick:
        species, landmarks = species[:30], landmarks[:8]
    others = 4 if args.quick else 8
    photos = [(f"f:{d.name}", f) for d in species for f in _files(d)[:4]]
    photos += [(f"o:{d.name}", f) for d in landmarks for f in _files(d)[:6]]

    query, stored, stored_seconds, query_seconds, sizes, shapes = [], [], 0.0, 0.0, [], []
    for _, f in photos:
        img = decode_image(f.read_bytes(), source=f.name, draft_size=V.DECODE_SIDE, draft_long=THUMBNAIL_SIDE)
        im = img.image
        sizes.append((img.width, img.height))
        shapes.append((im.height, im.width))
        t0 = time.perf_counter()
        query.append(V._extract(LF.grey_of(im)))  # as a search's first pass: QUERY_SCALE, QUERY_KEYPOINTS
        t1 = time.perf_counter()
        stored.append(LF.of_picture(im))  # what ingest stores
        stored_seconds += time.perf_counter() - t1
        query_seconds += t1 - t0
    stored_bytes = [len(LF.serialise(f)) for f in stored]
    log(f"{len(photos)} photos' features: {stored_seconds:.1f} s stored, {query_seconds:.1f} s as queries")
    groups: dict[str, list[int]] = {"same_species": [], "other_species": [], "other_landmark": [], "same_landmark": []}
    closer: dict[str, list[int]] = {g: [] for g in groups}

    def closer_inliers(i: int, j: int) -> int | None:
        pairs = LF.tentative_matches(query[i], stored[j])
        if len(pairs) < V.CLOSE_MIN_VOTES:
            return None
        q = V.closer_features(photos[i][1].read_bytes(), photos[i][1].name, None, sizes[i], shapes[i],
                              query[i].xy[pairs[:, 0]], max_pixels=10**9, max_decoded_pixels=10**9)
        return None if q is None else LF.verify(q, stored[j]).inliers

    label = [lab for lab, _ in photos]
    t0 = time.perf_counter()
    for i, lab in enumerate(label):
        same = [j for j, other in enumerate(label) if other == lab and j != i]
        diff = [j for j, other in enumerate(label) if other[0] == lab[0] and other != lab]
        pairs = [(j, "same_species" if lab[0] == "f" else "same_landmark") for j in same]
        pairs += [(int(j), "other_species" if lab[0] == "f" else "other_landmark")
                  for j in rng.choice(diff, min(others, len(diff)), replace=False)]
        for j, group in pairs:
            groups[group].append(LF.verify(query[i], stored[j]).inliers)
            if args.closer and (c := closer_inliers(i, j)) is not None:
                closer[group].append(c)
    n_pairs = sum(len(v) for v in groups.values())
    seconds = time.perf_counter() - t0
    log(f"{n_pairs} pairs verified in {seconds:.1f} s")

    def summary(values: list[int]) -> dict:
        a = np.asarray(values)
        return {"pairs": int(a.size), "median": float(np.median(a)), "p99": float(np.percentile(a, 99)),
                "p99_9": float(np.percentile(a, 99.9)), "max": int(a.max()),
                "false_accept_rate": {str(t): round(float(np.mean(a >= t)), 5) for t in THRESHOLDS}}

    distinct = [v for g, vals in groups.items() if g != "same_landmark" for v in vals]
    overall = summary(distinct)
    ok = [t for t in THRESHOLDS if overall["false_accept_rate"][str(t)] < 0.001]
    out = {"benchmark": "verify_calibration", "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
           "load_average": os.getloadavg()[0], "platform": platform.platform(), "python": platform.python_version(),
           "seed": args.seed, "photos": len(photos),
           "method": {"kind": LF.DEFAULT_KIND, "query_keypoints": V.QUERY_KEYPOINTS, "query_scale": V.QUERY_SCALE,
                      "stored_keypoints": LF.N_FEATURES,
                      "max_side": LF.MAX_SIDE, "ratio": LF.RATIO, "reproj": LF.REPROJ, "decode_side": V.DECODE_SIDE},
           "groups": {g: summary(v) for g, v in groups.items() if v}, "distinct_pairs": overall,
           **({"closer": {"groups": {g: summary(v) for g, v in closer.items() if v},
                          "distinct_pairs": summary([v for g, vals in closer.items() if g != "same_landmark" for v in vals]),
                          "close_side": V.CLOSE_SIDE, "close_grow": V.CLOSE_GROW, "close_least": round(V.CLOSE_LEAST, 3),
                          "close_min_votes": V.CLOSE_MIN_VOTES}} if args.closer else {}),
           "smallest_threshold_under_0.1pct": ok[0] if ok else None, "min_inliers_in_use": V.MIN_INLIERS,
           "ms_per_pair": round(1000 * seconds / max(n_pairs, 1), 2),
           "stored_features": {"ms_per_image": round(1000 * stored_seconds / len(photos), 1),
                               "bytes_per_image_mean": round(float(np.mean(stored_bytes))),
                               "bytes_per_image_max": int(max(stored_bytes)),
                               "keypoints_mean": round(float(np.mean([len(f) for f in stored])), 1)},
           "query_features_ms": round(1000 * query_seconds / len(photos), 1),
           "load_average_at_end": os.getloadavg()[0]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
