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
of JPEG noise). Costs about a millisecond per image. The hashes are stored with :data:`METHOD` (a
change of method makes stored hashes stale: they are computed again).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from simsearch.images.transform import THUMBNAIL_SIDE, shrink

NAMES = ("full", "mirror", "c90", "c80", "c70")
N_HASHES = len(NAMES)
CENTRES = {"c90": 0.90, "c80": 0.80, "c70": 0.70}
METHOD = "imagehash-phash8:" + ",".join(NAMES)  # what :func:`image_hashes` computes, in order


def _phash(gray: Image.Image) -> int:
    import imagehash

    bits = imagehash.phash(gray, hash_size=8).hash.reshape(-1)
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


def _centre(im: Image.Image, fraction: float) -> Image.Image:
    w, h = im.size
    dx, dy = round(w * (1 - fraction) / 2), round(h * (1 - fraction) / 2)
    if w - 2 * dx < 8 or h - 2 * dy < 8:
        return im
    return im.crop((dx, dy, w - dx, h - dy))


def image_hashes(image: Image.Image | np.ndarray) -> np.ndarray:
    """The :data:`N_HASHES` hashes of a picture (PIL image or (H, W, 3) uint8 array), as uint64."""
    gray = shrink(image, THUMBNAIL_SIDE).convert("L")
    out = [_phash(gray), _phash(gray.transpose(Image.Transpose.FLIP_LEFT_RIGHT))]
    out += [_phash(_centre(gray, CENTRES[name])) for name in NAMES[2:]]
    return np.asarray(out, dtype=np.uint64)


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
