"""Benchmark vectors in and out (``simsearch import-vectors`` / ``export``); prints ONE JSON object to stdout.

    python benchmarks/vectors_io.py                       # 100,000 x 1280 on SQLite and PostgreSQL
    python benchmarks/vectors_io.py --n 1000000           # the 1M target (5.1 GB of vectors; ~25 GB of disk)
    python benchmarks/vectors_io.py --n 20000 --databases sqlite --index

Data: vectors derived from real efficientnet_lite0 embeddings of ``../shared/datasets/cats-dogs``
(``--base`` images, embedded once here): each synthetic vector is a random real one plus Gaussian
noise, clipped at 0 (pooled ReLU6 features are non-negative) and L2-normalised. That is enough for
IO timing (what is stored and read is the same size and about as compressible as real vectors);
it is not meant to reproduce the neighbour structure of real collections. The file is written
with simsearch's own streaming .npz writer, a block at a time, so no N x D array is ever held.

Timed: the import (reading and checking the file, then storing images and vectors in one
transaction, without the index update unless ``--index``), and the export to a file. The export
is compared with the input row by row. PostgreSQL runs in a fresh database on
``SIMSEARCH_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from harness import ROOT, cpu_model, emit, log  # noqa: E402  benchmarks/harness.py

DATASET = ROOT.parent / "shared" / "datasets" / "cats-dogs"
PG_URL = os.environ.get("SIMSEARCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SPACE = "efficientnet_lite0"
BLOCK = 16384


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def real_embeddings(work: Path, n: int) -> np.ndarray:
    """efficientnet_lite0 vectors of the first ``n`` cats-dogs images (a throwaway SQLite collection)."""
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.store import repo

    settings = Settings.from_env(home=work / "embed", database_url=f"sqlite:///{work / 'embed' / 'db.sqlite'}")
    ctx = AppContext.open(settings, schema="upgrade")
    try:
        files, _ = files_from_folder(DATASET, labels="folders")
        Ingester(ctx, spaces=[SPACE]).run("base", files[:n], source=str(DATASET))
        with ctx.db.session() as s:
            _, x = repo.load_vectors(s, repo.get_collection(s, "base").id, SPACE)
    finally:
        ctx.close()
    return x


def block(base: np.ndarray, start: int, rows: int, noise: float) -> np.ndarray:
    """Rows ``start .. start+rows`` of the synthetic set (the same for the same arguments)."""
    rng = np.random.default_rng(start)
    x = base[rng.integers(0, len(base), rows)] + noise * rng.standard_normal((rows, base.shape[1]), dtype=np.float32)
    np.maximum(x, 0, out=x)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def write_input(path: Path, base: np.ndarray, n: int, noise: float) -> None:
    from simsearch.ops.vectors_file import Array, npz_stream, string_chunks

    keys = [f"synthetic/{i:08d}.jpg" for i in range(n)]
    labels = [f"c{i % 10}" for i in range(n)]
    arrays = [Array("vectors", "<f4", (n, base.shape[1]),
                    (block(base, s, min(BLOCK, n - s), noise).tobytes() for s in range(0, n, BLOCK)))]
    for name, values in (("keys", keys), ("labels", labels)):
        dtype, chunks = string_chunks(values)
        arrays.append(Array(name, dtype, (n,), chunks))
    with open(path, "wb") as fh:
        for chunk in npz_stream(arrays):
            fh.write(chunk)


def fresh_database(kind: str, work: Path) -> tuple[str, callable]:
    if kind == "sqlite":
        return f"sqlite:///{work / 'bench.sqlite'}", lambda: None
    import psycopg

    name = f"simsearch_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return PG_URL.rsplit("/", 1)[0] + "/" + name, drop


def run_one(kind: str, work: Path, src: Path, base: np.ndarray, n: int, noise: float, index: bool) -> dict:
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ops.vectors_file import VectorsFile
    from simsearch.ops.vectors_io import export_stream, import_vectors

    url, drop = fresh_database(kind, work)
    home = work / f"home-{kind}"
    out: dict = {"database": kind}
    try:
        settings = Settings.from_env(home=home, database_url=url)
        settings.ensure_dirs()
        ctx = AppContext.open(settings, schema="upgrade")
        try:
            log(f"{kind}: importing {n:,} vectors")
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            report = import_vectors(ctx, src, "bench", SPACE, update_index=index, same_model=True)  # no fingerprint in the file
            seconds = time.perf_counter() - t0
            out["import"] = {"seconds": round(seconds, 1), "vectors_per_s": round(n / seconds), "MB_per_s": round(src.stat().st_size / seconds / 1e6, 1),
                             "store_seconds": report["seconds"], "index": report["index"], "load_average_before": round(load0, 2),
                             "peak_rss_mb_so_far": peak_rss_mb()}
            log(f"{kind}: import {out['import']}")
            dest = work / f"export-{kind}.npz"
            t0 = time.perf_counter()
            info, chunks = export_stream(ctx, "bench", SPACE)
            with open(dest, "wb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
            seconds = time.perf_counter() - t0
            out["export"] = {"seconds": round(seconds, 1), "vectors_per_s": round(n / seconds),
                             "MB_per_s": round(dest.stat().st_size / seconds / 1e6, 1), "bytes": dest.stat().st_size,
                             "peak_rss_mb_so_far": peak_rss_mb()}
            log(f"{kind}: export {out['export']}")
            exported = VectorsFile.open(dest)
            try:
                same = all(np.array_equal(x, block(base, s, len(x), noise)) for s, x in exported.chunks(BLOCK))
                keys = exported.strings("keys", n)
            finally:
                exported.close()
            out["export_equals_input"] = bool(same and keys[0] == "synthetic/00000000.jpg" and len(keys) == n)
            dest.unlink()
        finally:
            ctx.close()
    finally:
        drop()
        shutil.rmtree(home, ignore_errors=True)
        for f in work.glob("bench.sqlite*"):
            f.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="vectors (default 100,000)")
    ap.add_argument("--base", type=int, default=200, help="real images embedded as the base (default 200)")
    ap.add_argument("--noise", type=float, default=0.02, help="noise added to each base vector (default 0.02)")
    ap.add_argument("--databases", default="sqlite,postgres")
    ap.add_argument("--index", action="store_true", help="include the index update in the import")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vectors-io-", dir=args.work))
    result: dict = {"benchmark": "vectors_io", "n": args.n, "dim": None, "cpu": cpu_model(), "cpu_count": os.cpu_count(),
                    "load_average_at_start": [round(v, 2) for v in os.getloadavg()], "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        log(f"embedding {args.base} real images (in a child process: the model's memory is not this one's)")
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            base = pool.submit(real_embeddings, work, args.base).result()
        result["dim"] = int(base.shape[1])
        src = work / "input.npz"
        t0 = time.perf_counter()
        write_input(src, base, args.n, args.noise)
        result["input_file"] = {"bytes": src.stat().st_size, "write_seconds": round(time.perf_counter() - t0, 1)}
        log(f"input: {result['input_file']}")
        result["runs"] = [run_one(kind, work, src, base, args.n, args.noise, args.index) for kind in args.databases.split(",")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    result["peak_rss_mb"] = peak_rss_mb()  # this process: writing the input, the imports and the exports
    emit(result, indent=2)


if __name__ == "__main__":
    main()
