"""Thumbnail atlases of the map (GET /api/collections/{name}/atlas/{space}/{z-x-y}); prints ONE JSON object.

    python benchmarks/atlas.py                 # 100,000 points, 20 full tiles
    python benchmarks/atlas.py --n 20000 --tiles 10

A temporary SQLite data directory gets ``n`` images whose thumbnails are real (made from the
photos of ../shared/datasets/cats-dogs, shared between images as identical files would be), small
vectors, and a cached map with clustered coordinates (no t-SNE run: the map's shape, not its
quality, is what costs here). Through Flask's test client it times: the first atlas request
(reads the cached map, quantises it, keeps it in memory), atlases of full tiles (256 cells of
64 px: 256 thumbnails read, decoded at reduced scale, pasted, JPEG-encoded), the bytes of one,
and a revalidation answered 304.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import ROOT, cpu_model, emit  # noqa: E402  benchmarks/harness.py
PHOTOS = ROOT.parent / "shared" / "datasets" / "cats-dogs"


def populate(ctx, n: int, photos: int) -> None:
    from sqlalchemy import insert

    from simsearch.images import decode_image, make_thumbnail
    from simsearch.ops.analysis import _map_key
    from simsearch.ops import vectors as vecs
    from simsearch.store import repo, results
    from simsearch.store.models import Embedding, Image, Thumbnail

    files = sorted(PHOTOS.rglob("*.jpg"))[:photos]
    thumbs = []
    with ctx.db.session() as s:
        for f in files:
            data = make_thumbnail(decode_image(f.read_bytes(), source=f.name).image)
            key = hashlib.sha256(data).hexdigest()
            if s.get(Thumbnail, key) is None:
                s.add(Thumbnail(content_hash=key, data=data, mime_type="image/jpeg"))
            thumbs.append(key)
        coll_id = repo.get_or_create_collection(s, "bench").id
    rng = np.random.default_rng(0)
    vec = repo.vector_to_bytes(np.ones(8, np.float32) / np.sqrt(8))
    for start in range(0, n, 10_000):
        stop = min(n, start + 10_000)
        with ctx.db.session() as s:
            s.execute(insert(Image), [{"id": i + 1, "collection_id": coll_id, "status": "ok", "meta": {},
                                       "content_hash": hashlib.sha256(str(i).encode()).hexdigest(), "source_path": f"/b/{i}.jpg",
                                       "thumbnail_hash": thumbs[i % len(thumbs)]} for i in range(start, stop)])
            s.execute(insert(Embedding), [{"image_id": i + 1, "space": "efficientnet_lite0", "dim": 8, "vector": vec}
                                          for i in range(start, stop)])
    centres = rng.normal(0, 30, (12, 2))
    coords = (centres[rng.integers(0, 12, n)] + rng.normal(0, 6, (n, 2))).astype(np.float32)
    vs = vecs.peek(ctx, "bench", "efficientnet_lite0")
    results.put(ctx.db, _map_key(vs, "tsne"), {"seconds": 0.0, "n": n, "k": 2},
                {"ids": vs.ids, "coords": coords, "clusters": np.zeros(n, np.int32)})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--tiles", type=int, default=20, help="full tiles to time")
    ap.add_argument("--photos", type=int, default=400, help="distinct thumbnails")
    args = ap.parse_args()

    from simsearch.config import Settings
    from simsearch.ops import atlas as ops_atlas
    from simsearch.store.db import Database
    from simsearch.web import create_app, map_binary, shutdown

    with tempfile.TemporaryDirectory(prefix="simsearch-atlas-") as tmp:
        home = Path(tmp)
        settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'db.sqlite'}")
        settings.ensure_dirs()
        db = Database.from_settings(settings)
        db.upgrade()
        db.dispose()
        app = create_app({"SETTINGS": settings, "TESTING": True})
        client = app.test_client()
        t0 = time.perf_counter()
        populate(app.extensions["simsearch"], args.n, args.photos)
        setup = time.perf_counter() - t0
        m = map_binary.decode(client.get("/api/collections/bench/map.bin").data)
        url = "/api/collections/bench/atlas/efficientnet_lite0"
        t0 = time.perf_counter()
        first = client.get(f"{url}/0-0-0")
        first_s = time.perf_counter() - t0
        # the level where a tile holds at most 256 points, and its fullest tiles
        qx, qy = (ops_atlas.quantise(m[a])[0].astype(np.int64) for a in ("x", "y"))
        for z in range(ops_atlas.MAX_LEVEL + 1):
            counts = np.bincount((qy >> (16 - z)) * 2**z + (qx >> (16 - z)), minlength=4**z)
            if counts.max() <= ops_atlas.MAX_CELLS:
                break
        full = np.argsort(-counts)[: args.tiles]
        times, sizes, cells = [], [], []
        for t in full:
            tile = f"{z}-{t % 2**z}-{t // 2**z}"
            t0 = time.perf_counter()
            resp = client.get(f"{url}/{tile}?v={m['generation']}")
            times.append(time.perf_counter() - t0)
            sizes.append(len(resp.data))
            cells.append(len(resp.headers["X-Atlas-Ids"].split(",")))
        etag = resp.headers["ETag"]
        t0 = time.perf_counter()
        again = client.get(f"{url}/{tile}?v={m['generation']}", headers={"If-None-Match": etag})
        revalidate = time.perf_counter() - t0
        assert again.status_code == 304
        shutdown(app)
    emit({
        "benchmark": "atlas", "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "n": args.n,
        "setup_seconds": round(setup, 1), "first_request_ms": round(first_s * 1000, 1),
        "first_request_cells": len(first.headers["X-Atlas-Ids"].split(",")), "level": z,
        "tiles_at_level_with_points": int((counts > 0).sum()), "mean_points_per_tile": round(float(counts[counts > 0].mean()), 1),
        "full_tile_cells_median": int(statistics.median(cells)), "full_tile_ms_median": round(statistics.median(times) * 1000, 1),
        "full_tile_ms_max": round(max(times) * 1000, 1), "full_tile_kb_median": round(statistics.median(sizes) / 1024, 1),
        "revalidate_304_ms": round(revalidate * 1000, 2),
    }, indent=1)


if __name__ == "__main__":
    main()
