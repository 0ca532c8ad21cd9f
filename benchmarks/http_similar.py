"""Similar-by-id over HTTP against an existing store: p50/p99 per server. Prints one JSON object.

    python benchmarks/http_similar.py --home DIR [--requests 1000] [--servers serve,gunicorn]

``DIR`` is a ``SIMSEARCH_HOME`` with a SQLite database (``simsearch.db``) whose first collection
has an index in place, e.g. the 1M store that ``benchmarks/scale.py --http N --keep-home DIR``
leaves (labels ``group-0`` ... ``group-19``, 5% each, and ``rare``, 0.2%). For each server, started
fresh on that home: the first request (it opens and checks the index), then ``--requests``
similar-by-id requests (k = 10) for random ids one after another on one keep-alive connection,
then 200 with each label filter. Servers: ``simsearch serve`` (Werkzeug's threaded server) and
gunicorn with one sync worker and simsearch's gunicorn settings (what the README deploys).

Latency tails depend on what else runs: the output has the CPU model and the load average
before and after; run it on a quiet machine, or at ``nice -n -10`` beside other work.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from harness import ROOT, emit, log  # noqa: E402  benchmarks/harness.py
import web  # noqa: E402  benchmarks/web.py: server start and stop, timing helpers

SERVERS = ("serve", "gunicorn")
LABELS = (("group-3", 0.05), ("rare", 0.002))


def image_ids(home: Path) -> np.ndarray:
    import sqlite3

    with sqlite3.connect(home / "simsearch.db") as conn:
        return np.fromiter((r[0] for r in conn.execute("SELECT id FROM images WHERE status = 'ok'")), dtype=np.int64)


def command(server: str, port: int) -> list[str]:
    if server == "serve":
        return [sys.executable, "-m", "simsearch.cli", "serve", "--port", str(port)]
    return [sys.executable, "-m", "gunicorn", "-c", "python:simsearch.web.gunicorn_conf", "-w", "1",
            "-b", f"127.0.0.1:{port}", "simsearch.web.wsgi:app"]


def one_server(base: str, proc, ids: np.ndarray, requests_n: int, rng) -> dict:
    import requests

    web.wait_up(f"{base}/api/health", proc)
    out = {"command": " ".join(proc.args[1:])}
    t0 = time.perf_counter()
    requests.get(f"{base}/api/images/{int(ids[0])}/similar?k=10", timeout=600).raise_for_status()
    out["first_request_opens_the_index_seconds"] = round(time.perf_counter() - t0, 1)
    out["similar_by_id"] = web.bench_similar(base, ids, requests_n)
    out["similar_by_id"]["target_p99_ms"] = 10
    for label, share in LABELS:
        sess, times = requests.Session(), []
        for i in rng.choice(ids, 200):
            t1 = time.perf_counter()
            r = sess.get(f"{base}/api/images/{int(i)}/similar?k=10&label={label}", timeout=60)
            times.append(time.perf_counter() - t1)
            assert r.status_code == 200, r.text[:300]
        out[f"similar_by_id_label_{share}"] = web.percentiles(times)
    return out


def run(home: Path, requests_n: int, servers=SERVERS, seed: int = 5) -> dict:
    """``{server: figures}`` for each server, started on ``home`` one after the other."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMSEARCH_")}
    env.update(SIMSEARCH_HOME=str(home), SIMSEARCH_DATABASE_URL=f"sqlite:///{home / 'simsearch.db'}",
               PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    ids, rng, out = image_ids(home), np.random.default_rng(seed), {}
    for server in servers:
        port = web.free_port()
        log(f"http: {server} on {len(ids):,} images")
        proc = subprocess.Popen(command(server, port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            out[server] = one_server(f"http://127.0.0.1:{port}", proc, ids, requests_n, rng)
        finally:
            web.stop(proc)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True, type=Path)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--servers", default=",".join(SERVERS))
    args = ap.parse_args()
    if not (args.home / "simsearch.db").exists():
        ap.error(f"{args.home} has no simsearch.db: make one with benchmarks/scale.py --http N --keep-home DIR")
    from machine import machine_facts  # benchmarks/machine.py: CPU model, cores, SIMD, FAISS version, memory, load

    out = {"benchmark": "http_similar", "machine": machine_facts(), "images": int(len(image_ids(args.home)))}
    out.update(run(args.home, args.requests, args.servers.split(",")))
    out["machine"]["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    emit(out)


if __name__ == "__main__":
    main()
