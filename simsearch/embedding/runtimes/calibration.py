"""The photos an int8 model is calibrated on: a deterministic sample of a folder.

Post-training quantization (NNCF on the OpenVINO model) measures the range of every activation
on real inputs. Those come from a folder of the user's own photos (``SIMSEARCH_INT8_CALIBRATION``,
a folder that stays as it is, e.g. a copy of some of a collection's photos): up to :data:`SAMPLE` images, every n-th of the
folder's images in path order, so the same folder gives the same sample on every machine. The
sample's digest (its files' names and contents) is part of the quantized model's cache key and of
the space's fingerprint: another sample makes another model, whose vectors are never mixed with
the first's.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from simsearch.errors import ImageDecodeError, RuntimeRefused
from simsearch.images import load_image, resize_for_model, scan_images

SAMPLE = 300  # images; NNCF's default subset size (its statistics settle well before that)
# How the model is quantized (openvino_rt.quantize), part of the digest: another method makes
# another model, so a cached model or stored vectors of the old method are never mixed with it.
# The overflow fix (7-bit weights) keeps int8 right on CPUs without VNNI (AVX2 only), where the
# 8-bit multiply-adds saturate: there the probe's cosine to Keras fell to 0.73 and int8 was refused.
METHOD = "nncf-ptq:performance,overflow-fix"


def sample(folder: Path, n: int = SAMPLE) -> list[Path]:
    """Up to ``n`` images of ``folder`` (recursively), evenly spaced in path order."""
    paths = sorted(scan_images(Path(folder)))
    if len(paths) <= n:
        return paths
    step = len(paths) / n
    return [paths[int(i * step)] for i in range(n)]


@lru_cache(maxsize=8)
def _digest(folder: str, stamp: tuple) -> str:
    h = hashlib.sha256(METHOD.encode() + b"\0")
    for p in sample(Path(folder)):
        h.update(p.relative_to(folder).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def digest(folder: Path | None) -> str | None:
    """SHA-256 over :data:`METHOD` and the sample's relative paths and contents (None without a folder); computed once
    per process while the folder's modification time stays the same."""
    if folder is None:
        return None
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise RuntimeRefused(f"the int8 calibration folder {folder} does not exist (SIMSEARCH_INT8_CALIBRATION)",
                             field="precision")
    return _digest(str(folder), (folder.stat().st_mtime_ns,))


def inputs(folder: Path, backbone) -> list[np.ndarray]:
    """The sample as preprocessed model inputs, one (1, S, S, 3) float32 array an image (decoded and
    squashed as at ingest); unreadable files are skipped. RuntimeRefused when none is left."""
    size = backbone.input_size
    out = []
    for p in sample(Path(folder)):
        try:
            pixels = resize_for_model(load_image(p, draft_size=size).image, size)
        except ImageDecodeError:
            continue
        out.append(backbone.preprocess(pixels[None]))
    if not out:
        raise RuntimeRefused(f"no readable image in the int8 calibration folder {folder}", field="precision")
    return out
