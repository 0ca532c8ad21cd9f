"""Embedding: uint8 images at a backbone's input size -> L2-normalised float32 vectors.

An embedding *space* is a backbone with its pooling: ``efficientnet_lite0`` (global average,
the default) or ``efficientnet_lite0@max``. Vectors of different spaces are never mixed.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

from simsearch.backbones import Backbone, get_backbone
from simsearch.errors import InvalidInput


def _tf_verbose() -> bool:
    """``SIMSEARCH_TF_VERBOSE``: show TensorFlow's start-up messages (quiet by default)."""
    from simsearch.config import env_settings

    try:
        return env_settings().tf_verbose
    except InvalidInput:
        return False

POOLINGS = ("avg", "max")

# Built models, shared by every Embedder in the process (the web app, tests): building one
# costs seconds and hundreds of MB, so each (backbone, pooling, weights) is built once.
_MODELS: dict[tuple, object] = {}
_MODELS_LOCK = threading.Lock()


_IMPORT_LOCK = threading.Lock()
_tf_imported = False


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and Keras once per process, with file descriptor 2 pointed at /dev/null:
    TensorFlow's C++ start-up lines (CPU features, oneDNN, missing CUDA) are written before its
    logging can be configured and are noise for CLI users. Import errors still raise as Python
    exceptions.

    Under a lock: two threads importing TensorFlow at once (the first two requests of a web
    server) fail with errors from half-initialised modules, and the file descriptor swap is
    process-wide."""
    global _tf_imported
    if _tf_imported:
        return
    import sys

    with _IMPORT_LOCK:
        if _tf_imported:
            return
        if "tensorflow" in sys.modules or _tf_verbose():
            import tensorflow  # noqa: F401
        else:
            sys.stderr.flush()
            saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 2)
                import tensorflow  # noqa: F401
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                os.close(devnull)
        import keras  # noqa: F401  (also not safe to import from two threads at once)

        _tf_imported = True


def space_key(backbone: str, pooling: str = "avg") -> str:
    if pooling not in POOLINGS:
        raise InvalidInput(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}", field="pooling")
    get_backbone(backbone)  # validates the name
    return backbone if pooling == "avg" else f"{backbone}@{pooling}"


def parse_space(space: str) -> tuple[str, str]:
    """``'resnet50@max'`` -> ``('resnet50', 'max')``; validates both parts."""
    name, _, pooling = space.partition("@")
    pooling = pooling or "avg"
    space_key(name, pooling)
    return name, pooling


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class Embedder:
    """Embeds batches with one backbone. Thread-safe (one forward at a time per embedder)."""

    def __init__(self, space: str, weights_dir: Path, *, weights: str | None = None):
        self.space = space
        name, self.pooling = parse_space(space)
        self.backbone: Backbone = get_backbone(name)
        self.weights_dir = Path(weights_dir)
        self.weights = weights
        self._model = None
        self._lock = threading.Lock()
        self.load_seconds = 0.0

    @property
    def input_size(self) -> int:
        return self.backbone.input_size

    @property
    def dim(self) -> int:
        return self.backbone.dim

    def load(self) -> None:
        """Build the model now (raises WeightsUnavailable if its weights cannot be had)."""
        if self._model is not None:
            return
        key = (self.backbone.name, self.pooling, str(self.weights_dir), self.weights)
        import_tensorflow_quietly()
        with _MODELS_LOCK:
            entry = _MODELS.get(key)
            if entry is None:
                t0 = time.perf_counter()
                model = self.backbone.build_feature_model(self.weights_dir, pooling=self.pooling, weights=self.weights)
                self.load_seconds = time.perf_counter() - t0
                entry = _MODELS[key] = (model, threading.Lock())
        self._model, self._lock = entry

    def forward(self, preprocessed: np.ndarray) -> np.ndarray:
        """Bare model forward on an already preprocessed batch (for benchmarks)."""
        self.load()
        with self._lock:
            out = self._model.predict_on_batch(preprocessed)
        return np.asarray(out, dtype=np.float32)

    def embed(self, pixels: np.ndarray, *, pad_to: int | None = None) -> np.ndarray:
        """uint8 (N, S, S, 3) at the backbone's input size -> (N, dim) float32, L2-normalised.

        ``pad_to``: pad a smaller batch with blank images up to this size, so the model runs the
        batch shape it has already compiled instead of tracing a new one (seconds on a CPU)."""
        pixels = np.asarray(pixels)
        s = self.input_size
        if pixels.ndim != 4 or pixels.shape[1:] != (s, s, 3):
            raise InvalidInput(f"{self.space} expects images of shape (N, {s}, {s}, 3), got {pixels.shape}", field="pixels")
        if len(pixels) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        n = len(pixels)
        x = self.backbone.preprocess(pixels)
        if pad_to is not None and n < pad_to:
            x = np.concatenate([x, np.repeat(x[:1], pad_to - n, axis=0)])
        return l2_normalise(self.forward(x)[:n])
