"""Backbones from ``keras.applications`` (ResNet50, VGG16/19, InceptionV3, MobileNetV2, EfficientNetB0).

Weights are looked up in this order, and random weights are never used:

1. the explicit ``weights`` argument (a file path; missing file -> :class:`WeightsUnavailable`);
2. the file named by ``$SIMSEARCH_WEIGHTS_<NAME>`` (feature model only);
3. Keras's own file name (e.g. ``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5``) in ``weights_dir``;
4. the same file in Keras's cache (``$KERAS_HOME`` or ``~/.keras``, then ``/tmp/.keras``, under ``models/``);
5. Keras's normal ``weights="imagenet"`` download (with a short network timeout).
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsearch.config import env_weights_file
from simsearch.errors import InvalidInput, WeightsUnavailable

from .base import Backbone, as_path, check_pooling
from simsearch.config import env_settings

_GCS = "https://storage.googleapis.com/tensorflow/keras-applications/"
DOWNLOAD_HOST = "storage.googleapis.com"
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


@dataclass(frozen=True)
class AppSpec:
    name: str
    constructor: str  # attribute of keras.applications
    input_size: int
    dim: int
    family: str  # caffe | tf | raw
    notop_file: str
    top_file: str
    url_base: str


def _spec(name, ctor, size, dim, family, notop, top, base) -> AppSpec:
    return AppSpec(name, ctor, size, dim, family, notop, top, base)


APP_SPECS = [
    _spec("resnet50", "ResNet50", 224, 2048, "caffe",
          "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
          "resnet50_weights_tf_dim_ordering_tf_kernels.h5", _GCS + "resnet/"),
    _spec("vgg16", "VGG16", 224, 512, "caffe",
          "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
          "vgg16_weights_tf_dim_ordering_tf_kernels.h5", _GCS + "vgg16/"),
    _spec("vgg19", "VGG19", 224, 512, "caffe",
          "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
          "vgg19_weights_tf_dim_ordering_tf_kernels.h5", _GCS + "vgg19/"),
    _spec("inception_v3", "InceptionV3", 299, 2048, "tf",
          "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
          "inception_v3_weights_tf_dim_ordering_tf_kernels.h5", _GCS + "inception_v3/"),
    _spec("mobilenet_v2", "MobileNetV2", 224, 1280, "tf",
          "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
          "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5", _GCS + "mobilenet_v2/"),
    _spec("efficientnet_b0", "EfficientNetB0", 224, 1280, "raw",
          "efficientnetb0_notop.h5", "efficientnetb0.h5", "https://storage.googleapis.com/keras-applications/"),
]


def keras_cache_dirs() -> list[Path]:
    """Where ``keras.utils.get_file(..., cache_subdir="models")`` puts downloads."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    dirs = [Path(home) / "models", Path("/tmp/.keras/models")]
    return list(dict.fromkeys(dirs))


def download_timeout() -> float:
    """Per-socket-operation timeout for weight downloads (``$SIMSEARCH_DOWNLOAD_TIMEOUT``, default 30 s)."""
    try:
        return env_settings().download_timeout
    except InvalidInput:
        return 30.0


def _network_reachable(host: str, timeout: float) -> str | None:
    """None if ``host`` resolves within ``timeout`` seconds, else why not (DNS can hang offline)."""
    result: list = []

    def resolve():
        try:
            socket.getaddrinfo(host, 443)
            result.append(None)
        except OSError as exc:
            result.append(f"cannot resolve {host}: {exc}")

    t = threading.Thread(target=resolve, daemon=True)
    t.start()
    t.join(timeout)
    return result[0] if result else f"resolving {host} timed out after {timeout:g}s"


class KerasAppBackbone(Backbone):
    def __init__(self, spec: AppSpec):
        super().__init__(spec.name, spec.input_size, spec.dim, spec.family)
        self.spec = spec

    # -- preprocessing: numpy versions of keras.applications.<module>.preprocess_input ------
    def _preprocess(self, x: np.ndarray) -> np.ndarray:
        if self.family == "caffe":  # RGB -> BGR, subtract the ImageNet mean, no scaling
            x = np.ascontiguousarray(x[..., ::-1])
            x -= _CAFFE_MEAN_BGR
            return x
        if self.family == "tf":  # scale to [-1, 1] (in place: x is preprocess's own copy)
            x /= np.float32(127.5)
            x -= np.float32(1.0)
            return x
        return x  # "raw": Keras EfficientNet rescales and normalises inside the model

    # -- weights --------------------------------------------------------------------------
    def _local_candidates(self, weights_dir, top: bool) -> list[Path]:
        fname = self.spec.top_file if top else self.spec.notop_file
        out = []
        if weights_dir is not None:
            out.append(as_path(weights_dir) / fname)
        out += [d / fname for d in keras_cache_dirs()]
        return out

    def _explicit(self, weights, top: bool) -> Path | None:
        if weights is not None:
            p = as_path(weights)
            if not p.is_file():
                raise WeightsUnavailable(f"{self.name}: weights file {p} does not exist",
                                         details={"backbone": self.name, "file": str(p)})
            return p
        env = env_weights_file(self.name) if not top else None
        if env:
            p = as_path(env)
            if not p.is_file():
                raise WeightsUnavailable(f"{self.name}: weights file {p} (from ${self.env_var}) does not exist",
                                         details={"backbone": self.name, "file": str(p)})
            return p
        return None

    def resolve_local(self, weights_dir, weights=None, top: bool = False) -> Path | None:
        """The weights file to load, or None if it would have to be downloaded."""
        explicit = self._explicit(weights, top)
        if explicit is not None:
            return explicit
        return next((p for p in self._local_candidates(weights_dir, top) if p.is_file()), None)

    def weights_file(self, weights_dir, weights=None) -> Path | None:
        return self.resolve_local(weights_dir, weights)

    def weights_status(self, weights_dir) -> tuple[bool, str]:
        try:
            if self.resolve_local(weights_dir) is not None:
                return True, ""
        except WeightsUnavailable as exc:
            return False, exc.message
        where = str(as_path(weights_dir)) if weights_dir is not None else "the weights directory"
        return False, (f"not downloaded yet: {self.name} will download {self.spec.notop_file} on first use, "
                       f"or put {self.spec.notop_file} in {where}")

    def _unavailable(self, weights_dir, top: bool, reason: str) -> WeightsUnavailable:
        fname = self.spec.top_file if top else self.spec.notop_file
        where = str(as_path(weights_dir) / fname) if weights_dir is not None else fname
        return WeightsUnavailable(
            f"{self.name}: pretrained ImageNet weights are not available ({reason}). "
            f"Download {self.spec.url_base}{fname} and put it at {where}, or pass --weights {self.name}=FILE "
            f"(or set SIMSEARCH_WEIGHTS_{self.name.upper()}=FILE).",
            details={"backbone": self.name, "file": fname, "path": where, "url": self.spec.url_base + fname},
        )

    # -- models ---------------------------------------------------------------------------
    def _build(self, weights_dir, weights, top: bool, pooling: str | None):
        path = self.resolve_local(weights_dir, weights, top)
        if path is None:  # must download: fail fast (before importing TensorFlow) when offline
            reason = _network_reachable(DOWNLOAD_HOST, timeout=5.0)
            if reason is not None:
                raise self._unavailable(weights_dir, top, reason)

        import keras

        ctor = getattr(keras.applications, self.spec.constructor)
        kwargs = dict(include_top=top, input_shape=(self.input_size, self.input_size, 3))
        if not top:
            kwargs["pooling"] = None if pooling == "none" else pooling
        if path is not None:
            model = ctor(weights=None, **kwargs)
            try:
                model.load_weights(str(path))
            except Exception as exc:
                raise WeightsUnavailable(f"{self.name}: cannot load weights from {path}: {exc}",
                                         details={"backbone": self.name, "file": str(path)}) from exc
            return model
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(download_timeout())
        try:
            return ctor(weights="imagenet", **kwargs)
        except Exception as exc:
            raise self._unavailable(weights_dir, top, f"download failed: {exc}") from exc
        finally:
            socket.setdefaulttimeout(old)

    def build_feature_model(self, weights_dir, pooling: str = "avg", weights=None):
        return self._build(weights_dir, weights, top=False, pooling=check_pooling(pooling))

    def build_classifier(self, weights_dir, weights=None):
        return self._build(weights_dir, weights, top=True, pooling=None)
