"""Regions of a query image: a box given by the user, object proposals found in the pixels, and the
fusion of the scores of several query vectors (the whole image and its regions).

Pure functions over numpy arrays; boxes are ``(x0, y0, x1, y1)`` fractions of the image's width
and height (0 = left/top, 1 = right/bottom).

Object proposals (:func:`rectangle_proposals`) look for what a photographed artefact looks like: a
picture, a print, a page or a screen in a photo of its surroundings has four straight sides (its
edge, its frame's inner and outer edges). Every box whose four sides all lie on strong straight
edges of a small grey copy of the image is scored by its *weakest* side (so a box along one long
line of a façade does not count), and the best boxes that overlap little are kept. It is cheap
(no model: one small grey image, two cumulative sums, a few ms) and has no constant tied to a data set:
the grid side, the smallest box and the overlap are stated below with their reasons.

A photographed picture also differs from what is around it (a painting is not the colour of the
wall, a page not the colour of the desk): the best few thousand boxes by edge strength are ranked
again by their edge score times the difference between the colours inside the box and in a band
around it (:func:`surround_contrast`, one integral histogram), before the overlapping ones are
suppressed. Among boxes with equally strong sides, this prefers the one around an object over a
window of a façade or a panel of a wall.

Fusion (:func:`fuse_max`): an image's score is the maximum over the query vectors of its cosine
with each, where every region's cosine is lowered by a margin first. The whole image is the prior:
a region only wins when its evidence beats the whole image's by the margin, so a close copy (whose
whole-image cosine is near 1) keeps its rank, and a photo of one flower does not jump to another
species because one patch of petals happens to look alike.
"""

from __future__ import annotations

import numpy as np

from simsearch.errors import InvalidInput

Box = tuple[float, float, float, float]

# Proposals are searched on a grid of this many cells along the long side: coarse enough to score
# every box in a few ms (about 0.2 M boxes at the smallest size below), fine enough that a box's
# sides land within 2.5% of the image's side of an edge (a 10-px frame in a 400-px photo is a cell).
PROPOSAL_GRID = 40
# The smallest proposal: a fifth of the width and of the height. A region smaller than that holds
# about 45 x 45 of the model's 224 x 224 input pixels once the whole image is squashed in: the
# global vector barely sees it, and its own crop is upsampled 5 times, too blurred to match.
PROPOSAL_MIN = 0.2
# Two proposals overlapping more than this (intersection over union) are the same rectangle: the
# usual non-maximum suppression threshold of object detection (e.g. torchvision's examples).
PROPOSAL_NMS = 0.5
# Boxes ranked again by the colour contrast with their surroundings: the best this many by edge
# strength (a few hundred distinct rectangles once near-duplicates are merged; the whole candidate
# pool of a 40-cell grid is ~0.2 M boxes). Ranked on a colour copy of this many pixels on its long
# side, with 4 levels per channel (64 colours: coarse enough that a relit or re-compressed picture
# keeps its histogram), against a band around the box of this share of its width and height.
CONTRAST_POOL = 1000
CONTRAST_SIDE = 48
CONTRAST_LEVELS = 4
CONTRAST_RING = 0.15
# Each proposal's crop loses this share of its width and height on each side before it is
# embedded: a box found on a frame's outer edge then holds the picture, not the frame and the wall
# (frames and mounts take a few to ~10% of each side), and a box on the picture's own edge loses
# only a margin (crops of 5-10% keep close copies near-identical: docs/region-search.md).
PROPOSAL_INSET = 0.1
# A region's cosine must beat the whole image's by this much to decide an image's score. The
# cosine between an image and a copy changed by re-compression, resizing or a colour shift is
# 0.9-1.0, while the nearest *different* photos of the same subject are 0.75-0.9 (the duplicates
# benchmark's figures): 0.05 is a fraction of the gap a region must bridge to matter.
REGION_MARGIN = 0.05
# Object proposals searched besides the whole image by default, and at most: each costs one more
# image in the model's batch, about one plain query's model time. One keeps a default query
# within 2x of a plain one (benchmarks/in_context.py); more find more objects, for more time.
REGIONS_DEFAULT = 1
REGIONS_MAX = 4


def check_regions(value, field: str = "regions") -> int:
    """A number of object proposals, 0 to :data:`REGIONS_MAX` (booleans: ``True`` is the default
    number), or :class:`InvalidInput` naming ``field``."""
    if value is True:
        return REGIONS_DEFAULT
    if value is False or value is None:
        return 0
    try:
        n = int(value)
        ok = n == value if not isinstance(value, str) else str(n) == value.strip()
    except (TypeError, ValueError):
        ok = False
    if not ok or not 0 <= n <= REGIONS_MAX:
        raise InvalidInput(f"{field} must be a whole number of object proposals from 0 (the whole image only) to "
                           f"{REGIONS_MAX}, got {value!r}", field=field)
    return n


def parse_box(value, field: str = "box") -> Box:
    """``'x0,y0,x1,y1'`` (or a sequence of four numbers), fractions of the image's width and
    height -> a checked box; :class:`InvalidInput` naming ``field`` and why otherwise."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    else:
        try:
            parts = list(value)
        except TypeError:
            parts = [value]
    if len(parts) != 4:
        raise InvalidInput(f"{field} must be four numbers x0,y0,x1,y1 (fractions of the image's width and height, "
                           f"0 to 1), got {len(parts)} value(s)", field=field)
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be four numbers x0,y0,x1,y1 (fractions of the image's width and height, "
                           f"0 to 1), got {value!r}", field=field) from None
    if not all(np.isfinite(v) and 0.0 <= v <= 1.0 for v in (x0, y0, x1, y1)):
        raise InvalidInput(f"{field}: every coordinate is a fraction of the image's width or height, from 0 to 1; "
                           f"got {x0:g},{y0:g},{x1:g},{y1:g}", field=field)
    if not (x1 > x0 and y1 > y0):
        raise InvalidInput(f"{field}: x1 must be greater than x0 and y1 greater than y0 (left, top, right, bottom); "
                           f"got {x0:g},{y0:g},{x1:g},{y1:g}", field=field)
    return (x0, y0, x1, y1)


def pixel_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """A normalised box -> integer pixel bounds inside a ``width`` x ``height`` image, at least one
    pixel wide and high."""
    x0 = min(width - 1, max(0, int(np.floor(box[0] * width))))
    y0 = min(height - 1, max(0, int(np.floor(box[1] * height))))
    x1 = max(x0 + 1, min(width, int(np.ceil(box[2] * width))))
    y1 = max(y0 + 1, min(height, int(np.ceil(box[3] * height))))
    return x0, y0, x1, y1


def inset(box: Box, share: float = PROPOSAL_INSET) -> Box:
    """``box`` without ``share`` of its width and height on each side."""
    w, h = box[2] - box[0], box[3] - box[1]
    return (box[0] + share * w, box[1] + share * h, box[2] - share * w, box[3] - share * h)


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _edges(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal and vertical gradient magnitudes of a float grey image, each widened by one cell
    across its direction so that a side tilted by a slight perspective still lies on its edge."""
    g = np.asarray(gray, dtype=np.float32)
    gx = np.zeros_like(g)
    gy = np.zeros_like(g)
    gx[:, 1:-1] = np.abs(g[:, 2:] - g[:, :-2])
    gy[1:-1] = np.abs(g[2:] - g[:-2])
    gx = np.maximum(gx, np.maximum(np.roll(gx, 1, axis=1), np.roll(gx, -1, axis=1)))
    gy = np.maximum(gy, np.maximum(np.roll(gy, 1, axis=0), np.roll(gy, -1, axis=0)))
    return gx, gy


def surround_contrast(rgb: np.ndarray, boxes: np.ndarray, *, levels: int = CONTRAST_LEVELS,
                      ring: float = CONTRAST_RING) -> np.ndarray:
    """How different each box's colours are from those of a band around it: the total variation
    distance (0: alike, 1: no colour in common) between the colour histograms (``levels`` per
    channel) of the inside of the box and of the band of ``ring`` of its width and height around
    it (clipped to the image). ``rgb``: a small uint8 (h, w, 3) image; ``boxes``: (n, 4)
    normalised. A box without any band (the whole image) scores 0. One integral histogram: all
    boxes at once."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InvalidInput(f"expected a colour image (h, w, 3), got shape {a.shape}", field="rgb")
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    h, w = a.shape[:2]
    q = (a.astype(np.int64) * levels) // 256
    code = (q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]
    integral = np.zeros((h + 1, w + 1, levels ** 3), np.float32)
    integral[1:, 1:] = np.cumsum(np.cumsum(np.eye(levels ** 3, dtype=np.float32)[code], axis=0), axis=1)
    x0, x1 = np.rint(b[:, 0] * w).astype(int), np.rint(b[:, 2] * w).astype(int)
    y0, y1 = np.rint(b[:, 1] * h).astype(int), np.rint(b[:, 3] * h).astype(int)
    rx, ry = np.rint(ring * (x1 - x0)).astype(int), np.rint(ring * (y1 - y0)).astype(int)
    ox0, ox1 = np.maximum(0, x0 - rx), np.minimum(w, x1 + rx)
    oy0, oy1 = np.maximum(0, y0 - ry), np.minimum(h, y1 + ry)

    def hist(l, t, r, btm):
        return integral[btm, r] - integral[t, r] - integral[btm, l] + integral[t, l]

    inside = hist(x0, y0, x1, y1)
    around = hist(ox0, oy0, ox1, oy1) - inside
    n_in, n_out = inside.sum(axis=1), around.sum(axis=1)
    d = 0.5 * np.abs(inside / np.maximum(n_in, 1)[:, None] - around / np.maximum(n_out, 1)[:, None]).sum(axis=1)
    return np.where((n_in >= 1) & (n_out >= 1), d, 0.0)


def rectangle_proposals(gray: np.ndarray, n: int, *, rgb: np.ndarray | None = None, min_size: float = PROPOSAL_MIN,
                        overlap: float = PROPOSAL_NMS) -> list[tuple[Box, float]]:
    """The ``n`` best boxes (normalised, with their scores) whose four sides lie on strong straight
    edges of ``gray`` (a small grey image, (h, w) floats: about :data:`PROPOSAL_GRID` cells on
    its long side), best first, overlapping at most ``overlap``. A box's edge score is the mean
    edge strength along its weakest side, relative to the image's mean edge strength. With
    ``rgb`` (a small uint8 colour copy of the same image, about :data:`CONTRAST_SIDE` pixels on
    its long side), the best :data:`CONTRAST_POOL` boxes by edge score are scored by edge score
    times :func:`surround_contrast` instead (a box around an object over a box inside a wall)."""
    g = np.asarray(gray, dtype=np.float32)
    if g.ndim != 2:
        raise InvalidInput(f"expected a grey image (h, w), got shape {g.shape}", field="gray")
    h, w = g.shape
    mw, mh = max(2, int(np.ceil(min_size * w))), max(2, int(np.ceil(min_size * h)))
    if n <= 0 or w < mw + 1 or h < mh + 1:
        return []
    gx, gy = _edges(g)
    scale = max(float(gx.mean() + gy.mean()) / 2.0, 1e-3)
    cols = np.concatenate([np.zeros((1, w), np.float32), np.cumsum(gx, axis=0)])  # (h+1, w)
    rows = np.concatenate([np.zeros((h, 1), np.float32), np.cumsum(gy, axis=1)], axis=1)  # (h, w+1)
    xa, xb = np.triu_indices(w, k=mw)  # every left/right pair at least mw apart
    ya, yb = np.triu_indices(h, k=mh)
    # the sides' cells: a right side at column xb runs along that column (box = columns xa..xb)
    vert = (cols[yb + 1] - cols[ya]) / (yb - ya + 1).astype(np.float32)[:, None]  # (ny, w): mean |gx| of each column over [ya, yb]
    horiz = (rows[:, xb + 1] - rows[:, xa]) / (xb - xa + 1).astype(np.float32)[None, :]  # (h, nx): mean |gy| of each row over [xa, xb]
    score = np.minimum(vert[:, xa], vert[:, xb])  # (ny, nx), float32 throughout
    np.minimum(score, np.minimum(horiz[ya], horiz[yb]), out=score)
    flat = score.ravel()
    # candidates for the suppression: the best few hundred (edges alone) or thousand (re-ranked)
    keep = min(flat.size, 64 * n if rgb is None else max(CONTRAST_POOL, 64 * n))
    cand = np.argpartition(-flat, keep - 1)[:keep]
    iy, ix = np.divmod(cand, score.shape[1])
    boxes = np.stack([xa[ix] / w, ya[iy] / h, (xb[ix] + 1) / w, (yb[iy] + 1) / h], axis=1)
    value = flat[cand] / scale
    if rgb is not None:
        value = value * surround_contrast(rgb, boxes)
    out: list[tuple[Box, float]] = []
    for k in np.argsort(-value, kind="stable"):
        box = tuple(float(v) for v in boxes[k])
        if all(iou(box, b) <= overlap for b, _ in out):
            out.append((box, float(value[k])))
            if len(out) >= n:
                break
    return out


def fuse_max(results: list[tuple[np.ndarray, np.ndarray]], margins: list[float], k: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fuse the top-k lists of several query vectors: ``results`` holds each vector's (scores,
    ids) (ids -1: none), ``margins`` what each vector's scores lose (0 for the whole image).
    An image's fused score is the largest of its lowered scores. Returns (ids, scores, which
    vector decided each) of the fused top ``k``, best first. Exact when every list holds its
    vector's top ``k``: an image in the fused top k is in the top k of the list that decides it."""
    if len(results) != len(margins):
        raise InvalidInput(f"{len(results)} result lists but {len(margins)} margins", field="margins")
    best: dict[int, tuple[float, int]] = {}
    for which, ((scores, ids), margin) in enumerate(zip(results, margins)):
        for i, s in zip(np.asarray(ids).ravel(), np.asarray(scores).ravel()):
            i = int(i)
            if i < 0:
                continue
            v = float(s) - margin
            if i not in best or v > best[i][0]:
                best[i] = (v, which)
    order = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:k]
    return (np.asarray([i for i, _ in order], np.int64), np.asarray([v for _, (v, _) in order], np.float32),
            np.asarray([w for _, (_, w) in order], np.int64))
