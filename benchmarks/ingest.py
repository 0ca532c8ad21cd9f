"""Ingest throughput on ../shared/datasets/cats-dogs with the default backbone. Prints one JSON object.

- bare_forward: images/s of the model alone on pre-decoded, pre-resized, preprocessed tensors,
  at the ingest batch size (the ceiling for any ingest).
- end_to_end: images/s of `Ingester.run` (read, hash, decode, thumbnail, resize, forward, SQL
  commit per batch, index update) into a fresh SQLite store, model already built.
- naive: the classic tutorial loop -- keras.utils.load_img + img_to_array + model.predict on one
  image + one INSERT/commit per image -- on the first --naive-count images.

Usage: python benchmarks/ingest.py [--data ../shared/datasets/cats-dogs] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "cats-dogs"))
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--naive-count", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=2, help="end-to-end runs (best is reported)")
    args = ap.parse_args()

    from simsearch.config import Settings
    from simsearch.embed import Embedder
    from simsearch.images import load_image, resize_for_model, scan_images
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.services import Services

    data = Path(args.data)
    paths = list(scan_images(data))
    work = Path(tempfile.mkdtemp(prefix="simsearch-bench-"))
    weights = Path(os.environ.get("SIMSEARCH_WEIGHTS_DIR", work / "weights"))
    emb = Embedder(args.backbone, weights)
    t0 = time.perf_counter()
    emb.load()
    load_seconds = time.perf_counter() - t0
    size, bs = emb.input_size, args.batch_size

    # Bare forward on pre-decoded tensors.
    pixels = np.stack([resize_for_model(load_image(p).rgb, size) for p in paths])
    x = emb.backbone.preprocess(pixels.astype(np.float32))
    emb.forward(x[:bs])  # trace
    n_full = (len(x) // bs) * bs
    t0 = time.perf_counter()
    for i in range(0, n_full, bs):
        emb.forward(x[i : i + bs])
    bare = n_full / (time.perf_counter() - t0)

    # End to end into a fresh store (model already built: it is shared by the process).
    e2e_runs = []
    for r in range(args.repeats):
        home = work / f"home{r}"
        settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'db.sqlite'}", weights_path=weights)
        services = Services(settings)
        files, _ = files_from_folder(data, labels="folders")
        t0 = time.perf_counter()
        report = Ingester(services, spaces=[args.backbone], batch_size=bs).run("bench", files, source=str(data))
        seconds = time.perf_counter() - t0
        assert report.added == len(paths), report.errors
        e2e_runs.append(len(paths) / seconds)
        services.close()
    e2e = max(e2e_runs)

    # Naive tutorial loop.
    import keras

    model = emb._model
    conn = sqlite3.connect(work / "naive.sqlite")
    conn.execute("CREATE TABLE v (path TEXT, vec BLOB)")
    subset = paths[: args.naive_count]
    t0 = time.perf_counter()
    for p in subset:
        img = keras.utils.load_img(p, target_size=(size, size))
        arr = keras.utils.img_to_array(img)[None]
        vec = model.predict(emb.backbone.preprocess(arr), verbose=0)[0]
        vec = vec / np.linalg.norm(vec)
        conn.execute("INSERT INTO v VALUES (?, ?)", (str(p), vec.astype(np.float32).tobytes()))
        conn.commit()
    naive = len(subset) / (time.perf_counter() - t0)

    print(json.dumps({
        "benchmark": "ingest",
        "dataset": str(data), "images": len(paths), "backbone": args.backbone, "batch_size": bs,
        "model_build_seconds": round(load_seconds, 2),
        "bare_forward_images_per_s": round(bare, 1),
        "end_to_end_images_per_s": round(e2e, 1),
        "end_to_end_runs_images_per_s": [round(v, 1) for v in e2e_runs],
        "naive_images_per_s": round(naive, 1), "naive_images": len(subset),
        "end_to_end_over_bare": round(e2e / bare, 3), "target_end_to_end_over_bare": 0.85,
        "end_to_end_over_naive": round(e2e / naive, 2), "target_end_to_end_over_naive": 4.0,
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
    }, indent=2))


if __name__ == "__main__":
    main()
