"""The Keras runtime: the backbone's Keras model on the backend ``KERAS_BACKEND`` names
(TensorFlow by default, JAX or PyTorch otherwise), on the CPU or a GPU. It is also where the
reference Keras model is built for the converting runtimes (built once per process)."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time

import numpy as np

from simsearch.config import env_settings
from simsearch.errors import InvalidInput

from .base import BF16, FP32, INT8, ModelSpec, Runtime, Session

_IMPORT_LOCK = threading.Lock()
_keras_imported = False

# Built Keras models shared by every embedder in the process: (backbone, pooling, precision,
# weights_dir, weights) -> (model, seconds to build). Building one costs seconds and hundreds of MB.
_KERAS_MODELS: dict[tuple, tuple[object, float]] = {}
_BUILD_LOCK = threading.Lock()


def keras_backend() -> str:
    """The backend Keras will use, read the way Keras reads it (without importing Keras)."""
    if "keras" in sys.modules:
        try:
            return sys.modules["keras"].backend.backend()
        except Exception:
            pass
    env = os.environ.get("KERAS_BACKEND")
    if env:
        return env
    import json

    cfg = os.path.join(os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras"), "keras.json")
    try:
        with open(cfg) as fh:
            return json.load(fh).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


_BACKEND_MODULE = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def import_keras_quietly() -> None:
    """Import Keras (and its backend) once per process. Under TensorFlow, file descriptor 2 points
    at /dev/null meanwhile: TensorFlow's C++ start-up lines (CPU features, oneDNN, missing CUDA)
    are written before its logging can be configured and are noise for CLI users. Import errors
    still raise as Python exceptions.

    Under a lock: two threads importing TensorFlow at once (the first two requests of a web
    server) fail with errors from half-initialised modules, and the descriptor swap is process-wide."""
    global _keras_imported
    if _keras_imported:
        return
    with _IMPORT_LOCK:
        if _keras_imported:
            return
        backend = keras_backend()
        quiet = backend == "tensorflow" and "tensorflow" not in sys.modules and not _tf_verbose()
        if quiet:
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

        _keras_imported = True


def keras_model(spec: ModelSpec, precision: str = FP32):
    """The backbone's Keras feature model (built once per process), and the seconds it took."""
    key = (spec.backbone.name, spec.pooling, precision, str(spec.weights_dir), spec.weights)
    import_keras_quietly()
    with _BUILD_LOCK:
        entry = _KERAS_MODELS.get(key)
        if entry is None:
            import keras

            t0 = time.perf_counter()
            old = keras.config.dtype_policy()
            if precision == BF16:  # bf16 compute, fp32 weights (Keras mixed precision)
                keras.config.set_dtype_policy("mixed_bfloat16")
            try:
                model = spec.backbone.build_feature_model(spec.weights_dir, pooling=spec.pooling, weights=spec.weights)
            finally:
                keras.config.set_dtype_policy(old)
            entry = _KERAS_MODELS[key] = (model, time.perf_counter() - t0)
    return entry


def gpu_visible() -> bool:
    """Whether the Keras backend sees a GPU. Cheap when there is no NVIDIA/AMD device node at all
    (no backend is imported then)."""
    if not any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")):
        return False
    backend = keras_backend()
    try:
        if backend == "jax":
            import jax

            return any(d.platform in ("gpu", "cuda", "rocm") for d in jax.devices())
        if backend == "torch":
            import torch

            return bool(torch.cuda.is_available())
        import_keras_quietly()
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    except Exception:
        return False


class KerasRuntime(Runtime):
    name = "keras"

    def unavailable(self) -> str | None:
        backend = keras_backend()
        mod = _BACKEND_MODULE.get(backend)
        if importlib.util.find_spec("keras") is None:
            return "keras is not installed"
        if mod is None:
            return f"unsupported KERAS_BACKEND {backend!r} (use tensorflow, jax or torch)"
        if importlib.util.find_spec(mod) is None:
            return f"KERAS_BACKEND={backend} but {mod} is not installed"
        return None

    def version(self) -> str:
        from importlib.metadata import version

        return f"{version('keras')}/{keras_backend()}"

    def refuses(self, spec: ModelSpec) -> str | None:
        if spec.precision == INT8:
            return "int8 is made by NNCF for OpenVINO here (runtime openvino)"
        if spec.device == "gpu" and not gpu_visible():
            return f"no GPU visible to the Keras backend ({keras_backend()})"
        return None

    def open(self, spec: ModelSpec) -> Session:
        model, seconds = keras_model(spec, spec.precision)
        lock = threading.Lock()

        def run(x: np.ndarray) -> np.ndarray:
            with lock:
                out = model.predict_on_batch(x)
            return np.asarray(out, dtype=np.float32)

        return Session(runtime=self.name, version=self.version(), precision=spec.precision, device=spec.device,
                       run=run, source="keras", extra={"build_seconds": seconds})


def _tf_verbose() -> bool:
    """``SIMSEARCH_TF_VERBOSE`` (the settings): show TensorFlow's start-up messages."""
    try:
        return env_settings().tf_verbose
    except InvalidInput:
        return False
