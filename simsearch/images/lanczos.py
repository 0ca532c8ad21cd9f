"""Pillow's LANCZOS resize of a grayscale picture, computed as Pillow computes it, bit for bit, in
fewer cycles: the 32 x 32 resizes behind the perceptual hashes (:mod:`simsearch.images.phash`).

``Image.resize(size, Image.LANCZOS)`` on an 8-bit image (Pillow's ``libImaging/Resample.c``)
makes, for each axis, each output pixel's filter weights in double precision, turns them into
22-bit fixed-point integers, and sums ``pixel * weight`` in integers: one pass along each axis,
each rounded to 8 bits (the horizontal pass first in older Pillows; Pillow 13 runs the vertical
pass first where the height shrinks by more than twice the pixels the width does: :func:`_rule`,
checked against Pillow once per process and per output size, else found per shape by a probe).
Its loops are scalar: a 256 x 192 picture to 32 x 32 costs about 0.25 ms, and the five of them
per ingested image (``phash.image_hashes``) were most of the hashes' time.

Here the weights are made by the same double-precision steps (the same libm ``sin``, the same
order of operations), once per (input size, output size), and the sums are matrix products in
float64: every product and partial sum is an integer below 2**34, which float64 holds exactly,
so the sums (in whatever order BLAS adds them) are Pillow's integers exactly, and so are the
rounded pixels. The weights of one output pixel span about 49 input pixels (LANCZOS reaches 3
output pixels each side): the outputs are taken in groups of :data:`GROUP`, each group one small
product over the input span it reads (small enough that OpenBLAS runs it on the calling thread).

``tests/test_lanczos.py`` checks the result against ``Image.resize`` itself.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from PIL import Image

PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point weights (Resample.c)
SUPPORT = 3.0  # LANCZOS reaches 3 (output-scaled) pixels each side
GROUP = 8  # output pixels per matrix product
# OpenBLAS runs a product of m * n * k <= 65536 * 4 multiply-adds on the calling thread (its
# interface/gemm.c, GEMM_MULTITHREAD_THRESHOLD 4); larger ones on all cores, which here would take
# cores from the model. Products are cut into row chunks below this.
SINGLE_THREAD_MACS = 200_000


class Axis(NamedTuple):
    """One axis of a resize: the input pixels ``first:last`` it reads at all, and its products:
    (in0, in1, out0, out1, weights) with weights of shape (in1 - in0, out1 - out0), float64 holding
    Pillow's fixed-point integers (input positions relative to ``first``)."""

    first: int
    last: int
    blocks: tuple[tuple[int, int, int, int, np.ndarray], ...]


def _sin(a: np.ndarray) -> np.ndarray:
    """libm's ``sin`` of each value (``math.sin`` is the C library's, as Pillow's ``sin`` is;
    numpy's own may differ in the last bit)."""
    return np.fromiter(map(math.sin, a.tolist()), np.float64, a.size)


def _lanczos(t: np.ndarray) -> np.ndarray:
    """Pillow's ``lanczos_filter`` of each value: sinc(t) * sinc(t / 3) inside [-3, 3), each sinc
    ``sin(t * pi) / (t * pi)`` and 1 at 0, in the same double-precision steps."""
    out = np.zeros_like(t)
    inside = (t >= -3.0) & (t < 3.0)
    x = t[inside]
    a, b = x * math.pi, (x / 3) * math.pi
    with np.errstate(divide="ignore", invalid="ignore"):
        sa = np.where(x == 0.0, 1.0, _sin(a) / a)
        sb = np.where(x / 3 == 0.0, 1.0, _sin(b) / b)
    out[inside] = sa * sb
    return out


@lru_cache(maxsize=64)  # (the mirrored axis of a size follows its plain one)
def pillow_weights(in_size: int, out_size: int) -> list[tuple[int, np.ndarray]]:
    """For each output pixel: (first input pixel, its fixed-point weights as int64), as Pillow's
    ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` make them for LANCZOS over the whole axis
    (every step an IEEE double operation in Pillow's order, so the same doubles come out)."""
    if in_size <= 0 or out_size <= 0:
        raise ValueError(f"sizes must be positive, got {in_size} -> {out_size}")
    scale = float(in_size) / out_size  # (Pillow: (double)(in1 - in0) / outSize, in1 - in0 in float: exact)
    filterscale = max(scale, 1.0)
    support = SUPPORT * filterscale
    ss = 1.0 / filterscale
    center = (np.arange(out_size) + 0.5) * scale  # (+ in0 = 0.0: adds nothing)
    xmin = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)  # (C's (int): toward zero)
    xmax = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64) - xmin
    taps = np.arange(max(int(xmax.max()), 1))
    valid = taps[None, :] < xmax[:, None]
    t = (((xmin[:, None] + taps[None, :]).astype(np.float64) - center[:, None]) + 0.5) * ss
    w = np.where(valid, _lanczos(np.where(valid, t, 0.0)), 0.0)
    ww = np.add.accumulate(w, axis=1)[:, -1]  # (left to right, as Pillow sums; zeros add nothing)
    k = np.where(ww[:, None] != 0.0, w / np.where(ww == 0.0, 1.0, ww)[:, None], w)
    scaled = k * float(1 << PRECISION_BITS)
    fixed = np.trunc(np.where(k < 0, -0.5 + scaled, 0.5 + scaled)).astype(np.int64)
    return [(int(xmin[i]), fixed[i, :xmax[i]]) for i in range(out_size)]


@lru_cache(maxsize=512)
def axis(in_size: int, out_size: int, mirrored: bool = False) -> Axis:
    """The products of one axis (cached: ingest meets a few hundred distinct sizes; ~24 KB each for
    a 256-pixel side, so at most ~12 MB). ``mirrored``:
    the weights for the axis read backwards (a left-right flipped picture), applied to the
    picture as it is."""
    weights = pillow_weights(in_size, out_size)
    first = weights[0][0]
    last = weights[-1][0] + len(weights[-1][1])
    dense = np.zeros((in_size, out_size), np.float64)
    for xx, (xmin, ks) in enumerate(weights):
        dense[xmin:xmin + len(ks), xx] = ks
    if mirrored:  # flipped pixel x is pixel in_size - 1 - x
        dense = dense[::-1]
        first, last = in_size - last, in_size - first
    blocks = []
    for o0 in range(0, out_size, GROUP):
        o1 = min(o0 + GROUP, out_size)
        rows = np.flatnonzero(dense[:, o0:o1].any(axis=1))
        i0, i1 = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (first, first + 1)
        k = np.ascontiguousarray(dense[i0:i1, o0:o1])
        k.flags.writeable = False  # (shared by every thread through the cache)
        blocks.append((i0 - first, i1 - first, o0, o1, k))
    return Axis(first, last, tuple(blocks))


def _round8(sums: np.ndarray) -> np.ndarray:
    """Pillow's ``clip8(ss0)`` with ``ss0`` started at 2**21: floor((s + 2**21) / 2**22) in 0..255
    (exact in float64: the sums are integers, and the scaling is by a power of two)."""
    out = np.floor((sums + float(1 << (PRECISION_BITS - 1))) * (1.0 / (1 << PRECISION_BITS)))
    return np.clip(out, 0.0, 255.0, out=out)


def _horizontal(rows: np.ndarray, ax: Axis) -> np.ndarray:
    cols = rows[:, ax.first:ax.last]
    out = np.empty((rows.shape[0], ax.blocks[-1][3]), np.float64)
    for i0, i1, o0, o1, k in ax.blocks:
        step = max(1, SINGLE_THREAD_MACS // k.size)
        for r in range(0, cols.shape[0], step):
            np.matmul(cols[r:r + step, i0:i1], k, out=out[r:r + step, o0:o1])
    return _round8(out)


def _vertical(cols: np.ndarray, ax: Axis) -> np.ndarray:
    rows = cols[ax.first:ax.last]
    out = np.empty((ax.blocks[-1][3], cols.shape[1]), np.float64)
    for i0, i1, o0, o1, k in ax.blocks:
        step = max(1, SINGLE_THREAD_MACS // k.size)
        for c in range(0, cols.shape[1], step):
            np.matmul(k.T, rows[i0:i1, c:c + step], out=out[o0:o1, c:c + step])
    return _round8(out)


def _passes(a: np.ndarray, size: tuple[int, int], mirrored: bool, order: str) -> np.ndarray:
    """The two passes in ``order`` ("hv": horizontal first; "vh"), the first over only the lines
    the second reads, a pass skipped where its size does not change (as Pillow skips it)."""
    width, height = size
    h, w = a.shape
    if w == width and mirrored:
        a = a[:, ::-1]
    horiz = axis(w, width, mirrored) if w != width else None
    vert = axis(h, height) if h != height else None
    if horiz is not None and vert is not None:
        if order == "hv":
            a = _horizontal(a[vert.first:vert.last], horiz)
            horiz, vert = None, Axis(0, vert.last - vert.first, vert.blocks)
        else:
            a = _vertical(a[:, horiz.first:horiz.last], vert)
            horiz, vert = Axis(0, horiz.last - horiz.first, horiz.blocks), None
    if horiz is not None:
        a = _horizontal(a, horiz)
    if vert is not None:
        a = _vertical(a, vert)
    return a.astype(np.uint8)


def _rule(shape: tuple[int, int], size: tuple[int, int]) -> str:
    """Pillow 13's order, as measured (every shape up to 256 x 256 to 32 x 32 agrees): the vertical
    pass first where the height shrinks by more than twice as many pixels as the width does."""
    (h, w), (width, height) = shape, size
    return "vh" if h > height and (h - height) > (w - width) * 2 else "hv"


@lru_cache(maxsize=4096)
def probe_order(shape: tuple[int, int], size: tuple[int, int]) -> str:
    """Pillow's order for ``shape`` (height, width) to ``size`` (width, height), by resizing a noise
    picture with Pillow and here (about 0.4 ms): "hv", "vh", or "pillow" where neither order here
    gives Pillow's pixels (a Pillow that computes otherwise). Noise reaches every weight, and where
    both passes run the two orders round differently in between."""
    h, w = shape
    probe = np.random.default_rng([h, w, *size]).integers(0, 256, (h, w), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(probe).resize(size, Image.LANCZOS))
    f = probe.astype(np.float64)
    first = _rule(shape, size)
    for order in (first, "hv" if first == "vh" else "vh"):
        if np.array_equal(_passes(f, size, False, order), expected):
            return order
    return "pillow"


@lru_cache(maxsize=64)
def rule_holds(size: tuple[int, int]) -> bool:
    """Whether this Pillow follows :func:`_rule` for ``size``: probed once per process on shapes
    each side of its boundary and in each region (about 5 ms); where it does not, every shape is
    probed (:func:`probe_order`)."""
    width, height = size
    shapes = [(height + 2 * d, width + d) for d in (3, 56, 112)] + [(height + 2 * d + 1, width + d) for d in (3, 56, 112)]
    shapes += [(height + 60, max(2, width - 10)), (max(2, height // 2), width + 50), (height + 100, 3), (2, 2)]
    return all(probe_order(shape, size) == _rule(shape, size) for shape in shapes)


def pass_order(shape: tuple[int, int], size: tuple[int, int]) -> str:
    """How Pillow resizes a picture of ``shape`` (height, width) to ``size`` (width, height): "hv"
    (horizontal pass first), "vh", or "pillow" (let Pillow resize it)."""
    return _rule(shape, size) if rule_holds(size) else probe_order(shape, size)


def resize_gray(pixels: np.ndarray, size: tuple[int, int], *, mirrored: bool = False) -> np.ndarray:
    """``Image.fromarray(pixels).resize(size, Image.LANCZOS)`` (left-right flipped first when
    ``mirrored``) as a uint8 (height, width) array, bit for bit. ``pixels``: 2-D, uint8 values
    (any dtype holding them; float64 spares a conversion when one picture is resized several times)."""
    if pixels.ndim != 2 or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ValueError(f"expected a non-empty 2-D array, got shape {pixels.shape}")
    width, height = size = (int(size[0]), int(size[1]))
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be positive, got {size}")
    order = pass_order(pixels.shape, size)
    if order == "pillow":
        im = Image.fromarray(np.asarray(pixels, dtype=np.uint8))
        if mirrored:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return np.asarray(im.resize(size, Image.LANCZOS))
    return _passes(pixels if pixels.dtype == np.float64 else pixels.astype(np.float64), size, mirrored, order)
