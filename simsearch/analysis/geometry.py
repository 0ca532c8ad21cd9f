"""Is one picture a crop, flip, rotation or rescale of another? Local features matched under one
similarity transform (pure: numpy and OpenCV, no store).

The near-duplicate tier's perceptual hashes describe the whole picture's coarse layout, so a copy
whose frame moved (an off-centre crop, a crop of a flipped copy, a rotation of more than a few
degrees) changes them as much as another photo does. Local features do not care where the frame
is: :func:`features` finds ORB keypoints (OpenCV) of the picture scaled to :data:`SIDE` pixels on
its long side, and of its mirror image (ORB's descriptors are not mirror-invariant). :func:`verify`
matches two pictures' keypoints (Hamming distance, Lowe's ratio test), both ways round (as they
are, and with one mirrored), and fits one *similarity* transform (rotation, uniform scale,
translation: what a crop, a resize and a rotation are) to the matches by RANSAC.

The rule (:func:`verify`; constants calibrated in docs/near-duplicates.md): a pair is one picture
when the transform

- is held by at least :data:`MIN_INLIERS` matches, and by at least :data:`MIN_SHARE` of the
  keypoints the two pictures could share (those of each inside the shared region): a copy repeats
  many of its keypoints, unrelated texture few;
- makes one frame lie (almost) inside the other (the shared region is at least :data:`MIN_INSIDE`
  of one picture) and covers at least :data:`MIN_COVER` of *both* pictures (a crop of 15% a side
  keeps 49% of the picture): a shared detail (the same window of the same building) covers little
  of either;
- scales by at most :data:`MAX_SCALE` either way (after both pictures were scaled to :data:`SIDE`);
- and the pictures, aligned by it, agree pixel by pixel: the correlation of their grey pixels over
  the shared region (at :data:`SMALL` pixels, blurred a little), measured in each of
  :data:`TILES` x :data:`TILES` tiles, has a median of at least :data:`MIN_NCC`. The same building
  photographed from the same spot on another day passes the keypoint tests (the scene is the same
  and nearly rigid) but not this one: its light, leaves and people differ all over the picture
  (tile median 0.78-0.94), while a copy agrees everywhere but where something was laid over it (a
  caption or a watermark changes a few tiles: the median stays >= 0.99; one correlation over the
  whole region fell to 0.935 for captions). A pair that passes the keypoint tests and fails this
  one is a *re-shot* (:attr:`Verdict.reshot`), which the near tier treats apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simsearch.errors import InvalidInput
from simsearch.images import local_features as lf

SIDE = 480  # pictures are scaled (up or down) so their long side is this many pixels
N_FEATURES = 500  # ORB keypoints per picture (and as many of its mirror image)
RATIO = 0.8  # Lowe's ratio test on the two nearest descriptors
REPROJECTION = 0.012  # RANSAC inlier distance, as a share of the long side (6 px at SIDE)
MIN_INLIERS = 25
MIN_SHARE = 0.12  # inliers / keypoints in the shared region (the fewer of the two pictures')
MIN_COVER = 0.40  # the shared region's share of each picture
MIN_INSIDE = 0.85  # the shared region's share of the smaller picture (one frame inside the other)
MAX_SCALE = 2.5
SMALL = 128  # the long side of the grey copy the photometric check compares
MIN_NCC = 0.96  # the aligned grey pixels' correlation, median over tiles (a re-shot: the scene moved, or the light changed)
# The photometric check's tiles per side: 4 x 4 tiles of a 128-px picture are 32 x 24 px, enough
# pixels for a correlation, and a caption across the bottom third or a corner watermark touches
# at most 4-5 of the 16. Tiles with fewer shared pixels than TILE_PIXELS or flat ones (grey standard
# deviation under TILE_FLAT of 255: sky, a plain wall, where the correlation is noise) do not count.
TILES = 4
TILE_PIXELS = 50
TILE_FLAT = 2.0


@dataclass
class Features:
    """Local features (:mod:`simsearch.images.local_features`, normalised by the long side) of a
    picture and of its mirror image (in the mirror image's own frame); ``size``: (width, height) in
    units of the long side."""

    straight: lf.LocalFeatures
    mirror: lf.LocalFeatures
    size: tuple[float, float]
    small: np.ndarray  # the grey picture at SMALL pixels on its long side (the photometric check)


@dataclass
class Verdict:
    """What :func:`verify` found: ``accepted`` by the rule, and the figures it was judged by."""

    accepted: bool
    inliers: int = 0
    share: float = 0.0  # inliers / keypoints in the shared region (the fewer of the two pictures')
    cover: float = 0.0  # the shared region's share of the picture it covers less of
    inside: float = 0.0  # its share of the picture it covers more of
    scale: float = 1.0
    angle: float = 0.0  # degrees
    mirrored: bool = False
    ncc: float = 0.0  # correlation of the pictures' grey pixels over the shared region, once aligned (tile median)
    reshot: bool = False  # the keypoint tests passed, the pixels did not: the same rigid scene shot again



def _ncc(a: Features, b_small: np.ndarray, m: np.ndarray) -> float:
    """Normalised cross-correlation of ``a``'s small grey picture and ``b``'s warped onto it by the
    similarity ``m`` (a's normalised coordinates to b's), over the shared region."""
    import cv2

    ha, wa = a.small.shape
    mp = m.astype(np.float64).copy()
    mp[:, 2] *= SMALL  # both small pictures: SMALL pixels per unit of the long side
    warped = cv2.warpAffine(b_small.astype(np.float32), mp, (wa, ha), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=-1)
    ones = cv2.warpAffine(np.ones_like(b_small, np.float32), mp, (wa, ha), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = cv2.erode((ones > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if mask.sum() < 64:
        return 0.0
    return tile_correlation(cv2.GaussianBlur(a.small.astype(np.float32), (3, 3), 0),
                            cv2.GaussianBlur(warped, (3, 3), 0), mask)


def tile_correlation(x: np.ndarray, y: np.ndarray, mask: np.ndarray, tiles: int = TILES) -> float:
    """The median over ``tiles`` x ``tiles`` tiles of two aligned grey pictures ``x``, ``y`` (same
    shape) of their correlation over the pixels where ``mask`` holds; tiles with fewer than
    :data:`TILE_PIXELS` of them or flat in ``x`` (standard deviation under :data:`TILE_FLAT`) do
    not count. The correlation over the whole mask when no tile counts; 0.0 without pixels.

    Every tile at once from its masked pixels' sums (count, sums, sums of squares and of products,
    in float64, by ``np.add.reduceat`` over the tiles' rows and columns): a loop over the tiles made
    15 small NumPy calls a tile and was a quarter of the near tier's geometric check
    (docs/near-duplicates.md)."""
    x, y, mask = np.asarray(x, np.float32), np.asarray(y, np.float32), np.asarray(mask, bool)
    if x.shape != y.shape or x.shape != mask.shape:
        raise InvalidInput(f"tile_correlation needs pictures and a mask of one shape, got {x.shape}, {y.shape}, "
                           f"{mask.shape}", field="pictures")
    h, w = x.shape
    m = mask.astype(np.float64)
    u, v = x * m, y * m  # (float64: exact products of float32 pixels)
    rows, cols = [i * h // tiles for i in range(tiles)], [j * w // tiles for j in range(tiles)]

    def per_tile(a: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.add.reduceat(a, rows, axis=0), cols, axis=1).reshape(-1)

    sums = [per_tile(a) for a in (m, u, v, u * u, v * v, u * v)]  # n, su, sv, suu, svv, suv per tile
    n, cu = sums[0], _centred(sums)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        counts = (n >= TILE_PIXELS) & (np.sqrt(np.maximum(cu, 0.0) / n) >= TILE_FLAT)
    if counts.any():
        r = np.sort(_correlation([a[counts] for a in sums]))
        return float((r[(len(r) - 1) // 2] + r[len(r) // 2]) / 2)  # the median (np.median's, at a tenth of its cost)
    if not mask.any():
        return 0.0
    return float(_correlation([a.sum(keepdims=True) for a in sums])[0])  # the whole mask


def _centred(sums: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The centred sums of squares and of products (uu, vv, uv) from the raw ones
    ``[n, su, sv, suu, svv, suv]``."""
    n, su, sv, suu, svv, suv = sums
    with np.errstate(divide="ignore", invalid="ignore"):
        return suu - su * su / n, svv - sv * sv / n, suv - su * sv / n


def _correlation(sums: list[np.ndarray]) -> np.ndarray:
    """Correlations from the raw sums ``[n, su, sv, suu, svv, suv]``; 0 where either side is flat
    (a centred sum of squares that is rounding error of its raw one: a constant tile's is not
    exactly 0 in float64)."""
    cu, cv, cuv = _centred(sums)
    flat = (cu <= 1e-12 * sums[3]) | (cv <= 1e-12 * sums[4])
    den = np.sqrt(np.where(flat, 1.0, cu * cv))
    return np.where(flat, 0.0, cuv / den)


def _gray(image) -> np.ndarray:
    from PIL import Image

    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("L"))
    a = np.asarray(image)
    if a.ndim == 3:
        a = (a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).round().astype(np.uint8)
    if a.ndim != 2 or a.shape[0] < 16 or a.shape[1] < 16:
        raise InvalidInput(f"a picture of at least 16 x 16 pixels is needed, not {a.shape}", field="image")
    return np.ascontiguousarray(a, dtype=np.uint8)


def features(image) -> Features:
    """The keypoints of a picture (PIL image, (H, W) or (H, W, 3) uint8 array) and of its mirror,
    found on a grey copy scaled (up or down) to :data:`SIDE` pixels on its long side, so a small
    copy gets as many keypoints as its original."""
    import cv2

    gray = _gray(image)
    h, w = gray.shape
    scale = SIDE / max(h, w)
    if scale != 1:
        gray = cv2.resize(gray, (max(16, round(w * scale)), max(16, round(h * scale))),
                          interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    h, w = gray.shape
    long_side = float(max(h, w))
    straight = lf.extract(gray, max_side=SIDE, n=N_FEATURES, kind="orb")
    mirror = lf.extract(np.ascontiguousarray(gray[:, ::-1]), max_side=SIDE, n=N_FEATURES, kind="orb")
    f = SMALL / long_side
    small = cv2.resize(gray, (max(4, round(w * f)), max(4, round(h * f))), interpolation=cv2.INTER_AREA)
    return Features(straight, mirror, (w / long_side, h / long_side), small)


def _frame(size) -> np.ndarray:
    w, h = size
    return np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)


def _area(poly: np.ndarray) -> float:
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def _clip(poly: np.ndarray, size) -> np.ndarray:
    """A convex polygon clipped to the rectangle [0, w] x [0, h] (Sutherland-Hodgman)."""
    w, h = size
    out = [tuple(p) for p in np.asarray(poly, np.float64)]
    for axis, bound, keep_below in ((0, 0.0, False), (0, w, True), (1, 0.0, False), (1, h, True)):
        if not out:
            break
        pts, out = out, []
        for k, cur in enumerate(pts):
            prev = pts[k - 1]
            cin = cur[axis] <= bound if keep_below else cur[axis] >= bound
            pin = prev[axis] <= bound if keep_below else prev[axis] >= bound
            if cin != pin:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append(tuple(prev[d] + t * (cur[d] - prev[d]) for d in (0, 1)))
            if cin:
                out.append(cur)
    return np.array(out, np.float64).reshape(-1, 2)


def _inside(xy: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Which points lie in a convex polygon (either orientation)."""
    if not len(xy) or len(poly) < 3:
        return np.zeros(len(xy), bool)
    e = np.roll(poly, -1, axis=0) - poly  # edges
    cross = e[None, :, 0] * (xy[:, None, 1] - poly[None, :, 1]) - e[None, :, 1] * (xy[:, None, 0] - poly[None, :, 0])
    eps = 1e-9
    return np.all(cross >= -eps, axis=1) | np.all(cross <= eps, axis=1)


def _one_way(a: Features, b: lf.LocalFeatures, b_size, b_small: np.ndarray, mirrored: bool) -> Verdict:
    import cv2

    pairs = lf.tentative_matches(a.straight, b, RATIO)
    if len(pairs) < MIN_INLIERS:
        return Verdict(False, int(len(pairs)), mirrored=mirrored)
    pa, pb = a.straight.xy[pairs[:, 0]], b.xy[pairs[:, 1]]
    m, mask = cv2.estimateAffinePartial2D(pa, pb, method=cv2.RANSAC, ransacReprojThreshold=REPROJECTION,
                                          maxIters=2000, confidence=0.995, refineIters=10)
    if m is None or mask is None:
        return Verdict(False, 0, mirrored=mirrored)
    inl = mask.reshape(-1).astype(bool)
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    angle = float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))
    if not np.isfinite(scale) or scale <= 0:
        return Verdict(False, int(inl.sum()), mirrored=mirrored)
    # the shared region: a's frame mapped into b, clipped to b's frame (and its preimage in a)
    fa = cv2.transform(_frame(a.size).reshape(-1, 1, 2), m).reshape(-1, 2)
    shared = _clip(fa, b_size)
    area = _area(shared)
    area_a, area_b = a.size[0] * a.size[1], b_size[0] * b_size[1]
    share_b = area / area_b
    share_a = area / (scale * scale) / area_a
    cover, inside = min(share_a, share_b), max(share_a, share_b)
    # keypoints each picture could share: those inside the shared region
    if area <= 0:
        return Verdict(False, int(inl.sum()), mirrored=mirrored)
    poly_b = shared
    inv = cv2.invertAffineTransform(m)
    poly_a = cv2.transform(poly_b.reshape(-1, 1, 2), inv).reshape(-1, 2)
    in_a = int(_inside(a.straight.xy, poly_a).sum())
    in_b = int(_inside(b.xy, poly_b).sum())
    n_inl = int(inl.sum())
    share = n_inl / max(1, min(in_a, in_b))
    ok = (n_inl >= MIN_INLIERS and share >= MIN_SHARE and cover >= MIN_COVER and inside >= MIN_INSIDE
          and 1 / MAX_SCALE <= scale <= MAX_SCALE)
    ncc = _ncc(a, b_small, m) if ok else 0.0
    reshot = ok and ncc < MIN_NCC
    ok = ok and ncc >= MIN_NCC
    return Verdict(bool(ok), n_inl, round(share, 4), round(cover, 4), round(inside, 4),
                   round(scale, 4), round(angle, 2), mirrored, round(ncc, 4), bool(reshot))


def verify(a: Features, b: Features) -> Verdict:
    """The better of the two ways round: ``b`` as it is, and ``b`` mirrored (a flipped copy)."""
    if not isinstance(a, Features) or not isinstance(b, Features):
        raise InvalidInput("verify needs the Features of two pictures", field="features")
    straight = _one_way(a, b.straight, b.size, b.small, False)
    if straight.accepted:
        return straight
    mirrored = _one_way(a, b.mirror, b.size, np.ascontiguousarray(b.small[:, ::-1]), True)
    if mirrored.accepted:
        return mirrored
    return next((v for v in (straight, mirrored) if v.reshot), max(straight, mirrored, key=lambda v: (v.inliers, v.share)))
