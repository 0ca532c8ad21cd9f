"""Pixel operations on decoded RGB arrays: model input resizing, thumbnails, content hashing."""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        dtype = getattr(rgb, "dtype", type(rgb).__name__)
        raise ValueError(f"expected a uint8 array of shape (H, W, 3), got {dtype} {shape}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"empty image array of shape {rgb.shape}")


def resize_for_model(rgb: np.ndarray, size: int) -> np.ndarray:
    """Squash ``rgb`` to ``(size, size, 3)`` uint8 with PIL bilinear resampling (no crop, aspect not kept)."""
    _check_rgb(rgb)
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    resized = Image.fromarray(rgb).resize((size, size), Image.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def make_thumbnail(rgb: np.ndarray, max_side: int = 256, quality: int = 85) -> bytes:
    """JPEG bytes of ``rgb`` scaled down (never up) so its longest side is at most ``max_side``."""
    _check_rgb(rgb)
    if max_side <= 0:
        raise ValueError(f"max_side must be positive, got {max_side}")
    im = Image.fromarray(rgb)
    im.thumbnail((max_side, max_side), Image.BICUBIC)
    out = io.BytesIO()
    im.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def content_hash(data: bytes | bytearray | memoryview) -> str:
    """SHA-256 hex digest of the raw file bytes (identifies duplicate files regardless of name)."""
    return hashlib.sha256(data).hexdigest()
