"""What the curator's pages cost on an ingested collection: the clusters with their labels part
(computed from nothing, recomputed after one label change, looked up), and serving an original file
(SHA-256 check included; the collection's largest image). Prints JSON.

    SIMSEARCH_HOME=... SIMSEARCH_DATABASE_URL=... python benchmarks/curation.py --collection flowers

It changes one image's label and puts it back, and deletes the collection's cached clusters (they
are recomputed by the next request).
"""

from __future__ import annotations

import argparse
import time
from harness import cpu_model, emit  # noqa: E402  benchmarks/harness.py


def main() -> None:
    from sqlalchemy import delete, select

    from simsearch.context import AppContext
    from simsearch.config import Settings
    from simsearch.ops import cluster_labels, originals
    from simsearch.ops import images as ops_images
    from simsearch.store.models import AnalysisResult, Collection, Image

    ap = argparse.ArgumentParser()
    ap.add_argument("--collection", required=True)
    ap.add_argument("--k", default="auto")
    args = ap.parse_args()
    ctx = AppContext.open(Settings.from_env())
    out = {"cpu": cpu_model(), "collection": args.collection}
    with ctx.db.session() as s:
        coll_id = s.scalar(select(Collection.id).where(Collection.name == args.collection))
        s.execute(delete(AnalysisResult).where(AnalysisResult.collection_id == coll_id))
        first = s.scalars(select(Image).where(Image.collection_id == coll_id, Image.status == "ok").order_by(Image.id)).first()
        image_id, label = first.id, first.label
        largest = s.scalars(select(Image.id).where(Image.collection_id == coll_id, Image.status == "ok")
                            .order_by((Image.width * Image.height).desc())).first()
    t = time.perf_counter()
    res = cluster_labels.compute(ctx, args.collection, None, args.k)
    out["clusters_from_nothing_s"] = round(time.perf_counter() - t, 3)
    out["n_images"], out["k"] = res.n_images, res.k
    t = time.perf_counter()
    assert cluster_labels.lookup(ctx, args.collection, None, args.k) is not None
    out["lookup_cached_ms"] = round((time.perf_counter() - t) * 1000, 1)
    ops_images.set_label(ctx, image_id, "benchmark-label")
    try:
        assert cluster_labels.lookup(ctx, args.collection, None, args.k) is None  # the labels part is stale
        t = time.perf_counter()
        cluster_labels.compute(ctx, args.collection, None, args.k)
        out["labels_part_after_a_label_change_s"] = round(time.perf_counter() - t, 3)
    finally:
        ops_images.set_label(ctx, image_id, label)
    t = time.perf_counter()
    n = 20
    size = 0
    for _ in range(n):
        orig = originals.open_original(ctx, largest)
        size = orig.size
        orig.file.read()
        orig.file.close()
    out["original_file_ms"] = round((time.perf_counter() - t) * 1000 / n, 2)
    out["original_file_bytes"] = size
    ctx.close()
    emit(out, indent=2)


if __name__ == "__main__":
    main()
