"""Pixel operations on decoded RGB images (arrays or PIL images): model input resizing, thumbnails, content hashing."""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image


def _as_image(rgb: np.ndarray | Image.Image) -> Image.Image:
    """An RGB PIL image from a uint8 (H, W, 3) array or an RGB PIL image (used as it is)."""
    if isinstance(rgb, Image.Image):
        if rgb.mode != "RGB" or rgb.width == 0 or rgb.height == 0:
            raise ValueError(f"expected a non-empty RGB image, got mode {rgb.mode} size {rgb.size}")
        return rgb
    _check_rgb(rgb)
    return Image.fromarray(rgb)


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        dtype = getattr(rgb, "dtype", type(rgb).__name__)
        raise ValueError(f"expected a uint8 array of shape (H, W, 3), got {dtype} {shape}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"empty image array of shape {rgb.shape}")


def resize_for_model(rgb: np.ndarray | Image.Image, size: int) -> np.ndarray:
    """Squash ``rgb`` (array or RGB PIL image) to ``(size, size, 3)`` uint8 with PIL bilinear
    resampling (no crop, aspect not kept)."""
    im = _as_image(rgb)
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    return np.asarray(im.resize((size, size), Image.BILINEAR), dtype=np.uint8)


THUMBNAIL_SIDE = 256


def shrink(rgb: np.ndarray | Image.Image, max_side: int = THUMBNAIL_SIDE) -> Image.Image:
    """``rgb`` (array or PIL image, left unchanged) scaled down (never up) so its longest side is at
    most ``max_side``: the one resize behind the thumbnail and the perceptual hashes. Ingest shrinks
    a picture once and gives the small copy to both (a picture already small is returned as is, so
    :func:`make_thumbnail` and :func:`simsearch.images.phash.image_hashes` give the same bytes and
    hashes from it as from the full picture)."""
    im = _as_image(rgb)
    if max_side <= 0:
        raise ValueError(f"max_side must be positive, got {max_side}")
    w, h = im.size
    scale = max_side / max(w, h)
    if scale < 1:
        im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR, reducing_gap=2.0)
    return im


def make_thumbnail(rgb: np.ndarray | Image.Image, max_side: int = THUMBNAIL_SIDE, quality: int = 85) -> bytes:
    """JPEG bytes of ``rgb`` (array or RGB PIL image, left unchanged) scaled down (never up) so
    its longest side is at most ``max_side``."""
    im = shrink(rgb, max_side)
    out = io.BytesIO()
    im.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def content_hash(data: bytes | bytearray | memoryview) -> str:
    """SHA-256 hex digest of the raw file bytes (identifies duplicate files regardless of name)."""
    return hashlib.sha256(data).hexdigest()
