"""Two checkouts of simsearch side by side on the collection run's costliest CPU steps; prints ONE
JSON object (benchmarks/harness.py). Used for the duplicates and generator changes of 2026-12-07
(docs/benchmarks.md, "Duplicates and the test files made cheaper").

    python benchmarks/checkouts_side_by_side.py --base ../main --files 300
    SIMSEARCH_DATABASE_URL=... SIMSEARCH_HOME=... AWS_ENDPOINT_URL=... \\
        python benchmarks/checkouts_side_by_side.py --base ../main --collection bench --rounds 2
    (the same environment) python benchmarks/checkouts_side_by_side.py --base ../old --files 0 \
        --collection bench --reembed efficientnet_lite0@gem3+flip+ms --reembed-images 500

- **generate**: ``collection_files.generate`` of each checkout (seed 0, 0.3-12 MP, 2 processes):
  CPU milliseconds a file (the pool's processes), mean bytes and megapixels;
- **duplicates** (with ``--collection``: a kept collection, e.g. ``collection_run.py --keep``, its
  environment set as that run sets it): ``simsearch duplicates -c NAME --json`` of each checkout,
  run from the checkout's folder, after deleting the cached pairs (so each computes them): wall
  and CPU seconds, and whether every tier's groups are the same image ids in the same order;
- **reembed** (with ``--collection`` and ``--reembed SPACE``): a re-embedding job of
  ``--reembed-images`` of the collection's images in SPACE (e.g. ``efficientnet_lite0@gem3+flip+ms``,
  the variant tune chose at 100,000), run in a process of each checkout without the queue (as
  `simsearch embed` without ``--queue`` runs it), reading the images again from where they were
  ingested (the bucket); each round and checkout takes its own images (a seeded shuffle of the
  collection, cut in disjoint parts), so none finds vectors an earlier one stored: images a second,
  wall and CPU seconds (it replaces the duplicates measure).
Rounds alternate the checkouts (base, this, base, this, ...) so the load falls on both alike.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, emit, log  # noqa: E402  benchmarks/harness.py

SETS = "flowers102,oxford-buildings,cats-dogs,flowers"


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def generate(root: Path, label: str, n: int, data: Path, work: Path) -> dict:
    spec = importlib.util.spec_from_file_location(f"collection_files_{label}", root / "benchmarks" / "collection_files.py")
    cf = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = cf  # (the pool's processes find _variant by its module's name)
    spec.loader.exec_module(cf)
    with tempfile.TemporaryDirectory(dir=work) as d:
        t0, c0, load = time.perf_counter(), _children_cpu(), os.getloadavg()[0]
        made = cf.generate(Path(d), cf.sources(data, SETS.split(",")), n, seed=0, mp_min=0.3, mp_max=12.0,
                           exact_share=0.01, processes=2, per_source=30)
        return {"cpu_ms_per_file": round(1000 * (_children_cpu() - c0) / n, 1), "wall_s": round(time.perf_counter() - t0, 1),
                "mean_bytes": made["mean_bytes"], "megapixels_mean": made["megapixels_mean"],
                "load_average": [load, os.getloadavg()[0]]}


def duplicates(root: Path, collection: str) -> tuple[dict, dict]:
    drop = ("from simsearch.config import Settings; from simsearch.context import AppContext; "
            "from simsearch.store.models import AnalysisResult as R; from sqlalchemy import delete; "
            "ctx = AppContext.open(Settings.from_env(), schema=None)\n"
            "with ctx.db.session() as s: s.execute(delete(R).where(R.kind == 'duplicates')); s.commit()")
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-c", drop], cwd=root, env=env, check=True)
    t0, c0, load = time.perf_counter(), _children_cpu(), os.getloadavg()[0]
    out = subprocess.run([sys.executable, "-m", "simsearch.cli", "duplicates", "-c", collection, "--json", "--no-progress"],
                         cwd=root, env=env, check=True, capture_output=True, text=True).stdout
    found = {t: [[i["id"] for i in g["images"]] for g in r["groups"]] for t, r in json.loads(out)["results"].items()}
    return ({"cpu_s": round(_children_cpu() - c0, 1), "wall_s": round(time.perf_counter() - t0, 1),
             "groups": {t: len(g) for t, g in found.items()}, "load_average": [load, os.getloadavg()[0]]}, found)


REEMBED = """
import json, random, sys, time
from sqlalchemy import select
from simsearch.config import Settings
from simsearch.context import AppContext
from simsearch.ops import reembed_jobs
from simsearch.store.models import Collection, Image
collection, space, part, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ctx = AppContext.open(Settings.from_env(), schema=None)
with ctx.db.session() as s:
    cid = s.scalar(select(Collection.id).where(Collection.name == collection))
    ids = sorted(s.scalars(select(Image.id).where(Image.collection_id == cid, Image.status == "ok")))
random.Random(0).shuffle(ids)
mine = ids[part * size:(part + 1) * size]
t0 = time.perf_counter()
job = reembed_jobs.run_here(ctx, collection, [space], ids=mine)
print(json.dumps({"seconds": time.perf_counter() - t0, "images": len(mine),
                  "embedded": job and job["embedded"], "failed": job and job["failed"]}))
"""


def reembed(root: Path, collection: str, space: str, part: int, size: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("SIMSEARCH_REDIS_URL", None)  # the pass in this process, as `simsearch embed` without --queue
    t0, c0, load = time.perf_counter(), _children_cpu(), os.getloadavg()[0]
    out = json.loads(subprocess.run([sys.executable, "-c", REEMBED, collection, space, str(part), str(size)],
                                    cwd=root, env=env, check=True, capture_output=True, text=True).stdout)
    wall = time.perf_counter() - t0
    return {"images": out["images"], "embedded": out["embedded"], "failed": out["failed"],
            "job_s": round(out["seconds"], 1), "images_per_s": round((out["embedded"] or 0) / out["seconds"], 2),
            "cpu_s": round(_children_cpu() - c0, 1), "wall_s": round(wall, 1), "load_average": [load, os.getloadavg()[0]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="The other checkout (e.g. ../main).")
    ap.add_argument("--files", type=int, default=300, help="Files each checkout's generator makes (0: none).")
    ap.add_argument("--collection", default=None, help="A kept collection to run duplicates on (its environment set).")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--reembed", default=None, help="A space to re-embed part of the kept collection in (with --collection).")
    ap.add_argument("--reembed-images", type=int, default=500, help="Images each round and checkout re-embeds.")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    args = ap.parse_args()
    checkouts = {"base": args.base.resolve(), "this": ROOT}
    result: dict = {"benchmark": "checkouts_side_by_side", "checkouts": {k: str(v) for k, v in checkouts.items()},
                    "generate": {k: [] for k in checkouts}, "duplicates": {k: [] for k in checkouts},
                    "reembed": {k: [] for k in checkouts}}
    groups = {}
    with tempfile.TemporaryDirectory(prefix="simsearch-sbs-") as work:
        for r in range(args.rounds):
            for label, root in checkouts.items():
                if args.files:
                    result["generate"][label].append(generate(root, f"{label}{r}", args.files, args.data, Path(work)))
                    log(f"generate {label} round {r}: {result['generate'][label][-1]}")
                if args.collection and args.reembed:
                    part = 2 * r + (label == "this")  # (each round and checkout its own images)
                    result["reembed"][label].append(reembed(root, args.collection, args.reembed, part,
                                                            args.reembed_images))
                    log(f"reembed {label} round {r}: {result['reembed'][label][-1]}")
                elif args.collection:
                    row, groups[label, r] = duplicates(root, args.collection)
                    result["duplicates"][label].append(row)
                    log(f"duplicates {label} round {r}: {row}")
    if groups:
        first = next(iter(groups.values()))
        result["duplicates"]["same_groups"] = all(g == first for g in groups.values())
    emit(result)


if __name__ == "__main__":
    main()
