"""Embedding: uint8 images at a backbone's input size -> L2-normalised float32 vectors.

An embedding *space* is a backbone with its pooling and the numerics of its vectors:
``efficientnet_lite0`` (global average pooling, fp32: the default), ``efficientnet_lite0@max``,
``efficientnet_lite0+bf16`` (computed in bfloat16). Vectors of different spaces are never mixed.
fp32 vectors from any runtime share a space: every converted runtime is validated against Keras
fp32 (cosine >= 0.9999); bf16 vectors differ more (cosine ~0.998), so they get a space of their own.

The model runs on a runtime from :mod:`simsearch.runtimes` (``auto``: OpenVINO or ONNX Runtime on
a validated converted model where installed, else Keras), on the CPU or a GPU.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from simsearch.backbones import Backbone, get_backbone
from simsearch.errors import Conflict, InvalidInput
from simsearch.runtimes import FP32, PRECISIONS, ModelSpec, check_choice, open_session, resolve_device


def _tf_verbose() -> bool:
    """``SIMSEARCH_TF_VERBOSE``: show TensorFlow's start-up messages (quiet by default)."""
    from simsearch.config import env_settings

    try:
        return env_settings().tf_verbose
    except InvalidInput:
        return False

POOLINGS = ("avg", "max")

# Opened runtime sessions, shared by every Embedder in the process (the web app, tests): opening
# one costs seconds and hundreds of MB, so each (backbone, pooling, precision, weights, runtime,
# device) is opened once. Keys start with the backbone name.
_MODELS: dict[tuple, object] = {}
_MODELS_LOCK = threading.Lock()


def import_tensorflow_quietly() -> None:
    """Import Keras and its backend once per process (the old name, kept for callers)."""
    from simsearch.runtimes.keras_rt import import_keras_quietly

    import_keras_quietly()


def space_key(backbone: str, pooling: str = "avg", precision: str = FP32) -> str:
    """``('resnet50', 'max', 'bf16')`` -> ``'resnet50@max+bf16'``; validates every part."""
    if pooling not in POOLINGS:
        raise InvalidInput(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}", field="pooling")
    if precision not in PRECISIONS:
        raise InvalidInput(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}", field="precision")
    get_backbone(backbone)  # validates the name
    key = backbone if pooling == "avg" else f"{backbone}@{pooling}"
    return key if precision == FP32 else f"{key}+{precision}"


def parse_space_full(space: str) -> tuple[str, str, str]:
    """``'resnet50@max+bf16'`` -> ``('resnet50', 'max', 'bf16')``; validates every part."""
    rest, plus, precision = str(space).partition("+")
    if plus and not precision:
        raise InvalidInput(f"{space!r}: nothing after '+' (write e.g. efficientnet_lite0+bf16)", field="backbone")
    name, _, pooling = rest.partition("@")
    precision = precision or FP32
    pooling = pooling or "avg"
    space_key(name, pooling, precision)
    return name, pooling, precision


def parse_space(space: str) -> tuple[str, str]:
    """``'resnet50@max'`` -> ``('resnet50', 'max')``; validates every part (a ``+bf16`` suffix too)."""
    name, pooling, _ = parse_space_full(space)
    return name, pooling


def is_backbone_space(space: str) -> bool:
    """Whether ``space`` names a backbone's space (its vectors can be computed here); other valid
    names are spaces of imported vectors (``simsearch import-vectors``), which only hold what was
    imported."""
    try:
        parse_space_full(space)
    except InvalidInput:
        return False
    return True


def check_space_name(space: str) -> bool:
    """True for a backbone space, False for a valid name of imported vectors; InvalidInput (the
    backbone's message, naming the choices) for anything else."""
    import re

    from simsearch.limits import SPACE_NAME_PATTERN, SPACE_NAME_RULE

    if is_backbone_space(space):
        return True
    if isinstance(space, str) and re.match(SPACE_NAME_PATTERN, space):
        return False
    try:
        parse_space_full(space)
    except InvalidInput as exc:
        raise InvalidInput(f"{exc.message}; or name imported vectors with {SPACE_NAME_RULE}", field=exc.field,
                           details=exc.details) from None
    return True


def new_space(settings, backbone: str, pooling: str = "avg", precision: str | None = None) -> str:
    """The space new vectors of ``backbone`` go to under ``settings`` (runtime, precision, device)."""
    from simsearch.runtimes import resolve_device, resolve_precision

    device = resolve_device(settings.device)
    return space_key(backbone, pooling, resolve_precision(precision or settings.precision, settings.runtime, device))


def loaded_backbones() -> set[str]:
    """Names of the backbones with a model open in this process."""
    return {key[0] for key in list(_MODELS)}


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class Embedder:
    """Embeds batches with one backbone on one runtime. Thread-safe (one forward at a time per model).

    ``runtime``: ``auto`` or a name from :func:`simsearch.runtimes.runtime_names`; ``device``:
    ``auto``, ``cpu`` or ``gpu``. The precision comes from the space (``+bf16``)."""

    def __init__(self, space: str, weights_dir: Path, *, weights: str | None = None, runtime: str = "auto",
                 device: str = "auto"):
        self.space = space
        if not check_space_name(space):
            raise Conflict(f"the {space!r} vectors were imported (simsearch import-vectors): simsearch cannot embed an "
                           "image in that space; search by an image's id (similar), or choose a backbone's space",
                           field="backbone")
        name, self.pooling, self.precision = parse_space_full(space)
        self.backbone: Backbone = get_backbone(name)
        self.weights_dir = Path(weights_dir)
        self.weights = weights
        self.runtime = check_choice(runtime)
        self.device = device
        self.session = None
        self.load_seconds = 0.0

    @property
    def input_size(self) -> int:
        return self.backbone.input_size

    @property
    def dim(self) -> int:
        return self.backbone.dim

    @property
    def numerics(self) -> str | None:
        """What computes the vectors once loaded, e.g. ``'openvino 2026.4.1 fp32 cpu'``."""
        return None if self.session is None else self.session.describe

    @property
    def preferred_batch_size(self) -> int:
        """Images per forward: 32 on a CPU (enough to keep the cores busy), 256 on a GPU."""
        self.load()
        return 256 if self.session.device == "gpu" else 32

    def check(self) -> None:
        """Cheap checks, without loading anything: the weights are at hand (or will be downloaded:
        then the model is loaded now, so that a failed download is reported early) and the runtime
        asked for is installed. Raises WeightsUnavailable / RuntimeRefused."""
        from simsearch.runtimes import RuntimeRefused, get_runtime

        if self.runtime != "auto":
            why = get_runtime(self.runtime).unavailable()
            if why is not None:
                raise RuntimeRefused(f"runtime {self.runtime}: {why}", field="runtime")
        if self.weights is None:
            ok, _ = self.backbone.weights_status(self.weights_dir)
            if ok:
                return
        self.load()

    def load(self) -> None:
        """Open the model now (raises WeightsUnavailable if its weights cannot be had, RuntimeRefused
        if the runtime asked for cannot run it here)."""
        if self.session is not None:
            return
        device = resolve_device(self.device)
        spec = ModelSpec(self.backbone, self.pooling, self.precision, self.weights_dir, self.weights, device)
        key = (self.backbone.name, self.pooling, self.precision, str(self.weights_dir), self.weights, self.runtime, device)
        with _MODELS_LOCK:
            session = _MODELS.get(key)
            if session is None:
                t0 = time.perf_counter()
                session = _MODELS[key] = open_session(spec, self.runtime)
                self.load_seconds = time.perf_counter() - t0
        self.session = session

    def forward(self, preprocessed: np.ndarray) -> np.ndarray:
        """Bare model forward on an already preprocessed batch (for benchmarks)."""
        self.load()
        return self.session.run(preprocessed)

    def embed(self, pixels: np.ndarray, *, pad_to: int | None = None) -> np.ndarray:
        """uint8 (N, S, S, 3) at the backbone's input size -> (N, dim) float32, L2-normalised.

        ``pad_to``: pad a smaller batch with blank images up to this size, so the model runs the
        batch shape it has already compiled instead of tracing a new one (seconds on a CPU); only
        the Keras runtime needs it, the converted runtimes take any batch size as it is."""
        pixels = np.asarray(pixels)
        s = self.input_size
        if pixels.ndim != 4 or pixels.shape[1:] != (s, s, 3):
            raise InvalidInput(f"{self.space} expects images of shape (N, {s}, {s}, 3), got {pixels.shape}", field="pixels")
        if len(pixels) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        n = len(pixels)
        x = self.backbone.preprocess(pixels)
        self.load()
        if pad_to is not None and n < pad_to and self.session.runtime == "keras":
            x = np.concatenate([x, np.repeat(x[:1], pad_to - n, axis=0)])
        return l2_normalise(self.forward(x)[:n])
