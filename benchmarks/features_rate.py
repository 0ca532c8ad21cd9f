"""How fast the local features job stores SIFT features after ingest, and how close its cost
estimate comes to what the job then takes.

Ingests N photos of each of two datasets (default 300 of ../shared/datasets/flowers102, short side
500 px, and 300 of ../shared/datasets/oxford-buildings, long side 720 px, taken across their
classes) in efficientnet_lite0 into a temporary SQLite home, one collection each, without local
features (SIMSEARCH_LOCAL_FEATURES off). Then, one collection after the other, says the estimate
first and runs the job in this process, shard after shard (`simsearch features` without --queue):

1. flowers102: nothing recorded yet, so the estimate is a timed ``probe`` of 4 of its images;
2. oxford-buildings: the rate ``recorded`` by pass 1's shards (another dataset: larger photos).

For each pass the probe's estimate is also given (``probe_seconds``), whatever the job used.
Prints ONE JSON object: per pass the images, the estimate (seconds, basis), the job's wall seconds,
images per second and estimate / actual; the machine block names the CPU and the load average.

    nice -n 10 python benchmarks/features_rate.py [--images 300] [--shard-size 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness import ROOT, emit, log


def pick(folder: Path, n: int) -> list[Path]:
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    files: list[Path] = []
    per = max(1, -(-n // len(classes)))
    while len(files) < n and per <= 10_000:  # (classes of a few photos: take more of the others)
        files = [f for c in classes for f in sorted(c.iterdir())[:per]]
        per *= 2
    return sorted(files)[:n] if len(files) >= n else files


def main() -> None:
    datasets = ROOT.parent / "shared" / "datasets"
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=300, help="photos of each dataset")
    ap.add_argument("--shard-size", type=int, default=100)
    ap.add_argument("--datasets", type=Path, nargs="+",
                    default=[datasets / "flowers102", datasets / "oxford-buildings"])
    ap.add_argument("--weights-dir", type=Path, default=None)
    args = ap.parse_args()

    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ingest import Ingester, SourceFile
    from simsearch.ops import local_features

    passes = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'simsearch.db'}",
                                     **({"weights_path": args.weights_dir} if args.weights_dir else {}),
                                     shard_size=args.shard_size, local_features=False)
        ctx = AppContext.open(settings, schema="upgrade")
        try:
            for folder in args.datasets:
                files = [SourceFile(name=str(p), path=p, label=p.parent.name) for p in pick(folder, args.images)]
                log(f"{folder.name}: ingesting {len(files)} images")
                Ingester(ctx, spaces=["efficientnet_lite0"], batch_size=32).run(folder.name, files, source=str(folder))
            for folder in args.datasets:
                _coll, ids = local_features.lacking_ids(ctx, folder.name)
                probe = local_features.probe_rate(ctx, ids)
                est = local_features.estimate(ctx, folder.name)
                log(f"{folder.name}: estimate {est['seconds']} s ({est['basis']})")
                t0 = time.perf_counter()
                done = local_features.run_here(ctx, folder.name)
                wall = time.perf_counter() - t0
                passes.append({"dataset": folder.name, "images": est["images"], "basis": est["basis"],
                               "estimate_seconds": est["seconds"], "estimate_seconds_per_image": est["seconds_per_image"],
                               "probe_seconds": round(probe * len(ids), 1) if probe else None,
                               "job_seconds": round(wall, 2), "images_per_second": round(done["stored"] / wall, 2),
                               "stored": done["stored"], "unreadable": done["unreadable"], "status": done["status"],
                               "shards": -(-len(ids) // args.shard_size),
                               "estimate_over_actual": round(est["seconds"] / wall, 3) if est["seconds"] else None,
                               "probe_over_actual": round(probe * len(ids) / wall, 3) if probe else None})
                log(f"{folder.name}: {done['stored']} stored in {wall:.1f} s")
        finally:
            ctx.close()
    emit({"benchmark": "features_rate", "images_per_dataset": args.images, "shard_size": args.shard_size,
          "passes": passes,
          "method": "one worker in this process (local_features.run_here, shard after shard, batches of 32): each "
                    "image's original read, verified against its digest, decoded as ingest decodes it (draft 224), "
                    "SIFT keypoints extracted and stored in SQLite; the estimate said before the job (images x "
                    "seconds per image: earlier shards' recorded wall rate, else a timed probe of 4 images)"})


if __name__ == "__main__":
    main()
