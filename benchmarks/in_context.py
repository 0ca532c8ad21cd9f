"""Artefacts photographed in context: search by a photo of a picture hanging on a wall; prints ONE JSON object.

    python benchmarks/in_context.py            # 466 artefacts, 60 wall photos, 60 copies, 102 flowers (~8 min on 2 cores)
    python benchmarks/in_context.py --quick    # 120 artefacts, 20 + 20 + 30 queries (~1.5 min)
    python benchmarks/in_context.py --seed 7   # other wall photos and copies than the development set (seed 2026)

What it does (every file in a temporary folder, never in the repository):

1. The collection ("artefacts"): the first 3 photos of each of the 102 flowers102 species and the
   first 10 of each of the 16 oxford-buildings landmarks (466 photos), ingested with the real
   pipeline (default backbone efficientnet_lite0, fp32, offline weights) into a temporary SQLite
   collection.
2. Queries, each searched through the op the API and the UI call (``simsearch.ops.search.by_upload``):
   - **wall**: an artefact (half flowers, half buildings, drawn at random) "photographed on a wall":
     framed (a border of 4-9% of its short side in one of five frame colours, darker towards the
     picture), lit differently (brightness x0.75-1.15, contrast x0.8-1.1, a colour cast of up to
     8% per channel and a light fall-off of 10-30% across it), turned by a slight perspective (each
     corner moved by up to 5% of the size), pasted at 30-70% of the size of an unrelated photo of
     Oxford (oxford-buildings/oxford/, never in the collection) at a random place, saved as JPEG
     q85. The right answer is the artefact;
   - **copy**: the same artefacts colour-shifted (saturation x0.6-1.4, up to 12% per channel),
     resized to 40-80% and saved as JPEG q85: a close copy, which must still come first;
   - **flowers**: the 4th photo of each flowers102 species (not in the collection): ordinary
     same-class retrieval, precision@3 (the collection holds 3 photos of each species).
3. Each query runs in each mode of :data:`MODES` (``--modes``: a subset; plain and fused always): **plain**
   (``regions=0, verify=False, local=False``: the whole image's vector, the search as it was), **fused** (the whole
   image plus 1 object proposal, fused with the whole image as the prior; runs before 2026-12-06 called it
   ``default``), **verified** (``verify=true``: fused, then the top candidates geometrically verified,
   simsearch/ops/verify.py), **local** (``regions=0, local=true``: the whole image plus candidates by local features,
   verified), **fused_local** (``local=true``: by_upload's default where local features are stored, as here) and
   **verified_local**, and **fused_local_onepass** (fused_local without the stages of
   ``simsearch.ops.search._staged``: the query's SIFT, the fused search, then verification, as before 2026-12-07),
   **fused_local_noclose** (fused_local without the closer look at the first images by votes,
   ``simsearch.ops.verify.closer_look``), **fused_local_faiss2** (the descriptor search on 2 OpenMP threads),
   **fused_local_q1, _q075, _q05, _n500, _q075c24** (``ops.verify``'s first pass: ``QUERY_SCALE``,
   ``QUERY_KEYPOINTS``, ``CLEAR_INLIERS``), **fused_local_nocopy** (fused_local without answering a close copy at
   once, ``simsearch.search.CLOSE_COPY_SCORE``), **fused_local_strong08** (any first hit at 0.8 or more answered at
   once) and **fused_local_before** (no close copy answered at once: the default before 2026-12-07 late, the same as
   fused_local_nocopy since the early-boxes switch was removed; the modes fused_local_early, _earlyboxes and
   _lateboxes went with ``simsearch.search``'s EARLY_PROPOSALS and EARLY_BOXES, docs/region-search.md); wall photos
   also with **box** (unless ``--no-box``): the pasted picture's bounding box as a user would drag it (the verified
   search inside it). Reported: mAP@5 (one relevant image: mean of 1/rank within the top 5), top-1 rate, the share
   with the target in the top 10, and for the flowers precision@1 and @3; latency: every query's modes timed back to
   back (plain and default alternating first), median and mean of each and the ratio of each median to plain's;
   ``closer_looks``: the default's closer looks by set (calls, those that verified an image, those that verified the
   target; ``_by_mode``: of every fused_local mode), ``clear_winners_by_mode`` (no proposal embedded),
   ``close_copies_by_mode`` (answered at once as a close copy); ``not_first``: the default's queries whose target is
   not first (index, rank or None).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import cpu_model, log  # noqa: E402  benchmarks/harness.py (puts the repository on sys.path)

ROOT = Path(__file__).resolve().parents[1]
DATASETS = (ROOT.parent / "shared" / "datasets").resolve()
FRAME_COLOURS = [(92, 60, 30), (176, 141, 67), (25, 25, 25), (235, 232, 225), (120, 80, 50)]
SEED = 2026
# The modes measured: by_upload's keyword arguments (regions: object proposals; verify: geometric
# verification of the top candidates, simsearch/ops/verify.py).
MODES = {"plain": {"regions": 0, "verify": False, "local": False},  # the whole image's vector: the search before region search
         "fused": {"verify": False, "local": False},  # the whole image + 1 proposal, fused (the default before local candidates)
         "verified": {"verify": True, "local": False},  # fused, then the top candidates verified (verify=true)
         "local": {"regions": 0, "verify": False, "local": True},  # the whole image + candidates by local features, verified
         "fused_local": {"verify": False, "local": True},  # fused + candidates by local features, verified
         "verified_local": {"verify": True, "local": True},
         # the same as fused_local in one pass (query SIFT, fused search, verification; before 2026-12-07)
         "fused_local_onepass": {"verify": False, "local": True, "staged": False},
         # fused_local without the closer look at the first image by votes (ops.verify.closer_look; before 2026-12-07 late)
         "fused_local_noclose": {"verify": False, "local": True, "closer": False},
         # fused_local with the descriptor search on 2 OpenMP threads (simsearch.ops.verify.FAISS_THREADS is 1)
         "fused_local_faiss2": {"verify": False, "local": True, "faiss_threads": 2},
         # fused_local without the answer at once for a close copy (simsearch.search.CLOSE_COPY_SCORE out of reach)
         "fused_local_nocopy": {"verify": False, "local": True, "search_constants": {"CLOSE_COPY_SCORE": 2.0}},
         # fused_local answering at once any query whose whole image's first hit reaches 0.8 (no gap asked): a looser rule
         "fused_local_strong08": {"verify": False, "local": True,
                                  "search_constants": {"CLOSE_COPY_SCORE": 0.8, "CLOSE_COPY_GAP": 0.0}},
         # fused_local as before 2026-12-07 late: no close copy's early answer (the early boxes, off then, are gone;
         # kept for docs/region-search.md's command: the same as fused_local_nocopy)
         "fused_local_before": {"verify": False, "local": True, "search_constants": {"CLOSE_COPY_SCORE": 2.0}},
         # fused_local with ops.verify's constants set: the query's first SIFT pass on a copy 1.0 / 0.75 / 0.5 times its
         # decoded size (QUERY_SCALE: 1.0 by default; 0.75 tried 2026-12-07, not kept), 500 keypoints, 0.75 + clear at 24
         **{f"fused_local_{m}": {"verify": False, "local": True, "constants": c} for m, c in (
             ("q1", {"QUERY_SCALE": 1.0}), ("q075", {"QUERY_SCALE": 0.75}), ("q05", {"QUERY_SCALE": 0.5}),
             ("n500", {"QUERY_KEYPOINTS": 500}), ("q075c24", {"QUERY_SCALE": 0.75, "CLEAR_INLIERS": 24}))}}


# ---- the scenes -----------------------------------------------------------------------------------

def _perspective_coeffs(src, dst) -> list[float]:
    """PIL's PERSPECTIVE coefficients mapping output points ``dst`` back to input points ``src``."""
    a, b = [], []
    for (x, y), (u, v) in zip(dst, src):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        b.append(u)
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b.append(v)
    return np.linalg.solve(np.asarray(a, float), np.asarray(b, float)).tolist()


def on_a_wall(art, background, rng: np.random.Generator):
    """(photo, box): ``art`` (PIL) framed, lit differently, slightly turned in perspective and pasted
    at 30-70% of ``background``'s size; ``box``: the framed picture's bounding box (normalised)."""
    from PIL import Image, ImageEnhance

    art = art.convert("RGB")
    bg = background.convert("RGB").copy()
    W, H = bg.size
    scale = rng.uniform(0.3, 0.7)
    aspect = art.width / art.height
    fw = min(scale * W, scale * H * aspect)
    fw, fh = int(round(fw)), int(round(fw / aspect))
    border = max(2, int(round(rng.uniform(0.04, 0.09) * min(fw, fh))))
    iw, ih = max(8, fw - 2 * border), max(8, fh - 2 * border)
    pic = art.resize((iw, ih), Image.BILINEAR)
    pic = ImageEnhance.Brightness(pic).enhance(rng.uniform(0.75, 1.15))
    pic = ImageEnhance.Contrast(pic).enhance(rng.uniform(0.8, 1.1))
    x = np.asarray(pic, np.float32)
    cast = 1.0 + rng.uniform(-0.08, 0.08, 3)
    yy, xx = np.mgrid[0:ih, 0:iw]
    cx, cy = rng.uniform(0, iw), rng.uniform(-ih * 0.5, ih * 0.5)  # a lamp above or beside it
    fall = 1.0 - rng.uniform(0.1, 0.3) * np.hypot(xx - cx, yy - cy) / np.hypot(iw, ih)
    x = np.clip(x * cast[None, None, :] * fall[..., None], 0, 255).astype(np.uint8)
    framed = np.empty((fh, fw, 3), np.float32)
    framed[:] = np.asarray(FRAME_COLOURS[rng.integers(len(FRAME_COLOURS))], np.float32)
    d = np.minimum(np.minimum(np.arange(fh), np.arange(fh)[::-1])[:, None],
                   np.minimum(np.arange(fw), np.arange(fw)[::-1])[None, :]) / border  # distance to the outside
    framed *= (1.0 - 0.35 * np.clip(d, 0, 1))[..., None]  # a bevel: darker towards the picture
    framed = framed.astype(np.uint8)
    framed[border:border + ih, border:border + iw] = x[:fh - 2 * border, :fw - 2 * border]
    framed = Image.fromarray(framed)
    jitter = rng.uniform(-0.05, 0.05, (4, 2)) * np.array([fw, fh])
    pad = int(0.06 * max(fw, fh)) + 1
    src = [(0, 0), (fw, 0), (fw, fh), (0, fh)]
    dst = [(px + pad + dx, py + pad + dy) for (px, py), (dx, dy) in zip(src, jitter)]
    size = (fw + 2 * pad, fh + 2 * pad)
    coeffs = _perspective_coeffs(src, dst)
    warped = framed.transform(size, Image.PERSPECTIVE, coeffs, Image.BILINEAR)
    mask = Image.new("L", (fw, fh), 255).transform(size, Image.PERSPECTIVE, coeffs, Image.BILINEAR)
    ox = int(rng.integers(0, W - size[0] + 1)) if W > size[0] else (W - size[0]) // 2
    oy = int(rng.integers(0, H - size[1] + 1)) if H > size[1] else (H - size[1]) // 2
    bg.paste(warped, (ox, oy), mask)
    xs, ys = [p[0] + ox for p in dst], [p[1] + oy for p in dst]
    box = (max(0.0, min(xs) / W), max(0.0, min(ys) / H), min(1.0, max(xs) / W), min(1.0, max(ys) / H))
    return bg, tuple(round(float(v), 4) for v in box)


def colour_shifted(art, rng: np.random.Generator):
    from PIL import Image, ImageEnhance

    im = ImageEnhance.Color(art.convert("RGB")).enhance(rng.uniform(0.6, 1.4))
    x = np.asarray(im, np.float32) * (1 + rng.uniform(-0.12, 0.12, 3))[None, None]
    im = Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))
    s = rng.uniform(0.4, 0.8)
    return im.resize((max(16, int(im.width * s)), max(16, int(im.height * s))), Image.BILINEAR)


def jpeg(im, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: (len(p.name), p.name))


def build(tmp: Path, quick: bool, seed: int = SEED) -> tuple[list[tuple[str, Path]], dict]:
    """The collection's files (copied under tmp/artefacts/<label>/) and the queries."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    flowers = sorted(p for p in (DATASETS / "flowers102").iterdir() if p.is_dir())
    buildings = sorted(p for p in (DATASETS / "oxford-buildings").iterdir() if p.is_dir() and p.name != "oxford")
    if quick:
        flowers = flowers[:30]
    per_flower, per_building = 3, (10 if not quick else 2)
    coll: list[tuple[str, Path]] = []
    for d in flowers:
        coll += [(f"flowers102-{d.name}", f) for f in _files(d)[:per_flower]]
    for d in buildings:
        coll += [(f"oxford-{d.name}", f) for f in _files(d)[:per_building]]
    for label, f in coll:
        (tmp / "artefacts" / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, tmp / "artefacts" / label / f.name)
    n_wall = 20 if quick else 60
    fl = [i for i, (lab, _) in enumerate(coll) if lab.startswith("flowers102")]
    ox = [i for i, (lab, _) in enumerate(coll) if lab.startswith("oxford")]
    targets = [int(i) for i in rng.choice(fl, n_wall // 2, replace=False)] + \
              [int(i) for i in rng.choice(ox, n_wall - n_wall // 2, replace=False)]
    backgrounds = _files(DATASETS / "oxford-buildings" / "oxford")
    picks = rng.choice(len(backgrounds), n_wall, replace=False)
    wall, copies = [], []
    for t, b in zip(targets, picks):
        with Image.open(coll[t][1]) as art, Image.open(backgrounds[int(b)]) as bg:
            photo, box = on_a_wall(art, bg, rng)
            wall.append({"target": coll[t][1].name, "data": jpeg(photo), "box": box,
                         "background": backgrounds[int(b)].name})
            copies.append({"target": coll[t][1].name, "data": jpeg(colour_shifted(art, rng))})
    held = [{"label": f"flowers102-{d.name}", "data": _files(d)[per_flower].read_bytes(), "name": _files(d)[per_flower].name}
            for d in (flowers if not quick else flowers[:30])]
    return coll, {"wall": wall, "copy": copies, "flowers": held}


# ---- measuring ------------------------------------------------------------------------------------

def _ap5(names: list[str], target: str) -> float:
    return next((1.0 / (r + 1) for r, n in enumerate(names[:5]) if n == target), 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="120 artefacts and 70 queries: a smoke run")
    ap.add_argument("--seed", type=int, default=SEED, help="which artefacts, backgrounds and changes are drawn "
                                                           f"(default {SEED}: the set the method was developed on)")
    ap.add_argument("--modes", default=",".join(MODES), help=f"the modes measured, comma-separated (of {', '.join(MODES)}); "
                                                            "plain and fused always")
    ap.add_argument("--no-box", action="store_true", help="skip the wall photos' box mode")
    args = ap.parse_args()
    os.environ["SIMSEARCH_PRECISION"] = "fp32"
    os.environ.setdefault("SIMSEARCH_REDIS_URL", "")

    from simsearch.analysis import regions as R
    from simsearch.images import local_features as LF
    from simsearch.images import local_votes as LV
    from simsearch.ops import verify as V
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ingest.pipeline import Ingester
    from simsearch.ingest.sources import files_from_folder
    from simsearch.ops import search as ops_search
    from simsearch import search as core_search

    out: dict = {"benchmark": "in_context", "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
                 "load_average_at_start": round(os.getloadavg()[0], 2),
                 "platform": platform.platform(), "python": platform.python_version(), "seed": args.seed,
                 "method": {"plain": "regions=0: the whole image's vector (the search before region search)",
                            "fused": f"the whole image and up to {R.REGIONS_DEFAULT} object proposal(s) (rectangles on "
                                       f"strong straight edges, {R.PROPOSAL_GRID}-cell grid, >= {R.PROPOSAL_MIN:g} of each "
                                       f"side; the best {R.CONTRAST_POOL} ranked again by edge score x colour contrast "
                                       f"with a {R.CONTRAST_RING:g} band around them; NMS {R.PROPOSAL_NMS:g}), each "
                                       f"cropped {R.PROPOSAL_INSET:g} inside, embedded "
                                       "in one batch; fused: an image's score is max(whole-image cosine, region "
                                       f"cosine - {R.REGION_MARGIN:g})",
                            "verified": f"verify=true: fused, then the top {V.CANDIDATES} verified: SIFT ({LF.N_QUERY} keypoints of the "
                                       f"query, {LF.N_FEATURES} stored per image, grey copies <= {LF.MAX_SIDE} px), ratio "
                                       f"test {LF.RATIO}, MAGSAC++ homography ({LF.REPROJ} of the long side); >= "
                                       f"{V.MIN_INLIERS} inliers: verified, first by inliers",
                            "local": f"regions=0, local=true: the whole image's vector, plus up to {V.LOCAL_CANDIDATES} "
                                     f"candidates by local features (each query keypoint votes for the image of its nearest "
                                     f"stored descriptor, ratio {LV.RATIO} against the nearest of another image; >= "
                                     f"{V.LOCAL_MIN_VOTES} votes), those verified first",
                            "fused_local": "local=true: fused, plus the candidates by local features, verified",
                            "verified_local": "verify=true, local=true: fused, its top candidates and the local ones verified",
                            "query_scale": V.QUERY_SCALE,
                            "box": "the verified search inside the pasted picture's bounding box (a user's drag)"}}
    with tempfile.TemporaryDirectory(prefix="simsearch-in-context-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        coll, queries = build(tmp, args.quick, args.seed)
        out["data"] = {"collection": f"{len(coll)} artefacts: flowers102 (first 3 of each species) and oxford-buildings "
                                     f"landmarks (first {2 if args.quick else 10} of each), labelled by folder",
                       "artefacts": len(coll), "wall_queries": len(queries["wall"]), "copy_queries": len(queries["copy"]),
                       "flowers_queries": len(queries["flowers"]),
                       "wall": "artefact framed, relit, slight perspective, pasted at 30-70% into an oxford-buildings/oxford/ photo",
                       "copy": "artefact colour-shifted and resized to 40-80%, JPEG q85",
                       "flowers": "4th photo of each flowers102 species, same-species precision"}
        log(f"{len(coll)} artefacts, {sum(len(v) for v in queries.values())} queries built ({time.perf_counter() - t0:.1f} s)")
        settings = Settings.from_env(home=tmp / "home", database_url=f"sqlite:///{tmp / 'home' / 'db.sqlite'}",
                                     local_features=True)  # verified modes read stored features, as a deployment using them would
        ctx = AppContext.open(settings, schema="upgrade")
        try:
            space = ctx.new_space(settings.default_backbone)
            files, _ = files_from_folder(tmp / "artefacts", labels="folders")
            t0 = time.perf_counter()
            report = Ingester(ctx, spaces=[space]).run("artefacts", files, source=str(tmp / "artefacts"))
            out["space"] = space
            out["ingest"] = {"added": report.added, "failed": report.failed, "seconds": round(time.perf_counter() - t0, 1)}
            log(f"ingested: {out['ingest']}")

            real_descriptor_search = V.descriptor_index.search

            def run(q: dict, candidates: int | None = None, **kw) -> tuple[list[dict], float]:
                sets = {(V, "CANDIDATES"): candidates or V.CANDIDATES, (ops_search, "STAGED"): kw.pop("staged", ops_search.STAGED),
                        (V, "CLOSE_MIN_VOTES"): V.CLOSE_MIN_VOTES if kw.pop("closer", True) else 10**9,
                        **{(V, name): value for name, value in kw.pop("constants", {}).items()},
                        **{(core_search, name): value for name, value in kw.pop("search_constants", {}).items()}}
                kept = {(m, name): getattr(m, name) for m, name in sets}
                for (m, name), value in sets.items():
                    setattr(m, name, value)
                threads = kw.pop("faiss_threads", None)
                if threads:  # the helper thread's descriptor search on more OpenMP threads, then back
                    def searched(*a, _real=real_descriptor_search, **k):
                        import faiss
                        faiss.omp_set_num_threads(threads)
                        try:
                            return _real(*a, **k)
                        finally:
                            faiss.omp_set_num_threads(V.FAISS_THREADS)
                    V.descriptor_index.search = searched
                try:
                    t = time.perf_counter()
                    res = ops_search.by_upload(ctx, "artefacts", q["data"], q.get("name", "query.jpg"), k=10, **kw)
                    return res["results"], time.perf_counter() - t
                finally:
                    for (m, name), value in kept.items():
                        setattr(m, name, value)
                    V.descriptor_index.search = real_descriptor_search

            looks: dict = {}  # closer looks of the fused_local modes by set: run, verified, verified the target

            def counted_look(*a, _real=V.closer_look, **kw):
                inliers = _real(*a, **kw)
                if looking is not None:
                    c = looks.setdefault(looking[2], {}).setdefault(looking[0], {"run": 0, "verified": 0, "verified_target": 0})
                    ok = inliers >= V.MIN_INLIERS
                    c["run"], c["verified"] = c["run"] + 1, c["verified"] + int(ok)
                    c["verified_target"] += int(ok and looking[1] is not None and a[-1] == looking[1])
                return inliers

            clears: dict = {}  # by mode and set: the queries whose first image by votes was a clear winner (no proposal)

            def counted_local(*a, _real=V.local_verified, **kw):
                found, clear = _real(*a, **kw)
                if looking is not None:
                    clears.setdefault(looking[2], {})[looking[0]] = clears.get(looking[2], {}).get(looking[0], 0) + int(clear)
                return found, clear

            copies_early: dict = {}  # by mode and set: the queries answered at once as a close copy

            def counted_copy(*a, _real=core_search.close_copy, **kw):
                found = _real(*a, **kw)
                if looking is not None:
                    by = copies_early.setdefault(looking[2], {})
                    by[looking[0]] = by.get(looking[0], 0) + int(found)
                return found

            core_search.close_copy = counted_copy
            V.closer_look = counted_look
            V.local_verified = counted_local
            looking = None
            for q in queries["copy"][:3]:  # warm-up: models open, index loaded
                run(q, **MODES["plain"])
                run(q, **MODES["fused"])
                run(q, **MODES["local"])  # the descriptor index built
            with ctx.db.session() as s:  # the targets' ids, to tell a closer look's verification of the target
                from sqlalchemy import select
                from simsearch.store.models import Image
                target_ids = {Path(p).name: i for i, p in s.execute(select(Image.id, Image.source_path))}
            modes = ["plain", "fused"] + [m for m in args.modes.split(",") if m in MODES and m not in ("plain", "fused")]
            out["modes"] = {m: MODES[m] for m in modes}
            times: dict = {m: [] for m in modes}
            by_set: dict = {}
            quality: dict = {}
            for kind, items in queries.items():
                per = {m: [] for m in modes} | ({"box": []} if kind == "wall" and not args.no_box else {})
                for n, q in enumerate(items):
                    order = modes if n % 2 == 0 else ["fused", "plain"] + modes[2:]
                    for mode in order:
                        looking = (kind, target_ids.get(q.get("target")), mode) if mode.startswith("fused_local") else None
                        hits, secs = run(q, **MODES[mode])
                        times[mode].append(secs)
                        by_set.setdefault(kind, {}).setdefault(mode, []).append(secs)
                        per[mode].append(hits)
                    if "box" in per:
                        per["box"].append(run(q, box=q["box"], verify=True)[0])
                quality[kind] = {}
                for mode, all_hits in per.items():
                    names = [[Path(h["path"]).name for h in hits] for hits in all_hits]
                    labels = [[h["label"] for h in hits] for hits in all_hits]
                    if kind == "flowers":
                        p1 = np.mean([lab[:1] == [q["label"]] for lab, q in zip(labels, items)])
                        p3 = np.mean([np.mean([x == q["label"] for x in lab[:3]]) for lab, q in zip(labels, items)])
                        quality[kind][mode] = {"precision_at_1": round(float(p1), 3), "precision_at_3": round(float(p3), 3)}
                    else:
                        ap = [_ap5(nm, q["target"]) for nm, q in zip(names, items)]
                        if mode == "fused_local":  # the queries whose target is not first: (query, rank or None)
                            out.setdefault("not_first", {})[kind] = [
                                (n, nm.index(q["target"]) + 1 if q["target"] in nm else None)
                                for n, (nm, q) in enumerate(zip(names, items)) if nm[:1] != [q["target"]]]
                        top1 = [nm[:1] == [q["target"]] for nm, q in zip(names, items)]
                        recall = [q["target"] in nm for nm, q in zip(names, items)]
                        quality[kind][mode] = {"map_at_5": round(float(np.mean(ap)), 3),
                                               "top1": round(float(np.mean(top1)), 3),
                                               "in_top10": round(float(np.mean(recall)), 3)}
                log(f"{kind}: {quality[kind]}")
            out["quality"] = quality
            out["closer_looks"] = looks.get("fused_local", {})
            out["closer_looks_by_mode"] = looks
            out["clear_winners_by_mode"] = clears
            out["close_copies_by_mode"] = copies_early
            med = {m: float(np.median(v)) for m, v in times.items()}
            out["latency"] = {"queries_each": len(times["plain"]), "what": "ops.search.by_upload, k=10, one query at a time",
                              **{f"{m}_median_ms": round(1000 * med[m], 1) for m in med},
                              **{f"{m}_mean_ms": round(1000 * float(np.mean(v)), 1) for m, v in times.items()},
                              **{f"ratio_{m}_to_plain_median": round(med[m] / med["plain"], 2) for m in med if m != "plain"},
                              "ratio_to_plain_median_by_set": {
                                  kind: {m: round(float(np.median(v) / np.median(per["plain"])), 2)
                                         for m, v in per.items() if m != "plain"} for kind, per in by_set.items()}}
        finally:
            ctx.close()
    out["load_average_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
