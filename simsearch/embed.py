"""Embedding: uint8 images at a backbone's input size -> L2-normalised float32 vectors.

An embedding *space* is a backbone with its pooling, its test-time views and the numerics of its
vectors, named ``backbone[@pooling][+flip][+ms][+bf16]``:

- pooling: ``avg`` (global average pooling, the default: not written), ``max``, or GeM
  (generalised mean, ``(mean x^p)^(1/p)`` over the last feature map) at p = 2, 3 or 4 (``@gem3``);
  GeM runs the backbone up to its feature map and pools here (:func:`pool_map`);
- views (test-time augmentation): ``+flip`` adds the left-right mirrored image, ``+ms`` a second
  scale (the centre of the image zoomed by :data:`MS_ZOOM`, at the same input size: a fixed-size
  model sees the subject larger, not in more detail); ``+flip+ms`` the four combinations. The
  vector is the normalised sum of the views' normalised vectors, the same at ingest and for a
  query image;
- numerics: fp32 (not written) or ``+bf16`` (computed in bfloat16).

E.g. ``efficientnet_lite0`` (the default), ``efficientnet_lite0@max``, ``efficientnet_lite0@gem3+flip``.
Vectors of different spaces are never mixed. fp32 vectors from any runtime share a space: every
converted runtime is validated against Keras fp32 (cosine >= 0.9999); bf16 vectors differ more
(cosine ~0.998), so they get a space of their own.

The model runs on a runtime from :mod:`simsearch.runtimes` (``auto``: OpenVINO or ONNX Runtime on
a validated converted model where installed, else Keras), on the CPU or a GPU.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
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

GEM_P = {"gem2": 2.0, "gem3": 3.0, "gem4": 4.0}  # GeM poolings and their exponent
POOLINGS = ("avg", "max", *GEM_P)
VIEWS = ("flip", "ms")  # test-time views, written in this order after the pooling
MS_ZOOM = 1.4  # the second scale of ``+ms``: the centre 1/1.4 of each side, resized to the input size
GEM_EPS = 1e-6

# Opened runtime sessions, shared by every Embedder in the process (the web app, tests): opening
# one costs seconds and hundreds of MB, so each (backbone, pooling, precision, weights, runtime,
# device) is opened once. Keys start with the backbone name.
_MODELS: dict[tuple, object] = {}
_MODELS_LOCK = threading.Lock()


def import_tensorflow_quietly() -> None:
    """Import Keras and its backend once per process (the old name, kept for callers)."""
    from simsearch.runtimes.keras_rt import import_keras_quietly

    import_keras_quietly()


@dataclass(frozen=True)
class SpaceSpec:
    """A backbone space's parts: ``efficientnet_lite0@gem3+flip`` -> backbone ``efficientnet_lite0``,
    pooling ``gem3``, views ``('flip',)``, precision ``fp32``."""

    backbone: str
    pooling: str = "avg"
    views: tuple[str, ...] = ()
    precision: str = FP32

    @property
    def key(self) -> str:
        return space_key(self.backbone, self.pooling, self.precision, self.views)

    @property
    def model_pooling(self) -> str:
        """The pooling inside the model: GeM pools the feature map here (``none``)."""
        return "none" if self.pooling in GEM_P else self.pooling

    @property
    def view_list(self) -> list[str]:
        """The images each input is embedded as: ``plain``, ``flip``, ``zoom``, ``zoom-flip``."""
        scales = ["plain", "zoom"] if "ms" in self.views else ["plain"]
        out = []
        for sc in scales:
            out.append(sc)
            if "flip" in self.views:
                out.append("flip" if sc == "plain" else "zoom-flip")
        return out


def space_key(backbone: str, pooling: str = "avg", precision: str = FP32, views=()) -> str:
    """``('resnet50', 'gem3', 'bf16', ('flip',))`` -> ``'resnet50@gem3+flip+bf16'``; validates every part."""
    if pooling not in POOLINGS:
        raise InvalidInput(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}", field="pooling")
    if precision not in PRECISIONS:
        raise InvalidInput(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}", field="precision")
    views = tuple(views)
    for v in views:
        if v not in VIEWS:
            raise InvalidInput(f"test-time views are {', '.join(VIEWS)}, not {v!r}", field="backbone")
    get_backbone(backbone)  # validates the name
    key = backbone if pooling == "avg" else f"{backbone}@{pooling}"
    key += "".join(f"+{v}" for v in VIEWS if v in views)
    return key if precision == FP32 else f"{key}+{precision}"


def _split(space: str) -> tuple[str, str | None, tuple[str, ...], str | None]:
    """``'resnet50@gem3+flip+bf16'`` -> ``('resnet50', 'gem3', ('flip',), 'bf16')``; None where not
    written. Checks the order of the suffixes (views, then precision), not the names."""
    head, *suffixes = str(space).split("+")
    if any(not x for x in suffixes):
        raise InvalidInput(f"{space!r}: nothing after '+' (write e.g. efficientnet_lite0+flip or "
                           "efficientnet_lite0+bf16)", field="backbone")
    name, at, pooling = head.partition("@")
    precision = suffixes.pop() if suffixes and suffixes[-1] in PRECISIONS else None
    views = tuple(suffixes)
    if len(set(views)) != len(views) or any(v not in VIEWS for v in views) or \
            list(views) != [v for v in VIEWS if v in views]:
        raise InvalidInput(f"{space!r}: after the backbone and its pooling come the test-time views "
                           f"({' then '.join('+' + v for v in VIEWS)}, each at most once), then the precision "
                           f"(+{' or +'.join(PRECISIONS)})", field="backbone")
    return name, (pooling if at else None), views, precision


def parse_space_spec(space: str) -> SpaceSpec:
    """``'resnet50@gem3+flip'`` -> its :class:`SpaceSpec`; validates every part."""
    name, pooling, views, precision = _split(space)
    spec = SpaceSpec(name, pooling or "avg", views, precision or FP32)
    spec.key  # noqa: B018 - validates
    return spec


def parse_space_full(space: str) -> tuple[str, str, str]:
    """``'resnet50@max+bf16'`` -> ``('resnet50', 'max', 'bf16')``; validates every part (test-time
    views too: :func:`parse_space_spec` returns them)."""
    spec = parse_space_spec(space)
    return spec.backbone, spec.pooling, spec.precision


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
    """The space new vectors of ``backbone`` go to under ``settings`` (runtime, precision, device).
    ``backbone`` may carry its pooling and views (``efficientnet_lite0@gem3+flip``): they win over
    ``pooling``; a precision it names wins over ``precision``."""
    from simsearch.runtimes import resolve_device, resolve_precision

    name, pool, views, given = _split(backbone)
    device = resolve_device(settings.device)
    return space_key(name, pool or pooling, resolve_precision(given or precision or settings.precision,
                                                              settings.runtime, device), views)


def loaded_backbones() -> set[str]:
    """Names of the backbones with a model open in this process."""
    return {key[0] for key in list(_MODELS)}


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

    ``runtime``: ``auto`` or a name from :func:`simsearch.runtimes.runtime_names`; ``device``:
    ``auto``, ``cpu`` or ``gpu``. The precision comes from the space (``+bf16``)."""

    def __init__(self, space: str, weights_dir: Path, *, weights: str | None = None, runtime: str = "auto",
                 device: str = "auto"):
        self.space = space
        if not check_space_name(space):
            raise Conflict(f"the {space!r} vectors were imported (simsearch import-vectors): simsearch cannot embed an "
                           "image in that space; search by an image's id (similar), or choose a backbone's space",
                           field="backbone")
        self.spec = parse_space_spec(space)
        name, self.pooling, self.precision = self.spec.backbone, self.spec.pooling, self.spec.precision
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
        pooling = self.spec.model_pooling  # GeM: the model's feature map, pooled here
        spec = ModelSpec(self.backbone, pooling, self.precision, self.weights_dir, self.weights, device)
        key = (self.backbone.name, pooling, self.precision, str(self.weights_dir), self.weights, self.runtime, device)
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

        from simsearch.analysis.regions import pixel_box
        from simsearch.images import resize_for_model

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

    def embed_variants(self, pixels: np.ndarray, spaces: list[str], *, pad_to: int | None = None,
                       view_seconds: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """One batch in several spaces of this backbone and precision at once, sharing the model's
        work: each test-time view runs the feature map once (this embedder's space must pool
        outside the model, e.g. ``@gem3``) and every space pools and combines what it needs.
        The vectors equal each space's own :meth:`embed` (to float rounding). ``view_seconds``:
        each view's model seconds are added to it."""
        if self.spec.model_pooling != "none":
            raise InvalidInput(f"embed_variants needs an embedder of the feature map (a GeM space), not {self.space}",
                               field="backbone")
        specs = {sp: parse_space_spec(sp) for sp in spaces}
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
