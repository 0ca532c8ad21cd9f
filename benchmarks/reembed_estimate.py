"""How close the re-embedding job's cost estimate comes to what the job then takes.

Ingests N images of a dataset (default 120 of ../shared/datasets/flowers102, taken across its
classes) in efficientnet_lite0 into a temporary SQLite home, then for each of two passes says the
estimate first and then runs the job in this process (`simsearch embed` without --queue):

1. ``@gem3``: no re-embedding has run, so the rate is ingest's recorded model seconds (``ingest``);
2. ``@gem3+flip`` (two forwards an image): the rate recorded by pass 1's shards (``recorded``).

Prints ONE JSON object: per pass the estimate (seconds, basis, forwards per image), the job's
wall seconds and their ratio; the machine block names the CPU.

    python benchmarks/reembed_estimate.py [--images 120] [--shard-size 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness import ROOT, emit, log


def pick(folder: Path, n: int) -> list[Path]:
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    per = max(1, -(-n // len(classes)))
    files = [f for c in classes for f in sorted(c.iterdir())[:per]]
    return files[:n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=120)
    ap.add_argument("--shard-size", type=int, default=40)
    ap.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "datasets" / "flowers102")
    ap.add_argument("--weights-dir", type=Path, default=None)
    args = ap.parse_args()

    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ingest import Ingester, SourceFile
    from simsearch.ops import reembed_jobs

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'simsearch.db'}",
                                     **({"weights_path": args.weights_dir} if args.weights_dir else {}),
                                     shard_size=args.shard_size)
        ctx = AppContext.open(settings, schema="upgrade")
        try:
            files = [SourceFile(name=str(p), path=p, label=p.parent.name) for p in pick(args.dataset, args.images)]
            log(f"ingesting {len(files)} images")
            t0 = time.perf_counter()
            base = reembed_jobs.target_spaces(ctx, ["efficientnet_lite0"])  # (the server's precision)
            Ingester(ctx, spaces=base, batch_size=32).run("bench", files, source=str(args.dataset))
            ingest_seconds = time.perf_counter() - t0
            passes = []
            for space in ("efficientnet_lite0@gem3", "efficientnet_lite0@gem3+flip"):
                spaces = reembed_jobs.target_spaces(ctx, [space])
                est = reembed_jobs.estimate(ctx, "bench", spaces)
                log(f"{space}: estimate {est['seconds']} s ({est['basis']})")
                t0 = time.perf_counter()
                done = reembed_jobs.run_here(ctx, "bench", spaces)
                wall = time.perf_counter() - t0
                passes.append({"space": spaces[0], "images": est["images"], "forwards_per_image": est["forwards_per_image"],
                               "estimate_seconds": est["seconds"], "basis": est["basis"],
                               "job_seconds": round(wall, 2), "status": done["status"], "embedded": done["embedded"],
                               "estimate_over_actual": round(est["seconds"] / wall, 3) if est["seconds"] else None})
        finally:
            ctx.close()
    emit({"benchmark": "reembed_estimate", "dataset": args.dataset.name, "images": len(files),
          "shard_size": args.shard_size, "ingest_seconds": round(ingest_seconds, 2), "passes": passes,
          "method": "estimate said before the job (images x forwards x seconds per forward), then the job run "
                    "in this process, shard after shard (the model opened by the ingest before)"})


if __name__ == "__main__":
    main()
