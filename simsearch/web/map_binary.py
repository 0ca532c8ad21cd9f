"""The map as one binary payload: typed arrays instead of JSON lists, for maps of a million points.

Layout (little-endian), parsed by ``static/js/api.js`` ``decodeMap``:

- 8 bytes ``SSMAP1\\0\\0``; uint32 length of the header; the header (UTF-8 JSON: collection, backbone,
  method, n, k, seconds, cached, ``labels`` (the distinct label names), ``x_range``/``y_range``
  ``[min, max]`` of the coordinates, ``id_type``, ``generation``: names this content, for the
  thumbnail atlases, :mod:`simsearch.ops.atlas`); zero padding to a multiple of 8 bytes;
- ``ids``: n x uint32 (or uint64/float64 when an id does not fit: ``id_type`` says which);
- ``x``, ``y``: n x uint16 each, the coordinate quantised to 65,535 steps of its range (1/65,535
  of the map's width: far below a pixel);
- ``label``: n x uint16, index into ``labels`` (65,535: no label);
- ``cluster``: n x int16 (-1: none).

12 bytes a point with uint32 ids, against about 40 for the rounded JSON; and no JSON parse of a
million-element lists in the browser.
"""

from __future__ import annotations

import json

import numpy as np

from simsearch.ops.atlas import generation_of, quantise

MAGIC = b"SSMAP1\x00\x00"
NO_LABEL = 0xFFFF
STEPS = 0xFFFF


def _quantise(values: np.ndarray) -> tuple[np.ndarray, list[float]]:
    return quantise(values)


def encode(result) -> bytes:
    """A :class:`~simsearch.ops.analysis_results.MapResult` as the binary payload."""
    d = result.to_dict()
    ids = np.asarray(d["ids"], dtype=np.int64)
    n = len(ids)
    names: dict[str, int] = {}
    label_codes = np.full(n, NO_LABEL, np.uint16)
    for i, lab in enumerate(d["labels"]):
        if lab is not None:
            code = names.setdefault(lab, len(names))
            if code >= NO_LABEL:
                raise ValueError("more than 65,534 distinct labels: use the JSON map")
            label_codes[i] = code
    x, x_range = _quantise(np.asarray(d["x"], dtype=np.float64))
    y, y_range = _quantise(np.asarray(d["y"], dtype=np.float64))
    clusters = np.asarray([-1 if c is None else c for c in d["clusters"]], dtype=np.int16)
    id_type = "uint32" if n == 0 or (ids.min() >= 0 and ids.max() < 2**32) else "float64"
    header = {k: d[k] for k in ("collection", "backbone", "method", "n", "k", "seconds", "cached")}
    header.update(labels=list(names), x_range=x_range, y_range=y_range, id_type=id_type,
                  generation=generation_of(ids, x, y))
    head = json.dumps(header, separators=(",", ":")).encode()
    pad = (-(len(MAGIC) + 4 + len(head))) % 8
    parts = [MAGIC, np.uint32(len(head)).tobytes(), head, b"\x00" * pad,
             ids.astype("<u4" if id_type == "uint32" else "<f8").tobytes(),
             x.astype("<u2").tobytes(), y.astype("<u2").tobytes(), label_codes.astype("<u2").tobytes(),
             clusters.astype("<i2").tobytes()]
    return b"".join(parts)


def decode(data: bytes) -> dict:
    """The payload back as plain data (for tests and Python clients); coordinates dequantised."""
    if data[:8] != MAGIC:
        raise ValueError("not a simsearch binary map")
    hlen = int(np.frombuffer(data, "<u4", 1, 8)[0])
    header = json.loads(data[12 : 12 + hlen])
    off = 12 + hlen + ((-(12 + hlen)) % 8)
    n = header["n"]

    def take(dtype: str, size: int) -> np.ndarray:
        nonlocal off
        arr = np.frombuffer(data, dtype, n, off)
        off += n * size
        return arr

    ids = take("<u4", 4) if header["id_type"] == "uint32" else take("<f8", 8)
    xs, ys, labs, clusters = take("<u2", 2), take("<u2", 2), take("<u2", 2), take("<i2", 2)

    def dequantise(q, rng):
        return rng[0] + q.astype(np.float64) / STEPS * (rng[1] - rng[0])

    names = header["labels"]
    return {**header, "ids": ids.astype(np.int64), "x": dequantise(xs, header["x_range"]),
            "y": dequantise(ys, header["y_range"]), "labels": [None if c == NO_LABEL else names[c] for c in labs],
            "clusters": clusters.astype(np.int64)}
