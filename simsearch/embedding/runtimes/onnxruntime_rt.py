"""ONNX Runtime (CPU execution provider) on the ONNX export of the Keras model (fp32 only)."""

from __future__ import annotations

import importlib.util
import shutil
import threading
from pathlib import Path

import numpy as np

from .base import BF16, INT8, ModelSpec, cpu_threads
from .cache import ConvertingRuntime


class OnnxRuntime(ConvertingRuntime):
    name = "onnxruntime"
    files = ("model.onnx",)

    def unavailable(self) -> str | None:
        return None if importlib.util.find_spec("onnxruntime") is not None else "onnxruntime is not installed"

    def version(self) -> str:
        from importlib.metadata import version

        return version("onnxruntime")

    def refuses(self, spec: ModelSpec) -> str | None:
        if spec.device != "cpu":
            return "runs on the CPU only here"
        if spec.precision == BF16:
            return "no bf16 execution on the CPU execution provider"
        if spec.precision == INT8:
            return "int8 is made by NNCF for OpenVINO here (runtime openvino)"
        return None

    def convert(self, onnx_path: Path, out_dir: Path) -> None:
        shutil.copyfile(onnx_path, out_dir / "model.onnx")

    def load(self, model_dir: Path, spec: ModelSpec):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = cpu_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(model_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        lock = threading.Lock()  # run() is thread-safe, but two at once would share the cores badly

        def run(x: np.ndarray) -> np.ndarray:
            with lock:
                return np.asarray(sess.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0], dtype=np.float32)

        return run
