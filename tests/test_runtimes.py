"""Inference runtimes: converted models validated against Keras, the converted-model and weights
caches (integrity, rebuild), precision in the space name, no TensorFlow on the cached path, JAX."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simsearch.embedding.embedder import Embedder
from simsearch.spaces import SpaceSpec, parse, space_key
from simsearch.errors import InvalidInput
from simsearch.images import decode_image, resize_for_model
from simsearch.embedding.runtimes import BF16, FP32, RuntimeRefused, auto_order, cpu_has_bf16, get_runtime, open_session, register
from simsearch.embedding.runtimes.base import ModelSpec
from simsearch.embedding.runtimes.cache import ConvertingRuntime
from simsearch.embedding.runtimes.cache import MANIFEST, cache_root

from conftest import CATS_DOGS, ROOT, copy_subset, dataset_files

LITE = "efficientnet_lite0"
CONVERTING = [name for name in auto_order() if get_runtime(name).converts and get_runtime(name).unavailable() is None]


def pets_pixels(n: int = 6) -> np.ndarray:
    files = dataset_files(CATS_DOGS / "cats", n // 2) + dataset_files(CATS_DOGS / "dogs", n // 2)
    return np.stack([resize_for_model(decode_image(f.read_bytes(), draft_size=224).image, 224) for f in files])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def tf_vectors(weights_dir):
    """TensorFlow fp32 vectors (the Keras runtime) of a few cats-dogs images: the reference."""
    return Embedder(parse(LITE), weights_dir, runtime="keras").embed(pets_pixels())


def zero_middle(path: Path, n: int = 64 * 1024) -> None:
    data = bytearray(path.read_bytes())
    mid = max(0, len(data) // 2 - n // 2)
    data[mid : mid + n] = bytes(min(n, len(data) - mid))
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# -- space names ---------------------------------------------------------------------------------
def test_precision_is_part_of_the_space_name():
    assert space_key(LITE) == LITE
    assert space_key(LITE, "max", BF16) == f"{LITE}@max+bf16"
    assert parse(f"{LITE}+bf16") == SpaceSpec(LITE, "avg", (), BF16)
    assert parse(f"{LITE}@max") == SpaceSpec(LITE, "max", (), FP32)
    for bad in (f"{LITE}+fp16", f"{LITE}+", f"{LITE}@min+bf16"):
        with pytest.raises(InvalidInput):
            parse(bad)


# -- converted runtimes ----------------------------------------------------------------------------
@pytest.mark.parametrize("runtime", CONVERTING)
def test_converted_runtime_matches_tensorflow(runtime, weights_dir, tf_vectors):
    emb = Embedder(parse(LITE), weights_dir, runtime=runtime)
    vectors = emb.embed(pets_pixels())
    assert emb.session.runtime == runtime and emb.session.precision == FP32
    assert emb.session.validation >= 0.9999
    assert cosines(vectors, tf_vectors).min() >= 0.9999
    # the session's weights folder also holds other tests' conversions (max pooling, bf16, ...):
    # check the one this embedder uses
    folder = Path(emb.session.extra["cache"])
    assert folder.parent == cache_root(weights_dir) and f"-avg-fp32-{runtime}-" in folder.name
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["backbone"] == LITE and manifest["pooling"] == "avg" and manifest["precision"] == FP32
    assert manifest["runtime_version"] == get_runtime(runtime).version()
    assert len(manifest["source_weights_sha256"]) == 64 and manifest["validation_min_cosine"] >= 0.9999


def test_auto_picks_a_converted_runtime_when_one_is_installed(weights_dir):
    if not CONVERTING:
        pytest.skip("neither openvino nor onnxruntime is installed")
    emb = Embedder(parse(LITE), weights_dir)  # runtime auto
    emb.load()
    assert emb.session.runtime == CONVERTING[0]


def _copy_weights(src: Path, dest: Path, runtime: str | None, folder: Path | None = None) -> Path:
    """A weights folder with the lite0 weights cache (and the runtime's converted model ``folder``,
    one of those under ``src``) of ``src``."""
    dest.mkdir(parents=True)
    for name in ("efficientnet_lite0.weights.h5", "efficientnet_lite0.weights.h5.sha256"):
        shutil.copy(src / name, dest / name)
    if runtime is not None:
        shutil.copytree(folder, cache_root(dest) / folder.name)
        return cache_root(dest) / folder.name
    return dest


@pytest.mark.parametrize("runtime,damage,target", [
    ("openvino", truncate, "model.bin"),
    ("openvino", zero_middle, "model.bin"),
    ("onnxruntime", zero_middle, "model.onnx"),
    ("onnxruntime", truncate, "reference.npy"),
])
def test_a_damaged_converted_model_is_detected_and_rebuilt(runtime, damage, target, weights_dir, tmp_path, caplog):
    if runtime not in CONVERTING:
        pytest.skip(f"{runtime} is not installed")
    original = Embedder(parse(LITE), weights_dir, runtime=runtime)
    before = original.embed(pets_pixels())
    folder = _copy_weights(weights_dir, tmp_path / "weights", runtime, Path(original.session.extra["cache"]))
    damage(folder / target)
    with caplog.at_level(logging.WARNING, logger="simsearch.embedding.runtimes.cache"):
        emb = Embedder(parse(LITE), tmp_path / "weights", runtime=runtime)
        after = emb.embed(pets_pixels())
    assert emb.session.source == "converted"  # not the damaged cache
    assert any("discarded" in r.getMessage() and target in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-6)
    # the rebuilt folder is valid: opened again, it comes from the cache as it is
    from simsearch.embedding.runtimes.cache import open_converted

    spec = ModelSpec(emb.backbone, "avg", FP32, tmp_path / "weights")
    assert open_converted(get_runtime(runtime), spec).source == "cache"


@pytest.mark.parametrize("damage", [zero_middle, truncate])
def test_a_damaged_weights_cache_is_detected_and_converted_again(damage, weights_dir, tmp_path, caplog):
    before = Embedder(parse(LITE), weights_dir, runtime="keras").embed(pets_pixels())
    dest = _copy_weights(weights_dir, tmp_path / "weights", None)
    cache = dest / "efficientnet_lite0.weights.h5"
    damage(cache)
    with caplog.at_level(logging.WARNING):
        after = Embedder(parse(LITE), dest, runtime="keras").embed(pets_pixels())
    assert any("converting efficientnet_lite0 weights again" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(after, before)
    from simsearch.digest import check_sidecar

    assert check_sidecar(cache) is None  # rewritten, with a matching digest


class _WrongRuntime(ConvertingRuntime):
    """A runtime whose outputs are wrong: validation must refuse it."""

    name = "wrong-for-test"
    files = ("model.onnx",)

    def unavailable(self):
        return None

    def version(self):
        return "0"

    def convert(self, onnx_path, out_dir):
        shutil.copyfile(onnx_path, out_dir / "model.onnx")

    def load(self, model_dir, spec):
        return lambda x: np.random.default_rng(0).random((len(x), spec.backbone.dim)).astype(np.float32)


def test_a_runtime_whose_outputs_differ_is_refused_and_auto_moves_on(weights_dir, monkeypatch):
    from simsearch.embedding.runtimes import registry

    monkeypatch.setattr(registry, "AUTO_ORDER", list(registry.AUTO_ORDER))
    monkeypatch.setattr(registry, "_RUNTIMES", dict(registry._RUNTIMES))
    register(_WrongRuntime(), before=registry.AUTO_ORDER[0])
    spec = ModelSpec(Embedder(parse(LITE), weights_dir).backbone, "avg", FP32, weights_dir)
    with pytest.raises(RuntimeRefused, match="differ from Keras"):
        open_session(spec, "wrong-for-test")
    assert not [p for p in cache_root(weights_dir).iterdir() if "wrong-for-test" in p.name]  # nothing cached
    session = open_session(spec, "auto")
    assert session.runtime != "wrong-for-test"


# -- precision -------------------------------------------------------------------------------------
@pytest.mark.skipif(cpu_has_bf16(), reason="this CPU computes bf16")
def test_openvino_bf16_is_refused_on_a_cpu_without_bf16(weights_dir):
    if "openvino" not in CONVERTING:
        pytest.skip("openvino is not installed")
    spec = ModelSpec(Embedder(parse(LITE), weights_dir).backbone, "avg", BF16, weights_dir)
    with pytest.raises(RuntimeRefused, match="no bf16"):
        open_session(spec, "openvino")


def test_bf16_vectors_go_to_their_own_space(sqlite_settings, tmp_path, tf_vectors):
    """--precision bf16 stores its vectors under BACKBONE+bf16, next to (never mixed with) fp32 ones."""
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.context import AppContext
    from simsearch.store import repo

    pets = copy_subset(tmp_path / "pets", 2)
    files, _ = files_from_folder(pets)
    svc = AppContext.open(sqlite_settings.replace(precision="bf16"))
    try:
        space = svc.new_space(LITE, "avg")
        assert space == f"{LITE}+bf16"
        Ingester(svc, spaces=[space]).run("pets", files, source=str(pets))
        Ingester(svc, spaces=[svc.new_space(LITE, "avg", "fp32")]).run("pets", files, source=str(pets))
        emb = svc.embedder(space)
        assert emb.session.precision == BF16
        with svc.db.session() as s:
            coll = repo.get_collection(s, "pets")
            ids16, v16 = repo.load_vectors(s, coll.id, space)
            ids32, v32 = repo.load_vectors(s, coll.id, LITE)
    finally:
        svc.close()
    assert len(ids16) == len(ids32) == 4 and list(ids16) == list(ids32)
    cos = cosines(v16, v32)
    assert cos.min() > 0.98 and cos.min() < 0.99999  # close, but different numerics


# -- what the defaults store -------------------------------------------------------------------------
def test_default_ingest_stores_vectors_within_tolerance_of_tensorflow(sqlite_settings, tmp_path, weights_dir):
    """Done-when check on a cats-dogs subset: the default runtime's vectors, stored under the fp32
    space, have cosine >= 0.9999 to TensorFlow fp32 vectors of the same images."""
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.context import AppContext
    from simsearch.store import repo
    from simsearch.store.models import Image

    pets = copy_subset(tmp_path / "pets", 5)
    files, _ = files_from_folder(pets)
    svc = AppContext.open(sqlite_settings)
    try:
        space = svc.new_space(LITE, "avg")
        assert space == LITE or cpu_has_bf16()
        if space != LITE:
            pytest.skip("precision auto is bf16 on this CPU")
        Ingester(svc, spaces=[space]).run("pets", files, source=str(pets))
        with svc.db.session() as s:
            coll = repo.get_collection(s, "pets")
            ids, stored = repo.load_vectors(s, coll.id, space)
            paths = {i.id: i.source_path for i in s.query(Image).filter(Image.collection_id == coll.id)}
        assert svc.embedder(space).session.runtime == (CONVERTING[0] if CONVERTING else "keras")
    finally:
        svc.close()
    pixels = np.stack([resize_for_model(decode_image(Path(paths[int(i)]).read_bytes(), draft_size=224).image, 224)
                       for i in ids])
    reference = Embedder(parse(LITE), weights_dir, runtime="keras").embed(pixels)
    assert cosines(stored, reference).min() >= 0.9999


def test_a_reingest_that_finds_nothing_new_loads_no_model(sqlite_settings, tmp_path, monkeypatch):
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.context import AppContext

    pets = copy_subset(tmp_path / "pets", 2)
    files, _ = files_from_folder(pets)
    svc = AppContext.open(sqlite_settings)
    Ingester(svc, spaces=[LITE]).run("pets", files, source=str(pets))
    svc.close()

    def refuse(self):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(Embedder, "load", refuse)
    svc = AppContext.open(sqlite_settings)
    try:
        report = Ingester(svc, spaces=[LITE]).run("pets", files, source=str(pets))
    finally:
        svc.close()
    assert report.skipped == 4 and report.added == 0


# -- no TensorFlow unless needed (subprocesses) ----------------------------------------------------------
def _run(code: str, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    full = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=timeout)


def test_cached_runtime_path_never_imports_tensorflow(weights_dir, tmp_path):
    if not CONVERTING:
        pytest.skip("neither openvino nor onnxruntime is installed")
    Embedder(parse(LITE), weights_dir).load()  # the converted model is in the cache now
    pets = copy_subset(tmp_path / "pets", 2)
    query = next((pets / "cats").iterdir())
    code = f"""
import sys
from simsearch.cli import main
for argv in (["ingest", {str(pets)!r}, "-c", "pets", "--json"], ["search", {str(query)!r}, "-c", "pets", "-k", "2"]):
    try:
        main(argv)
    except SystemExit as exc:
        assert not exc.code, exc.code
heavy = sorted(m for m in ("tensorflow", "keras", "jax", "torch") if m in sys.modules)
print("HEAVY", heavy)
"""
    out = _run(code, {"SIMSEARCH_HOME": str(tmp_path / "home"), "SIMSEARCH_WEIGHTS_DIR": str(weights_dir)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "HEAVY []" in out.stdout, out.stdout[-2000:]
    assert '"added": 4' in out.stdout


def test_keras_runtime_under_jax_without_tensorflow(weights_dir, tf_vectors, tmp_path):
    pytest.importorskip("jax")
    np.save(tmp_path / "pixels.npy", pets_pixels()[:2])
    code = f"""
import sys, numpy as np
from simsearch.embedding.embedder import Embedder
from simsearch.spaces import parse
emb = Embedder(parse("{LITE}"), {str(weights_dir)!r}, runtime="keras", device="cpu")
np.save({str(tmp_path / 'out.npy')!r}, emb.embed(np.load({str(tmp_path / 'pixels.npy')!r})))
print("NUMERICS", emb.numerics)
print("TF", "tensorflow" in sys.modules)
"""
    out = _run(code, {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "NUMERICS keras" in out.stdout and "/jax fp32 cpu" in out.stdout
    assert "TF False" in out.stdout
    assert cosines(np.load(tmp_path / "out.npy"), tf_vectors[:2]).min() >= 0.9999


def test_unfinished_conversion_folders_are_swept(tmp_path):
    """A process killed mid-conversion leaves a '.tmp-*' folder: removed once it is an hour old;
    a younger one may be another process's conversion in progress and stays."""
    import os
    import time

    from simsearch.embedding.runtimes.cache import STALE_CONVERSION_SECONDS, sweep_stale_conversions

    old, young, kept = tmp_path / ".tmp-old", tmp_path / ".tmp-young", tmp_path / "abc123"
    for folder in (old, young, kept):
        folder.mkdir()
        (folder / "model.bin").write_bytes(b"x" * 10)
    past = time.time() - STALE_CONVERSION_SECONDS - 60
    os.utime(old, (past, past))
    os.utime(kept, (past, past))
    assert sweep_stale_conversions(tmp_path) == [old]
    assert not old.exists() and young.is_dir() and kept.is_dir()
