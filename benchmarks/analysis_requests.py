"""What an analysis request costs now that it never computes: prints ONE JSON object to stdout.

    python benchmarks/analysis_requests.py              # 100,000 images
    python benchmarks/analysis_requests.py --n 20000    # smaller

A collection of ``--n`` synthetic labelled vectors (``--dim``, written straight into a SQLite
database in a temporary folder) is served by the Flask app (test client, in process). For each of
clusters, evaluation and map: the first GET (no cached result: answers 202 and starts the job),
the job's duration, and then GETs answered 200 from the cache (median of ``--repeat``), with the
response size. Progress goes to stderr; timings are wall-clock seconds.
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

from harness import cpu_model, emit, log  # noqa: E402  benchmarks/harness.py


def populate(ctx, n: int, dim: int, seed: int = 0, clusters: int = 8) -> None:
    from sqlalchemy import insert

    from simsearch.store import repo
    from simsearch.store.models import Embedding, Image

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    labels = rng.integers(0, clusters, n)
    x = centres[labels] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with ctx.db.session() as s:
        coll_id = repo.get_or_create_collection(s, "bench").id
    for start in range(0, n, 10_000):
        stop = min(n, start + 10_000)
        with ctx.db.session() as s:
            s.execute(insert(Image), [{"id": i + 1, "collection_id": coll_id, "status": "ok", "meta": {},
                                       "content_hash": hashlib.sha256(str(i).encode()).hexdigest(),
                                       "source_path": f"/bench/{i}.jpg", "label": f"c{labels[i]}"}
                                      for i in range(start, stop)])
            s.execute(insert(Embedding), [{"image_id": i + 1, "space": "efficientnet_lite0", "dim": dim,
                                           "vector": repo.vector_to_bytes(x[i])} for i in range(start, stop)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--endpoints", default="clusters,evaluation,map")
    args = ap.parse_args()

    from simsearch.config import Settings
    from simsearch.web import create_app, shutdown

    out = {"n": args.n, "dim": args.dim, "cpu": cpu_model(), "cpus": os.cpu_count(),
           "endpoints": {}}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'db.sqlite'}")
        app = create_app({"SETTINGS": settings, "TESTING": True})
        client = app.test_client()
        t0 = time.perf_counter()
        populate(app.extensions["simsearch"], args.n, args.dim)
        log(f"{args.n} vectors written in {time.perf_counter() - t0:.1f} s")
        for name in args.endpoints.split(","):
            url = f"/api/collections/bench/{name}"
            t0 = time.perf_counter()
            resp = client.get(url)
            first = time.perf_counter() - t0
            assert resp.status_code == 202, resp.get_data(as_text=True)[:300]
            job_id = resp.get_json()["job_id"]
            while (job := client.get(f"/api/jobs/{job_id}").get_json())["status"] not in ("done", "failed"):
                time.sleep(0.5)
            assert job["status"] == "done", job
            job_seconds = time.perf_counter() - t0
            log(f"{name}: 202 in {first * 1000:.0f} ms, job done after {job_seconds:.1f} s")
            times, size = [], 0
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                resp = client.get(url, headers={"Accept-Encoding": "gzip"})
                times.append(time.perf_counter() - t0)
                assert resp.status_code == 200
                size = len(resp.data)
            out["endpoints"][name] = {"first_request_202_ms": round(first * 1000, 1), "job_seconds": round(job_seconds, 1),
                                      "cached_200_ms_median": round(statistics.median(times) * 1000, 1),
                                      "cached_200_ms_max": round(max(times) * 1000, 1), "response_bytes_gzip": size}
            log(f"{name}: 200 from the cache in {statistics.median(times) * 1000:.0f} ms (median of {args.repeat})")
        shutdown(app)
    emit(out, indent=1)


if __name__ == "__main__":
    main()
