"""Calibrate the duplicate finder's thresholds on transformed copies of real photos; prints ONE JSON object.

    python benchmarks/duplicates_calibration.py              # 60 originals x 17 copies + all 700 photos (~2 min)
    python benchmarks/duplicates_calibration.py --quick      # 13 originals among 80 photos, a smoke run (~30 s)
    python benchmarks/duplicates_calibration.py --precision auto   # the same in the default space (bf16 on AMX)
    python benchmarks/duplicates_calibration.py --scale 20000      # time the pair search and grouping on synthetic vectors

What it does (every file in a temporary folder, never in the repository):

1. Every photo of ``../shared/datasets`` (cats-dogs 400 + flowers 300) is a *distinct* image;
   ``--originals`` of them (half cats-dogs, half flowers, spread over the classes) also get copies:
   - **exact** (other bytes, the same pixels): a JPEG comment inserted, an Exif block inserted;
   - **near**: resized to 50% / 25%, re-encoded at JPEG quality 30 / 50 / 70 / 90, cropped by 5% /
     10% on each side, flipped left-right, and combinations (resize 50% + q50, crop 5% + resize
     50% + q70, flip + q70, crop 10% + q50, resize 25% + q30);
   - one copy with the original's exact bytes under another name (ingest stores it once: the
     report counts how many such files the ingest skipped).
2. Everything is ingested with the real pipeline (``simsearch.ingest``, the default backbone
   efficientnet_lite0, offline weights) into a temporary SQLite collection, and the op
   (:mod:`simsearch.ops.duplicates`) is run on it at the chosen near threshold.
3. Reported: cos(original, copy) per transform (min / 5th percentile / median); the *nearest
   distinct neighbour* of every photo (the most similar other photo: max, 99th, 95th percentile,
   median) and the 12 most similar photo pairs (look at them: the data sets hold real duplicates);
   the sweep of thresholds; the near threshold chosen by the rule below and the recall of each
   transform there; the precision / recall of the exact and near tiers over pairs of the groups
   the op returns; for the similar tier, the share of photos with a look-alike at 0.70-0.90 and how
   many of those share the label.

The rule for the near threshold (``RULE``): the threshold (steps of 0.005) with the highest F1
when the (original, near copy) pairs are the positives and the (photo, its most similar other
photo) pairs the negatives: one negative per photo, the pair most likely to be grouped wrongly.
The exact tier's constant in ``simsearch/ops/duplicates.py`` comes from this run's output (README
"Duplicates"). The near tier no longer groups at one cosine threshold: its candidates (cosine >=
``NEAR_THRESHOLD``) are verified by perceptual hashes and grouped around representatives, measured
on the realistic sets by ``benchmarks/near_duplicates.py`` (docs/near-duplicates.md); the sweep
here describes the previous single-cosine rule on the small sets, and step 2 runs the op's near
tier with the threshold it picks as the candidates' floor.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import cpu_model, log  # noqa: E402  benchmarks/harness.py (puts the repository on sys.path)

ROOT = Path(__file__).resolve().parents[1]
DATASETS = (ROOT.parent / "shared" / "datasets").resolve()
RULE = ("near threshold: the t (steps of 0.005) with the highest F1 when (original, near copy) pairs are the "
        "positives and (photo, its most similar other photo) pairs the negatives (ties: the highest t)")

EXACT = ("meta_comment", "meta_exif")
NEAR = ("resize50", "resize25", "jpeg30", "jpeg50", "jpeg70", "jpeg90", "crop5", "crop10", "hflip",
        "resize50_jpeg50", "crop5_resize50_jpeg70", "hflip_jpeg70", "crop10_jpeg50", "resize25_jpeg30")
# one change at a time, as photo tools make them: what the near tier is meant to find
MODERATE = ("resize50", "jpeg30", "jpeg50", "jpeg70", "jpeg90", "crop5", "hflip", "hflip_jpeg70")
HARSH = tuple(t for t in NEAR if t not in MODERATE)


# ---- the copies -------------------------------------------------------------------------------

def _insert_segment(data: bytes, marker: int, payload: bytes) -> bytes:
    """``data`` (a JPEG) with one more segment right after SOI: other bytes, the same pixels."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    return data[:2] + bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]


def _exif_block() -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x013B] = "simsearch duplicates benchmark"  # Artist
    exif[0x0131] = "an editor that rewrote the metadata"  # Software
    return b"Exif\x00\x00" + exif.tobytes()


def _jpeg(img, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _crop(img, fraction: float):
    w, h = img.size
    dx, dy = round(w * fraction), round(h * fraction)
    return img.crop((dx, dy, w - dx, h - dy))


def _resize(img, fraction: float):
    from PIL import Image

    w, h = img.size
    return img.resize((max(1, round(w * fraction)), max(1, round(h * fraction))), Image.Resampling.LANCZOS)


def make_copy(data: bytes, transform: str) -> bytes:
    from PIL import Image, ImageOps

    if transform == "meta_comment":
        return _insert_segment(data, 0xFE, b"re-tagged by a photo manager")
    if transform == "meta_exif":
        return _insert_segment(data, 0xE1, _exif_block())
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    quality = 95  # a step that is not a JPEG step is saved at q95 (as a photo tool would)
    for step in transform.split("_"):
        if step.startswith("resize"):
            img = _resize(img, int(step[6:]) / 100)
        elif step.startswith("crop"):
            img = _crop(img, int(step[4:]) / 100)
        elif step == "hflip":
            img = ImageOps.mirror(img)
        elif step.startswith("jpeg"):
            quality = int(step[4:])
        else:
            raise ValueError(step)
    return _jpeg(img, quality)


def dataset_photos() -> list[tuple[str, Path]]:
    """(label, path) of every photo, sorted (label = dataset/class)."""
    out = []
    for ds in ("cats-dogs", "flowers"):
        for cls in sorted(p for p in (DATASETS / ds).iterdir() if p.is_dir()):
            out += [(f"{ds}-{cls.name}", f) for f in sorted(cls.iterdir(), key=lambda p: (len(p.name), p.name))]
    return out


def pick_originals(photos, n: int) -> list[int]:
    """n photos, half of each dataset, spread evenly over its classes (the first of each class)."""
    by_label: dict[str, list[int]] = {}
    for k, (label, _) in enumerate(photos):
        by_label.setdefault(label, []).append(k)
    out = []
    for ds in ("cats-dogs", "flowers"):
        labels = [lab for lab in by_label if lab.startswith(ds)]
        per = max(1, (n // 2) // len(labels))
        for lab in labels:
            out += by_label[lab][:per]
    return out


def build_folder(folder: Path, photos, originals: list[int], transforms) -> int:
    """Write every photo and the copies into ``folder/<label>/``; returns the same-bytes copies written."""
    same = 0
    for k, (label, path) in enumerate(photos):
        (folder / label).mkdir(parents=True, exist_ok=True)
        (folder / label / f"p{k:04d}.jpg").write_bytes(path.read_bytes())
    for k in originals:
        label, path = photos[k]
        data = path.read_bytes()
        for t in transforms:
            (folder / label / f"p{k:04d}__{t}.jpg").write_bytes(make_copy(data, t))
        (folder / label / f"p{k:04d}__samebytes.jpg").write_bytes(data)
        same += 1
    return same


# ---- measuring --------------------------------------------------------------------------------

def source_of(path: str) -> tuple[int, str | None]:
    stem = Path(path).stem
    k, _, t = stem.partition("__")
    return int(k[1:]), (t or None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--originals", type=int, default=60)
    ap.add_argument("--quick", action="store_true", help="80 photos (40 of each data set), 13 of them with copies")
    ap.add_argument("--precision", default="fp32", help="SIMSEARCH_PRECISION for the embedding (tests pin fp32)")
    ap.add_argument("--scale", type=int, default=0, help="instead: time the pair search and the grouping on N "
                                                           "synthetic 1280-d vectors (exact FAISS index, as below 50k)")
    args = ap.parse_args()
    if args.scale:
        print(json.dumps(scale(args.scale), indent=1))
        return
    os.environ["SIMSEARCH_PRECISION"] = args.precision
    os.environ.setdefault("SIMSEARCH_REDIS_URL", "")

    from simsearch.analysis.duplicates import pair_precision_recall
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ingest.pipeline import Ingester
    from simsearch.ingest.sources import files_from_folder
    from simsearch.ops import duplicates as dup
    from simsearch.ops import vectors as vecs
    from simsearch.store.models import Image
    from sqlalchemy import select

    photos = dataset_photos()
    if args.quick:  # 80 photos (40 of each dataset), 16 of them with copies
        args.originals = 16
        photos = [photos[k] for k in pick_originals(photos, 80)]
    originals = pick_originals(photos, args.originals)
    transforms = EXACT + NEAR
    out: dict = {"benchmark": "duplicates_calibration", "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
                 "platform": platform.platform(), "python": platform.python_version(), "rule": RULE,
                 "photos": len(photos), "originals": len(originals), "transforms": {"exact": EXACT, "near_moderate": MODERATE, "near_harsh": HARSH}}
    with tempfile.TemporaryDirectory(prefix="simsearch-dups-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        same = build_folder(tmp / "photos", photos, originals, transforms)
        log(f"{len(photos)} photos and {len(originals) * (len(transforms) + 1)} copies written "
            f"({time.perf_counter() - t0:.1f} s)")
        settings = Settings.from_env(home=tmp / "home", database_url=f"sqlite:///{tmp / 'home' / 'db.sqlite'}")
        ctx = AppContext.open(settings, schema="upgrade")
        try:
            space = ctx.new_space(settings.default_backbone)
            files, _ = files_from_folder(tmp / "photos", labels="folders")
            t0 = time.perf_counter()
            report = Ingester(ctx, spaces=[space]).run("calibration", files, source=str(tmp / "photos"))
            out["space"] = space
            out["ingest"] = {"files": report.total, "added": report.added, "skipped_same_bytes": report.skipped,
                             "same_bytes_copies_written": same, "failed": report.failed,
                             "seconds": round(time.perf_counter() - t0, 1)}
            log(f"ingested: {out['ingest']}")
            vs = vecs.load(ctx, "calibration", space)
            with ctx.db.session() as s:
                paths = dict(s.execute(select(Image.id, Image.source_path)
                                       .where(Image.collection_id == vs.collection_id)).all())
            src, kind = zip(*(source_of(paths[int(i)]) for i in vs.ids))
            src, kind = np.asarray(src), np.asarray([k or "" for k in kind])
            labels = np.asarray([photos[int(k)][0] for k in src])
            out.update(measure(vs.x, src, kind, labels))
            for pair in out["top_distinct_pairs"]:  # which photos: worth a look (the data sets have duplicates too)
                pair["a"], pair["b"] = (str(photos[pair[k]][1].relative_to(DATASETS)) for k in ("a", "b"))
            # the op on the collection, at the chosen near threshold: precision / recall over pairs of its groups
            out["tiers"] = {}
            row = {int(i): r for r, i in enumerate(vs.ids)}
            copied = np.isin(src, originals)
            for tier, threshold, members in (("exact", None, ("",) + EXACT),
                                             ("near", out["chosen"]["near_threshold"], ("",) + EXACT + NEAR)):
                t0 = time.perf_counter()
                res = dup.find(ctx, "calibration", space, tier=tier, threshold=threshold, per_page=None)
                pred = np.full(len(vs.ids), -1)
                for g_no, g in enumerate(res.groups):
                    pred[[row[m.id] for m in g.images]] = g_no
                truth = np.where(copied & np.isin(kind, members), src, -1)  # one true group per copied original
                score = pair_precision_recall(pred, truth)
                out["tiers"][tier] = {"threshold": res.threshold, "groups": res.total_groups,
                                      **{k: round(v, 4) if isinstance(v, float) else v for k, v in score.items()},
                                      "seconds": round(time.perf_counter() - t0, 2)}
                log(f"tier {tier}: {out['tiers'][tier]}")
        finally:
            ctx.close()
    print(json.dumps(out, indent=1))


def measure(X: np.ndarray, src: np.ndarray, kind: np.ndarray, labels: np.ndarray) -> dict:
    """Distributions and the threshold sweep, on the full similarity matrix (small here)."""
    S = X @ X.T
    orig_row = {int(s): r for r, (s, k) in enumerate(zip(src, kind)) if k == ""}
    per_transform, cos_of = {}, {}
    for t in EXACT + NEAR:
        rows = np.flatnonzero(kind == t)
        cos_of[t] = cos = np.array([S[r, orig_row[int(src[r])]] for r in rows])
        per_transform[t] = {"n": len(cos), "min": round(float(cos.min()), 4),
                            "p05": round(float(np.percentile(cos, 5)), 4), "median": round(float(np.median(cos)), 4)}
    # the nearest distinct neighbour of every photo: the most similar photo of another source
    photo = np.flatnonzero(kind == "")
    P = S[np.ix_(photo, photo)].copy()
    np.fill_diagonal(P, -np.inf)
    nearest_at = P.argmax(axis=1)
    nearest = P[np.arange(len(photo)), nearest_at]
    same_label = labels[photo] == labels[photo][nearest_at]
    copies = np.concatenate([cos_of[t] for t in NEAR])

    def pct(a):
        return {"max": round(float(a.max()), 4), "p99": round(float(np.percentile(a, 99)), 4),
                "p95": round(float(np.percentile(a, 95)), 4), "median": round(float(np.median(a)), 4)}

    # positives: (original, near copy) pairs; negatives: (photo, its nearest distinct photo) pairs
    sweep, best = [], None
    for t in np.round(np.arange(0.70, 1.0001, 0.005), 3):
        tp, fp = int((copies >= t).sum()), int((nearest >= t).sum())
        p, r = tp / max(1, tp + fp), tp / len(copies)
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        sweep.append({"t": float(t), "copy_recall": round(r, 4), "photos_with_distinct_above": fp,
                      "precision": round(p, 4), "f1": round(f1, 4)})
        if best is None or f1 >= best[1]:
            best = (float(t), f1)
    near_t = best[0]
    similar = [{"t": t, "photos_with_distinct_above": round(float((nearest >= t).mean()), 4),
                "same_label_share": round(float(same_label[nearest >= t].mean()), 4) if (nearest >= t).any() else None}
               for t in (0.70, 0.75, 0.80, 0.85, 0.90)]
    iu = np.triu_indices(len(photo), 1)
    top = np.argsort(-P[iu])[:12]
    top_pairs = [{"a": int(src[photo[iu[0][t]]]), "b": int(src[photo[iu[1][t]]]), "cosine": round(float(P[iu][t]), 4)}
                 for t in top]
    return {"cos_to_original": per_transform, "nearest_distinct_photo": pct(nearest), "top_distinct_pairs": top_pairs,
            "similar": similar, "sweep": sweep,
            "chosen": {"near_threshold": near_t, "f1": round(best[1], 4),
                       "copy_recall": round(float((copies >= near_t).mean()), 4),
                       "photos_with_distinct_above": round(float((nearest >= near_t).mean()), 4),
                       "recall_moderate": round(float(np.mean(np.concatenate([cos_of[t] for t in MODERATE]) >= near_t)), 4),
                       "recall_harsh": round(float(np.mean(np.concatenate([cos_of[t] for t in HARSH]) >= near_t)), 4),
                       "recall_per_transform": {t: round(float((cos_of[t] >= near_t).mean()), 4) for t in EXACT + NEAR}}}


def scale(n: int, dim: int = 1280, seed: int = 0) -> dict:
    """The op's two steps on synthetic vectors: the pair search in blocks against an exact index
    (what collections below the index policy's 50k threshold use) and the grouping."""
    import faiss

    from simsearch.analysis.duplicates import candidate_pairs, groups_from_pairs
    from simsearch.ops.duplicates import BLOCK, FLOOR, NEAR_THRESHOLD, NEIGHBOURS

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 50), dim)).astype(np.float32)  # clusters, so pairs exist
    X = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    copies = rng.choice(n, n // 100, replace=False)  # 1% near-copies
    X[copies[: len(copies) // 2]] = X[copies[len(copies) // 2:]] + 0.005 * rng.standard_normal(
        (len(copies) // 2, dim)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(dim)
    index.add(X)
    t0 = time.perf_counter()
    i, j, s = candidate_pairs(X, index.search, k=NEIGHBOURS, floor=FLOOR, block=BLOCK)
    search_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    groups = groups_from_pairs(n, i, j, s, NEAR_THRESHOLD)
    group_s = time.perf_counter() - t0
    return {"benchmark": "duplicates_scale", "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "n": n,
            "dim": dim, "neighbours": NEIGHBOURS, "pairs_kept": int(len(i)), "pair_search_seconds": round(search_s, 2),
            "near_groups": len(groups), "grouping_seconds": round(group_s, 3),
            "note": "exact index: O(N^2 D) search; above 50k vectors the collection's index is approximate (faster)"}


if __name__ == "__main__":
    main()
