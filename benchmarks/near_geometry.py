"""The near tier's geometric check (simsearch/analysis/geometry.py) on realistic pairs; prints ONE JSON object.

    python benchmarks/near_geometry.py             # 12 originals of each set, 17 transforms; the hard negatives
    python benchmarks/near_geometry.py --seed 1

- **Copies**: ``--originals`` photos of each of ``../shared/datasets/flowers102`` and
  ``oxford-buildings`` (seeded) and a copy for each transform of :data:`TRANSFORMS`
  (benchmarks/near_copies.py): the share the check accepts, and the figures the rule reads
  (inliers, inlier share, cover, pixel correlation), as quantiles.
- **Hard negatives**: each photo's most similar *other* photo of its set when their cosine
  (efficientnet_lite0, fp32, as benchmarks/synthetic.py computes and caches them) is at least
  ``--cosine`` (0.80: the pairs the near tier checks): other photos of one flower species or one
  building, many from the same spot. Every pair the check accepts is listed (paths): the sets
  hold natural duplicates and bursts, judge them by looking.
- **Cost**: milliseconds to compute an image's features (decode, grey copy, ORB of it and of its
  mirror) and to verify a pair, one thread.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from harness import cpu_model, log  # noqa: E402  benchmarks/harness.py (puts the repository on sys.path)
import near_copies  # noqa: E402
import synthetic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASETS = (ROOT.parent / "shared" / "datasets").resolve()
SETS = ("flowers102", "oxford-buildings")
TRANSFORMS = ("cropoff5", "cropoff10", "cropoff15", "hflip+cropoff10", "rotate3", "rotate6", "rotate10", "crop15",
              "resize25", "jpeg30", "text", "watermark", "bright130", "sat150", "gray", "hflip", "crop5+resize50+jpeg70")


def q(a, qs=(0.03, 0.1, 0.5, 0.97)) -> dict:
    a = np.asarray(a, np.float64)
    return {f"p{round(x * 100, 1):g}": round(float(np.quantile(a, x)), 4) for x in qs} if len(a) else {}


def figures(verdicts) -> dict:
    return {"n": len(verdicts), "accepted": round(float(np.mean([v.accepted for v in verdicts])), 4) if verdicts else None,
            "inliers": q([v.inliers for v in verdicts]), "share": q([v.share for v in verdicts]),
            "cover": q([v.cover for v in verdicts]), "ncc_of_those_passing_the_keypoint_tests":
                q([v.ncc for v in verdicts if v.ncc > 0])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--originals", type=int, default=12, help="per set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cosine", type=float, default=0.80)
    args = ap.parse_args()
    from PIL import Image

    from simsearch.analysis import geometry
    from simsearch.images import scan_images

    rng = np.random.default_rng(args.seed)
    cache, t_feat, t_pair = {}, [], []

    def load(data: bytes):
        return Image.open(io.BytesIO(data)).convert("RGB")

    def feats(path):
        if path not in cache:
            t0 = time.perf_counter()
            cache[path] = geometry.features(load(Path(path).read_bytes()))
            t_feat.append(time.perf_counter() - t0)
        return cache[path]

    def judge(a, b):
        t0 = time.perf_counter()
        v = geometry.verify(a, b)
        t_pair.append(time.perf_counter() - t0)
        return v

    copies: dict[str, list] = {t: [] for t in TRANSFORMS}
    negatives: dict[str, list] = {}
    accepted = []
    for ds in SETS:
        paths = sorted(scan_images(DATASETS / ds))
        x = synthetic.real_embeddings(cache=Path(f"/tmp/simsearch-real-lite0-{ds}.npy"), data=DATASETS / ds)
        s = x @ x.T
        np.fill_diagonal(s, -1)
        nearest = s.argmax(axis=1)
        pairs = sorted({(min(a, b), max(a, b)) for a, b in enumerate(nearest) if s[a, b] >= args.cosine})
        log(f"{ds}: {len(pairs)} hard negative pairs")
        negatives[ds] = []
        for a, b in pairs:
            v = judge(feats(paths[a]), feats(paths[b]))
            negatives[ds].append(v)
            if v.accepted:
                accepted.append({"pair": [str(Path(paths[k]).relative_to(DATASETS)) for k in (a, b)],
                                 "cosine": round(float(s[a, b]), 3), "share": v.share, "ncc": v.ncc})
        for k in rng.choice(len(paths), args.originals, replace=False):
            data = Path(paths[k]).read_bytes()
            original = feats(paths[k])
            for t in TRANSFORMS:
                copies[t].append(judge(original, geometry.features(load(near_copies.make_copy(data, t)))))
    out = {"benchmark": "near_geometry", "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
           "load_average": os.getloadavg(), "seed": args.seed, "originals_per_set": args.originals,
           "rule": {k: getattr(geometry, k) for k in ("SIDE", "N_FEATURES", "RATIO", "REPROJECTION", "MIN_INLIERS",
                                                      "MIN_SHARE", "MIN_COVER", "MIN_INSIDE", "MAX_SCALE", "SMALL",
                                                      "MIN_NCC")},
           "copies": {t: figures(v) for t, v in copies.items()},
           "hard_negatives": {ds: figures(v) for ds, v in negatives.items()},
           "hard_negatives_accepted": accepted,
           "ms_features_per_image": q(np.array(t_feat) * 1000, (0.5, 0.9)),
           "ms_verify_per_pair": q(np.array(t_pair) * 1000, (0.5, 0.9))}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
