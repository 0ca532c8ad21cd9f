"""What each long `simsearch` command costs on the shared datasets; prints ONE JSON object.

    python benchmarks/cli_costs.py                       # cats-dogs (400) and flowers (300)
    python benchmarks/cli_costs.py --datasets flowers    # one of them
    python benchmarks/cli_costs.py --no-compare          # leave out `compare` (the slowest)

Each command runs as a user runs it (a fresh process: model loading and imports included) on a
fresh data directory with SQLite, wall-clock seconds. `compare` compares efficientnet_lite0 with
its max-pooled variant (efficientnet_lite0@max), so it embeds every image once more. The README's
"What long commands cost" table comes from this script. Progress goes to stderr.
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

from harness import ROOT, cpu_model, emit  # noqa: E402  benchmarks/harness.py

DATASETS = ROOT.parent / "shared" / "datasets"


def timed(args: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "simsearch", *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"simsearch {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    return round(seconds, 1), out.stdout


def measure(dataset: str, compare: bool) -> dict:
    folder = DATASETS / dataset
    with tempfile.TemporaryDirectory(prefix="simsearch-costs-") as home:
        env = dict(os.environ, SIMSEARCH_HOME=home, SIMSEARCH_DATABASE_URL="", SIMSEARCH_REDIS_URL="",
                   PYTHONPATH=str(ROOT), SIMSEARCH_PRECISION=os.environ.get("SIMSEARCH_PRECISION", "fp32"))
        rows = {}
        steps = [("ingest", ["ingest", str(folder), "-c", dataset, "--labels", "folders", "--json"]),
                 ("ingest again (all present)", ["ingest", str(folder), "-c", dataset, "--labels", "folders", "--json"]),
                 ("reindex", ["reindex", "-c", dataset]),
                 ("cluster -k auto", ["cluster", "-c", dataset]),
                 ("evaluate", ["evaluate", "-c", dataset]),
                 ("map (t-SNE)", ["map", "-c", dataset]),
                 ("map again (cached)", ["map", "-c", dataset])]
        if compare:
            steps.append(("compare (2 backbones)", ["compare", "-c", dataset, "-b", "efficientnet_lite0,efficientnet_lite0@max"]))
        for name, args in steps:
            print(f"[{time.strftime('%H:%M:%S')}] {dataset}: {name}", file=sys.stderr, flush=True)
            seconds, out = timed(args, env)
            row = {"seconds": seconds}
            if args[0] == "ingest":
                report = json.loads(out)
                row.update(images=report["total"], images_per_second=round(report["total"] / seconds, 1),
                           pipeline_images_per_second=report["images_per_second"])
            rows[name] = row
        images = sum(1 for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return {"dataset": dataset, "images": images, "commands": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="cats-dogs,flowers")
    ap.add_argument("--no-compare", action="store_true")
    a = ap.parse_args()
    results = [measure(d, not a.no_compare) for d in a.datasets.split(",") if d]
    emit({"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                      "note": "wall-clock seconds per command, a fresh process each (imports and model loading included)",
                      "results": results}, indent=1)


if __name__ == "__main__":
    main()
