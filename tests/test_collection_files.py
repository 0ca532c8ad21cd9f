"""The collection run's test files (benchmarks/collection_files.py): seeded variants of the shared
photos at log-uniform sizes, upscaled by OpenCV's bicubic and downscaled by PIL's LANCZOS, with
byte copies; the same seed makes the same bytes."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.conftest import DATASETS
from tests.helpers import benchmarks


def _make(dest, n=14, seed=3):
    cf = benchmarks.load("collection_files")
    srcs = cf.sources(DATASETS, ["flowers102"])[:2]
    made = cf.generate(dest, srcs, n, seed=seed, mp_min=0.05, mp_max=1.5, exact_share=0.2, processes=1, per_source=7)
    return made, {p.relative_to(dest).as_posix(): p.read_bytes() for p in sorted(dest.rglob("*.jpg"))}


def test_files_are_sized_variants_and_byte_copies_and_repeat_with_the_seed(tmp_path):
    made, files = _make(tmp_path / "a")
    assert made["files"] == len(files) == 14 and made["source_images_used"] == 2
    assert 0.05 * 0.98 <= made["megapixels_min"] and made["megapixels_max"] <= 1.5 * 1.02
    sizes = []
    for name, data in files.items():
        with Image.open(tmp_path / "a" / name) as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            sizes.append(im.width * im.height)
    cf = benchmarks.load("collection_files")
    source_pixels = [Image.open(p).size for _, p in cf.sources(DATASETS, ["flowers102"])[:2]]
    smallest_source = min(w * h for w, h in source_pixels)
    largest_source = max(w * h for w, h in source_pixels)
    # a crop keeps at least 60% of each side (36% of the pixels): below that a file was scaled down, above
    # its source's size scaled up; the seed makes both
    assert min(sizes) < 0.36 * smallest_source and max(sizes) > largest_source
    names = sorted(files)
    copies = [b for a, b in zip(names, names[1:]) if files[a] == files[b]]
    assert len(copies) == made["exact_copies"] >= 1
    assert len({files[k] for k in names}) == len(names) - made["exact_copies"]
    _, again = _make(tmp_path / "b")
    assert again == files
    pixels = [np.asarray(Image.open(tmp_path / "a" / k)).std() for k in names]
    assert min(pixels) > 5  # pictures, not flat fills
