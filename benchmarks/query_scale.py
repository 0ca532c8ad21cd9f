"""The query's first SIFT pass made cheaper, with the closer look behind it; prints ONE JSON object.

    python benchmarks/query_scale.py --seed 2026                 # 466 artefacts, 60 wall + 60 copy + 102 flowers queries
    python benchmarks/query_scale.py --seed 2026 --keep /tmp/x   # keep (and reuse) the ingested collection there

The collection and the queries are those of ``benchmarks/in_context.py`` (same seed, same build; local
features stored). For each variant of the query's first pass (``--variants``: ``SCALE`` or
``SCALExKEYPOINTS``, the copy's fraction of the decoded size, :data:`simsearch.ops.verify.QUERY_SCALE`,
and the keypoints kept, ``QUERY_KEYPOINTS``), each query's local path is run as the staged search runs
it on its helper thread (:func:`simsearch.ops.verify.local_verified`, single-threaded, one FAISS
thread), and its parts again one by one:

- ``keypoints``, ``sift_ms`` (SIFT on the grey copy, decode excluded), ``search_ms`` (the descriptor
  index's search of those keypoints), ``local_path_ms`` (``local_verified`` end to end: decode, SIFT,
  search, votes, verification in vote order, closer looks);
- wall photos: the target's rank by votes (``target_first2``: among the first 2, as the closer look
  needs; ``target_top5``), ``first_pass_verified`` (the target verified with the first pass's
  keypoints), ``verified`` (the target among ``local_verified``'s verified ids: first pass or closer look);
- every set: ``clear`` (a clear winner: the object proposal is skipped), ``closer_looks`` (calls) and
  ``other_verified`` (queries where an image other than the target was verified; flowers have no target,
  so any verified image counts).

Medians (times) and shares over the queries of each set. The machine may be shared: load averages given.
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
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--variants", default="1.0,0.75,0.6,0.5,1.0x500", help="SCALE or SCALExKEYPOINTS, comma-separated")
    ap.add_argument("--keep", default=None, help="a folder to keep the ingested collection in (reused when present)")
    args = ap.parse_args()
    os.environ["SIMSEARCH_PRECISION"] = "fp32"
    os.environ.setdefault("SIMSEARCH_REDIS_URL", "")

    import faiss
    from sqlalchemy import select

    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.images import local_votes as LV
    from simsearch.index import descriptors as DI
    from simsearch.ingest.pipeline import Ingester
    from simsearch.ingest.sources import files_from_folder
    from simsearch.ops import verify as V
    from simsearch import search as S
    from simsearch.store.models import Image

    tmpdir = None
    if args.keep:
        root = Path(args.keep)
        root.mkdir(parents=True, exist_ok=True)
    else:
        tmpdir = tempfile.TemporaryDirectory(prefix="simsearch-query-scale-")
        root = Path(tmpdir.name)
    fresh = not (root / "home" / "db.sqlite").exists()
    coll, queries = in_context.build(root, False, args.seed) if fresh else in_context.build(root / "again", False, args.seed)
    settings = Settings.from_env(home=root / "home", database_url=f"sqlite:///{root / 'home' / 'db.sqlite'}",
                                 local_features=True)
    ctx = AppContext.open(settings, schema="upgrade")
    out: dict = {"benchmark": "query_scale", "seed": args.seed, "variants": args.variants,
                 "load_average_at_start": round(os.getloadavg()[0], 2)}
    keep_scale, keep_n, real_look = V.QUERY_SCALE, V.QUERY_KEYPOINTS, V.closer_look
    looks = [0]

    def counted_look(*a, **kw):
        looks[0] += 1
        return real_look(*a, **kw)

    V.closer_look = counted_look
    try:
        space = ctx.new_space(settings.default_backbone)
        if fresh:
            files, _ = files_from_folder(root / "artefacts", labels="folders")
            report = Ingester(ctx, spaces=[space]).run("artefacts", files, source=str(root / "artefacts"))
            log(f"ingested {report.added}")
        faiss.omp_set_num_threads(V.FAISS_THREADS)
        coll_id = S._lookup(ctx, "artefacts", None, None).collection_id
        index = ctx.descriptor_index(coll_id)
        with ctx.db.session() as s:
            target_ids = {Path(p).name: i for i, p in s.execute(select(Image.id, Image.source_path))}
        for q in queries["copy"][:3]:  # warm-up: the index loaded, the features read once
            V.local_verified(ctx, coll_id, q["data"], "q.jpg")
        result: dict = {}
        for variant in args.variants.split(","):
            scale, _, n = variant.partition("x")
            V.QUERY_SCALE, V.QUERY_KEYPOINTS = float(scale), int(n) if n else keep_n
            result[variant] = {}
            for kind in ("wall", "copy", "flowers"):
                rows: dict = {}
                for q in queries[kind]:
                    data, name = q["data"], q.get("name", "q.jpg")
                    target = target_ids.get(q.get("target")) if q.get("target") else None
                    looks[0] = 0
                    (found, clear), t_local = _ms(V.local_verified, ctx, coll_id, data, name)
                    row = {"local_path_ms": t_local, "clear": float(clear), "closer_looks": float(looks[0]),
                           "other_verified": float(any(i != target for i in found))}
                    g = V._grey(V.decoded_query(ctx, data, name), None)
                    qf, row["sift_ms"] = _ms(V._extract, g)
                    row["keypoints"] = float(len(qf))
                    (D, I), row["search_ms"] = _ms(DI.search, index, qf.desc)
                    if target is not None:
                        ids, counts = LV.votes(D, I)
                        rank = int(np.flatnonzero(ids == target)[0]) if target in ids else 99
                        first = V.verify_in_vote_order(ctx, qf, *V._kept(ids, counts))
                        row |= {"target_first2": float(rank < 2), "target_top5": float(rank < 5),
                                "target_votes": float(counts[rank]) if rank < 99 else 0.0,
                                "first_pass_verified": float(target in first), "verified": float(target in found)}
                    for key, v in row.items():
                        rows.setdefault(key, []).append(v)
                result[variant][kind] = {key: round(float(np.median(v) if key.endswith(("_ms", "keypoints", "votes"))
                                                          else np.mean(v)), 3) for key, v in rows.items()}
                result[variant][kind]["queries"] = len(queries[kind])
                log(f"{variant} {kind}: {result[variant][kind]}")
        out["result"] = result
    finally:
        V.QUERY_SCALE, V.QUERY_KEYPOINTS, V.closer_look = keep_scale, keep_n, real_look
        ctx.close()
        if tmpdir is not None:
            tmpdir.cleanup()
    out["load_average_at_end"] = round(os.getloadavg()[0], 2)
    emit(out)


if __name__ == "__main__":
    main()
