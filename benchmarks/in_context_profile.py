"""Where the time of a search by upload with local candidates goes; prints ONE JSON object.

    python benchmarks/in_context_profile.py --seed 11            # 466 artefacts, 20 wall + 20 copy + 20 flowers queries
    python benchmarks/in_context_profile.py --seed 11 --keep /tmp/x   # keep (and reuse) the ingested collection there

The collection and the queries are those of ``benchmarks/in_context.py`` (same seed, same build);
the collection is ingested with local features stored (``SIMSEARCH_LOCAL_FEATURES``). Each query's
stages are timed one by one, in the order ``ops.search.by_upload`` runs them, calling the same
functions (``simsearch.ops.verify``, ``simsearch.search``), single-threaded, several rounds:

- ``decode_sift``: the query decoded for its local features; ``sift``: SIFT on it (1,000 keypoints);
- ``descriptor_search``: the descriptor index's search of those keypoints (8 neighbours each);
  ``votes``: the vote count;
- ``decode_embed_plain`` / ``decode_embed_fused``: :func:`simsearch.search.embed_query` with no
  proposal / one (decode, proposals, the model's forward of 1 / 2 images); ``forward_*``: the
  model's part of it;
- ``vector_search``: the fused search of the vector index, with the local candidates' scores;
- ``descriptor_search_1_thread``: the same with one OpenMP thread; ``descriptor_search_nprobeP_kK``:
  with P inverted lists visited and K neighbours, and ``same_first_candidate_*`` the share of
  queries whose first local candidate is the same as with the defaults;
- ``candidate_reads``: the local candidates' stored features read from the database and decoded;
- ``verify_each``: one candidate's matching and homography (median over candidates);
- ``local_path_alone``: the local path as the staged search runs it on its helper thread
  (:func:`simsearch.ops.verify.local_verified`: decode, SIFT, descriptor search, votes, reads,
  verification in vote order), here alone;
- ``total_plain`` / ``total_fused_local`` / ``total_fused_local_onepass``: ``by_upload`` end to
  end, for the same query (plain; the default with local candidates, staged; the same in one pass).

Medians in ms per query set. The machine may be shared: the load averages are in the machine block.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import emit, log  # noqa: E402  (puts the repository on sys.path)

import in_context  # noqa: E402  benchmarks/in_context.py: the same collection and queries


def _ms(f, *a, **kw):
    t = time.perf_counter()
    out = f(*a, **kw)
    return out, 1000.0 * (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--per-set", type=int, default=20, help="queries timed of each set (wall, copy, flowers)")
    ap.add_argument("--rounds", type=int, default=2, help="times each query's stages are timed (the median is kept)")
    ap.add_argument("--keep", default=None, help="a folder to keep the ingested collection in (reused when present)")
    args = ap.parse_args()
    os.environ["SIMSEARCH_PRECISION"] = "fp32"
    os.environ.setdefault("SIMSEARCH_REDIS_URL", "")

    import faiss

    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.images import THUMBNAIL_SIDE, decode_image
    from simsearch.images import local_features as LF
    from simsearch.images import local_votes as LV
    from simsearch.index import descriptors as DI
    from simsearch.index import descriptor_kinds as K
    from simsearch.ingest.pipeline import Ingester
    from simsearch.ingest.sources import files_from_folder
    from simsearch.ops import search as ops_search
    from simsearch.ops import verify as V
    from simsearch import search as S

    tmpdir = None
    if args.keep:
        root = Path(args.keep)
        root.mkdir(parents=True, exist_ok=True)
    else:
        tmpdir = tempfile.TemporaryDirectory(prefix="simsearch-in-context-profile-")
        root = Path(tmpdir.name)
    fresh = not (root / "home" / "db.sqlite").exists()
    coll, queries = in_context.build(root, False, args.seed) if fresh else in_context.build(root / "again", False, args.seed)
    settings = Settings.from_env(home=root / "home", database_url=f"sqlite:///{root / 'home' / 'db.sqlite'}",
                                 local_features=True)
    ctx = AppContext.open(settings, schema="upgrade")
    out: dict = {"benchmark": "in_context_profile", "seed": args.seed, "per_set": args.per_set, "rounds": args.rounds}
    try:
        space = ctx.new_space(settings.default_backbone)
        if fresh:
            files, _ = files_from_folder(root / "artefacts", labels="folders")
            t0 = time.perf_counter()
            report = Ingester(ctx, spaces=[space]).run("artefacts", files, source=str(root / "artefacts"))
            log(f"ingested {report.added} in {time.perf_counter() - t0:.1f} s")
        threads = faiss.omp_get_max_threads()
        out["faiss_threads"] = threads
        coll_id = S._lookup(ctx, "artefacts", None, None).collection_id
        index = ctx.descriptor_index(coll_id)
        out["descriptors"] = int(index.ntotal)
        for q in queries["copy"][:3]:  # warm-up
            ops_search.by_upload(ctx, "artefacts", q["data"], "q.jpg", regions=0, verify=False, local=False)
            ops_search.by_upload(ctx, "artefacts", q["data"], "q.jpg", verify=False, local=True)
        stages: dict = {}
        for kind in ("wall", "copy", "flowers"):
            rows: dict = {}
            for q in queries[kind][:args.per_set]:
                data, name = q["data"], q.get("name", "q.jpg")
                per: dict = {}
                for _ in range(args.rounds):
                    t: dict = {}
                    _, t["total_plain"] = _ms(ops_search.by_upload, ctx, "artefacts", data, name, regions=0,
                                              verify=False, local=False)
                    _, t["total_fused_local"] = _ms(ops_search.by_upload, ctx, "artefacts", data, name,
                                                    verify=False, local=True)
                    ops_search.STAGED = False
                    _, t["total_fused_local_onepass"] = _ms(ops_search.by_upload, ctx, "artefacts", data, name,
                                                            verify=False, local=True)
                    ops_search.STAGED = True
                    _, t["local_path_alone"] = _ms(V.local_verified, ctx, coll_id, data, name)
                    _, t["decode_sift"] = _ms(decode_image, data, source=name, max_pixels=settings.max_pixels,
                                              draft_size=V.DECODE_SIDE, draft_long=THUMBNAIL_SIDE,
                                              max_decoded_pixels=min(settings.search_max_pixels, settings.max_pixels))
                    qf, t["sift_with_decode"] = _ms(V.query_features, ctx, data, name)
                    (D, I), t["descriptor_search"] = _ms(DI.search, index, qf.desc)
                    cands, t["votes"] = _ms(LV.candidates, D, I, V.LOCAL_CANDIDATES, V.LOCAL_MIN_VOTES)
                    faiss.omp_set_num_threads(1)
                    _, t["descriptor_search_1_thread"] = _ms(DI.search, index, qf.desc)
                    faiss.omp_set_num_threads(threads)
                    ivf = faiss.extract_index_ivf(index) if index.ntotal >= K.IVF_AT else None
                    for nprobe, kn in ((2, 8), (4, 4), (8, 8)):
                        if ivf is None:
                            break
                        ivf.nprobe = nprobe
                        (D2, I2), t[f"descriptor_search_nprobe{nprobe}_k{kn}"] = _ms(DI.search, index, qf.desc, kn)
                        ivf.nprobe = K.NPROBE
                        same = LV.candidates(D2, I2, V.LOCAL_CANDIDATES, V.LOCAL_MIN_VOTES)[:1] == cands[:1]
                        t[f"same_first_candidate_nprobe{nprobe}_k{kn}"] = float(same)
                    target = S._lookup(ctx, "artefacts", None, None)
                    q0, t["decode_embed_plain"] = _ms(S.embed_query, ctx, target.space, data, name, regions=0)
                    t["forward_plain"] = 1000.0 * q0.seconds
                    q1, t["decode_embed_fused"] = _ms(S.embed_query, ctx, target.space, data, name, regions=1)
                    t["forward_fused"] = 1000.0 * q1.seconds
                    hits, t["vector_search"] = _ms(S._search_fused, ctx, target, q1, 10)
                    _, t["vector_search_local_scores"] = _ms(S._scored, ctx, target, q1,
                                                             [i for i in cands if i not in {h.image_id for h in hits}])
                    feats, t["candidate_reads"] = _ms(V.candidate_features, ctx, cands)
                    ver = [_ms(LF.verify, qf, feats[i])[1] for i in cands if i in feats]
                    t["verify_each"] = float(np.median(ver)) if ver else 0.0
                    t["verify_all"] = float(np.sum(ver)) if ver else 0.0
                    t["local_candidates"] = float(len(cands))
                    t["query_keypoints"] = float(len(qf))
                    for key, v in t.items():
                        per.setdefault(key, []).append(v)
                for key, v in per.items():
                    rows.setdefault(key, []).append(float(np.median(v)))
            stages[kind] = {key: round(float(np.median(v) if not key.startswith("same_") else np.mean(v)), 3 if key.startswith("same_") else 1)
                            for key, v in rows.items()}
            log(f"{kind}: {stages[kind]}")
        out["median_ms"] = stages
    finally:
        ctx.close()
        if tmpdir is not None:
            tmpdir.cleanup()
    emit(out)


if __name__ == "__main__":
    main()
