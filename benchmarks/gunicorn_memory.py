"""Memory of gunicorn's workers serving searches of one large collection, its index memory-mapped
or read into each worker. Prints one JSON object.

    python benchmarks/gunicorn_memory.py [--n 1000000] [--workers 4] [--modes mmap,copy]
                                         [--kind auto] [--requests 400] [--home DIR] [--keep]

What benchmarks/shared_index.py measures with plain processes calling ``load_index``, measured
here on the app itself, as deployed:

1. a SQLite store (``SIMSEARCH_HOME`` in a temporary folder) with one collection of ``--n`` images
   and their 1,280-d vectors (benchmarks/synthetic.py's realistic synthetic vectors, as
   benchmarks/scale.py makes them), inserted in bulk;
2. its index built and saved by the app: ``simsearch reindex`` in a child process (the index
   manager: every vector read from the database, the kind chosen by the index policy or forced
   with ``--kind``, tuned to the recall target), its time and peak resident memory;
3. for each mode (``mmap``: ``SIMSEARCH_INDEX_MMAP=true``, the default; ``copy``: ``false``),
   gunicorn started with the project's settings (``-c python:simsearch.web.gunicorn_conf``,
   ``--workers`` workers). Health requests until every worker has answered one (each has loaded
   the app): each process's memory then (``idle``). Then similar-by-id requests
   (``/api/images/<id>/similar?k=10``, random stored ids, 8 clients at once, a new connection each)
   until every worker has answered one with 200 (its first opens the index through the index
   manager: checked against the database's ids, then mapped or read), then ``--requests`` more.
   The access log (gunicorn's ``%(p)s``: the worker's pid) tells which worker answered what;
   ``maps_index_file``: the index file is among the worker's mappings (/proc/PID/maps).
   Memory of the master and of each worker from /proc/PID/smaps_rollup: Rss, Pss (each shared
   page divided among the processes that map it: the sum of Pss is what the machine pays),
   Pss_Anon/Pss_File and Anonymous (private memory).

Mapped pages are counted once touched: a worker's Pss grows as its searches reach more of the
index (IVF lists, refine codes), up to the whole file. Requires ``/proc`` (Linux).
At 1M (2026-12-07, 2-core AMD EPYC at load 13-15, ``--kind ivf_sq8``): the vectors 484 s (a 5.1 GB
.npy, removed once inserted), the insert 262 s (a 5.8 GB database), ``simsearch reindex`` 585 s
at 7.2 GB peak (its statement deadline raised: ``--build-statement-timeout``; the build then read
the vectors in one statement, which outlived the default 30 s: it now reads pages of 10,000 rows by
id, ``simsearch.store.repo.load_vectors``), the two gunicorn
runs about 5 min; all under the temporary folder unless ``--keep``. ``--home DIR --keep`` reruns
the servers on a kept store. Results: docs/index-policy.md#one-index-in-memory-per-machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from harness import ROOT, emit, log  # noqa: E402  benchmarks/harness.py
import web  # noqa: E402  benchmarks/web.py: free_port, wait_up, stop, percentiles
from scale import vectors_for  # noqa: E402  benchmarks/scale.py: realistic synthetic vectors, cached as .npy
import requests  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from simsearch.config import Settings  # noqa: E402
from simsearch.context import AppContext  # noqa: E402
from simsearch.store import repo  # noqa: E402
from simsearch.store.models import Embedding, Image, utcnow  # noqa: E402

SPACE = "efficientnet_lite0"
COLLECTION = "gunicorn-memory"
ROLLUP_KEYS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Anonymous")
CLIENTS = 8


def rollup(pid: int) -> dict:
    """Rss, Pss, Pss_Anon, Pss_File and Anonymous of ``pid`` in MiB (/proc/PID/smaps_rollup)."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        key = parts[0].rstrip(":") if parts else ""
        if len(parts) == 3 and parts[2] == "kB" and key in ROLLUP_KEYS:
            out[key.lower() + "_mib"] = round(int(parts[1]) / 1024, 1)
    return out


def maps_file(pid: int, path: Path) -> bool:
    """Whether ``path`` (its current inode's name) is among the mappings of ``pid``."""
    name = str(path.resolve())
    return any(line.rstrip().endswith(name) for line in Path(f"/proc/{pid}/maps").read_text().splitlines())


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:  # the field after the state: ppid
                out.append(int(entry.name))
    return sorted(out)


def populate(home: Path, n: int) -> dict:
    """A SQLite store in ``home`` with one collection of ``n`` images and their vectors."""
    x, generated = vectors_for(n, home.parent)
    log(f"{n:,} synthetic vectors in {generated:.0f} s")
    settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'simsearch.db'}")
    ctx = AppContext.open(settings, schema="upgrade")
    t0 = time.perf_counter()
    try:
        with ctx.db.session() as s:
            coll_id = repo.get_or_create_collection(s, COLLECTION).id
        now = utcnow()
        for start in range(0, n, 20_000):
            ids = np.arange(start + 1, min(n, start + 20_000) + 1)
            with ctx.db.session() as s:
                s.execute(insert(Image), [{"id": int(i), "collection_id": coll_id, "content_hash": f"{i:064x}",
                                           "source_path": f"/synthetic/{i}.jpg", "width": 640, "height": 480,
                                           "meta": {}, "status": "ok", "created_at": now} for i in ids])
                s.execute(insert(Embedding), [{"image_id": int(i), "space": SPACE, "dim": x.shape[1],
                                               "vector": repo.vector_to_bytes(x[i - 1]), "created_at": now} for i in ids])
            if start % 200_000 == 0:
                log(f"{start + len(ids):,} rows inserted")
    finally:
        ctx.close()
    del x
    (home.parent / f"simsearch-scale-{n}.npy").unlink()  # in the database now
    return {"vectors_seconds": round(generated, 1), "insert_seconds": round(time.perf_counter() - t0, 1),
            "database_mib": round((home / "simsearch.db").stat().st_size / 2**20)}


def reindex(env: dict) -> dict:
    """``simsearch reindex`` of the collection in a child process: its output, time and peak memory."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "simsearch.cli", "reindex", "--collection", COLLECTION, "--json"],
                            env=env, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"simsearch reindex exited with {proc.returncode}")
    row = json.loads(out)[0]
    return {"kind": row["kind"], "vectors": row["vectors"], "seconds": round(time.perf_counter() - t0, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024)}


class AccessLog:
    """gunicorn's access log, one line a request: the worker's pid, the status, the path, the seconds."""

    FORMAT = "%(p)s %(s)s %(U)s %(L)s"

    def __init__(self, path: Path):
        self.path = path

    def rows(self) -> list[tuple[int, int, str, float]]:
        out = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                m = re.match(r"<?(\d+)>? (\d+) (\S+) ([\d.]+)", line)
                if m:
                    out.append((int(m[1]), int(m[2]), m[3], float(m[4])))
        return out

    def answered(self, part: str, status: int = 200) -> dict[int, list[float]]:
        """{pid: [seconds of each request whose path contains ``part`` and got ``status``]}."""
        out: dict[int, list[float]] = {}
        for pid, code, path, seconds in self.rows():
            if part in path and code == status:
                out.setdefault(pid, []).append(seconds)
        return out


def until_every_worker(get, paths, workers: list[int], log_: AccessLog, part: str, limit_s: float) -> int:
    """Send ``get(path)`` for the next paths, CLIENTS at a time, until every worker has answered one
    whose path contains ``part`` (or ``limit_s`` passed); the number sent."""
    sent, deadline = 0, time.monotonic() + limit_s
    with ThreadPoolExecutor(CLIENTS) as pool:
        while not set(workers) <= set(log_.answered(part)) and time.monotonic() < deadline:
            list(pool.map(get, [next(paths) for _ in range(CLIENTS)]))
            sent += CLIENTS
    return sent


def one_mode(mode: str, env: dict, home: Path, index_file: Path, ids: np.ndarray, workers_n: int, requests_n: int,
             work: Path) -> dict:
    port = web.free_port()
    base = f"http://127.0.0.1:{port}"
    access = AccessLog(work / f"access-{mode}.log")
    env = {**env, "SIMSEARCH_INDEX_MMAP": "true" if mode == "mmap" else "false"}
    cmd = [sys.executable, "-m", "gunicorn", "-c", "python:simsearch.web.gunicorn_conf", "-w", str(workers_n),
           "-b", f"127.0.0.1:{port}", "--access-logfile", str(access.path), "--access-logformat", AccessLog.FORMAT,
           "simsearch.web.wsgi:app"]
    log(f"{mode}: gunicorn with {workers_n} workers")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(work / f"gunicorn-{mode}.err", "w"))
    rng = np.random.default_rng(7)

    def get(path: str) -> int:
        r = requests.get(base + path, timeout=900)  # a new connection each: spread over the workers
        if r.status_code != 200:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
        return r.status_code

    def similar_paths():
        while True:
            yield f"/api/images/{int(rng.choice(ids))}/similar?k=10"

    def health_paths():
        while True:
            yield "/api/health"

    try:
        web.wait_up(f"{base}/api/health", proc)
        deadline = time.monotonic() + 60
        while len(children(proc.pid)) < workers_n and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = children(proc.pid)
        until_every_worker(get, health_paths(), workers, access, "/api/health", 120)
        idle = {pid: rollup(pid) for pid in [proc.pid] + workers}
        t0 = time.perf_counter()
        opening = until_every_worker(get, similar_paths(), workers, access, "/similar", 900)
        opened_s = time.perf_counter() - t0
        first = {pid: times[0] for pid, times in access.answered("/similar").items()}
        log(f"{mode}: every worker opened the index ({opening} requests, {opened_s:.0f} s); {requests_n} more")
        paths = similar_paths()
        times = []

        def timed(path: str) -> float:
            t1 = time.perf_counter()
            get(path)
            return time.perf_counter() - t1

        with ThreadPoolExecutor(CLIENTS) as pool:
            times = list(pool.map(timed, [next(paths) for _ in range(requests_n)]))
        time.sleep(0.5)
        answered = access.answered("/similar")
        if set(workers) != set(children(proc.pid)):
            raise RuntimeError(f"{mode}: workers changed during the run (a worker was restarted: see "
                               f"{work / f'gunicorn-{mode}.err'})")
        memory = {pid: rollup(pid) for pid in [proc.pid] + workers}
        rows = [{"pid": pid, "similar_requests": len(answered.get(pid, [])),
                 "first_similar_seconds": round(first.get(pid, float("nan")), 2),
                 "maps_index_file": maps_file(pid, index_file), "idle": idle[pid], "after": memory[pid]}
                for pid in workers]
    finally:
        web.stop(proc)
    left = [pid for pid in [proc.pid] + workers if Path(f"/proc/{pid}").exists()]
    if left:
        log(f"{mode}: processes still there after stopping gunicorn: {left}")
    total = {key: round(sum(r["after"][key] for r in rows), 1) for key in rows[0]["after"]}
    return {"mode": mode, "master": {"idle": idle[proc.pid], "after": memory[proc.pid]}, "workers": rows,
            "workers_sum": total, "workers_idle_sum": {key: round(sum(r["idle"][key] for r in rows), 1)
                                                       for key in rows[0]["idle"]},
            "all_pss_mib": round(total["pss_mib"] + memory[proc.pid]["pss_mib"], 1),
            "requests_to_open_every_worker": opening, "open_every_worker_seconds": round(opened_s, 1),
            "similar_by_id": web.percentiles(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--modes", default="mmap,copy", help="mmap (SIMSEARCH_INDEX_MMAP=true), copy (false), in this order")
    ap.add_argument("--kind", default="auto", help="SIMSEARCH_INDEX_TYPE: auto (the policy's choice) or one kind")
    ap.add_argument("--requests", type=int, default=400, help="similar-by-id requests after every worker has opened the index")
    ap.add_argument("--home", type=Path, help="a SIMSEARCH_HOME that this script made before (--keep): its store "
                                              "reused, and its index (built when missing)")
    ap.add_argument("--build-statement-timeout", type=float, default=1800,
                    help="SIMSEARCH_DB_STATEMENT_TIMEOUT of the build (seconds; the servers keep the default)")
    ap.add_argument("--keep", action="store_true", help="keep the store and its index (the folder is logged)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="simsearch-gunimem-"))
    home = args.home or work / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMSEARCH_")}
    env.update(SIMSEARCH_HOME=str(home), SIMSEARCH_DATABASE_URL=f"sqlite:///{home / 'simsearch.db'}",
               SIMSEARCH_INDEX_TYPE=args.kind, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    out = {"benchmark": "gunicorn_memory", "n": args.n, "workers": args.workers, "store": "SQLite",
           "gunicorn": "-c python:simsearch.web.gunicorn_conf (gthread, 16 threads a worker)"}
    try:
        if args.home is None:
            home.mkdir()
            out["populate"] = populate(home, args.n)
        if not any((home / "indexes").rglob("*.faiss")):
            log("building the index: simsearch reindex")
            # reading 1M vectors in one statement outlasts the default 30 s deadline on a busy 2-core host
            out["build"] = reindex({**env, "SIMSEARCH_DB_STATEMENT_TIMEOUT": str(args.build_statement_timeout)})
            log(f"built: {out['build']}")
        with sqlite3.connect(home / "simsearch.db") as conn:
            ids = np.fromiter((r[0] for r in conn.execute("SELECT id FROM images WHERE status = 'ok'")), dtype=np.int64)
            state = conn.execute("SELECT kind, params, recall, memory_bytes FROM index_states").fetchone()
        out["images"] = int(len(ids))
        out["index"] = {"kind": state[0], "params": json.loads(state[1]) if isinstance(state[1], str) else state[1],
                        "recall": state[2], "file_mib": round(state[3] / 2**20, 1)}
        index_file = next((home / "indexes").rglob("*.faiss"))
        out["modes"] = [one_mode(mode, env, home, index_file, ids, args.workers, args.requests, work)
                        for mode in args.modes.split(",")]
        for m in out["modes"]:
            log(f"{m['mode']}: workers' Pss {m['workers_sum']['pss_mib']} MiB (idle {m['workers_idle_sum']['pss_mib']}), "
                f"anonymous {m['workers_sum']['anonymous_mib']} MiB, Rss {m['workers_sum']['rss_mib']} MiB; "
                f"master Pss {m['master']['after']['pss_mib']} MiB")
    finally:
        if args.keep:
            log(f"kept: {work} (the store: --home {home}; gunicorn's logs)")
        else:
            shutil.rmtree(work, ignore_errors=True)  # the store too, unless --home named another folder
    emit(out)


if __name__ == "__main__":
    main()
