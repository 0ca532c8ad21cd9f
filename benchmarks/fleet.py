"""Worker fleet throughput: one sharded ingest job of ../shared/datasets (700 images) run by 1 and
by 2 `simsearch worker` processes, in alternating rounds. Prints one JSON object.

Each round queues the folder into a fresh collection (`simsearch ingest --queue`) with the
workers already started (each shard's work horse loads the converted model from the cache, as in
production), and times it from queueing to the job's `done`. Reported: images/s of the job, per
worker, and the 2-worker / 1-worker ratio. On a 2-core machine the model already uses both cores
(each worker runs it on 2 threads), so little gain is expected; on a machine with more cores, or
several machines, workers add up while the model is the limit.

Usage: python benchmarks/fleet.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/fleet_bench
           [--redis-url redis://127.0.0.1:6379/0] [--rounds 2] [--shard-size 100] [--weights-dir DIR]
The database must exist and be empty.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness import ROOT, emit, log  # noqa: E402  benchmarks/harness.py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--weights-dir", default=None)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=100)
    ap.add_argument("--precision", default="fp32")
    args = ap.parse_args()

    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ops import jobs as jobs_ops
    from simsearch.embedding.runtimes import cpu_summary

    home = Path(tempfile.mkdtemp(prefix="simsearch-fleet-"))
    queue = f"fleet-bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "SIMSEARCH_HOME": str(home), "SIMSEARCH_DATABASE_URL": args.database_url,
           "SIMSEARCH_REDIS_URL": args.redis_url, "SIMSEARCH_QUEUE": queue, "SIMSEARCH_SHARD_SIZE": str(args.shard_size),
           "SIMSEARCH_PRECISION": args.precision, "PYTHONPATH": str(ROOT)}
    if args.weights_dir:
        env["SIMSEARCH_WEIGHTS_DIR"] = args.weights_dir
    cli = [sys.executable, "-m", "simsearch.cli"]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True)
    ctx = AppContext.open(Settings.from_env(home=home, database_url=args.database_url))
    load_before = [round(v, 2) for v in os.getloadavg()]
    results: dict[int, list[float]] = {1: [], 2: []}
    runtime = None
    try:
        for r in range(args.rounds):
            for n in (1, 2):
                workers = [subprocess.Popen([*cli, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                           for _ in range(n)]
                try:
                    time.sleep(3)  # the workers start and register
                    t0 = time.perf_counter()
                    out = subprocess.run([*cli, "ingest", args.data, "--queue", "-c", f"bench-{r}-{n}", "--json"],
                                         env=env, capture_output=True, text=True, check=True)
                    job_id = json.loads(out.stdout)["job_id"]
                    while (job := jobs_ops.get(ctx, job_id))["status"] not in ("done", "failed"):
                        time.sleep(0.2)
                    seconds = time.perf_counter() - t0
                finally:
                    for w in workers:
                        w.terminate()
                    for w in workers:
                        w.wait(30)
                assert job["status"] == "done", job
                results[n].append(job["total"] / seconds)
                log(f"round {r}: {n} worker(s): {job['total']} images in {seconds:.1f} s = {results[n][-1]:.1f} images/s")
        with ctx.db.session() as s:
            from simsearch.store.models import Embedding

            runtime = s.query(Embedding.space).first()[0]
    finally:
        ctx.close()
    med = {n: sorted(v)[len(v) // 2] for n, v in results.items()}
    emit({
        "benchmark": "fleet", **cpu_summary(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "load_average_before": load_before, "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "images": 700, "shard_size": args.shard_size, "space": runtime, "rounds": args.rounds,
        "job_images_per_s": {f"{n}_workers": round(v, 1) for n, v in med.items()},
        "runs_images_per_s": {f"{n}_workers": [round(x, 1) for x in v] for n, v in results.items()},
        "per_worker_images_per_s": {f"{n}_workers": round(v / n, 1) for n, v in med.items()},
        "two_over_one": round(med[2] / med[1], 2),
    }, indent=2)


if __name__ == "__main__":
    main()
