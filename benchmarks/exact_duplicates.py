"""Byte-identical copies: are they listed by the exact tier, with both paths?

Method: N flowers102 photos (spread over the species, a fixed random choice) are copied into a
temporary folder under their own names; 100 of them (random, fixed seed) get a byte-identical
copy under another name in another folder (``planted/copy-XXX.jpg``). The folder is ingested with
the real pipeline (efficientnet_lite0, offline weights) into a temporary SQLite collection, then
``simsearch.ops.duplicates.find(tier="exact", per_page=None)`` lists the exact tier. A planted copy
counts as found when one group lists an image whose files include both its original's path and
its own. Also printed: the ingest's counts (new images, duplicate files reported) and how many
exact groups there are besides (pixel-identical photos already in the data set).

Before issue 18, an image was one row per (collection, content hash) with one path: a copy was
counted "already present", its path dropped, and 0 of 100 were listed.

    python benchmarks/exact_duplicates.py [--photos 300] [--copies 100] [--seed 0]

Prints one JSON object (with the CPU model) on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, cpu_model, emit, log  # noqa: E402  benchmarks/harness.py

DATA = ROOT.parent / "shared" / "datasets" / "flowers102"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=300, help="flowers102 photos ingested")
    ap.add_argument("--copies", type=int, default=100, help="byte-identical copies planted under other names")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.ops import duplicates as dup

    everything = sorted(DATA.glob("*/*.jpg"))
    if len(everything) < args.photos:
        sys.exit(f"{DATA}: {len(everything)} photos, fewer than --photos {args.photos}")
    rng = random.Random(args.seed)
    chosen = rng.sample(everything, args.photos)
    planted = rng.sample(range(args.photos), args.copies)
    with tempfile.TemporaryDirectory(prefix="simsearch-exact-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "photos"
        pairs = []  # (original path, copy path)
        for n, src in enumerate(chosen):
            dest = folder / src.parent.name / src.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        for k, n in enumerate(planted):
            original = folder / chosen[n].parent.name / chosen[n].name
            copy = folder / "planted" / f"copy-{k:03d}.jpg"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(original, copy)
            pairs.append((str(original), str(copy)))
        settings = Settings.from_env(home=tmp / "home", database_url=f"sqlite:///{tmp / 'home' / 'db.sqlite'}")
        ctx = AppContext.open(settings, schema="upgrade")
        try:
            files, _ = files_from_folder(folder)
            log(f"ingesting {len(files)} files ({args.photos} photos + {args.copies} planted copies)")
            t0 = time.perf_counter()
            report = Ingester(ctx, spaces=[settings.default_backbone]).run("exact", files, source=str(folder))
            ingest_s = time.perf_counter() - t0
            log("listing the exact tier")
            t0 = time.perf_counter()
            result = dup.find(ctx, "exact", tier="exact", per_page=None)
            list_s = time.perf_counter() - t0
        finally:
            ctx.close()
    listed = []  # the set of paths of each image in an exact group
    for g in result.groups:
        for img in g.images:
            listed.append({f.path for f in img.files})
    found = sum(1 for a, b in pairs if any(a in paths and b in paths for paths in listed))
    emit({
        "benchmark": "exact_duplicates",
        "cpu": cpu_model(),
        "data": f"flowers102: {args.photos} photos (seed {args.seed}) + {args.copies} byte-identical copies under "
                "other names",
        "method": "real ingest (efficientnet_lite0) into SQLite, then duplicates.find(tier='exact', every group); "
                  "a copy is found when one image's files list both its path and its original's",
        "files": len(files),
        "ingest": {"added": report.added, "duplicates_reported": report.duplicates, "skipped": report.skipped,
                   "failed": report.failed, "seconds": round(ingest_s, 1)},
        "exact_groups": result.total_groups,
        "exact_groups_with_identical_bytes": sum(1 for g in result.groups if g.identical_files),
        "copies_listed_with_both_paths": found,
        "fraction_listed": round(found / args.copies, 4),
        "listing_seconds": round(list_s, 3),
    }, indent=1)


if __name__ == "__main__":
    main()
