"""Uploads cannot exhaust the server (issue 8): hostile image files are refused from their
structure before PIL scans them, search uploads have a pixel budget far below the ingest limit,
decodes run a bounded number at a time and large ones give their memory back."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageFile

from tests.helpers.api import png_header_only
from simsearch.errors import ImageDecodeError
from simsearch.images import decode as decode_mod
from simsearch.images.decode import decode_image

ZEROS = bytes(8 << 20)


def _jpeg(size=(64, 48), **kw) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", size, (120, 30, 200)).save(buf, "JPEG", **kw)
    return buf.getvalue()


@pytest.fixture
def pil_never_parses(monkeypatch):
    """Fail the test if PIL is asked to parse the file at all."""

    def refuse(*a, **k):
        raise AssertionError("PIL.Image.open was called on a file the structure check should refuse")

    monkeypatch.setattr(decode_mod.Image, "open", refuse)


@pytest.mark.parametrize("data,words", [
    (b"\xff\xd8\xff" + ZEROS, "no frame header"),
    (b"\xff\xd8" + b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + ZEROS, "no frame header"),
    (b"\xff\xd8\xff\xc0\x00\x11\x08\x10\x00\x10\x00\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01" + ZEROS, "no SOS"),
    (b"\xff\xd8" + b"\xff\x00" * 20_000, "markers"),
    (b"\xff\xd8" + b"\xff" * 100_000, "fill bytes"),
    (b"\xff\xd8\xff\xda\x00\x02" + ZEROS, "before any frame header"),
    (b"GIF89a" + ZEROS, "screen size"),
    (b"GIF89a\x10\x00\x10\x00\x00\x00\x00" + ZEROS, "unexpected block"),
    (b"GIF89a\x10\x00\x10\x00\x00\x00\x00" + b"\x21\xf9" + b"\x01\x00" * 200_000, "extension"),
    (b"\x89PNG\r\n\x1a\n" + ZEROS, "header (IHDR)"),
])
def test_hostile_headers_are_refused_before_pil_parses_them(pil_never_parses, data, words):
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data, "upload.jpg")
    assert words in info.value.reason


def test_sane_files_still_decode_after_the_structure_check(tmp_path):
    assert decode_image(_jpeg()).width == 64
    assert decode_image(_jpeg(progressive=True, exif=PILImage.Exif().tobytes())).height == 48
    for fmt in ("PNG", "GIF", "BMP", "TIFF", "WEBP"):
        buf = io.BytesIO()
        PILImage.new("RGB", (20, 10), (1, 2, 3)).save(buf, fmt)
        assert decode_image(buf.getvalue()).rgb.shape == (10, 20, 3), fmt
    frames = [PILImage.new("P", (8, 8), i) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], comment=b"x" * 600, loop=0)
    assert decode_image(buf.getvalue()).width == 8


def test_decode_errors_never_quote_the_file():
    secret = b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    for data in (secret, b"\x01\x02secret-bytes\x03\x04" * 4):
        with pytest.raises(ImageDecodeError) as info:
            decode_image(data, "photo.jpg")
        text = info.value.message + repr(info.value.details)
        assert "root" not in text and "secret" not in text and "01 02" not in text, text
        assert info.value.reason.startswith("not an image")


# ---- the search pixel budget -------------------------------------------------------------------------

class _StubEmbedder:
    input_size = 224
    dim = 4

    def embed(self, pixels):
        return np.ones((len(pixels), self.dim), np.float32) / 2

    def embed_regions(self, image, boxes):  # the whole image, then each box (as Embedder.embed_regions)
        return np.ones((1 + len(boxes), self.dim), np.float32) / 2


@pytest.fixture
def stub_services(sqlite_settings):
    from simsearch.context import AppContext

    svc = AppContext.open(sqlite_settings)
    svc.embedder = lambda space: _StubEmbedder()
    yield svc
    svc.close()


def test_search_uploads_have_a_pixel_budget_below_the_ingest_limit(stub_services, monkeypatch):
    from simsearch.config import DEFAULT_SEARCH_MAX_PIXELS
    from simsearch.search import embed_bytes

    loads = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda im: loads.append(im.size) or real_load(im))
    bomb = png_header_only(8000, 7800)  # 62.4 Mpx in a few hundred bytes: allowed at ingest (64 Mpx)
    assert len(bomb) < 200_000
    assert stub_services.settings.search_max_pixels == DEFAULT_SEARCH_MAX_PIXELS <= 40_000_000
    with pytest.raises(ImageDecodeError) as info:
        embed_bytes(stub_services, "efficientnet_lite0", bomb, "big.png")
    assert "SIMSEARCH_SEARCH_MAX_PIXELS" in info.value.reason
    assert loads == []  # refused before any pixel was decoded
    # a large JPEG is decoded at a reduced scale: within the budget
    big_jpeg = _jpeg((7000, 4000), quality=30)
    vec, _ = embed_bytes(stub_services, "efficientnet_lite0", big_jpeg, "photo.jpg")
    assert vec.shape == (4,)
    assert loads and loads[-1][0] * loads[-1][1] < 1_000_000


def test_search_pixel_budget_is_a_setting(monkeypatch, tmp_path):
    from simsearch.config import Settings

    monkeypatch.setenv("SIMSEARCH_SEARCH_MAX_PIXELS", "1000")
    assert Settings.from_env(home=tmp_path).search_max_pixels == 1000


def test_large_decodes_give_their_memory_back(stub_services, monkeypatch):
    from simsearch.search import embed_bytes

    trims = []
    monkeypatch.setattr(decode_mod, "_malloc_trim", lambda: trims.append)
    buf = io.BytesIO()
    PILImage.new("RGB", (4000, 2500), (9, 9, 9)).save(buf, "PNG")  # 10 Mpx, decoded in full
    embed_bytes(stub_services, "efficientnet_lite0", buf.getvalue(), "big.png")
    assert trims == [0]
    embed_bytes(stub_services, "efficientnet_lite0", _jpeg(), "small.jpg")
    assert trims == [0]  # small decodes leave the heap alone


def test_malloc_trim_is_available_on_glibc():
    import platform

    if platform.libc_ver()[0] == "glibc":
        assert decode_mod.release_memory() is True


def test_concurrent_decodes_are_bounded(monkeypatch):
    monkeypatch.setattr(decode_mod, "_DECODE_SEMAPHORE", threading.BoundedSemaphore(2), raising=False)
    active, peak, lock = [0], [0], threading.Lock()
    real_load = ImageFile.ImageFile.load

    def slow_load(im):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        try:
            return real_load(im)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(ImageFile.ImageFile, "load", slow_load)
    data = _jpeg()
    threads = [threading.Thread(target=decode_image, args=(data,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2
    assert decode_mod.DECODE_SLOTS >= 1
