"""The :class:`Backbone` interface every CNN feature extractor implements.

Nothing here imports TensorFlow: models are built lazily by ``build_feature_model`` /
``build_classifier`` so that listing backbones, checking weights and preprocessing stay cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from simsearch.errors import InvalidInput


class Backbone:
    """A pretrained ImageNet CNN used as a fixed feature extractor.

    Attributes: ``name`` (registry key), ``input_size`` (square side in pixels), ``dim``
    (length of the pooled feature vector) and ``family`` (the preprocessing convention:
    ``"caffe"``, ``"tf"``, ``"raw"`` or ``"lite"``).
    """

    name: str
    input_size: int
    dim: int
    family: str

    def __init__(self, name: str, input_size: int, dim: int, family: str):
        self.name, self.input_size, self.dim, self.family = name, input_size, dim, family

    def __repr__(self) -> str:
        return f"<Backbone {self.name} {self.input_size}px dim={self.dim} family={self.family}>"

    @property
    def env_var(self) -> str:
        """Environment variable that may name a weights file for this backbone."""
        return f"SIMSEARCH_WEIGHTS_{self.name.upper()}"

    # -- preprocessing (numpy only) -------------------------------------------------------
    def preprocess(self, batch) -> np.ndarray:
        """NHWC RGB pixels in 0..255 (uint8 or float) -> float32 model input. Never modifies ``batch``."""
        x = np.asarray(batch)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise InvalidInput(f"{self.name}: expected a batch of RGB images shaped (N, H, W, 3), got {x.shape}")
        return self._preprocess(x.astype(np.float32))  # astype copies

    def _preprocess(self, x: np.ndarray) -> np.ndarray:
        """float32 pixels -> model input; ``x`` is a fresh copy that may be changed in place."""
        raise NotImplementedError

    # -- models (TensorFlow, built lazily) ------------------------------------------------
    def build_feature_model(self, weights_dir, pooling: str = "avg", weights=None):
        """keras.Model: preprocessed (None, S, S, 3) -> (None, dim) pooled features (not normalised);
        ``pooling="none"``: the last feature map itself, (None, h, w, dim), for poolings computed
        outside the model (GeM: :mod:`simsearch.embedding.embedder`)."""
        raise NotImplementedError

    def build_classifier(self, weights_dir, weights=None):
        """keras.Model: preprocessed (None, S, S, 3) -> (None, 1000) ImageNet class probabilities."""
        raise NotImplementedError

    def weights_status(self, weights_dir) -> tuple[bool, str]:
        """Cheap check (no TensorFlow): are the weights available locally? ``(ok, reason if not)``."""
        raise NotImplementedError

    def weights_file(self, weights_dir, weights=None) -> Path | None:
        """The file the weights come from (its digest keys converted models), without TensorFlow;
        None when they are still to be downloaded."""
        raise NotImplementedError


MODEL_POOLINGS = ("avg", "max", "none")  # "none": the model outputs its last feature map


def check_pooling(pooling: str) -> str:
    if pooling not in MODEL_POOLINGS:
        raise InvalidInput(f"pooling must be 'avg', 'max' or 'none' (the feature map), got {pooling!r}",
                           field="pooling")
    return pooling


def as_path(p) -> Path | None:
    return None if p is None else Path(os.fspath(p)).expanduser()
