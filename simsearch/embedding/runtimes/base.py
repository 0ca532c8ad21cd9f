"""What every inference runtime provides, and what it is asked to run.

A *runtime* runs a backbone's Keras feature model: Keras itself (on whichever backend
``KERAS_BACKEND`` names: TensorFlow, JAX or PyTorch) or an optimised CPU runtime fed with a
converted copy of the same model (OpenVINO, ONNX Runtime). Nothing here imports any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np


FP32, BF16, INT8 = "fp32", "bf16", "int8"
PRECISIONS = (FP32, BF16, INT8)

# Minimum cosine, over the probe images, between a runtime's features and the Keras fp32 features
# (the reference). fp32 vectors share their space with TensorFlow's; bf16 and int8 ones live in
# their own. int8 (post-training quantization, OpenVINO + NNCF) is checked loosely on the probes
# (seeded noise and smooth patterns, far from the photos it was calibrated on: 0.88-0.99 measured);
# its retrieval quality on photos is measured by benchmarks/int8.py.
TOLERANCE = {FP32: 0.9999, BF16: 0.99, INT8: 0.8}


@dataclass(frozen=True)
class ModelSpec:
    """The model to run: a backbone's feature model with its pooling, at a precision, on a device."""

    backbone: object  # simsearch.embedding.backbones.Backbone
    pooling: str
    precision: str
    weights_dir: Path
    weights: str | None = None
    device: str = "cpu"  # "cpu" | "gpu"
    calibration: Path | None = None  # int8: the folder of photos its quantization is calibrated on

    @property
    def name(self) -> str:
        return self.backbone.name


@dataclass
class Session:
    """A loaded model: ``run(preprocessed float32 batch) -> (N, dim) float32 features``.

    ``describe`` names the numerics ("openvino 2026.4.1 fp32 cpu", ...); ``validation`` is the
    minimum cosine to the Keras fp32 reference on the probe images (None where not measured: the
    Keras runtime is the reference itself)."""

    runtime: str
    version: str
    precision: str
    device: str
    run: Callable[[np.ndarray], np.ndarray]
    validation: float | None = None
    source: str = ""  # where the converted model came from: "cache" | "converted" | "keras"
    extra: dict = field(default_factory=dict)

    @property
    def describe(self) -> str:
        return f"{self.runtime} {self.version} {self.precision} {self.device}"


class Runtime:
    """One way of running a feature model. Subclasses register themselves in :mod:`.registry`."""

    name: str = ""
    converts: bool = False  # True: runs a converted copy of the Keras model, cached on disk

    def unavailable(self) -> str | None:
        """None when this runtime is installed and usable in this process, else the reason."""
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def refuses(self, spec: ModelSpec) -> str | None:
        """None when this runtime can run ``spec`` (precision, device) here, else the reason."""
        return None

    def open(self, spec: ModelSpec) -> Session:
        raise NotImplementedError


def cpu_threads() -> int:
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def probe_images(size: int) -> np.ndarray:
    """Fixed uint8 probe images (4, size, size, 3): two of seeded noise, two smooth patterns.
    The same on every machine, so reference outputs stored with a converted model stay comparable."""
    rng = np.random.Generator(np.random.PCG64(20261127))
    noise = rng.integers(0, 256, size=(2, size, size, 3), dtype=np.uint8)
    t = np.linspace(0.0, 1.0, size, dtype=np.float64)
    yy, xx = np.meshgrid(t, t, indexing="ij")
    a = np.stack([xx, yy, 1 - xx * yy], axis=-1)
    b = np.stack([0.5 + 0.5 * np.sin(12 * xx), 0.5 + 0.5 * np.cos(9 * yy), (xx + yy) / 2], axis=-1)
    smooth = np.rint(np.stack([a, b]) * 255).astype(np.uint8)
    return np.concatenate([noise, smooth])


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    if a.shape != b.shape:
        return -1.0
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    cos = (a * b).sum(1) / np.maximum(na * nb, 1e-30)
    if not np.all(np.isfinite(cos)):
        return -1.0
    return float(cos.min())
