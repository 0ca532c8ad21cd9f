"""Memory of W processes that open one saved index, read into each process or memory-mapped.

    python benchmarks/shared_index.py [--n 200000] [--dim 1280] [--kind hnsw_sq8] [--workers 4]

Builds an index of ``n`` synthetic vectors (benchmarks/synthetic.py) and saves it as simsearch
does (checksum trailer). Then, once per mode (``copy``: SIMSEARCH_INDEX_MMAP=false, ``mmap``:
the default), starts ``workers`` processes that each open it through
:func:`simsearch.index.faiss_index.load_index`, run ``queries`` searches, then one exhaustive pass
(IVF: every list probed; HNSW: a wide efSearch) so that every process has touched the whole index,
as long-running web workers do. While all of them are alive, each one's Rss, Pss and anonymous
memory are read from /proc/PID/smaps_rollup. Pss splits each shared page between the processes
that map it: the sum of the Pss is what the machine pays. JSON on stdout (with the CPU model).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from harness import ROOT, emit, log
from synthetic import isotropic

from simsearch.index.faiss_index import build_index, save_index

CHUNK = 100_000

WORKER = r"""
import sys, time, json
from pathlib import Path
import numpy as np
import faiss
from simsearch.index.faiss_index import LoadedIndex, load_index
path, mmap, queries = Path(sys.argv[1]), sys.argv[2] == "mmap", int(sys.argv[3])
t = time.perf_counter()
loaded = LoadedIndex(index=load_index(path, mmap=mmap), fingerprint="", generation=0)
opened = time.perf_counter() - t
rng = np.random.default_rng(0)
q = rng.standard_normal((queries, loaded.index.d)).astype(np.float32)
q /= np.linalg.norm(q, axis=1, keepdims=True)
t = time.perf_counter()
_, ids = loaded.search(q, 10)
searched = time.perf_counter() - t
inner = faiss.downcast_index(loaded.index.index)
if isinstance(inner, faiss.IndexIVF):
    inner.nprobe = inner.nlist
elif isinstance(inner, faiss.IndexHNSW):
    inner.hnsw.efSearch = 4096
loaded.index.search(q[:8], 10)  # touches the whole index (IVF: every list; HNSW: most of the graph)
print(json.dumps({"open_s": round(opened, 2), "search_ms": round(1000 * searched / queries, 2),
                  "first_ids": ids[0, :3].tolist()}), flush=True)
sys.stdin.read()  # stay alive (and mapped) until the parent has read the memory figures
"""


def rollup(pid: int) -> dict:
    """Rss, Pss and anonymous memory of ``pid`` in MiB (/proc/PID/smaps_rollup)."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "kB" and parts[0].rstrip(":") in ("Rss", "Pss", "Anonymous"):
            out[parts[0].rstrip(":").lower() + "_mib"] = round(int(parts[1]) / 1024, 1)
    return out


def run_mode(path: Path, mode: str, workers: int, queries: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), mode, str(queries)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(workers)]
    try:
        reports = [json.loads(p.stdout.readline()) for p in procs]  # each has opened, searched and touched it all
        memory = [rollup(p.pid) for p in procs]
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=60)
    total = {key: round(sum(m[key] for m in memory), 1) for key in memory[0]}
    return {"mode": mode, "processes": [{**r, **m} for r, m in zip(reports, memory)], "sum": total,
            "same_results": len({json.dumps(r["first_ids"]) for r in reports}) == 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--kind", default="ivf_sq8", help="a registered index kind (flat, ivf_sq8, hnsw_sq8, ivf_pq_refine)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="simsearch-shared-") as tmp:
        path = Path(tmp) / "index.faiss"
        t = time.perf_counter()
        x = np.empty((args.n, args.dim), np.float32)
        for start in range(0, args.n, CHUNK):  # in chunks: no float64 temporaries of the whole set
            stop = min(args.n, start + CHUNK)
            x[start:stop] = isotropic(stop - start, args.dim, seed=start // CHUNK)
        log(f"building {args.kind} over {args.n:,} x {args.dim} vectors")
        index = build_index(np.arange(args.n, dtype=np.int64), x, kind=args.kind)
        del x
        save_index(index, path)
        del index
        built = time.perf_counter() - t
        log(f"built and saved in {built:.0f} s: {path.stat().st_size / 2**20:.0f} MiB")
        modes = [run_mode(path, mode, args.workers, args.queries) for mode in ("copy", "mmap")]
        size = path.stat().st_size
    for m in modes:
        log(f"{m['mode']}: Rss {m['sum']['rss_mib']} MiB, Pss {m['sum']['pss_mib']} MiB, "
            f"anonymous {m['sum']['anonymous_mib']} MiB over {args.workers} processes")
    emit({"benchmark": "shared_index", "n": args.n, "dim": args.dim, "kind": args.kind, "workers": args.workers,
          "index_file_mib": round(size / 2**20, 1), "build_s": round(built, 1), "modes": modes,
          "machine": {"faiss": faiss.__version__}})


if __name__ == "__main__":
    main()
