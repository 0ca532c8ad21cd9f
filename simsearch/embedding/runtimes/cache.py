"""Converted models, cached in the weights directory and validated whenever they are made or loaded.

Layout: ``<weights_dir>/converted/<key>/`` holding the runtime's model files, ``reference.npy``
(the Keras fp32 features of the fixed probe images, computed when the model was converted) and
``manifest.json`` (what the key says, plus the SHA-256 of every file). The key names the
backbone, pooling, precision, runtime and runtime version and the first 16 hex digits of the
source weights' SHA-256, so new weights or a new runtime version never reuse an old conversion.

A folder is published with one ``rename`` of a fully written temporary folder (atomic; two
processes converting at once both succeed, the second one's copy is dropped). On load the
digests are checked and the probe images are run and compared with the stored reference; a
folder that fails either is discarded and converted again; a fresh conversion that fails the
comparison refuses the runtime, saying why.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

from simsearch.digest import file_sha256, write_atomic
from simsearch.errors import RuntimeRefused
from simsearch.paths import converted_dir

from . import calibration
from .base import FP32, INT8, TOLERANCE, ModelSpec, Runtime, Session, min_cosine, probe_images
from .keras_rt import keras_model

log = logging.getLogger(__name__)


class ConvertingRuntime(Runtime):
    """A runtime fed with a file converted from the Keras model (converted and cached by this module)."""

    converts = True
    files: tuple[str, ...] = ()  # file names of the converted model inside its cache folder

    def convert(self, onnx_path: Path, out_dir: Path) -> None:
        """Write this runtime's model files into ``out_dir`` from the ONNX export of the Keras model."""
        raise NotImplementedError

    def quantize(self, model_dir: Path, spec: ModelSpec) -> None:
        """Replace the converted model in ``model_dir`` by its int8 quantization, calibrated on the
        sample of ``spec.calibration`` (only for runtimes that accept int8)."""
        raise NotImplementedError

    def load(self, model_dir: Path, spec: ModelSpec) -> Callable[[np.ndarray], np.ndarray]:
        raise NotImplementedError

    def open(self, spec: ModelSpec) -> Session:
        return open_converted(self, spec)


FORMAT = 1
MANIFEST, REFERENCE = "manifest.json", "reference.npy"


def cache_root(weights_dir) -> Path:
    return converted_dir(weights_dir)


def cache_key(runtime: ConvertingRuntime, spec: ModelSpec, weights_sha: str) -> str:
    """int8 adds the first 16 hex digits of its calibration sample's digest (:mod:`.calibration`)."""
    version = runtime.version().replace("/", "_")
    key = f"{spec.name}-{spec.pooling}-{spec.precision}-{runtime.name}-{version}-{weights_sha[:16]}"
    return f"{key}-c{calibration.digest(spec.calibration)[:16]}" if spec.precision == INT8 else key


def source_weights_sha(spec: ModelSpec) -> str | None:
    """SHA-256 of the file the backbone's weights come from (None if it must be downloaded first)."""
    path = spec.backbone.weights_file(spec.weights_dir, spec.weights)
    return None if path is None else file_sha256(path)


def _check_files(folder: Path, runtime: ConvertingRuntime, spec: ModelSpec, key: str) -> str | None:
    """None when the folder's manifest is complete and every file matches its digest."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"manifest unreadable ({type(exc).__name__})"
    if manifest.get("format") != FORMAT or manifest.get("key") != key:
        return "manifest is for another model or format"
    files = manifest.get("files") or {}
    for name in (*runtime.files, REFERENCE):
        if name not in files:
            return f"manifest lists no digest for {name}"
        p = folder / name
        if not p.is_file():
            return f"{name} is missing"
        if file_sha256(p) != files[name]:
            return f"{name} does not match its recorded SHA-256 (damaged or changed)"
    return None


def _validate(run, spec: ModelSpec, reference: np.ndarray) -> float:
    probes = spec.backbone.preprocess(probe_images(spec.backbone.input_size))
    return min_cosine(run(probes), reference)


def _discard(folder: Path) -> None:
    trash = folder.with_name(f".trash-{folder.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(folder, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _load_cached(runtime: ConvertingRuntime, spec: ModelSpec, folder: Path, key: str):
    """(run, cosine) from a valid cached folder, or (None, reason)."""
    reason = _check_files(folder, runtime, spec, key)
    if reason is not None:
        return None, reason
    try:
        run = runtime.load(folder, spec)
        cos = _validate(run, spec, np.load(folder / REFERENCE, allow_pickle=False))
    except Exception as exc:
        return None, f"cannot be loaded: {type(exc).__name__}: {exc}"
    if cos < TOLERANCE[spec.precision]:
        return None, f"outputs differ from the reference (cosine {cos:.6f} < {TOLERANCE[spec.precision]})"
    return (run, cos), None


def _convert(runtime: ConvertingRuntime, spec: ModelSpec, root: Path) -> tuple[Path, float]:
    """Convert the Keras model into a fresh temporary folder under ``root``; (folder, seconds)."""
    model, _ = keras_model(spec, FP32)  # the reference: Keras fp32 (imports the Keras backend)
    t0 = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        probes = spec.backbone.preprocess(probe_images(spec.backbone.input_size))
        reference = np.asarray(model.predict_on_batch(probes), dtype=np.float32)
        with open(tmp / REFERENCE, "wb") as fh:
            np.save(fh, reference, allow_pickle=False)
        onnx_path = tmp / "export.onnx"
        export_onnx(model, onnx_path)
        runtime.convert(onnx_path, tmp)
        if spec.precision == INT8:
            runtime.quantize(tmp, spec)
        if "model.onnx" not in runtime.files:
            onnx_path.unlink()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp, time.perf_counter() - t0


_EXPORTS: dict[int, Path] = {}  # id(Keras model) -> its ONNX export in this process (one per model)
_EXPORT_LOCK = threading.Lock()


def export_onnx(model, path: Path) -> None:
    """``keras.Model.export(format="onnx")`` (its chatter silenced), done once per model and process."""
    import atexit
    import contextlib
    import io
    import warnings

    with _EXPORT_LOCK:
        done = _EXPORTS.get(id(model))
        if done is None or not done.is_file():
            folder = Path(tempfile.mkdtemp(prefix="simsearch-onnx-"))
            atexit.register(shutil.rmtree, folder, True)
            done = folder / "model.onnx"
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                model.export(str(done), format="onnx", verbose=False)
            _EXPORTS[id(model)] = done
        shutil.copyfile(done, path)


STALE_CONVERSION_SECONDS = 3600  # a '.tmp-*' folder this old was left by a process killed mid-conversion


def sweep_stale_conversions(root: Path, max_age: float = STALE_CONVERSION_SECONDS) -> list[Path]:
    """Remove the temporary folders of conversions that never finished (the process was killed
    while converting: SIGKILL skips the cleanup). Younger ones may belong to a conversion that is
    running now in another process, and are left alone. Returns the folders removed."""
    removed = []
    try:
        candidates = list(root.glob(".tmp-*"))
    except OSError:
        return removed
    now = time.time()
    for tmp in candidates:
        try:
            if tmp.is_dir() and now - tmp.stat().st_mtime > max_age:
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
        except OSError:
            continue
    if removed:
        log.info("removed %d unfinished conversion folder(s) under %s", len(removed), root)
    return removed


def _write_manifest(tmp: Path, runtime: ConvertingRuntime, spec: ModelSpec, key: str, weights_sha: str,
                    cosine: float, seconds: float) -> None:
    from importlib.metadata import version

    manifest = {
        "format": FORMAT, "key": key, "backbone": spec.name, "pooling": spec.pooling, "precision": spec.precision,
        "runtime": runtime.name, "runtime_version": runtime.version(), "keras_version": version("keras"),
        "source_weights_sha256": weights_sha, "validation_min_cosine": round(cosine, 8),
        "tolerance": TOLERANCE[spec.precision], "convert_seconds": round(seconds, 2),
        "files": {name: file_sha256(tmp / name) for name in (*runtime.files, REFERENCE)},
    }
    if spec.precision == INT8:
        manifest["calibration"] = {"folder": str(spec.calibration), "sha256": calibration.digest(spec.calibration),
                                   "images": len(calibration.sample(spec.calibration))}
    write_atomic(tmp / MANIFEST, json.dumps(manifest, indent=2).encode())


def open_converted(runtime: ConvertingRuntime, spec: ModelSpec) -> Session:
    weights_sha = source_weights_sha(spec)
    if weights_sha is None:  # weights still to download: Keras fetches them, then we know their digest
        keras_model(spec, FP32)
        weights_sha = source_weights_sha(spec)
        if weights_sha is None:
            raise RuntimeRefused(f"{runtime.name}: cannot tell which weights file {spec.name} uses")
    root = cache_root(spec.weights_dir)
    key = cache_key(runtime, spec, weights_sha)
    folder = root / key
    sweep_stale_conversions(root)

    def session(run, cos, source):
        return Session(runtime=runtime.name, version=runtime.version(), precision=spec.precision, device=spec.device,
                       run=run, validation=cos, source=source, extra={"cache": str(folder)})

    if folder.is_dir():
        loaded, reason = _load_cached(runtime, spec, folder, key)
        if loaded is not None:
            return session(*loaded, "cache")
        log.warning("converted model %s discarded, converting again: %s", folder, reason)
        _discard(folder)

    try:
        tmp, seconds = _convert(runtime, spec, root)
    except RuntimeRefused:
        raise
    except Exception as exc:
        raise RuntimeRefused(f"{runtime.name}: converting {spec.name} failed: {type(exc).__name__}: {exc}") from exc
    try:
        run = runtime.load(tmp, spec)
        cos = _validate(run, spec, np.load(tmp / REFERENCE, allow_pickle=False))
        if cos < TOLERANCE[spec.precision]:
            raise RuntimeRefused(
                f"{runtime.name} {runtime.version()} at {spec.precision}: outputs of the converted {spec.name} differ "
                f"from Keras (min cosine {cos:.6f} on the probe images, {TOLERANCE[spec.precision]} needed)")
        _write_manifest(tmp, runtime, spec, key, weights_sha, cos, seconds)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process published the same key meanwhile: theirs is as good
            if not folder.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return session(run, cos, "converted")
        run = runtime.load(folder, spec)  # the published files, not the temporary ones
    except RuntimeRefused:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeRefused(f"{runtime.name}: loading the converted {spec.name} failed: {type(exc).__name__}: {exc}") from exc
    log.info("converted %s for %s in %.1f s (min cosine %.7f to Keras)", spec.name, runtime.name, seconds, cos)
    return session(run, cos, "converted")
