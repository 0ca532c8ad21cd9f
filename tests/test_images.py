"""simsearch.images: decoding every mode we accept, refusing bad files clearly, resizing, scanning."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import subprocess
import sys
import textwrap
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from simsearch.errors import ImageDecodeError, InvalidInput
from simsearch.images import (
    IMAGE_EXTENSIONS,
    DecodedImage,
    content_hash,
    decode_image,
    load_image,
    make_thumbnail,
    phash,
    resize_for_model,
    scan_images,
    shrink,
)

REPO = Path(__file__).resolve().parent.parent
CATS = (REPO / ".." / "shared" / "datasets" / "cats-dogs" / "cats").resolve()

RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 255)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    im.save(out, format=fmt, **kw)
    return out.getvalue()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def assert_close(pixel, expected, tol=6):
    assert np.all(np.abs(np.asarray(pixel, int) - np.asarray(expected, int)) <= tol), (pixel, expected)


def png_header_only(width: int, height: int, color_type: int = 2) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` but whose IDAT holds only one row of zeros."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * width))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# ---------------------------------------------------------------- decoding good images


def test_plain_rgb_jpeg():
    data = encode(Image.new("RGB", (50, 30), (200, 100, 50)), "JPEG", quality=95)
    img = decode_image(data, source="a.jpg")
    assert isinstance(img, DecodedImage)
    assert img.rgb.dtype == np.uint8 and img.rgb.shape == (30, 50, 3)
    assert (img.width, img.height, img.format) == (50, 30, "JPEG")
    assert_close(img.rgb[15, 25], (200, 100, 50))


def test_exif_orientation_6_rotates_and_swaps_size():
    im = Image.new("RGB", (40, 20), RED)
    im.paste(BLUE, (20, 0, 40, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise for display
    data = encode(im, "JPEG", quality=95, exif=exif.tobytes())
    img = decode_image(data, source="rotated.jpg")
    assert img.rgb.shape == (40, 20, 3)
    assert (img.width, img.height) == (20, 40)
    assert_close(img.rgb[5, 10], RED, tol=20)  # left edge went to the top
    assert_close(img.rgb[35, 10], BLUE, tol=20)


def test_exif_orientation_with_draft_reports_original_size():
    exif = Image.Exif()
    exif[0x0112] = 8
    data = encode(Image.new("RGB", (1600, 1000), (10, 200, 10)), "JPEG", exif=exif.tobytes())
    img = decode_image(data, source="big.jpg", draft_size=224)
    assert (img.width, img.height) == (1000, 1600)
    h, w, _ = img.rgb.shape
    assert 224 <= w < 1000 and 224 <= h < 1600 and h > w


def test_cmyk_jpeg():
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    img = decode_image(data, source="cmyk.jpg")
    assert img.rgb.shape == (16, 16, 3)
    assert_close(img.rgb[8, 8], RED, tol=10)


def test_palette_png_with_transparency_composites_on_white():
    im = Image.new("P", (10, 10), 0)
    im.putpalette([0, 0, 0] + list(GREEN) + [0, 0, 0] * 254)
    im.paste(1, (5, 0, 10, 10))
    data = encode(im, "PNG", transparency=0)
    img = decode_image(data, source="pal.png")
    assert_close(img.rgb[5, 1], WHITE, tol=0)  # transparent black -> white, not black
    assert_close(img.rgb[5, 8], GREEN, tol=0)


def test_la_png_composites_on_white():
    a = np.zeros((4, 3, 2), np.uint8)
    a[:, 0] = (0, 0)  # fully transparent black
    a[:, 1] = (0, 255)  # opaque black
    a[:, 2] = (0, 128)  # half-transparent black
    data = encode(Image.fromarray(a, "LA"), "PNG")
    img = decode_image(data, source="la.png")
    assert_close(img.rgb[0, 0], WHITE, tol=0)
    assert_close(img.rgb[0, 1], (0, 0, 0), tol=0)
    assert_close(img.rgb[0, 2], (127, 127, 127), tol=1)


def test_rgba_png_composites_on_white():
    a = np.zeros((2, 2, 4), np.uint8)
    a[0, 0] = (255, 0, 0, 0)
    a[0, 1] = (255, 0, 0, 255)
    img = decode_image(encode(Image.fromarray(a, "RGBA"), "PNG"), source="rgba.png")
    assert_close(img.rgb[0, 0], WHITE, tol=0)
    assert_close(img.rgb[0, 1], RED, tol=0)


def test_one_bit_png():
    bits = np.indices((8, 8)).sum(axis=0) % 2 == 0
    data = encode(Image.fromarray(bits).convert("1"), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "1"
    img = decode_image(data, source="bits.png")
    assert set(np.unique(img.rgb)) == {0, 255}
    assert np.array_equal(img.rgb[:, :, 0] == 255, bits)
    assert np.array_equal(img.rgb[:, :, 0], img.rgb[:, :, 2])


def test_grayscale_8bit_png():
    a = np.array([[0, 100, 255]], np.uint8)
    img = decode_image(encode(Image.fromarray(a, "L"), "PNG"), source="g.png")
    assert img.rgb[0].tolist() == [[0, 0, 0], [100, 100, 100], [255, 255, 255]]


def test_16bit_grayscale_png_scales_not_clips():
    a = np.array([[0, 4096, 32768, 65535]], np.uint16)
    data = encode(Image.fromarray(a), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    img = decode_image(data, source="deep.png")
    assert img.rgb.dtype == np.uint8
    assert img.rgb[0, :, 0].tolist() == [0, 16, 128, 255]
    assert np.array_equal(img.rgb[..., 0], img.rgb[..., 1])


def test_16bit_big_endian_tiff():
    a = np.array([[0, 32768, 65535]], np.uint16)
    im = Image.frombytes("I;16B", (3, 1), a.astype(">u2").tobytes())
    data = encode(im, "TIFF")
    img = decode_image(data, source="deep.tif")
    assert img.format == "TIFF"
    assert img.rgb[0, :, 0].tolist() == [0, 128, 255]


def test_float_tiff():
    a = np.array([[0.0, 0.5, 1.0]], np.float32)
    data = encode(Image.fromarray(a, "F"), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "F"
    img = decode_image(data, source="float.tif")
    assert img.rgb[0, :, 0].tolist() == [0, 128, 255]


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (12, 12), c) for c in (RED, BLUE, GREEN)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    img = decode_image(data, source="anim.gif")
    assert img.format == "GIF" and img.rgb.shape == (12, 12, 3)
    assert_close(img.rgb[6, 6], RED, tol=0)


def test_animated_png_gives_first_frame():
    frames = [Image.new("RGB", (12, 12), c) for c in (BLUE, RED)]
    data = encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(data)).n_frames == 2
    img = decode_image(data, source="anim.png")
    assert_close(img.rgb[6, 6], BLUE, tol=0)


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_animated_webp_gives_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in (GREEN, RED)]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    img = decode_image(data, source="anim.webp")
    assert img.format == "WEBP"
    assert_close(img.rgb[8, 8], GREEN, tol=0)


def test_bmp():
    img = decode_image(encode(Image.new("RGB", (7, 5), BLUE), "BMP"), source="x.bmp")
    assert img.format == "BMP" and img.rgb.shape == (5, 7, 3)
    assert_close(img.rgb[2, 3], BLUE, tol=0)


def test_draft_size_is_jpeg_only_and_never_below_request():
    big = Image.new("RGB", (1000, 900), (30, 60, 90))
    jpeg = decode_image(encode(big, "JPEG"), source="big.jpg", draft_size=224)
    assert (jpeg.width, jpeg.height) == (1000, 900)
    assert jpeg.rgb.shape == (225, 250, 3)  # DCT scale 1/4: the smallest still >= 224 on both sides
    png = decode_image(encode(big, "PNG"), source="big.png", draft_size=224)
    assert png.rgb.shape == (900, 1000, 3)


def test_real_cat_photo_with_draft():
    path = CATS / "cat.10.jpg"
    if not path.exists():
        pytest.skip(f"dataset not present at {CATS}")
    with Image.open(path) as im:
        full_size = im.size
    img = load_image(path, draft_size=224)
    assert (img.width, img.height) == full_size
    assert img.format == "JPEG"
    assert img.rgb.shape[0] >= 224 and img.rgb.shape[1] >= 224
    assert img.rgb.std() > 10  # a photo, not a blank


def test_real_photos_decode_once_each_and_thread_safely(monkeypatch):
    from PIL import ImageFile

    paths = sorted(CATS.glob("*.jpg"))[:40]
    if len(paths) < 40:
        pytest.skip(f"dataset not present at {CATS}")
    datas = [p.read_bytes() for p in paths]
    decodes, real_load = [0], ImageFile.ImageFile.load

    def counting_load(im):
        decodes[0] += bool(im.tile)  # tiles left to read: a real decode (a second load() is a no-op)
        return real_load(im)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    serial = [decode_image(d, source=str(p)) for d, p in zip(datas, paths)]
    assert decodes[0] == len(datas)  # each photo's pixels are decoded once (no re-open, no second pass)
    assert all(img.rgb.dtype == np.uint8 and img.rgb.shape == (img.height, img.width, 3) for img in serial)
    with ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(lambda d: decode_image(d, draft_size=None), datas * 3))
    for i, img in enumerate(threaded):
        assert np.array_equal(img.rgb, serial[i % len(serial)].rgb)


# ---------------------------------------------------------------- refusing bad input


def decode_error(tmp_path: Path, name: str, data: bytes, **kw) -> ImageDecodeError:
    path = write(tmp_path, name, data)
    with pytest.raises(ImageDecodeError) as info:
        load_image(path, **kw)
    err = info.value
    assert err.source == str(path)
    assert str(path) in str(err) and err.reason in str(err)
    assert err.details == {"file": str(path), "reason": err.reason}
    return err


def test_empty_file(tmp_path):
    err = decode_error(tmp_path, "empty.jpg", b"")
    assert err.reason == "empty file (0 bytes)"
    with pytest.raises(ImageDecodeError, match="up.png: empty file"):
        decode_image(b"", source="up.png")


def test_truncated_jpeg(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "JPEG")
    err = decode_error(tmp_path, "cut.jpg", data[: len(data) // 2])
    assert err.reason.startswith("truncated image data")


def test_truncated_png(tmp_path):
    noise = np.random.default_rng(1).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "PNG")
    err = decode_error(tmp_path, "cut.png", data[: len(data) // 2])
    assert err.reason.startswith("truncated image data")


def test_random_bytes_named_jpg(tmp_path):
    junk = np.random.default_rng(2).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    junk = b"\x00\x13" + junk  # make sure it cannot start with a known magic number
    err = decode_error(tmp_path, "junk.jpg", junk)
    assert err.reason.startswith("not an image: unrecognised file format")


def test_jpeg_magic_then_garbage(tmp_path):
    err = decode_error(tmp_path, "broken.jpg", b"\xff\xd8\xff\xe0" + b"\x00\x01garbage" * 10)
    assert "corrupt" in err.reason and "JPEG" in err.reason


def test_text_file_named_jpg(tmp_path):
    err = decode_error(tmp_path, "notes.jpg", b"hello, this is a shopping list\nmilk\neggs\n")
    assert err.reason.startswith("not an image")
    assert "text" in err.reason and "hello" not in err.reason  # never quote the file (it may be a secret)


def test_missing_path(tmp_path):
    path = tmp_path / "nope" / "gone.jpg"
    with pytest.raises(ImageDecodeError) as info:
        load_image(path)
    assert info.value.reason == "file not found"
    assert str(path) in str(info.value)


def test_directory_path(tmp_path):
    folder = tmp_path / "album.jpg"
    folder.mkdir()
    with pytest.raises(ImageDecodeError) as info:
        load_image(folder)
    assert "directory" in info.value.reason
    assert str(folder) in str(info.value)


def test_decode_error_is_invalid_input():
    with pytest.raises(InvalidInput):
        decode_image(b"nope", source="x")


def test_pixel_limit_checked_against_our_limit(tmp_path):
    data = png_header_only(2000, 1000)
    err = decode_error(tmp_path, "wide.png", data, max_pixels=1_000_000)
    assert err.reason == "image has 2000000 pixels, more than the limit of 1000000 (SIMSEARCH_MAX_PIXELS)"
    # Exactly at the limit is allowed (the limit is inclusive).
    small = encode(Image.new("RGB", (2000, 1000), BLUE), "PNG")
    img = decode_image(small, source="at-limit.png", max_pixels=2_000_000)
    assert img.rgb.shape == (1000, 2000, 3)
    with pytest.raises(ImageDecodeError, match="more than the limit of 1999999"):
        decode_image(small, source="over.png", max_pixels=1_999_999)


def test_huge_header_reports_our_limit(tmp_path):
    # 30000 x 30000 is beyond Pillow's own guard too; the message still uses our limit.
    err = decode_error(tmp_path, "bomb.png", png_header_only(30000, 30000), max_pixels=64_000_000)
    assert err.reason == "image has 900000000 pixels, more than the limit of 64000000 (SIMSEARCH_MAX_PIXELS)"


def test_real_compressed_bomb_allocates_nothing_big(tmp_path):
    # A genuine, complete PNG of 9000 x 9000 black RGB pixels (243 MB decoded, ~240 KB on disk).
    width = height = 9000
    row = b"\x00" * (1 + 3 * width)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )
    path = write(tmp_path, "bomb.png", png)
    assert path.stat().st_size < 2_000_000
    script = textwrap.dedent(
        f"""
        import resource, sys
        from simsearch.images import load_image
        from simsearch.errors import ImageDecodeError
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_image({str(path)!r}, max_pixels=10_000_000)
        except ImageDecodeError as e:
            print(e.reason)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) // 1024)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    reason, grown_mb = out.stdout.strip().splitlines()
    assert reason == "image has 81000000 pixels, more than the limit of 10000000 (SIMSEARCH_MAX_PIXELS)"
    assert int(grown_mb) < 20, f"peak memory grew by {grown_mb} MB while refusing a bomb"


# ---------------------------------------------------------------- resize, thumbnail, hash


def test_resize_for_model_matches_pil_bilinear_squash():
    rgb = np.random.default_rng(3).integers(0, 256, (120, 300, 3), dtype=np.uint8)
    out = resize_for_model(rgb, 224)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    expected = np.asarray(Image.fromarray(rgb).resize((224, 224), Image.BILINEAR))
    assert np.array_equal(out, expected)
    assert resize_for_model(rgb, 32).shape == (32, 32, 3)


def test_resize_for_model_rejects_wrong_arrays():
    with pytest.raises(ValueError):
        resize_for_model(np.zeros((10, 10), np.uint8), 224)
    with pytest.raises(ValueError):
        resize_for_model(np.zeros((10, 10, 3), np.float32), 224)


def test_make_thumbnail_keeps_aspect_and_limits_side():
    rgb = np.zeros((500, 1000, 3), np.uint8)
    rgb[:, :500] = RED
    thumb = make_thumbnail(rgb, max_side=256)
    with Image.open(io.BytesIO(thumb)) as im:
        assert im.format == "JPEG" and im.size == (256, 128)
        im = im.convert("RGB")
        assert_close(im.getpixel((10, 64)), RED, tol=12)
        assert_close(im.getpixel((250, 64)), (0, 0, 0), tol=12)
    tall = make_thumbnail(np.zeros((900, 300, 3), np.uint8), max_side=100)
    assert Image.open(io.BytesIO(tall)).size == (33, 100)


def test_make_thumbnail_never_upscales():
    thumb = make_thumbnail(np.full((40, 60, 3), 128, np.uint8), max_side=256)
    assert Image.open(io.BytesIO(thumb)).size == (60, 40)


def test_content_hash():
    assert content_hash(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    data = encode(Image.new("RGB", (5, 5)), "PNG")
    assert content_hash(data) == hashlib.sha256(data).hexdigest()
    assert content_hash(data) != content_hash(data + b"\x00")


# ---------------------------------------------------------------- scanning


def test_extensions():
    assert set(IMAGE_EXTENSIONS) == {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}


def test_scan_images_recursive_sorted_filtered(tmp_path):
    names = [
        "b.jpg",
        "a.PNG",
        "sub/z.jpeg",
        "sub/deeper/c.TIFF",
        "sub/x.webp",
        "notes.txt",
        "noext",
        ".hidden.jpg",
        ".cache/inside.jpg",
        "sub/.git/objects.png",
        "c.gif",
        "d.bmp",
        "e.tif",
    ]
    for name in names:
        write(tmp_path, name, b"x")
    (tmp_path / "folder.jpg").mkdir()  # a directory with an image suffix is not a file
    found = list(scan_images(tmp_path))
    rel = [p.relative_to(tmp_path).as_posix() for p in found]
    assert rel == [
        "a.PNG",
        "b.jpg",
        "c.gif",
        "d.bmp",
        "e.tif",
        "sub/deeper/c.TIFF",
        "sub/x.webp",
        "sub/z.jpeg",
    ]
    assert all(isinstance(p, Path) for p in found)
    assert list(scan_images(str(tmp_path))) == found


def test_scan_images_single_file_root(tmp_path):
    path = write(tmp_path, "one.JPG", b"x")
    assert list(scan_images(path)) == [path]


def test_scan_images_missing_root(tmp_path):
    with pytest.raises(InvalidInput, match="no such file or directory"):
        list(scan_images(tmp_path / "missing"))


def test_pillow_bomb_warning_becomes_our_error(tmp_path):
    # 10000 x 10000 is past Pillow's warning threshold (~89.5M) but below its hard error.
    data = png_header_only(10000, 10000)
    expected = "image has 100000000 pixels, more than the limit of 64000000 (SIMSEARCH_MAX_PIXELS)"
    with pytest.warns(Image.DecompressionBombWarning):
        with pytest.raises(ImageDecodeError) as info:
            decode_image(data, source="warn.png", max_pixels=64_000_000)
    assert info.value.reason == expected
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. python -W error: the warning is raised inside Image.open
        with pytest.raises(ImageDecodeError) as info:
            decode_image(data, source="warn.png", max_pixels=64_000_000)
    assert info.value.reason == expected


@pytest.mark.parametrize("size", [(900, 600), (400, 1300), (256, 100), (120, 90)])
def test_one_shrink_gives_the_thumbnail_and_hashes_of_the_full_picture(size):
    """Ingest shrinks a picture once for the thumbnail and the perceptual hashes: both must be
    exactly what each computes from the full picture (stored hashes and thumbnails stay comparable)."""
    rng = np.random.default_rng(sum(size))
    rgb = (rng.random((size[1] // 8 + 1, size[0] // 8 + 1, 3)) * 255).astype(np.uint8)
    picture = Image.fromarray(rgb).resize(size, Image.BICUBIC)  # smooth, photo-like
    small = shrink(picture)
    assert max(small.size) == min(256, max(size))
    assert make_thumbnail(small) == make_thumbnail(picture)
    assert phash.image_hashes(small).tolist() == phash.image_hashes(picture).tolist()
