"""Name -> :class:`Runtime`, and the choice ``auto`` makes.

``auto`` tries, in order: on a GPU device, Keras (its backend runs there); on the CPU, the
converting runtimes in :data:`AUTO_ORDER` (fastest first, as measured on the machines in the
README), then Keras. A runtime is skipped when it is not installed, cannot run the precision
or device, or its converted model fails validation; the reasons are kept for the error message.
"""

from __future__ import annotations

import logging

from simsearch.errors import InvalidInput, RuntimeRefused

from .base import BF16, FP32, PRECISIONS, ModelSpec, Runtime, Session
from .hardware import cpu_has_bf16
from .keras_rt import KerasRuntime, gpu_visible
from .onnxruntime_rt import OnnxRuntime
from .openvino_rt import OpenVinoRuntime
from simsearch.embedding.backbones import get_backbone

log = logging.getLogger(__name__)

_RUNTIMES: dict[str, Runtime] = {}
# Fastest first. fp32: ONNX Runtime ran the default backbone 1.15x OpenVINO on an Intel Xeon with
# AMX and 1.1-1.4x on an AMD EPYC (README, "Runtimes and precision"). bf16: only OpenVINO has a
# fast bf16 path (AMX / AVX512-BF16), so ``auto`` at bf16 gets OpenVINO (ONNX Runtime refuses it).
AUTO_ORDER = ["onnxruntime", "openvino", "keras"]
DEVICES = ("auto", "cpu", "gpu")


def register(runtime: Runtime, *, before: str | None = None) -> None:
    """Add a runtime (a plug-in seam: ``auto`` tries it before ``before``, else just before keras)."""
    _RUNTIMES[runtime.name] = runtime
    if runtime.name not in AUTO_ORDER:
        AUTO_ORDER.insert(AUTO_ORDER.index(before or "keras"), runtime.name)


for _rt in (OpenVinoRuntime(), OnnxRuntime(), KerasRuntime()):
    register(_rt)


def auto_order() -> list[str]:
    """The order ``auto`` tries runtimes in (a runtime that cannot run the precision is skipped)."""
    return list(AUTO_ORDER)


def runtime_names() -> list[str]:
    return list(_RUNTIMES)


def get_runtime(name: str) -> Runtime:
    try:
        return _RUNTIMES[name]
    except KeyError:
        raise InvalidInput(f"unknown runtime {name!r}; choose auto or one of: {', '.join(_RUNTIMES)}",
                           field="runtime", details={"choices": ["auto", *_RUNTIMES]}) from None


def check_choice(runtime: str) -> str:
    runtime = (runtime or "auto").strip().lower()
    if runtime != "auto":
        get_runtime(runtime)
    return runtime


def check_precision(precision: str) -> str:
    precision = (precision or "auto").strip().lower()
    if precision not in ("auto", *PRECISIONS):
        raise InvalidInput(f"precision must be auto, fp32, bf16 or int8, not {precision!r}", field="precision")
    return precision


def resolve_device(device: str) -> str:
    device = (device or "auto").strip().lower()
    if device not in DEVICES:
        raise InvalidInput(f"device must be auto, cpu or gpu, not {device!r}", field="device")
    if device == "auto":
        return "gpu" if gpu_visible() else "cpu"
    return device


def resolve_precision(precision: str, runtime: str = "auto", device: str = "cpu") -> str:
    """``auto`` -> bf16 where it is fast here (a CPU with AMX / AVX512-BF16 and a runtime that uses
    it), else fp32 (never int8: it is asked for by name). Explicit values are returned as they are."""
    precision = check_precision(precision)
    if precision != "auto":
        return precision
    if device != "cpu" or not cpu_has_bf16():
        return FP32
    candidates = auto_order() if runtime == "auto" else [runtime]
    for name in candidates:
        rt = _RUNTIMES[name]
        if rt.converts and rt.unavailable() is None and rt.refuses(_probe_spec(BF16)) is None:
            return BF16
    return FP32


def _probe_spec(precision: str) -> ModelSpec:
    from pathlib import Path

    return ModelSpec(get_backbone("efficientnet_lite0"), "avg", precision, Path("."))


def open_session(spec: ModelSpec, runtime: str = "auto") -> Session:
    """Open ``spec`` on ``runtime`` (a name, or ``auto``: the first that works, in AUTO_ORDER).
    Raises :class:`RuntimeRefused` naming every runtime tried and why it was not used."""
    runtime = check_choice(runtime)
    if runtime != "auto":
        candidates = [runtime]
    elif spec.device == "gpu":
        candidates = ["keras"]
    else:
        candidates = auto_order()
    reasons = []
    for name in candidates:
        rt = _RUNTIMES[name]
        why = rt.unavailable() or rt.refuses(spec)
        if why is None:
            try:
                return rt.open(spec)
            except RuntimeRefused as exc:
                why = exc.message
        log.info("runtime %s not used for %s: %s", name, spec.name, why)
        reasons.append(f"{name}: {why}")
    raise RuntimeRefused(f"no runtime can run {spec.name} ({spec.precision}, {spec.device}): " + "; ".join(reasons),
                         details={"tried": reasons})
