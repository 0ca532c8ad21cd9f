"""Where an ingest's CPU time goes, and the same ingest from two code trees side by side. Prints one JSON object.

One ingest = ``Ingester.run`` of a folder (default: the shared cats-dogs photos) into a fresh
SQLite store with the defaults (runtime and precision ``auto``), the model opened and FAISS
imported beforehand (one-time costs of a process, not ingest throughput; as in
``benchmarks/int8.py``'s rounds after the first), its index updates awaited. For each ingest: images/s, the process's CPU seconds (user +
system) and so core-ms an image and cores busy, and the CPU seconds of each thread grouped by its
name (decode threads, the store thread, the main thread running the forwards, the runtime's own
worker threads), sampled from ``/proc/self/task`` while it runs.

With ``--trees A B ...`` each ingest runs in a child process importing ``simsearch`` from that
tree (``--tree``: put first on ``sys.path``, ahead of this script's tree), the trees alternating round by round (the host's speed drifts, and
other sessions share the cores); the TF fp32 bare forward (the issue's reference, this tree's code)
is measured in the parent in each round, so every ingest rate has a ratio to it from the same
minutes. Without ``--trees`` one ingest runs here (``--child``), e.g. under ``py-spy``.

Usage: python benchmarks/ingest_cost.py --trees /work/main . [--rounds 3] [--data DIR]
       python benchmarks/ingest_cost.py --child [--data DIR]   (one ingest, JSON line on stdout)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from harness import ROOT, emit, log  # noqa: E402  benchmarks/harness.py

DATASETS = ROOT.parent / "shared" / "datasets"
if not DATASETS.is_dir():
    DATASETS = Path("/work/shared/datasets")
TICK = os.sysconf("SC_CLK_TCK")


def _task_times() -> dict[int, tuple[str, float]]:
    """{thread id: (kernel name, CPU seconds)} of this process's threads now."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:  # (ended meanwhile)
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / TICK)
    return out


class ThreadClock:
    """CPU seconds by thread group while a block runs (sampled every ``period`` seconds, so a thread
    that ends between two samples loses at most one period of its time)."""

    def __init__(self, period: float = 0.05):
        self.period, self.last, self.names = period, {}, {}
        self.start = _task_times()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="clock", daemon=True)

    def _group(self, tid: int, kernel_name: str) -> str:
        py = self.names.get(tid)
        if py is not None:
            return py.split("_")[0].rstrip("0123456789") if py != "MainThread" else "main"
        return f"native:{kernel_name.rstrip('0123456789-_:')}"

    def _sample(self) -> None:
        for t in threading.enumerate():
            if t.native_id is not None:
                self.names[t.native_id] = t.name
        for tid, (name, cpu) in _task_times().items():
            self.last[tid] = (self._group(tid, name), cpu - self.start.get(tid, (name, 0.0))[1])

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self._sample()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def by_group(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for group, cpu in self.last.values():
            out[group] += cpu
        return {k: round(v, 3) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v > 0}


STEPS = ("content_hash", "decode_image", "shrink", "make_thumbnail", "image_hashes", "resize_for_model", "store_batch")


def time_steps() -> dict[str, float]:
    """Wrap the ingest's per-file steps (as :mod:`simsearch.ingest.pipeline` calls them) and the
    store step so each adds the CPU seconds of its thread (``time.thread_time``) to the dict returned."""
    from simsearch.ingest import pipeline

    spent: dict[str, float] = defaultdict(float)

    def wrap(fn, name):
        def timed(*args, **kwargs):
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.thread_time() - t0
        return timed

    for name in STEPS:
        if name == "image_hashes":
            pipeline.phash = type("phash", (), {"image_hashes": staticmethod(wrap(pipeline.phash.image_hashes, name)),
                                                "to_bytes": staticmethod(pipeline.phash.to_bytes)})
        else:
            setattr(pipeline, name, wrap(getattr(pipeline, name), name))
    return spent


def ingest_once(data: Path, weights: Path, home: Path, batch_size: int) -> dict:
    """One ingest of ``data`` into a fresh store at ``home`` with this process's ``simsearch``."""
    import simsearch
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ingest import Ingester, files_from_folder

    files, _ = files_from_folder(data, labels="folders")
    settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'db.sqlite'}", weights_path=weights)
    services = AppContext.open(settings, schema="upgrade")
    try:
        space = services.new_space("efficientnet_lite0", "avg", None)
        emb = services.embedder(space)
        emb.load()
        emb.embed(np.zeros((batch_size, emb.input_size, emb.input_size, 3), np.uint8))  # (first-call costs)
        import faiss  # noqa: F401  (imported by the index update at the end: a one-time cost of the process, ~0.3 s)
        spent = time_steps()
        cpu0, t0 = os.times(), time.perf_counter()
        with ThreadClock() as clock:
            report = Ingester(services, spaces=[space], batch_size=batch_size).run("bench", files, source=str(data))
            services.indexes.shutdown(wait=True)  # (background index updates belong to the ingest)
        seconds, cpu1 = time.perf_counter() - t0, os.times()
        assert report.added == len(files) and not report.errors, report.errors
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        n = len(files)
        return {"tree": str(Path(simsearch.__file__).parents[1]), "home": str(home), "numerics": emb.numerics, "images": n,
                "images_per_s": round(n / seconds, 1), "seconds": round(seconds, 3),
                "model_seconds": round(report.model_seconds, 3),
                "loop_seconds": round(report.seconds, 3), "cpu_seconds": round(cpu, 3),
                "core_ms_per_image": round(1000 * cpu / n, 2), "cores_busy": round(cpu / seconds, 2),
                "cpu_seconds_by_thread": clock.by_group(),
                "core_ms_per_image_by_step": {k: round(1000 * spent[k] / n, 3) for k in STEPS}, "load_average": [round(v, 2) for v in os.getloadavg()]}
    finally:
        services.close()


def tf_bare(data: Path, weights: Path, batch_size: int, emb=None):
    """Images/s of the TF fp32 bare forward (preprocess + network) on the folder's pre-decoded photos."""
    from simsearch.embedding.embedder import Embedder
    from simsearch.images import THUMBNAIL_SIDE, load_image, resize_for_model, scan_images
    from simsearch.spaces import parse, space_key

    if emb is None:
        emb = Embedder(parse(space_key("efficientnet_lite0", "avg", "fp32")), weights, runtime="keras", device="cpu")
        emb.load()
        size = emb.input_size
        emb.px = np.stack([resize_for_model(load_image(p, draft_size=size, draft_long=THUMBNAIL_SIDE).image, size)
                           for p in sorted(scan_images(data))])
    px, bs = emb.px, batch_size
    n = (len(px) // bs) * bs
    emb.embed(px[:bs])
    t0 = time.perf_counter()
    for i in range(0, n, bs):
        emb.embed(px[i:i + bs])
    return n / (time.perf_counter() - t0), emb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATASETS / "cats-dogs")
    ap.add_argument("--weights", type=Path, default=Path(os.environ.get("SIMSEARCH_WEIGHTS_DIR", "")) or None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trees", nargs="*", default=[])
    ap.add_argument("--no-tf", action="store_true", help="skip the TF fp32 reference")
    ap.add_argument("--child", action="store_true", help="one ingest in this process; a JSON line on stdout")
    ap.add_argument("--tree", help="(with --child) import simsearch from this tree, not this script's")
    args = ap.parse_args()
    if args.tree:  # (ahead of the path harness put first; nothing has imported simsearch yet)
        assert "simsearch" not in sys.modules
        sys.path.insert(0, str(Path(args.tree).resolve()))
    work = Path(tempfile.mkdtemp(prefix="simsearch-ingest-cost-"))
    weights = args.weights or work / "weights"
    if args.child or not args.trees:
        result = ingest_once(args.data, weights, work / "home", args.batch_size)
        print(json.dumps(result), flush=True)
        return
    runs: dict[str, list[dict]] = {str(t): [] for t in args.trees}
    tf_runs, tf_emb = [], None
    for r in range(args.rounds):
        if not args.no_tf:
            rate, tf_emb = tf_bare(args.data, weights, args.batch_size, tf_emb)
            tf_runs.append(rate)
        order = args.trees if r % 2 == 0 else args.trees[::-1]
        for tree in order:
            env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()), SIMSEARCH_WEIGHTS_DIR=str(weights))
            out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", "--data", str(args.data),
                                  "--batch-size", str(args.batch_size), "--tree", str(tree)], env=env, check=True,
                                 capture_output=True, text=True).stdout
            res = json.loads(out.strip().splitlines()[-1])
            res["round"] = r
            runs[str(tree)].append(res)
            log(f"round {r} {tree}: {res['images_per_s']} images/s, {res['core_ms_per_image']} core-ms/image, "
                f"{res['cores_busy']} cores, load {res['load_average']}")
        if tf_runs:
            log(f"round {r}: TF fp32 bare {tf_runs[-1]:.1f} images/s")
    tf = float(np.median(tf_runs)) if tf_runs else None
    summary = {}
    for tree, rs in runs.items():
        rates = [x["images_per_s"] for x in rs]
        summary[tree] = {"images_per_s_median": float(np.median(rates)), "runs": rates,
                         "core_ms_per_image_median": float(np.median([x["core_ms_per_image"] for x in rs])),
                         "over_tf_fp32_bare": round(float(np.median(rates)) / tf, 2) if tf else None,
                         "over_tf_fp32_same_round": [round(x["images_per_s"] / tf_runs[x["round"]], 2)
                                                     for x in rs] if tf_runs else None}
    emit({"benchmark": "ingest_cost", "data": str(args.data), "batch_size": args.batch_size, "rounds": args.rounds,
          "tf_fp32_bare_images_per_s": [round(x, 1) for x in tf_runs], "summary": summary, "runs": runs}, indent=1)


if __name__ == "__main__":
    main()
