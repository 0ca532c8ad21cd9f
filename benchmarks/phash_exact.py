"""The perceptual hashes' faster path against imagehash, on every photo of the shared sets. Prints one JSON object.

Each photo is decoded as ingest decodes it (JPEG draft for the model's input and the thumbnail) and
shrunk as ingest shrinks it; then ``phash.image_hashes`` (the resize of ``simsearch.images.lanczos``
+ imagehash's DCT steps) and imagehash's own ``phash`` of the same five pictures (whole, mirrored,
centre 90/80/70%: how the hashes were computed before) must give the same 5 x 64 bits. Also the
time of each on one thread (CPU seconds per photo, the two alternating per photo).

Usage: python benchmarks/phash_exact.py [--sets flowers102 oxford-buildings cats-dogs flowers]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from harness import ROOT, emit, log  # noqa: E402  benchmarks/harness.py

DATASETS = ROOT.parent / "shared" / "datasets"
if not DATASETS.is_dir():
    DATASETS = Path("/work/shared/datasets")


def imagehash_hashes(image) -> list[int]:
    """The five hashes as computed before the faster path: imagehash.phash of each picture."""
    import imagehash
    from PIL import Image

    from simsearch.images import THUMBNAIL_SIDE, phash, shrink

    def one(gray) -> int:
        bits = imagehash.phash(gray, hash_size=8).hash.reshape(-1)
        return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])

    gray = shrink(image, THUMBNAIL_SIDE).convert("L")
    out = [one(gray), one(gray.transpose(Image.Transpose.FLIP_LEFT_RIGHT))]
    w, h = gray.size
    for name in phash.NAMES[2:]:
        f = phash.CENTRES[name]
        dx, dy = round(w * (1 - f) / 2), round(h * (1 - f) / 2)
        out.append(one(gray if w - 2 * dx < 8 or h - 2 * dy < 8 else gray.crop((dx, dy, w - dx, h - dy))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="*", default=["flowers102", "oxford-buildings", "cats-dogs", "flowers"])
    ap.add_argument("--draft-size", type=int, default=224, help="the model's input side (ingest's draft)")
    args = ap.parse_args()

    from simsearch.images import THUMBNAIL_SIDE, load_image, phash, scan_images, shrink

    out = {}
    for name in args.sets:
        paths = sorted(scan_images(DATASETS / name))
        mismatches, ours, theirs, shapes = [], 0.0, 0.0, set()
        for path in paths:
            small = shrink(load_image(path, draft_size=args.draft_size, draft_long=THUMBNAIL_SIDE).image)
            shapes.add(small.size)
            t0 = time.thread_time()
            fast = phash.image_hashes(small).tolist()
            t1 = time.thread_time()
            reference = imagehash_hashes(small)
            t2 = time.thread_time()
            ours, theirs = ours + (t1 - t0), theirs + (t2 - t1)
            if fast != reference:
                mismatches.append(str(path.relative_to(DATASETS)))
        out[name] = {"photos": len(paths), "distinct_sizes": len(shapes), "mismatches": len(mismatches),
                     "mismatched": mismatches[:20],
                     "ms_per_photo_one_thread": {"faster_path": round(1000 * ours / len(paths), 3),
                                                 "imagehash": round(1000 * theirs / len(paths), 3)}}
        log(f"{name}: {out[name]}")
    emit({"benchmark": "phash_exact", "sets": out,
          "photos": sum(v["photos"] for v in out.values()),
          "mismatches": sum(v["mismatches"] for v in out.values())}, indent=1)


if __name__ == "__main__":
    main()
