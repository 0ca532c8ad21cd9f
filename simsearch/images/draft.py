"""JPEG draft-mode decoding: let libjpeg scale the image down by 1/2, 1/4 or 1/8 while decoding
(the DCT is computed at the smaller size: several times faster on large photos) when the file is
at least twice as large as what is needed from it.

What is needed: the model input is a square squash of the whole image, so both sides must stay
at least the model's side; the thumbnail keeps the aspect, so the long side must stay at least
the thumbnail's side. One decode then feeds both (see :func:`simsearch.ingest.Ingester`).
"""

from __future__ import annotations

from PIL import Image

DRAFT_FORMATS = ("JPEG", "MPO")


def draft_request(width: int, height: int, short_side: int, long_side: int = 0) -> tuple[int, int]:
    """The (width, height) to ask ``Image.draft`` for, so that the decoded image keeps its short
    side >= ``short_side`` and its long side >= ``long_side`` (PIL picks the largest scale
    1/2, 1/4, 1/8 that keeps both sides >= the request, or none)."""
    long_need = max(short_side, long_side)
    return (long_need, short_side) if width >= height else (short_side, long_need)


def apply_draft(im: Image.Image, short_side: int | None, long_side: int = 0) -> bool:
    """Configure a just-opened JPEG to decode at a reduced scale when it is at least twice the size
    needed (nothing to do otherwise, or for other formats). Returns True when it was reduced."""
    if not short_side or im.format not in DRAFT_FORMATS:
        return False
    w, h = im.size
    request = draft_request(w, h, short_side, long_side)
    if w < 2 * request[0] or h < 2 * request[1]:
        return False
    im.draft("RGB", request)
    return im.size != (w, h)
