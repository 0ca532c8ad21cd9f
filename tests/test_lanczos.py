"""The perceptual hashes' own LANCZOS resize (simsearch.images.lanczos) against Pillow's
``Image.resize`` itself, and the five hashes against imagehash's ``phash`` of the same five
pictures: the same bits, on made pictures (noise, flat, gradients, stripes, tiny and already-32
sizes) and on the shared photos, so hashes stored before and after the faster path compare."""

from __future__ import annotations

from pathlib import Path

import math

import imagehash
import numpy as np
import pytest
from PIL import Image

from simsearch.images import THUMBNAIL_SIDE, load_image, shrink
from simsearch.images import lanczos, phash

DATASETS = (Path(__file__).resolve().parent.parent / ".." / "shared" / "datasets").resolve()


def imagehash_hashes(image) -> list[int]:
    """The five hashes as they were computed before the faster path: imagehash.phash of each picture."""
    def one(gray: Image.Image) -> int:
        bits = imagehash.phash(gray, hash_size=8).hash.reshape(-1)
        return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])

    gray = shrink(image, THUMBNAIL_SIDE).convert("L")
    out = [one(gray), one(gray.transpose(Image.Transpose.FLIP_LEFT_RIGHT))]
    for name in phash.NAMES[2:]:
        w, h = gray.size
        f = phash.CENTRES[name]
        dx, dy = round(w * (1 - f) / 2), round(h * (1 - f) / 2)
        out.append(one(gray if w - 2 * dx < 8 or h - 2 * dy < 8 else gray.crop((dx, dy, w - dx, h - dy))))
    return out


def c_weights(in_size: int, out_size: int) -> list[tuple[int, list[int]]]:
    """Pillow's precompute_coeffs + normalize_coeffs_8bpc for LANCZOS, line by line in scalar Python."""
    def sinc(x):
        if x == 0.0:
            return 1.0
        x = x * math.pi
        return math.sin(x) / x

    def lanczos_filter(x):
        return sinc(x) * sinc(x / 3) if -3.0 <= x < 3.0 else 0.0

    scale = filterscale = float(in_size) / out_size
    filterscale = max(filterscale, 1.0)
    support = 3.0 * filterscale
    out = []
    for xx in range(out_size):
        center = 0.0 + (xx + 0.5) * scale
        ww, ss = 0.0, 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = [lanczos_filter((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        for w in k:
            ww += w
        k = [w / ww if ww != 0.0 else w for w in k]
        out.append((xmin, [int(-0.5 + w * (1 << 22)) if w < 0 else int(0.5 + w * (1 << 22)) for w in k]))
    return out


def test_weights_are_pillows_step_by_step():
    """Every weight, not only the pixels they make (a weight one off rarely shows in a picture)."""
    for out_size in (32, 8, 45):
        for in_size in range(1, 600):
            got = [(xmin, ks.tolist()) for xmin, ks in lanczos.pillow_weights(in_size, out_size)]
            assert got == c_weights(in_size, out_size), (in_size, out_size)


def made_pictures() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    out = []
    for h, w in [(192, 256), (256, 171), (256, 256), (97, 256), (33, 40), (32, 32), (32, 200), (200, 32),
                 (7, 5), (1, 1), (31, 64), (256, 9), (1, 300), (300, 1), (2, 257), (600, 700)]:
        out.append((rng.random((h, w)) * 256).astype(np.uint8))  # noise: every weight matters
        out.append(np.full((h, w), int(rng.integers(0, 256)), np.uint8))  # flat: rounding at its edge
        ramp = np.add.outer(np.arange(h), 3 * np.arange(w)) % 256
        out.append(ramp.astype(np.uint8))
        out.append(np.where((np.arange(w) // 3) % 2, 255, 0).astype(np.uint8)[None].repeat(h, 0))  # stripes
    out.append(np.zeros((256, 256), np.uint8))
    out.append(np.full((180, 256), 255, np.uint8))  # (the clip at 255: LANCZOS overshoots)
    return out


@pytest.mark.parametrize("size", [(32, 32), (8, 8), (32, 17), (40, 64)])
def test_resize_is_pillows_lanczos_bit_for_bit(size):
    for a in made_pictures():
        ref = Image.fromarray(a)
        assert np.array_equal(lanczos.resize_gray(a, size), np.asarray(ref.resize(size, Image.LANCZOS))), a.shape
        flipped = ref.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize(size, Image.LANCZOS)
        assert np.array_equal(lanczos.resize_gray(a, size, mirrored=True), np.asarray(flipped)), a.shape
        assert np.array_equal(lanczos.resize_gray(a.astype(np.float64), size), lanczos.resize_gray(a, size))


def test_the_pass_order_rule_is_pillows():
    """The order rule against Pillow itself (a noise probe per shape) over a grid of shapes, and
    the once-per-process check that turns it on."""
    for h in range(2, 300, 7):
        for w in range(2, 300, 5):
            assert lanczos.probe_order((h, w), (32, 32)) == lanczos._rule((h, w), (32, 32)), (h, w)
    assert lanczos.rule_holds((32, 32))
    assert lanczos.pass_order((256, 100), (32, 32)) == "vh" and lanczos.pass_order((192, 256), (32, 32)) == "hv"


def test_resize_of_a_view_and_its_refusals():
    a = (np.random.default_rng(3).random((200, 250)) * 256).astype(np.uint8)
    crop = a[20:180, 25:225]  # (a strided view, as image_hashes passes its centre crops)
    expected = Image.fromarray(a).crop((25, 20, 225, 180)).resize((32, 32), Image.LANCZOS)
    assert np.array_equal(lanczos.resize_gray(crop, (32, 32)), np.asarray(expected))
    with pytest.raises(ValueError):
        lanczos.resize_gray(a[:, :, None], (32, 32))
    with pytest.raises(ValueError):
        lanczos.resize_gray(a[:0], (32, 32))
    with pytest.raises(ValueError):
        lanczos.resize_gray(a, (0, 32))


def test_products_stay_under_openblas_single_thread_size():
    """Each product is small enough that OpenBLAS runs it on the calling (decode) thread."""
    for in_size in (256, 1000):
        for block in lanczos.axis(in_size, 32).blocks:
            k = block[4]
            assert max(1, lanczos.SINGLE_THREAD_MACS // k.size) * k.size <= lanczos.SINGLE_THREAD_MACS < 65536 * 4


def test_hashes_are_imagehash_phash_on_made_pictures():
    rng = np.random.default_rng(11)
    pictures = [np.stack([a] * 3, axis=-1) for a in made_pictures()]
    for size in [(900, 600), (400, 1300), (256, 100), (120, 90), (64, 48)]:
        small = (rng.random((size[1] // 8 + 1, size[0] // 8 + 1, 3)) * 255).astype(np.uint8)
        pictures.append(np.asarray(Image.fromarray(small).resize(size, Image.BICUBIC)))
    for rgb in pictures:
        assert phash.image_hashes(rgb).tolist() == imagehash_hashes(Image.fromarray(rgb)), rgb.shape


@pytest.mark.parametrize("name", ["flowers102", "oxford-buildings", "cats-dogs", "flowers"])
def test_hashes_are_imagehash_phash_on_shared_photos(name):
    """Decoded as ingest decodes them (JPEG draft on); every 25th photo (benchmarks/phash_exact.py
    checks every photo of the four sets)."""
    paths = sorted((DATASETS / name).rglob("*.jpg"))
    if not paths:
        pytest.skip(f"dataset not present at {DATASETS / name}")
    for path in paths[::25]:
        picture = shrink(load_image(path, draft_size=224, draft_long=THUMBNAIL_SIDE).image)
        assert phash.image_hashes(picture).tolist() == imagehash_hashes(picture), path.name
