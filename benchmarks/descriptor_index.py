"""The descriptor index's kinds and its updates, offline on the in-context benchmark's data; prints ONE JSON object.

    python benchmarks/descriptor_index.py                      # 466 artefacts, 60 wall photos (seed 2026)
    python benchmarks/descriptor_index.py --distractors 1000   # plus 1,000 other dataset photos in the collection
    python benchmarks/descriptor_index.py --train-cap          # also time the training at the cap (4,096 lists)

What it does (every file in a temporary folder):

1. The collection and the wall photos of ``benchmarks/in_context.py`` (``--seed``: the same
   artefacts, backgrounds and changes), plus ``--distractors`` photos drawn at random from the
   rest of flowers102 (past each species' 4th photo) and of the oxford-buildings landmarks (past
   each one's 10th; other photos of the same buildings: a target can lose votes to them, as in a
   real collection). Each image's stored features as ingest extracts them (decoded for the default
   backbone's input, ``local_features.of_picture``); each wall photo's as a search does
   (``ops.verify.query_features``). No model, no database.
2. Each kind of :mod:`simsearch.index.descriptor_kinds` built from them (``ivf-sq8``: exact
   descriptors, the kind below ``PQ_AT``; ``ivf-pq`` with each ``--m``; ``flat`` with ``--flat``,
   slow), and for each: the wall photos' candidates as ``ops.verify.local_candidates`` takes them
   (votes, at most 5, at least 5 votes): the share with the target among them and first; bytes a
   descriptor as saved (the checksummed file's size over the descriptors); build and search times.
3. Updates: each kind built from 90% of the images (drawn at random), the other 10% added with
   ``descriptor_kinds.add`` (as an update does) and 10% of the first removed; the candidates
   compared with an index built from the same images at once.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from harness import emit, log  # noqa: E402  benchmarks/harness.py (puts the repository on sys.path)

import in_context  # noqa: E402  benchmarks/in_context.py: the collection and the wall photos


def _distractors(n: int, rng: np.random.Generator) -> list[Path]:
    pool = []
    for d in sorted(p for p in (in_context.DATASETS / "flowers102").iterdir() if p.is_dir()):
        pool += in_context._files(d)[4:]
    for d in sorted(p for p in (in_context.DATASETS / "oxford-buildings").iterdir() if p.is_dir() and p.name != "oxford"):
        pool += in_context._files(d)[10:]
    return [pool[i] for i in sorted(rng.choice(len(pool), min(n, len(pool)), replace=False))]


def _stored_features(path: Path, settings):
    from simsearch.images import THUMBNAIL_SIDE, decode_image
    from simsearch.images import local_features as LF
    from simsearch.ops.verify import DECODE_SIDE

    img = decode_image(path.read_bytes(), source=path.name, max_pixels=settings.max_pixels, draft_size=DECODE_SIDE,
                       draft_long=THUMBNAIL_SIDE)
    return LF.of_picture(img.image)


def _candidates(index, queries, targets) -> dict:
    from simsearch.images import local_votes as LV
    from simsearch.index import descriptors as DI
    from simsearch.ops import verify as V

    found, first, lists, secs = [], [], [], []
    for q, t in zip(queries, targets):
        t0 = time.perf_counter()
        D, I = DI.search(index, q.desc)
        secs.append(time.perf_counter() - t0)
        c = LV.candidates(D, I, V.LOCAL_CANDIDATES, V.LOCAL_MIN_VOTES)
        lists.append(c)
        found.append(t in c)
        first.append(c[:1] == [t])
    return {"target_in_candidates": round(float(np.mean(found)), 3), "target_first": round(float(np.mean(first)), 3),
            "in_candidates_of": f"{sum(found)}/{len(found)}", "search_ms_median": round(1000 * float(np.median(secs)), 1),
            "_lists": lists}


def _saved_bytes(index, folder: Path) -> float:
    from simsearch.index.faiss_index import save_index

    path = folder / "probe.faiss"
    save_index(index, path)
    size = path.stat().st_size
    path.unlink()
    return size / max(1, index.ntotal)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=in_context.SEED)
    ap.add_argument("--distractors", type=int, default=0, help="other dataset photos added to the collection")
    ap.add_argument("--m", default="8,16,32", help="PQ code bytes a descriptor, comma-separated")
    ap.add_argument("--flat", action="store_true", help="also the exhaustive exact index (slow: ~1-2 s a query)")
    ap.add_argument("--train-cap", action="store_true", help="also time training at the cap (MAX_LISTS lists)")
    ap.add_argument("--no-updates", action="store_true", help="skip the update comparison")
    args = ap.parse_args()

    from simsearch.config import Settings
    from simsearch.images import local_votes as LV
    from simsearch.index import descriptor_kinds as K
    from simsearch.index import descriptors as DI
    from simsearch.ops import verify as V

    rng = np.random.default_rng(args.seed)
    out: dict = {"benchmark": "descriptor_index", "seed": args.seed}
    with tempfile.TemporaryDirectory(prefix="simsearch-descriptors-") as tmp:
        tmp = Path(tmp)
        coll, queries = in_context.build(tmp, False, args.seed)
        files = [f for _, f in coll] + _distractors(args.distractors, rng)
        settings = Settings.from_env(home=tmp / "home")
        t0 = time.perf_counter()
        ids, descs, owner_of = [], [], {}
        for n, f in enumerate(files, start=1):
            feats = _stored_features(f, settings)
            ids.append(LV.descriptor_ids(n, len(feats)))
            descs.append(feats.desc)
            owner_of.setdefault(f.name, n)
        ids, desc = np.concatenate(ids), np.concatenate(descs)
        log(f"{len(files)} images, {len(ids)} descriptors ({time.perf_counter() - t0:.0f} s)")
        ctx = SimpleNamespace(settings=settings)
        walls = queries["wall"]
        qf = [V.query_features(ctx, q["data"], "wall.jpg") for q in walls]
        targets = [owner_of[q["target"]] for q in walls]
        out["data"] = {"images": len(files), "artefacts": len(coll), "distractors": len(files) - len(coll),
                       "descriptors": int(len(ids)), "wall_queries": len(walls),
                       "query_keypoints_median": int(np.median([len(q) for q in qf])),
                       "what": "in_context.py's collection and wall photos; stored features as ingest extracts them, "
                               "the query's as a search does; candidates as ops.verify.local_candidates takes them "
                               f"(at most {V.LOCAL_CANDIDATES}, >= {V.LOCAL_MIN_VOTES} votes)"}
        kinds = (["exhaustive"] if args.flat else []) + ["ivf-sq8"] + [f"ivf-pq{m}" for m in args.m.split(",") if m]
        out["kinds"] = {}
        lists = {}
        for kind in kinds:
            m = int(kind[6:]) if kind.startswith("ivf-pq") else None
            big = 10**12
            thresholds = {"exhaustive": (big, big), "ivf-sq8": (0, big)}.get(kind, (0, 0))
            base = K.kind_for(len(desc), ivf_at=thresholds[0], pq_at=thresholds[1])
            t0 = time.perf_counter()
            sample = desc[np.sort(rng.choice(len(desc), K.train_size(len(desc), base), replace=False))]
            index = K.empty(base, len(desc), sample, m=m)
            trained = time.perf_counter() - t0
            K.add(index, ids, desc)
            built = time.perf_counter() - t0
            res = _candidates(index, qf, targets)
            lists[kind] = res.pop("_lists")
            res.update({"bytes_per_descriptor_saved": round(_saved_bytes(index, tmp), 1),
                        "lists": int(getattr(index, "nlist", 0)), "nprobe": int(getattr(index, "nprobe", 0)),
                        "train_seconds": round(trained, 2), "build_seconds": round(built, 2)})
            if kind != "ivf-sq8" and "ivf-sq8" in lists:
                res["same_candidates_as_ivf_sq8"] = round(float(np.mean([a == b for a, b in zip(lists[kind], lists["ivf-sq8"])])), 3)
            out["kinds"][kind] = res
            log(f"{kind}: {res}")
            if not args.no_updates and kind != "exhaustive":
                out["kinds"][kind]["update"] = _update(m, thresholds, ids, desc, qf, targets, args.seed)
                log(f"{kind} update: {out['kinds'][kind]['update']}")
            del index
        if args.train_cap:
            n = 300 * 10**6  # ~1M images
            take = min(len(desc), K.train_size(n, "ivf-pq"))
            t0 = time.perf_counter()
            K.empty("ivf-pq", n, desc[rng.choice(len(desc), take, replace=False)])
            out["train_at_cap"] = {"lists": K.lists_for(n), "sample": int(take), "pq_m": K.PQ_M,
                                   "seconds": round(time.perf_counter() - t0, 1)}
            log(f"training at the cap: {out['train_at_cap']}")
        shutil.rmtree(tmp / "artefacts", ignore_errors=True)
    emit(out)


def _update(m, thresholds, ids, desc, qf, targets, seed: int) -> dict:
    """Built from 90% of the images then the rest added and 10% removed, against a build of the same
    set at once (the same images added and removed for every kind)."""
    from simsearch.images import local_votes as LV
    from simsearch.index import descriptor_kinds as K

    rng = np.random.default_rng(seed + 1)
    images = np.unique(LV.owners(ids))
    later = rng.choice(images, len(images) // 10, replace=False)
    gone = rng.choice(np.setdiff1d(images, later), len(images) // 10, replace=False)
    now = ~np.isin(LV.owners(ids), later)
    k = K.kind_for(int(now.sum()), ivf_at=thresholds[0], pq_at=thresholds[1])
    sample = desc[now][np.sort(rng.choice(int(now.sum()), min(int(now.sum()), K.train_size(int(now.sum()), k)), replace=False))]
    index = K.empty(k, int(now.sum()), sample, m=m)
    K.add(index, ids[now], desc[now])
    t0 = time.perf_counter()
    added = np.isin(LV.owners(ids), later)
    K.add(index, ids[added], desc[added])
    K.remove_images(index, gone)
    secs = time.perf_counter() - t0
    keep = ~np.isin(LV.owners(ids), gone)
    t0 = time.perf_counter()
    sample = desc[keep][np.sort(rng.choice(int(keep.sum()), min(int(keep.sum()), K.train_size(int(keep.sum()), k)), replace=False))]
    rebuilt = K.empty(k, int(keep.sum()), sample, m=m)
    K.add(rebuilt, ids[keep], desc[keep])
    rebuild_secs = time.perf_counter() - t0
    assert np.array_equal(K.ids_held(index), K.ids_held(rebuilt))
    a, b = _candidates(index, qf, targets), _candidates(rebuilt, qf, targets)
    live = [t not in set(gone.tolist()) for t in targets]
    same = [x == y for x, y, ok in zip(a["_lists"], b["_lists"], live) if ok]
    return {"images_added": int(len(later)), "images_removed": int(len(gone)), "update_seconds": round(secs, 2),
            "rebuild_seconds": round(rebuild_secs, 2), "queries_whose_target_stays": int(sum(live)),
            "same_candidates_as_rebuild": round(float(np.mean(same)), 3),
            "target_in_candidates_updated": round(float(np.mean([t in c for c, t, ok in zip(a["_lists"], targets, live) if ok])), 3),
            "target_in_candidates_rebuilt": round(float(np.mean([t in c for c, t, ok in zip(b["_lists"], targets, live) if ok])), 3),
            "target_first_updated": round(float(np.mean([c[:1] == [t] for c, t, ok in zip(a["_lists"], targets, live) if ok])), 3),
            "target_first_rebuilt": round(float(np.mean([c[:1] == [t] for c, t, ok in zip(b["_lists"], targets, live) if ok])), 3)}


if __name__ == "__main__":
    os.environ.setdefault("SIMSEARCH_REDIS_URL", "")
    main()
