"""The index at scale: build, memory, recall, throughput, latency, filters, deletes. Prints one JSON object.

Vectors: ``--n`` synthetic 1,280-d vectors derived from real efficientnet_lite0 embeddings
(benchmarks/synthetic.py), cached in a .npy under /tmp; queries: 1,000 more from the same
distribution (another seed, not in the index), their exact top-10 by brute force.

For each kind in ``--kinds`` (default: the one the policy prefers), built the way the index
manager builds it (:func:`simsearch.index.policy.build`: trained, filled, tuned on 1,000 sampled
stored vectors to recall@10 >= the target), and searched the way searches go
(:class:`simsearch.index.faiss_index.LoadedIndex`):

- build time (train + add + tuning) and the peak resident memory of the process during it;
- size on disk (the saved file) and in memory (resident memory gained by loading that file);
- recall@10 against exact search on the 1,000 held-out queries;
- batch QPS in-process (1,000 queries in one call, 2 threads) and single-query latency p50/p99
  (one query per call, 1 FAISS thread as ``SIMSEARCH_SEARCH_THREADS`` defaults to);
- the same for filtered searches: a label holding 5% of the vectors (a selector, more lists
  probed) and one holding 0.2% (scored exactly);
- deleting 1,000 ids: the time to mask them (as the index manager does), the recall after and
  that no deleted id comes back; then their compaction (IVF kinds: in place, and the save);
- for ``ivf_pq_refine``: re-ranking from a memory-mapped float16 copy of the vectors instead of
  the index's 8-bit copy (process memory vs page cache, speed, recall);
- with ``--http N``: the vectors in a fresh SQLite store, the first kind's index placed where
  the server finds it, N similar-by-id requests (p50/p99) and 200 with each label filter, against
  `simsearch serve` (Werkzeug's threaded server) and against gunicorn with one sync worker.

The machine: CPU model, cores, load average before and after (other processes skew the figures).

Usage: python benchmarks/scale.py [--n 1000000] [--kinds ivf_pq_refine,ivf_sq8,hnsw_sq8] [--http 1000]
       [--target-recall 0.95]   (about 30 minutes and 9.5 GB at 1M with the three kinds)
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from harness import cpu_model, emit, log  # noqa: E402  benchmarks/harness.py
import synthetic  # noqa: E402
from machine import machine_facts  # noqa: E402  benchmarks/machine.py

K = 10


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """The highest resident memory of this process while the block runs (sampled every 0.1 s)."""

    def __enter__(self):
        self.peak, self._stop = rss(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())


def memory_of(path: Path) -> float:
    """GB of resident memory a fresh process gains by loading the index file (this process's
    allocator keeps what earlier builds freed, so its own figure would be too low)."""
    import subprocess

    code = ("import faiss, sys\n"
            "def rss():\n    return int(open('/proc/self/statm').read().split()[1]) * 4096\n"
            "r0 = rss(); index = faiss.read_index(sys.argv[1]); print(rss() - r0)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return round(int(out.stdout.split()[-1]) / 1e9, 3)


def vectors_for(n: int, cache_dir: Path) -> tuple[np.ndarray, float]:
    """n synthetic vectors (memory-mapped from a cached .npy, made once), and the seconds it took."""
    path = cache_dir / f"simsearch-scale-{n}.npy"
    t0 = time.perf_counter()
    if not path.exists():
        model = synthetic.Synthetic.fit(synthetic.real_embeddings())
        tmp = path.with_name(path.name + ".tmp.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, model.dim))
        model.generate(n, seed=0, out=out)
        out.flush()
        del out
        os.replace(tmp, path)
    return np.load(path, mmap_mode="r"), time.perf_counter() - t0


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[:K].tolist()) & set(t[:K].tolist())) / K for f, t in zip(found, truth)]))


def exact(queries: np.ndarray, x: np.ndarray, ids: np.ndarray | None = None, k: int = K) -> np.ndarray:
    import faiss

    _, found = faiss.knn(queries, x, k, metric=faiss.METRIC_INNER_PRODUCT)
    return found if ids is None else ids[found]


def timed_searches(search, queries: np.ndarray) -> dict:
    """Batch QPS (2 threads, median of 3) and one-query latency p50/p99 (1 thread, every query)."""
    import faiss

    faiss.omp_set_num_threads(2)
    search(queries[:50])  # warm
    rates = []
    for _ in range(3):
        t0 = time.perf_counter()
        search(queries)
        rates.append(len(queries) / (time.perf_counter() - t0))
    faiss.omp_set_num_threads(1)
    lat = []
    for q in queries:
        t0 = time.perf_counter()
        search(q[None])
        lat.append(time.perf_counter() - t0)
    faiss.omp_set_num_threads(2)
    return {"batch_qps": round(float(np.median(rates))), "p50_ms": round(1000 * float(np.percentile(lat, 50)), 3),
            "p99_ms": round(1000 * float(np.percentile(lat, 99)), 3)}


def filtered(loaded, queries, x, ids, share: float, rng) -> dict:
    """A label holding ``share`` of the vectors: recall vs exact search in that subset, speed."""
    rows = np.sort(rng.choice(len(x), max(K, int(share * len(x))), replace=False))
    allowed = ids[rows]
    truth = allowed[exact(queries, np.ascontiguousarray(x[rows]))]
    _, found = loaded.search(queries, K, allowed_ids=allowed)
    out = {"share": share, "vectors": len(allowed), "path": "exact over the subset" if len(allowed) <= loaded.exact_subset
           else "selector, knob raised (nprobe by 1/sqrt(share), efSearch by 1/share)", "recall_at_10": round(recall(found, truth), 4),
           "outside_the_filter": int((~np.isin(found, allowed)).sum())}
    out.update(timed_searches(lambda q: loaded.search(q, K, allowed_ids=allowed), queries))
    return out


def float16_refine(loaded, x: np.ndarray, first_id: int, queries: np.ndarray, truth: np.ndarray, work: Path) -> dict:
    """ivf_pq_refine's candidates re-ranked from a memory-mapped float16 file instead of its SQ8 copy."""
    import faiss

    path = work / "vectors.f16"
    t0 = time.perf_counter()
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=x.shape)
    for start in range(0, len(x), 100_000):
        mm[start:start + 100_000] = x[start:start + 100_000]
    mm.flush()
    del mm
    write_s = time.perf_counter() - t0
    f16 = np.load(path, mmap_mode="r")
    refine = faiss.downcast_index(loaded.index.index)
    base = refine.base_index
    kf = int(refine.k_factor)
    id_map = loaded.positions().id_map

    def search(q):
        q = np.atleast_2d(q)
        _, cand = base.search(q, K * kf)
        out = np.empty((len(q), K), np.int64)
        for i, row in enumerate(cand):
            found = id_map[row[row >= 0]]
            rows = np.sort(found - first_id)  # ids are first_id + row of the file
            _, top = faiss.knn(q[i:i + 1], f16[rows].astype(np.float32), K, metric=faiss.METRIC_INNER_PRODUCT)
            out[i] = rows[top[0]] + first_id
        return out

    before = rss()
    found = search(queries)
    out = {"file_gb": round(path.stat().st_size / 1e9, 2), "write_seconds": round(write_s, 1), "k_factor": kf,
           "recall_at_10": round(recall(found, truth), 4),
           "resident_memory_gained_gb": round((rss() - before) / 1e9, 3),
           "note": "the float16 pages read stay in the page cache (not counted in the index's memory); "
                   "the index without its SQ8 copy is the PQ codes"}
    out.update(timed_searches(search, queries))
    path.unlink()
    return out


def run_kind(kind: str, x: np.ndarray, ids: np.ndarray, queries: np.ndarray, truth: np.ndarray, policy, work: Path,
             args) -> dict:
    import faiss

    from simsearch.index import kinds
    from simsearch.index.faiss_index import LoadedIndex, index_ids, load_index, save_index
    from simsearch.index.policy import build
    from simsearch.store.repo import fingerprint

    log(f"{kind}: building {len(ids):,} vectors")
    faiss.omp_set_num_threads(2)
    steps = []
    t_last = [time.perf_counter()]

    def progress(message):
        now = time.perf_counter()
        steps.append({"step": message, "after_s": round(now - t_last[0], 1)})
        log(f"  {message}")

    gc.collect()
    base_rss = rss()
    with PeakRSS() as peak:
        built = build(ids, x, dataclasses.replace(policy, kind=kind), progress=progress)
    out = {"kind": built.kind, "build_seconds": round(built.seconds, 1), "build_steps": steps,
           "build_peak_rss_gb": round(peak.peak / 1e9, 2), "build_rss_above_vectors_gb": round((peak.peak - base_rss) / 1e9, 2),
           "tuned_params": built.params, "tuning_recall_at_10": round(built.recall, 4),
           "tuning_curve": [" ".join(f"{k}={v}" for k, v in c.items() if k != "recall") + f": {c['recall']}" for c in built.curve],
           "rejected": built.rejected}
    path = work / f"{kind}.faiss"
    t0 = time.perf_counter()
    save_index(built.index, path)
    out["save_seconds"] = round(time.perf_counter() - t0, 1)
    out["size_on_disk_gb"] = round(path.stat().st_size / 1e9, 3)
    if args.http and not (work / "http.faiss").exists():
        os.link(path, work / "http.faiss")  # as built (the deletes below replace ``path``)
        (work / "http.json").write_text(json.dumps({"kind": built.kind, "params": built.params, "recall": built.recall,
                                                    "build_seconds": built.seconds}))
    del built
    gc.collect()
    out["size_in_memory_gb"] = memory_of(path)
    t0 = time.perf_counter()
    index = load_index(path)
    out["load_seconds"] = round(time.perf_counter() - t0, 1)
    out["memory_target_gb"] = 1.5
    out["memory_target_met"] = out["size_in_memory_gb"] <= 1.5 and out["size_on_disk_gb"] <= 1.5
    held = index_ids(index)
    loaded = LoadedIndex(index=index, fingerprint=fingerprint(held), generation=1, kind=kind, exact_subset=policy.exact_subset)

    _, found = loaded.search(queries, K)
    out["recall_at_10_heldout"] = round(recall(found, truth), 4)
    out["recall_target"] = policy.target_recall
    out["recall_target_met"] = out["recall_at_10_heldout"] >= policy.target_recall
    out.update(timed_searches(lambda q: loaded.search(q, K), queries))
    out["qps_target_met"] = out["batch_qps"] >= 1000
    rng = np.random.default_rng(3)
    out["filtered"] = [filtered(loaded, queries, x, ids, share, rng) for share in (0.05, 0.002)]
    log(f"{kind}: recall {out['recall_at_10_heldout']}, {out['batch_qps']} QPS, p99 {out['p99_ms']} ms")

    if isinstance(faiss.downcast_index(index.index), faiss.IndexRefine) and args.float16:  # ivf_pq_refine
        log(f"{kind}: re-ranking from a float16 memmap")
        out["refine_from_float16_memmap"] = float16_refine(loaded, x, int(ids[0]), queries, truth, work)

    # delete 1,000 ids the way the index manager does, without a rebuild: masked (nothing written)
    gone = np.sort(rng.choice(ids, 1000, replace=False))
    t0 = time.perf_counter()
    live = np.setdiff1d(held, gone)
    after = LoadedIndex(index=index, fingerprint=fingerprint(live), generation=2, kind=kind,
                        masked=np.union1d(loaded.masked, gone), exact_subset=policy.exact_subset,
                        _positions=loaded.positions())
    delete_s = time.perf_counter() - t0
    near_gone = np.ascontiguousarray(x[np.searchsorted(ids, gone[:200])])  # the deleted vectors themselves
    wider = exact(queries, x, ids, k=3 * K)  # the exact top-10 of what is left
    gone_set = set(gone.tolist())
    truth_after = np.array([[i for i in row if i not in gone_set][:K] for row in wider])

    def after_delete(idx) -> dict:
        _, f_gone = idx.search(near_gone, K)
        _, f_after = idx.search(queries, K)
        return {"deleted_ids_returned": int(np.isin(np.concatenate([f_gone, f_after]), gone).sum()),
                "recall_at_10_after": round(recall(f_after, truth_after), 4), "vectors_after": idx.ntotal}

    out["delete_1000"] = {"how": "masked: ids kept in index_states, left out of searches; nothing written",
                          "seconds": round(delete_s, 3), "rebuilt": False, **after_delete(after)}
    # compaction (due beyond 10% masked; timed here on these 1,000): IVF kinds in place, HNSW rebuilt
    t0 = time.perf_counter()
    if kinds.get(kind).compact(index, gone):
        compact_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        save_index(index, path)
        compacted = LoadedIndex(index=index, fingerprint=fingerprint(index_ids(index)), generation=3, kind=kind,
                                exact_subset=policy.exact_subset)
        out["compaction_of_the_1000"] = {"how": "removed in place from the lists and codes (no retraining, no re-adding)",
                                         "seconds": round(compact_s, 2), "save_seconds": round(time.perf_counter() - t1, 1),
                                         **after_delete(compacted)}
    else:
        out["compaction_of_the_1000"] = {"how": "a rebuild (HNSW cannot remove): about build_seconds, in the background"}
    del loaded, after, index
    gc.collect()
    path.unlink()
    return out


def http_section(x: np.ndarray, ids: np.ndarray, work: Path, requests_n: int, keep_home: Path | None = None) -> dict:
    """similar-by-id over HTTP: the vectors in a fresh SQLite store, the index built above placed
    where the server looks for it (reused: its ids match the database's), `simsearch serve` and gunicorn."""
    import http_similar  # benchmarks/http_similar.py: the servers and the requests

    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.store import repo
    from simsearch.store.models import Embedding, Image, utcnow
    from sqlalchemy import insert

    home = work / "home"
    settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'simsearch.db'}")
    ctx = AppContext.open(settings, schema="upgrade")
    t0 = time.perf_counter()
    with ctx.db.session() as s:
        coll_id = repo.get_or_create_collection(s, "scale").id
    now = utcnow()
    labels = np.array([f"group-{i % 20}" for i in range(20)] + ["rare"])  # 5% each; "rare" 0.2%
    rng = np.random.default_rng(5)
    label_of = np.where(rng.random(len(ids)) < 0.002, 20, np.arange(len(ids)) % 20)
    for start in range(0, len(ids), 20_000):
        part = ids[start:start + 20_000]
        with ctx.db.session() as s:
            s.execute(insert(Image), [{"id": int(i), "collection_id": coll_id, "content_hash": f"{i:064x}",
                                       "source_path": f"/synthetic/{i}.jpg", "width": 640, "height": 480,
                                       "label": str(labels[label_of[i - 1]]), "meta": {}, "status": "ok", "created_at": now}
                                      for i in part])
            s.execute(insert(Embedding), [{"image_id": int(i), "space": "efficientnet_lite0", "dim": x.shape[1],
                                           "vector": repo.vector_to_bytes(x[i - 1]), "created_at": now} for i in part])
        if start % 200_000 == 0:
            log(f"http: {start + len(part):,} rows inserted")
    insert_s = time.perf_counter() - t0
    built = json.loads((work / "http.json").read_text())
    path = ctx.indexes.path_for(coll_id, "efficientnet_lite0")
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(work / "http.faiss", path)
    with ctx.db.session() as s:
        repo.record_index_state(s, coll_id, "efficientnet_lite0", len(ids), repo.fingerprint(ids),
                                {"kind": built["kind"], "params": built["params"], "recall": built["recall"],
                                 "memory_bytes": path.stat().st_size, "build_seconds": built["build_seconds"],
                                 "checked_count": len(ids)})
    ctx.close()
    out = {"store": "SQLite", "rows_inserted_seconds": round(insert_s, 1), "database_gb": round((home / "simsearch.db").stat().st_size / 1e9, 2)}
    try:
        out.update(http_similar.run(home, requests_n))
    finally:
        if keep_home is not None:
            os.replace(home, keep_home)
            log(f"http: the store and its index kept in {keep_home} (python benchmarks/http_similar.py --home {keep_home})")
        else:
            import shutil

            shutil.rmtree(home, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--kinds", default="ivf_pq_refine", help="comma-separated: ivf_pq_refine, ivf_sq8, hnsw_sq8")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--cache-dir", default="/tmp", help="where the synthetic vectors are cached")
    ap.add_argument("--no-float16", dest="float16", action="store_false", help="skip the float16-memmap re-ranking")
    ap.add_argument("--http", type=int, default=0, metavar="REQUESTS",
                    help="also similar-by-id over HTTP (`simsearch serve`, gunicorn; SQLite) with the first kind's index")
    ap.add_argument("--keep-home", metavar="DIR", help="with --http: keep the SQLite store and its index in DIR "
                                                       "(new, on the same file system) for benchmarks/http_similar.py")
    args = ap.parse_args()

    import faiss

    from simsearch.index.policy import IndexPolicy

    out = {"machine": machine_facts()}
    policy = IndexPolicy(exact_threshold=0, target_recall=args.target_recall)
    x, gen_s = vectors_for(args.n, Path(args.cache_dir))
    log(f"{args.n:,} vectors ready ({gen_s:.0f} s); loading")
    x = np.ascontiguousarray(x)
    ids = np.arange(1, args.n + 1, dtype=np.int64)  # image ids as a database gives them
    model = synthetic.Synthetic.fit(synthetic.real_embeddings())
    queries = model.generate(args.queries, seed=99)
    faiss.omp_set_num_threads(2)
    t0 = time.perf_counter()
    truth = exact(queries, x, ids)
    out["data"] = {"vectors": args.n, "dim": x.shape[1], "source": "benchmarks/synthetic.py (derived from real lite0 embeddings)",
                   "vectors_gb": round(x.nbytes / 1e9, 2), "generate_seconds": round(gen_s, 1),
                   "queries": f"{args.queries} held-out synthetic vectors (another seed)",
                   "exact_top10_seconds": round(time.perf_counter() - t0, 1)}
    work = Path(tempfile.mkdtemp(prefix="simsearch-scale-"))
    out["kinds"] = {}
    for kind in args.kinds.split(","):
        out["kinds"][kind] = run_kind(kind, x, ids, queries, truth, policy, work, args)
        print(json.dumps(out["kinds"][kind]), file=sys.stderr, flush=True)
    if args.http:
        log("http: loading the vectors into SQLite")
        out["http"] = http_section(x, ids, work, args.http, Path(args.keep_home) if args.keep_home else None)
    out["machine"]["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    import resource

    out["process_peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)
    for leftover in work.iterdir():
        leftover.unlink()
    os.rmdir(work)
    emit(out, dumps=synthetic.compact_json)


if __name__ == "__main__":
    main()
