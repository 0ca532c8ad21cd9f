"""Embedding: uint8 images at a backbone's input size -> L2-normalised float32 vectors in a space.

A space (:mod:`simsearch.spaces`: ``backbone[@pooling][+flip][+ms][+bf16|+int8]``, parsed there into a
:class:`~simsearch.spaces.SpaceSpec`, which is what an embedder is given: it never reads names) says what is
computed: the backbone, its pooling (GeM runs the backbone up to its feature map and pools here:
:func:`pool_map`), the test-time views (``+flip`` adds the left-right mirrored image, ``+ms`` a
second scale: the centre of the image zoomed by :data:`MS_ZOOM`, at the same input size: a
fixed-size model sees the subject larger, not in more detail; the vector is the normalised sum of
the views' normalised vectors, the same at ingest and for a query image) and the numerics
(``+bf16``). Vectors of different spaces are never mixed. fp32 vectors from any runtime share a
space: every converted runtime is validated against Keras fp32 (cosine >= 0.9999); bf16 vectors
differ more (cosine ~0.998), so they get a space of their own, and so do int8 ones (OpenVINO
quantized by NNCF, cosine ~0.98).

The model (:mod:`simsearch.embedding.backbones`) runs on a runtime from :mod:`simsearch.embedding.runtimes` (``auto``: OpenVINO or ONNX Runtime on
a validated converted model where installed, else Keras), on the CPU or a GPU; opened models are
kept in the process's one model cache (:mod:`simsearch.embedding.cache`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from simsearch.embedding.backbones import Backbone, get_backbone
from simsearch.embedding.cache import MODELS, ModelKey
from simsearch.embedding.pooling import GEM_P, POOLINGS
from simsearch.embedding.runtimes import ModelSpec, check_choice, open_session, resolve_device
from simsearch.errors import InvalidInput
from simsearch.analysis.regions import pixel_box
from simsearch.embedding.runtimes import RuntimeRefused, get_runtime
from simsearch.embedding.runtimes.keras_rt import import_keras_quietly
from simsearch.images import resize_for_model

MS_ZOOM = 1.4  # the second scale of ``+ms``: the centre 1/1.4 of each side, resized to the input size
GEM_EPS = 1e-6


def import_tensorflow_quietly() -> None:
    """Import Keras and its backend once per process (the old name, kept for callers)."""
    import_keras_quietly()


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def pool_map(fmap: np.ndarray, pooling: str) -> np.ndarray:
    """Global pooling of feature maps (N, h, w, C) -> (N, C): ``avg``, ``max`` or GeM
    ``(mean max(x, eps)^p)^(1/p)`` (``gem3``: p = 3; p = 1 is the average, p -> inf the maximum)."""
    f = np.asarray(fmap, dtype=np.float32)
    if f.ndim != 4:
        raise InvalidInput(f"feature maps must be shaped (N, h, w, C), got {f.shape}", field="fmap")
    if pooling == "avg":
        return f.mean(axis=(1, 2))
    if pooling == "max":
        return f.max(axis=(1, 2))
    p = GEM_P.get(pooling)
    if p is None:
        raise InvalidInput(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}", field="pooling")
    x = np.maximum(f.astype(np.float64), GEM_EPS) ** p
    return (x.mean(axis=(1, 2)) ** (1.0 / p)).astype(np.float32)


def view_pixels(pixels: np.ndarray, view: str) -> np.ndarray:
    """A batch (N, S, S, 3) uint8 as one test-time view: ``plain``; ``flip`` (mirrored left-right);
    ``zoom`` (the centre 1/:data:`MS_ZOOM` of each side, resized back to S, bicubic); ``zoom-flip``."""
    from PIL import Image as PILImage

    x = np.asarray(pixels)
    if view.startswith("zoom"):
        s = x.shape[1]
        c = max(1, int(round(s / MS_ZOOM)))
        o = (s - c) // 2
        x = np.stack([np.asarray(PILImage.fromarray(np.ascontiguousarray(im[o:o + c, o:o + c]))
                                 .resize((s, s), PILImage.BICUBIC)) for im in x]) if len(x) else x
    if view.endswith("flip"):
        x = x[:, :, ::-1]
    return np.ascontiguousarray(x)


def combine_views(per_view: list[np.ndarray]) -> np.ndarray:
    """The vector of a space with test-time views: the normalised sum of each view's normalised vector."""
    return l2_normalise(sum(l2_normalise(v) for v in per_view))


class Embedder:
    """Embeds batches with one backbone on one runtime. Thread-safe (one forward at a time per model).

    ``spec``: the space's parts (a :class:`simsearch.spaces.SpaceSpec`: backbone, pooling, views,
    precision; :func:`simsearch.spaces.parse` makes one from a name). ``runtime``: ``auto`` or a name
    from :func:`simsearch.embedding.runtimes.runtime_names`; ``device``: ``auto``, ``cpu`` or ``gpu``.
    The precision comes from the space (``+bf16``, ``+int8``); ``calibration``: the folder of photos
    an int8 model is calibrated on (:mod:`simsearch.embedding.runtimes.calibration`)."""

    def __init__(self, spec, weights_dir: Path, *, weights: str | None = None, runtime: str = "auto",
                 device: str = "auto", calibration: Path | None = None):
        self.spec = spec
        self.space = spec.key
        name, self.pooling, self.precision = self.spec.backbone, self.spec.pooling, self.spec.precision
        self.backbone: Backbone = get_backbone(name)
        self.weights_dir = Path(weights_dir)
        self.weights = weights
        self.runtime = check_choice(runtime)
        self.device = device
        self.calibration = Path(calibration) if calibration and self.precision == "int8" else None
        self.load_seconds = 0.0  # what opening the model took, when this embedder opened it
        self._key: ModelKey | None = None
        self._session = None

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
        if self.runtime != "auto":
            why = get_runtime(self.runtime).unavailable()
            if why is not None:
                raise RuntimeRefused(f"runtime {self.runtime}: {why}", field="runtime")
        if self.weights is None:
            ok, _ = self.backbone.weights_status(self.weights_dir)
            if ok:
                return
        self.load()

    def _model(self) -> tuple[ModelSpec, ModelKey]:
        """What to open (the device resolved) and its key in the model cache."""
        pooling = self.spec.model_pooling  # GeM: the model's feature map, pooled here
        spec = ModelSpec(self.backbone, pooling, self.precision, self.weights_dir, self.weights,
                         resolve_device(self.device), self.calibration)
        return spec, ModelKey.of(spec, self.runtime)

    @property
    def session(self):
        """The open model session (None until it is opened, by this embedder or another of the
        same model: they share the process's model cache)."""
        if self._session is None:
            if self._key is None:
                self._key = self._model()[1]
            self._session = MODELS.peek(self._key)
        return self._session

    def load(self) -> None:
        """Open the model now (raises WeightsUnavailable if its weights cannot be had, RuntimeRefused
        if the runtime asked for cannot run it here)."""
        if self.session is not None:
            return
        spec, self._key = self._model()
        self._session, self.load_seconds = MODELS.get(self._key, lambda: open_session(spec, self.runtime))

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
        if self.spec.model_pooling == self.pooling and not self.spec.views:
            return l2_normalise(self._forward_padded(pixels, pad_to))
        return combine_views([self._pooled(self._forward_padded(view_pixels(pixels, v), pad_to))
                              for v in self.spec.view_list])[:n]

    def embed_regions(self, image, boxes) -> np.ndarray:
        """One decoded image (a PIL RGB image or a uint8 (H, W, 3) array) and regions of it in one
        batch -> (1 + len(boxes), dim) L2-normalised vectors: the whole image first (squashed to
        the input size exactly as :meth:`embed` is fed at ingest), then each box's crop (``boxes``:
        normalised ``(x0, y0, x1, y1)``, see :mod:`simsearch.analysis.regions`), squashed alike."""
        from PIL import Image as PILImage

        im = image if isinstance(image, PILImage.Image) else PILImage.fromarray(np.asarray(image))
        s = self.input_size
        batch = [resize_for_model(im, s)]
        for box in boxes:
            batch.append(resize_for_model(im.crop(pixel_box(box, im.width, im.height)), s))
        return self.embed(np.stack(batch))

    def _forward_padded(self, pixels: np.ndarray, pad_to: int | None) -> np.ndarray:
        n = len(pixels)
        x = self.backbone.preprocess(pixels)
        self.load()
        if pad_to is not None and n < pad_to and self.session.runtime == "keras":
            x = np.concatenate([x, np.repeat(x[:1], pad_to - n, axis=0)])
        return self.forward(x)[:n]

    def _pooled(self, out: np.ndarray) -> np.ndarray:
        return pool_map(out, self.pooling) if self.spec.model_pooling == "none" else out

    def embed_variants(self, pixels: np.ndarray, specs: dict, *, pad_to: int | None = None,
                       view_seconds: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """One batch in several spaces of this backbone and precision at once (``specs``: space name
        -> its :class:`~simsearch.spaces.SpaceSpec`), sharing the model's
        work: each test-time view runs the feature map once (this embedder's space must pool
        outside the model, e.g. ``@gem3``) and every space pools and combines what it needs.
        The vectors equal each space's own :meth:`embed` (to float rounding). ``view_seconds``:
        each view's model seconds are added to it."""
        if self.spec.model_pooling != "none":
            raise InvalidInput(f"embed_variants needs an embedder of the feature map (a GeM space), not {self.space}",
                               field="backbone")
        for sp, spec in specs.items():
            if (spec.backbone, spec.precision) != (self.spec.backbone, self.spec.precision):
                raise InvalidInput(f"{sp} is not a space of {self.spec.backbone} at {self.spec.precision}",
                                   field="backbone")
        pixels = np.asarray(pixels)
        maps: dict[str, np.ndarray] = {}
        for view in dict.fromkeys(v for spec in specs.values() for v in spec.view_list):
            t0 = time.perf_counter()
            maps[view] = self._forward_padded(view_pixels(pixels, view), pad_to)
            if view_seconds is not None:
                view_seconds[view] = view_seconds.get(view, 0.0) + time.perf_counter() - t0
        return {sp: combine_views([pool_map(maps[v], spec.pooling) for v in spec.view_list])
                for sp, spec in specs.items()}
