"""Soak benchmark (not a timed test): the shipped gunicorn configuration under mixed traffic, slow
clients and a PostgreSQL freeze in the middle. Prints one JSON object.

- A fresh PostgreSQL database behind a TCP proxy on loopback (the one tests/test_db_failures.py
  uses), gunicorn started with ``-c python:simsearch.web.gunicorn_conf`` (2 threaded workers,
  the deadlines), in-process jobs (``SIMSEARCH_JOBS=thread``), and the flowers set (300 photos,
  128 px) ingested through the API from a server folder as the collection searched.
- Client threads for --minutes (default 30): search by upload (flowers102 photos, raw body),
  similar-by-id, browsing (collection list, collection, image pages, image records), ingest (two
  flowers102 photos uploaded into a second collection), analysis (clusters with a random k,
  duplicates), the health check every second, and a slow-client thread that keeps 8 searches
  with held-back bodies and 4 unfinished headers open (reopening each when the server cuts it).
- From 40% to 60% of the run the proxy freezes PostgreSQL: open connections stay open and
  nothing passes, new connections are accepted and never answered.
- Every request has a client-side deadline: 5 s for the health check (SIMSEARCH_HEALTH_TIMEOUT 3),
  40 s for the rest (SIMSEARCH_DB_STATEMENT_TIMEOUT=10 here: a call to a frozen server ends after
  15 s; a request makes at most a few). Reported: answers by route and status, 5xx other than 503,
  requests over their deadline (or with no answer), latency percentiles per route and phase, and
  the server's resident memory (master and workers, summed) sampled every 10 s.

Usage: python benchmarks/soak.py [--minutes 30] [--weights-dir DIR] [--keep DIR]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import requests

from harness import ROOT, cpu_model, emit, log  # noqa: E402  benchmarks/harness.py

from web import free_port, stop, wait_up  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
HEALTH_DEADLINE = 5.0
DEADLINE = 40.0
STATEMENT_TIMEOUT = 10


def rss_kb(pid: int) -> int:
    """Resident memory of a process and its children (kB), from /proc."""
    total = 0
    pids = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.rows: list[tuple[str, str, int, float, bool]] = []  # route, phase, status (0: none), seconds, over

    def add(self, route: str, phase: str, status: int, seconds: float, deadline: float) -> None:
        with self.lock:
            self.rows.append((route, phase, status, seconds, status == 0 or seconds > deadline))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--weights-dir")
    ap.add_argument("--keep", help="keep the server's data folder here (default: a temporary one)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import psycopg

    from simsearch.config import Settings
    from simsearch.store.db import Database
    from tests.conftest import PG_URL
    from tests.test_db_failures import Proxy

    rng = random.Random(args.seed)
    home = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="simsearch-soak-"))
    home.mkdir(parents=True, exist_ok=True)
    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    db_name = f"simsearch_soak_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    db_url = admin.rsplit("/", 1)[0] + "/" + db_name
    db = Database(db_url)
    db.upgrade()
    db.dispose()
    proxy = Proxy(int(psycopg.conninfo.conninfo_to_dict(db_url).get("port") or 5432))
    proxy.set("forward")

    settings = Settings.from_env(home=home, database_url=proxy.url(db_url),
                                 weights_path=Path(args.weights_dir).resolve() if args.weights_dir else None)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMSEARCH_")}
    env.update(SIMSEARCH_HOME=str(home), SIMSEARCH_DATABASE_URL=settings.database_url,
               SIMSEARCH_WEIGHTS_DIR=str(settings.weights_dir), SIMSEARCH_JOBS="thread",
               SIMSEARCH_ALLOW_SERVER_PATHS=str(DATASETS), SIMSEARCH_DB_STATEMENT_TIMEOUT=str(STATEMENT_TIMEOUT),
               TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    server_log = open(home / "gunicorn.log", "w")
    cmd = [str(Path(sys.executable).parent / "gunicorn"), "-c", "python:simsearch.web.gunicorn_conf",
           "-b", f"127.0.0.1:{port}", "simsearch.web.wsgi:app"]
    proc = subprocess.Popen(cmd, env=env, stdout=server_log, stderr=subprocess.STDOUT, cwd=home)
    result: dict = {}
    stopping = threading.Event()
    try:
        wait_up(f"{base}/api/health", proc)
        log("server up; ingesting flowers (300 photos) as the searched collection")
        t0 = time.monotonic()
        job = requests.post(f"{base}/api/collections/soak/ingest", json={"server_path": str(DATASETS / "flowers")},
                            timeout=60).json()
        while (state := requests.get(f"{base}/api/jobs/{job['job_id']}", timeout=60).json())["status"] not in (
                "done", "failed", "interrupted"):
            time.sleep(1)
        seed_seconds = time.monotonic() - t0
        images = requests.get(f"{base}/api/collections/soak/images", params={"per_page": 500}, timeout=60).json()["images"]
        ids = [im["id"] for im in images]
        log(f"seeded: {state['status']}, {len(ids)} images in {seed_seconds:.0f} s")
        photos = sorted((DATASETS / "flowers102").rglob("*.jpg"))
        rec = Recorder()
        phase = {"now": "before"}
        duration = args.minutes * 60

        def timed(route: str, fn, deadline: float = DEADLINE) -> None:
            t, started = time.monotonic(), phase["now"]
            try:
                status = fn(deadline).status_code
            except requests.RequestException:
                status = 0
            rec.add(route, started, status, time.monotonic() - t, deadline)

        def loop(pause: float, body) -> None:
            while not stopping.is_set():
                body()
                stopping.wait(pause)

        def search():
            data = rng.choice(photos).read_bytes()
            timed("search", lambda d: requests.post(f"{base}/api/collections/soak/search", data=data, params={"k": 10},
                                                    headers={"Content-Type": "image/jpeg"}, timeout=d))

        def similar():
            timed("similar", lambda d: requests.get(f"{base}/api/images/{rng.choice(ids)}/similar", timeout=d))

        def browse():
            path = rng.choice(["/api/collections", "/api/collections/soak", "/api/collections/soak/images?per_page=50",
                               f"/api/images/{rng.choice(ids)}", "/api/jobs"])
            timed("browse", lambda d: requests.get(base + path, timeout=d))

        def ingest():
            files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in rng.sample(photos, 2)]
            timed("ingest", lambda d: requests.post(f"{base}/api/collections/soak-in/ingest", files=files, timeout=d))

        def analysis():
            if rng.random() < 0.5:
                timed("analysis", lambda d: requests.get(f"{base}/api/collections/soak/clusters",
                                                         params={"k": rng.randint(3, 12)}, timeout=d))
            else:
                timed("analysis", lambda d: requests.get(f"{base}/api/collections/soak/duplicates", timeout=d))

        def health():
            timed("health", lambda d: requests.get(f"{base}/api/health", timeout=d), HEALTH_DEADLINE)

        slow_stats = collections.Counter()

        def slow_clients():
            held: dict[socket.socket, str] = {}  # open slow connection -> "body" or "headers"
            while not stopping.is_set():
                for s, kind in list(held.items()):  # the server cut it: count what it said, open another
                    s.settimeout(0)
                    try:
                        data = s.recv(65536, socket.MSG_PEEK)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    said = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "closed"
                    slow_stats[f"{kind}: {said}"] += 1
                    del held[s]
                    s.close()
                while len(held) < 12:
                    kind = "body" if sum(k == "body" for k in held.values()) < 8 else "headers"
                    try:
                        s = socket.create_connection(("127.0.0.1", port), timeout=10)
                        if kind == "body":
                            s.sendall(b"POST /api/collections/soak/search HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                      b"Content-Type: image/jpeg\r\nContent-Length: 50000000\r\n\r\n\xff\xd8")
                        else:
                            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                        held[s] = kind
                        slow_stats[f"{kind}: opened"] += 1
                    except OSError:
                        slow_stats["connect failed"] += 1
                        break
                stopping.wait(0.5)
            for s in held:
                s.close()

        rss: list[tuple[float, str, int]] = []

        def memory():
            start = time.monotonic()
            while not stopping.is_set():
                rss.append((round(time.monotonic() - start, 1), phase["now"], rss_kb(proc.pid)))
                stopping.wait(10)

        workers = [(search, 0.3), (search, 0.5), (similar, 0.2), (browse, 0.2), (ingest, 5.0), (analysis, 2.0),
                   (health, 1.0)]
        threads = [threading.Thread(target=loop, args=(pause, fn), daemon=True) for fn, pause in workers]
        threads += [threading.Thread(target=slow_clients, daemon=True), threading.Thread(target=memory, daemon=True)]
        start = time.monotonic()
        for t in threads:
            t.start()
        log(f"traffic for {args.minutes:g} min; PostgreSQL frozen from {0.4 * duration:.0f} s to {0.6 * duration:.0f} s")
        while (elapsed := time.monotonic() - start) < duration:
            if phase["now"] == "before" and elapsed >= 0.4 * duration:
                proxy.set("freeze")
                phase["now"] = "frozen"
                log("PostgreSQL frozen")
            elif phase["now"] == "frozen" and elapsed >= 0.6 * duration:
                proxy.set("forward")
                phase["now"] = "after"
                log("PostgreSQL answering again")
            time.sleep(0.5)
        stopping.set()
        for t in threads:
            t.join(DEADLINE + 5)

        by_route: dict = {}
        for route in sorted({r[0] for r in rec.rows}):
            rows = [r for r in rec.rows if r[0] == route]
            entry = {"statuses": dict(sorted(collections.Counter(str(r[2]) for r in rows).items())),
                     "over_deadline": sum(r[4] for r in rows)}
            for ph in ("before", "frozen", "after"):
                secs = [r[3] for r in rows if r[1] == ph and r[2]]
                if secs:
                    a = np.asarray(secs) * 1000
                    entry[ph] = {"n": len(secs), "p50_ms": round(float(np.percentile(a, 50)), 1),
                                 "p99_ms": round(float(np.percentile(a, 99)), 1), "max_ms": round(float(a.max()), 1)}
            by_route[route] = entry
        bad = [r for r in rec.rows if r[2] >= 500 and r[2] != 503]
        mem = [m for _, _, m in rss]
        after_warmup = [m for t, _, m in rss if t >= 60] or mem
        result = {
            "benchmark": "soak", "cpu": cpu_model(), "minutes": args.minutes,
            "server": "gunicorn -c python:simsearch.web.gunicorn_conf (2 workers x 16 threads), SQLite-free: "
                      "PostgreSQL 16 via a loopback proxy, in-process jobs",
            "data": f"flowers ({len(ids)} photos ingested, searched), flowers102 photos as queries and ingests",
            "seed_ingest_s": round(seed_seconds, 1),
            "requests": len(rec.rows),
            "server_errors_other_than_503": len(bad),
            "over_deadline": sum(r[4] for r in rec.rows),
            "deadlines_s": {"health": HEALTH_DEADLINE, "other": DEADLINE},
            "routes": by_route,
            "slow_clients": dict(slow_stats),
            "rss_mb": {"first": round(mem[0] / 1024, 1) if mem else None,
                       "after_1_min": round(after_warmup[0] / 1024, 1) if after_warmup else None,
                       "last": round(mem[-1] / 1024, 1) if mem else None,
                       "max": round(max(mem) / 1024, 1) if mem else None,
                       "samples": len(mem)},
            "rss_samples_mb": [[t, ph, round(m / 1024, 1)] for t, ph, m in rss],
        }
    finally:
        stopping.set()
        stop(proc)
        proxy.set("refuse")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    emit(result, indent=1)


if __name__ == "__main__":
    main()
