"""The model cache: every opened model session of the process, each opened once.

Opening a model costs seconds and hundreds of MB, so the web app, a worker, the CLI and the tests
share one :class:`ModelCache` per process (:data:`MODELS`), keyed by (backbone, runtime,
precision, options), the options being what else makes a different model: the pooling inside
the model, the weights folder and file, and the device. Embedders
(:class:`simsearch.embedding.embedder.Embedder`) are cheap views of a space that take their
session from here; nothing else keeps models.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, NamedTuple


class ModelKey(NamedTuple):
    backbone: str
    runtime: str  # as asked: ``auto`` or a runtime's name
    precision: str
    options: tuple  # (model pooling, weights folder, weights file or None, device, int8 calibration folder)

    @classmethod
    def of(cls, spec, runtime: str) -> "ModelKey":
        """The key of a :class:`simsearch.embedding.runtimes.ModelSpec` opened on ``runtime``."""
        return cls(spec.backbone.name, runtime, spec.precision,
                   (spec.pooling, str(spec.weights_dir), spec.weights, spec.device,
                    str(spec.calibration) if spec.calibration else None))


class ModelCache:
    """Opened sessions by :class:`ModelKey`. Thread-safe: a model is opened once even when two
    threads ask at the same moment (opening holds the cache's lock)."""

    def __init__(self):
        self._sessions: dict[ModelKey, object] = {}
        self._lock = threading.Lock()

    def peek(self, key: ModelKey):
        """The session of ``key`` when it is open, else None (opens nothing)."""
        return self._sessions.get(key)

    def get(self, key: ModelKey, open_session: Callable[[], object]) -> tuple[object, float]:
        """(the session of ``key``, the seconds it took to open now: 0.0 when it was open)."""
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                return session, 0.0
            t0 = time.perf_counter()
            session = self._sessions[key] = open_session()
            return session, time.perf_counter() - t0

    def loaded_backbones(self) -> set[str]:
        """Names of the backbones with a model open."""
        return {key.backbone for key in list(self._sessions)}

    def clear(self) -> None:
        """Forget every session (they close when nothing else holds them)."""
        with self._lock:
            self._sessions.clear()

    def __len__(self) -> int:
        return len(self._sessions)


MODELS = ModelCache()  # the process's one model cache
