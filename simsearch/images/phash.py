"""Perceptual hashes of an image: the near-duplicate finder's second, independent signal.

The vectors of a photo and of its transformed copy are close, but so are the vectors of two
different photos of one flower or one building: a cosine threshold alone cannot tell them apart.
A perceptual hash describes the picture's coarse layout of light and dark instead, which a resize,
a re-compression, a colour or brightness change or a small overlay barely change, and which two
different photos of the same subject rarely share.

:func:`image_hashes` gives :data:`N_HASHES` 64-bit pHashes (DCT hash of the 32 x 32 grayscale
image, as the ``imagehash`` library computes it) of one picture:

- ``full``: the whole picture;
- ``mirror``: the picture flipped left-right (a flipped copy's ``full`` matches it);
- ``c90``, ``c80``, ``c70``: the centre 90%, 80% and 70% of each side (a copy cropped by 5%,
  10% or 15% a side has a ``full`` hash that matches one of them).

They are computed from the picture scaled so its long side is at most
:data:`simsearch.images.THUMBNAIL_SIDE` (as the stored thumbnail is), so hashes computed at ingest
from the decoded image and hashes computed later from the stored thumbnail agree (to a bit or two
of JPEG noise). The hashes are stored with :data:`METHOD` (a change of method makes stored hashes
stale: they are computed again).

``imagehash.phash`` resizes each picture to 32 x 32 with Pillow's LANCZOS, then takes the DCT's
8 x 8 low frequencies against their median. The five resizes were most of the hashes' time (about
1.2 of 1.4 ms an image on one core): :mod:`simsearch.images.lanczos` makes the same 32 x 32 pixels,
bit for bit, in about a quarter of it, and the rest is imagehash's own steps, so the hashes are
imagehash's exactly (``tests/test_lanczos.py`` compares them on made pictures and the shared photos).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from simsearch.images import lanczos
from simsearch.images.transform import THUMBNAIL_SIDE, shrink

NAMES = ("full", "mirror", "c90", "c80", "c70")
N_HASHES = len(NAMES)
CENTRES = {"c90": 0.90, "c80": 0.80, "c70": 0.70}
METHOD = "imagehash-phash8:" + ",".join(NAMES)  # what :func:`image_hashes` computes, in order


HASH_SIZE = 8  # imagehash.phash's defaults: 8 x 8 bits from a 32 x 32 picture
SMALL = HASH_SIZE * 4


def dct_hashes(smalls: np.ndarray) -> np.ndarray:
    """``imagehash.phash(image, hash_size=8)`` of each picture already resized to ``SMALL`` x
    ``SMALL`` (a (n, SMALL, SMALL) uint8 stack, as imagehash's LANCZOS resize makes them): the DCT
    along the rows then the columns, then each 8 x 8 low frequency against their median, as
    imagehash computes them (the same scipy calls, over the stack at once: each 1-D transform is
    computed alone, whatever the stack's size); the 64 bits of each as uint64, first bit highest."""
    import scipy.fftpack

    dct = scipy.fftpack.dct(scipy.fftpack.dct(smalls, axis=1), axis=2)
    low = dct[:, :HASH_SIZE, :HASH_SIZE].reshape(len(smalls), -1)
    bits = low > np.median(low, axis=1, keepdims=True)
    return np.packbits(bits.astype(np.uint8), axis=1).view(">u8")[:, 0].astype(np.uint64)


def _centre(size: tuple[int, int], fraction: float) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box of the centre ``fraction`` of each side (the whole picture
    when the box would be under 8 pixels a side)."""
    w, h = size
    dx, dy = round(w * (1 - fraction) / 2), round(h * (1 - fraction) / 2)
    if w - 2 * dx < 8 or h - 2 * dy < 8:
        return 0, 0, w, h
    return dx, dy, w - dx, h - dy


def image_hashes(image: Image.Image | np.ndarray) -> np.ndarray:
    """The :data:`N_HASHES` hashes of a picture (PIL image or (H, W, 3) uint8 array), as uint64."""
    gray = np.asarray(shrink(image, THUMBNAIL_SIDE).convert("L"), dtype=np.float64)
    h, w = gray.shape
    smalls = [lanczos.resize_gray(gray, (SMALL, SMALL)), lanczos.resize_gray(gray, (SMALL, SMALL), mirrored=True)]
    for name in NAMES[2:]:
        left, top, right, bottom = _centre((w, h), CENTRES[name])
        smalls.append(lanczos.resize_gray(gray[top:bottom, left:right], (SMALL, SMALL)))
    return dct_hashes(np.stack(smalls))


def thumbnail_hashes(thumbnail: bytes) -> np.ndarray:
    """The hashes of a stored thumbnail (JPEG bytes): for images stored before hashes were kept."""
    with Image.open(io.BytesIO(thumbnail)) as im:
        return image_hashes(im.convert("RGB"))


def to_bytes(hashes: np.ndarray) -> bytes:
    return np.asarray(hashes, dtype="<u8").tobytes()


def from_bytes(data: bytes | None) -> np.ndarray | None:
    if data is None or len(data) != 8 * N_HASHES:
        return None
    return np.frombuffer(data, dtype="<u8").astype(np.uint64)
