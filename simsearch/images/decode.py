"""Turn file bytes into an RGB uint8 array, refusing anything that is not a complete, sane image.

Thread-safety: nothing here touches PIL's global state (``Image.MAX_IMAGE_PIXELS`` and
``ImageFile.LOAD_TRUNCATED_IMAGES`` are left alone). Our own pixel limit is checked from the
header that ``Image.open`` parses before any pixel data is decoded; if PIL's own, separate
decompression-bomb guard fires first it is reported as the same kind of error.

Hostile files are refused before they cost much (see :mod:`simsearch.images.headers`): JPEG and
GIF structure is checked before PIL parses it (PIL reads a JPEG's or GIF's junk one byte at a time
in Python: ``FF D8 FF`` + 63 MB of zeros took 28 s of CPU), at most :data:`DECODE_SLOTS` images are
decoded at once in a process (each can take hundreds of MB), and :func:`release_memory` hands
the memory of a large decode back to the operating system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import os
import re
import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image, UnidentifiedImageError

from simsearch.config import DEFAULT_MAX_PIXELS
from simsearch.errors import ImageDecodeError
from simsearch.images.draft import apply_draft
from simsearch.images.headers import check_structure

_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = {5, 6, 7, 8}

# Magic numbers of the formats we accept, to tell "damaged image" from "not an image at all".
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)

_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


DECODE_SLOTS = _cores()  # images decoded at once per process (decoding is CPU-bound: no gain beyond)
_DECODE_SEMAPHORE = threading.BoundedSemaphore(DECODE_SLOTS)
LARGE_DECODE_PIXELS = 8_000_000  # after decoding this many pixels, give the freed memory back


@dataclass(frozen=True)
class DecodedImage:
    """A decoded image: ``image`` is an RGB PIL image with EXIF orientation applied, and ``rgb``
    the same pixels as a uint8 (H, W, 3) array (made on first use: copying costs time at ingest
    rates, and the resize and thumbnail functions take the PIL image directly).

    ``width`` and ``height`` are the full-resolution size after orientation, even when a JPEG
    draft decode made ``rgb`` smaller. ``format`` is PIL's name for the file format ("JPEG", ...).
    """

    image: Image.Image
    width: int
    height: int
    format: str

    @cached_property
    def rgb(self) -> np.ndarray:
        return np.array(self.image, dtype=np.uint8)


def _sniff_format(data: bytes) -> str | None:
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _not_an_image_reason(data: bytes) -> str:
    fmt = _sniff_format(data)
    if fmt:
        return f"truncated or corrupt {fmt} file: the header cannot be read"
    # Never quote the file: its content may be a secret (a swapped symlink once showed /etc/passwd).
    head = data[:64]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        return "not an image: the file looks like text"
    return "not an image: unrecognised file format"


def _too_many_pixels(pixels: int, max_pixels: int, setting: str = "SIMSEARCH_MAX_PIXELS") -> str:
    return f"image has {pixels} pixels, more than the limit of {max_pixels} ({setting})"


def _bomb_reason(exc: BaseException, max_pixels: int) -> str:
    match = _BOMB_PIXELS.search(str(exc))
    if match is None:
        return f"image has too many pixels: {exc}"
    pixels = int(match.group(1))
    if pixels > max_pixels:
        return _too_many_pixels(pixels, max_pixels)
    # Our limit allows it but Pillow's process-wide guard does not.
    return (
        f"image has {pixels} pixels, more than Pillow's limit (PIL.Image.MAX_IMAGE_PIXELS); "
        f"SIMSEARCH_MAX_PIXELS={max_pixels} cannot raise it"
    )


def _failure_reason(exc: BaseException, max_pixels: int) -> str:
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return _bomb_reason(exc, max_pixels)
    if isinstance(exc, MemoryError):
        return "not enough memory to decode the image"
    message = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "truncated" in message.lower():
        return f"truncated image data ({message})"
    return f"corrupt image data ({message})"


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
        return int(value) if int(value) in _TRANSPOSE else 1
    except Exception:  # malformed EXIF: keep the pixels as stored
        return 1


def _scale_to_uint8(values: np.ndarray, full_scale: float | None) -> np.ndarray:
    """Map ``values`` to 0..255: by ``full_scale`` when given, else by their own min..max."""
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if full_scale is None:
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            return np.zeros(values.shape, np.uint8)
        values = (values - lo) / (hi - lo)
    else:
        values = values / full_scale
    return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)


def _high_depth_gray(im: Image.Image) -> np.ndarray:
    """Gray levels of a 16-bit, 32-bit integer or float image, scaled (not clipped) to uint8."""
    values = np.asarray(im)
    if im.mode.startswith("I;16"):
        return _scale_to_uint8(values, 65535.0)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if im.mode == "F" and lo >= 0.0 and hi <= 1.0:
        return _scale_to_uint8(values, 1.0)
    if lo >= 0.0 and hi <= 255.0 and im.mode == "F":
        return _scale_to_uint8(values, 255.0)
    if lo >= 0.0 and hi <= 65535.0:  # mode "I" holding 16-bit samples (PNG/TIFF)
        return _scale_to_uint8(values, 65535.0)
    return _scale_to_uint8(values, None)


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_high_depth_gray(im)).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def decode_image(
    data: bytes,
    source: str = "<bytes>",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
    draft_long: int = 0,
    *,
    max_decoded_pixels: int | None = None,
    decoded_limit_name: str = "SIMSEARCH_SEARCH_MAX_PIXELS",
) -> DecodedImage:
    """Decode image file bytes to RGB uint8; the first frame of animations.

    Raises :class:`ImageDecodeError` naming ``source`` for empty, non-image, truncated or corrupt
    data and for images with more than ``max_pixels`` pixels (checked before decoding). With
    ``draft_size``, JPEGs at least twice that size are decoded at a reduced DCT scale that keeps
    both sides >= draft_size and the long side >= ``draft_long`` (see :mod:`.draft`).
    ``max_decoded_pixels`` is a tighter budget on the pixels actually decoded (after the JPEG draft
    scale), for requests that must stay cheap (search uploads); ``decoded_limit_name`` names the
    setting in the error.
    """
    if not data:
        raise ImageDecodeError(source, "empty file (0 bytes)")
    problem = check_structure(data)
    if problem is not None:
        raise ImageDecodeError(source, problem)
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageDecodeError(source, _not_an_image_reason(data)) from None
    except Exception as exc:
        raise ImageDecodeError(source, _failure_reason(exc, max_pixels)) from exc
    try:
        width, height = im.size
        if width * height > max_pixels:
            raise ImageDecodeError(source, _too_many_pixels(width * height, max_pixels))
        if width <= 0 or height <= 0:
            raise ImageDecodeError(source, f"corrupt image data (size {width}x{height})")
        fmt = im.format or "unknown"
        apply_draft(im, draft_size, draft_long)
        decoded = im.size[0] * im.size[1]
        if max_decoded_pixels is not None and decoded > max_decoded_pixels:
            raise ImageDecodeError(source, _too_many_pixels(decoded, max_decoded_pixels, decoded_limit_name))
        try:
            with _DECODE_SEMAPHORE:
                orientation = _orientation(im)  # a PNG's EXIF can follow its pixels: this may decode them
                im.load()
                if orientation != 1:
                    im = im.transpose(_TRANSPOSE[orientation])
                rgb = _to_rgb(im)
                if rgb is im:  # keep the pixels once im is closed
                    rgb = im.copy()
        except ImageDecodeError:
            raise
        except Exception as exc:
            raise ImageDecodeError(source, _failure_reason(exc, max_pixels)) from exc
    finally:
        im.close()
    if orientation in _SWAPS_AXES:
        width, height = height, width
    return DecodedImage(image=rgb, width=width, height=height, format=fmt)


def load_image(
    path: str | os.PathLike,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
    draft_long: int = 0,
) -> DecodedImage:
    """Read ``path`` and :func:`decode_image` it; unreadable paths raise :class:`ImageDecodeError` too."""
    source = os.fspath(path)
    if os.path.isdir(source):
        raise ImageDecodeError(source, "is a directory, not an image file")
    try:
        with open(source, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ImageDecodeError(source, "file not found") from None
    except PermissionError:
        raise ImageDecodeError(source, "permission denied") from None
    except OSError as exc:
        raise ImageDecodeError(source, f"cannot read file ({exc.strerror or exc})") from None
    return decode_image(data, source=source, max_pixels=max_pixels, draft_size=draft_size, draft_long=draft_long)


# ---- giving memory back ------------------------------------------------------------------------

_TRIM = None
_TRIM_LOCK = threading.Lock()


def _malloc_trim():
    """glibc's ``malloc_trim`` (None elsewhere: musl, macOS, Windows)."""
    global _TRIM
    with _TRIM_LOCK:
        if _TRIM is None:
            _TRIM = False
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                fn = libc.malloc_trim
                fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
                _TRIM = fn
            except (OSError, AttributeError):
                pass
    return _TRIM or None


def release_memory() -> bool:
    """Give freed heap memory back to the operating system (glibc ``malloc_trim(0)``).

    Pillow allocates a large image in 16 MB blocks; once glibc's adaptive mmap threshold has risen
    past that size they come from the heap, and freeing them keeps the process's memory at its
    peak (four concurrent 62-megapixel decodes left 2.9 GB resident). Call this after the pixels
    of a large decode are dropped. Returns whether memory could be trimmed on this platform."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


def is_large(img: DecodedImage) -> bool:
    """Whether ``img`` was a large decode (:data:`LARGE_DECODE_PIXELS`): worth a :func:`release_memory`."""
    w, h = img.image.size
    return w * h >= LARGE_DECODE_PIXELS
