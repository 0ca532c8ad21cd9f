"""Inference runtimes: run a backbone's Keras feature model on Keras itself (TensorFlow, JAX or
PyTorch, per ``KERAS_BACKEND``) or on a converted copy (OpenVINO, ONNX Runtime), validated
against Keras. ``open_session(ModelSpec(...), runtime="auto")`` picks the first that works.
Importing this package imports none of the runtimes."""

from simsearch.errors import RuntimeRefused

from .base import BF16, FP32, INT8, PRECISIONS, TOLERANCE, ModelSpec, Runtime, Session
from .hardware import cpu_has_bf16, cpu_summary
from .registry import (
    AUTO_ORDER,
    auto_order,
    check_choice,
    check_precision,
    get_runtime,
    open_session,
    register,
    resolve_device,
    resolve_precision,
    runtime_names,
)

__all__ = [
    "AUTO_ORDER", "BF16", "auto_order", "FP32", "INT8", "PRECISIONS", "TOLERANCE", "ModelSpec", "Runtime", "RuntimeRefused", "Session",
    "check_choice", "check_precision", "cpu_has_bf16", "cpu_summary", "get_runtime", "open_session", "register",
    "resolve_device", "resolve_precision", "runtime_names",
]
