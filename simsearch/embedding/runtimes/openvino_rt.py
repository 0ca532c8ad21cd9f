"""OpenVINO (CPU plugin) on an IR converted from the ONNX export of the Keras model.
bf16 uses ``INFERENCE_PRECISION_HINT=bf16`` and is offered only where the CPU plugin reports
BF16 among its capabilities (AMX / AVX512-BF16): elsewhere the hint is silently ignored.
int8 is the same IR quantized by NNCF (``nncf.quantize``, post-training, calibrated on a sample of
the user's photos: :mod:`.calibration`); it needs the optional ``nncf`` package (extra ``int8``)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from .base import BF16, INT8, ModelSpec, cpu_threads
from .cache import ConvertingRuntime
from .calibration import inputs
from .hardware import cpu_has_bf16


def int8_activations() -> str:
    """What the int8 model computes its non-quantized layers in: bf16 where the CPU has it (1.2x the
    int8 model at f32 there, cosine to fp32 unchanged: benchmarks/int8.py), else f32. Part of the
    int8 space's fingerprint, as it changes the vectors slightly."""
    return "bf16" if cpu_has_bf16() else "f32"


@lru_cache(maxsize=1)
def _core():
    import openvino as ov

    return ov.Core()


class OpenVinoRuntime(ConvertingRuntime):
    name = "openvino"
    files = ("model.xml", "model.bin")

    def unavailable(self) -> str | None:
        return None if importlib.util.find_spec("openvino") is not None else "openvino is not installed"

    def version(self) -> str:
        from importlib.metadata import version

        return version("openvino")

    def cpu_bf16(self) -> bool:
        try:
            return "BF16" in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        except Exception:
            return False

    def refuses(self, spec: ModelSpec) -> str | None:
        if spec.device != "cpu":
            return "runs on the CPU only here"
        if spec.precision == BF16 and not self.cpu_bf16():
            return "this CPU has no bf16 (AMX or AVX512-BF16): OpenVINO would compute in fp32"
        if spec.precision == INT8:
            if importlib.util.find_spec("nncf") is None:
                return "int8 needs nncf (pip install 'simsearch[int8]')"
            if spec.calibration is None:
                return ("int8 needs a folder of your photos to calibrate on: set SIMSEARCH_INT8_CALIBRATION "
                        "that stays as it is (e.g. a copy of a few hundred of the collection's)")
        return None

    def convert(self, onnx_path: Path, out_dir: Path) -> None:
        import openvino as ov

        model = _core().read_model(str(onnx_path))
        # compress_to_fp16 defaults to True: that would change the weights, and so the vectors
        ov.save_model(model, str(out_dir / "model.xml"), compress_to_fp16=False)

    def quantize(self, model_dir: Path, spec: ModelSpec) -> None:
        import nncf
        import openvino as ov

        model = _core().read_model(str(model_dir / "model.xml"))
        data = inputs(spec.calibration, spec.backbone)
        # NNCF draws progress bars on stdout: that is where the CLI's --json output goes. The
        # parameters are calibration.METHOD (part of the cache key and of the space's fingerprint).
        with contextlib.redirect_stdout(io.StringIO()):
            quantized = nncf.quantize(model, nncf.Dataset(data), subset_size=len(data),
                                      preset=nncf.QuantizationPreset.PERFORMANCE,
                                      advanced_parameters=nncf.AdvancedQuantizationParameters(
                                          overflow_fix=nncf.OverflowFix.ENABLE))
        for name in self.files:
            (model_dir / name).unlink()
        ov.save_model(quantized, str(model_dir / "model.xml"), compress_to_fp16=False)

    def load(self, model_dir: Path, spec: ModelSpec):
        core = _core()
        model = core.read_model(str(model_dir / "model.xml"))
        hint = "bf16" if spec.precision == BF16 else int8_activations() if spec.precision == INT8 else "f32"
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": cpu_threads(),
                  "INFERENCE_PRECISION_HINT": hint}
        compiled = core.compile_model(model, "CPU", config)
        request = compiled.create_infer_request()
        lock = threading.Lock()  # an infer request runs one inference at a time

        def run(x: np.ndarray) -> np.ndarray:
            with lock:
                out = request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})[0]
                return np.array(out, dtype=np.float32)  # a copy: the request reuses its buffer

        return run
