"""The int8 space (``BACKBONE+int8``): OpenVINO's model quantized by NNCF, calibrated on a sample of
a folder of photos, cached on disk keyed by that sample, in a space of its own whose vectors are
never mixed with fp32 ones or with another calibration's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from simsearch import provenance
from simsearch.embedding.embedder import Embedder
from simsearch.embedding.runtimes import FP32, INT8, RuntimeRefused, get_runtime, open_session, resolve_precision
from simsearch.embedding.runtimes import calibration
from simsearch.embedding.runtimes.base import ModelSpec
from simsearch.embedding.runtimes.cache import MANIFEST
from simsearch.errors import Conflict
from simsearch.images import decode_image, resize_for_model
from simsearch.spaces import SpaceSpec, parse

from conftest import CATS_DOGS, copy_subset, dataset_files

LITE = "efficientnet_lite0"
needs_int8 = pytest.mark.skipif(get_runtime("openvino").unavailable() is not None
                                or get_runtime("openvino").refuses(ModelSpec(None, "avg", INT8, Path("."),
                                                                             calibration=Path("."))) is not None,
                                reason="int8 needs openvino and nncf (pip install 'simsearch[int8]')")


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    """40 cats-dogs photos to calibrate on (a collection's own photos in real use)."""
    return copy_subset(tmp_path_factory.mktemp("calib") / "photos", 20)


def pets_pixels(start: int = 30, n: int = 3) -> np.ndarray:
    """Photos outside the calibration sample."""
    files = dataset_files(CATS_DOGS / "cats", n, start) + dataset_files(CATS_DOGS / "dogs", n, start)
    return np.stack([resize_for_model(decode_image(f.read_bytes(), draft_size=224).image, 224) for f in files])


def test_int8_is_a_space_of_its_own_that_only_openvino_runs(weights_dir, calib):
    assert parse(f"{LITE}+int8") == SpaceSpec(LITE, "avg", (), INT8)
    assert parse(f"{LITE}@gem3+flip+int8").key == f"{LITE}@gem3+flip+int8"
    assert resolve_precision("auto") != INT8  # asked for by name only
    backbone = Embedder(parse(LITE), weights_dir).backbone
    spec = ModelSpec(backbone, "avg", INT8, weights_dir, calibration=calib)
    assert "NNCF for OpenVINO" in get_runtime("onnxruntime").refuses(spec)
    assert "NNCF for OpenVINO" in get_runtime("keras").refuses(spec)
    if get_runtime("openvino").unavailable() is None:
        no_photos = ModelSpec(backbone, "avg", INT8, weights_dir)
        with pytest.raises(RuntimeRefused, match="SIMSEARCH_INT8_CALIBRATION"):
            open_session(no_photos, "auto")


def test_the_calibration_sample_is_deterministic_and_its_digest_follows_the_photos(tmp_path, calib):
    sample = calibration.sample(calib, 10)
    assert len(sample) == 10 and sample == calibration.sample(calib, 10) and sample == sorted(sample)
    assert {p.parent.name for p in sample} == {"cats", "dogs"}  # spread over the folder, not its first 10
    other = shutil.copytree(calib, tmp_path / "other")
    assert calibration.digest(other) == calibration.digest(calib)  # the same photos, wherever they are
    first = sorted(other.rglob("*.jpg"))[0]
    first.write_bytes(first.read_bytes()[:-100])
    other.touch()
    assert calibration.digest(other) != calibration.digest(calib)
    with pytest.raises(RuntimeRefused, match="does not exist"):
        calibration.digest(tmp_path / "missing")


@needs_int8
def test_int8_model_is_quantized_once_cached_and_close_to_fp32(weights_dir, calib, capsys):
    backbone = Embedder(parse(LITE), weights_dir).backbone
    spec = ModelSpec(backbone, "avg", INT8, weights_dir, calibration=calib)
    first = open_session(spec, "openvino")
    assert first.source == "converted" and capsys.readouterr().out == ""  # stdout is the CLI's --json
    again = open_session(spec, "openvino")  # a new process would find the same folder
    assert first.precision == INT8 and again.source == "cache"
    folder = Path(again.extra["cache"])
    assert folder.name.endswith(f"-c{calibration.digest(calib)[:16]}")
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["calibration"] == {"folder": str(calib), "sha256": calibration.digest(calib), "images": 40}

    pixels = pets_pixels()
    fp32 = Embedder(parse(LITE), weights_dir, runtime="openvino").embed(pixels)
    int8 = Embedder(parse(f"{LITE}+int8"), weights_dir, calibration=calib).embed(pixels)
    cos = (fp32 * int8).sum(1)
    assert cos.mean() > 0.95 and cos.min() > 0.85, cos
    assert cos.min() < 0.9999  # other numerics: hence a space of their own


@needs_int8
def test_int8_vectors_are_never_mixed_with_fp32_or_another_calibration(sqlite_settings, tmp_path, calib):
    from simsearch.context import AppContext
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.store import repo

    pets = copy_subset(tmp_path / "pets", 2, start=30)
    files, _ = files_from_folder(pets)
    svc = AppContext.open(sqlite_settings.replace(precision="int8", int8_calibration=calib))
    try:
        space = svc.new_space(LITE, "avg")
        assert space == f"{LITE}+int8"
        Ingester(svc, spaces=[space, svc.new_space(LITE, "avg", FP32)]).run("pets", files, source=str(pets))
        with svc.db.session() as s:
            coll = repo.get_collection(s, "pets")
            ids8, v8 = repo.load_vectors(s, coll.id, space)
            ids32, v32 = repo.load_vectors(s, coll.id, LITE)
        fp8, fp32 = provenance.recorded(svc, coll.id, space)[0], provenance.recorded(svc, coll.id, LITE)[0]
    finally:
        svc.close()
    assert list(ids8) == list(ids32) and len(ids8) == 4
    assert fp8["calibration_sha256"] == calibration.digest(calib) and fp8["precision"] == INT8
    assert fp8["int8_activations"] in ("bf16", "f32")
    assert provenance.differs(fp8, fp32)
    for key, other in (("calibration_sha256", "0" * 64), ("int8_activations", "f32" if fp8["int8_activations"] == "bf16" else "bf16")):
        assert provenance.differs(fp8, {**fp8, key: other})

    # A server calibrated on other photos makes another model: it may neither add to nor query the space.
    other = copy_subset(tmp_path / "other", 10, start=100)
    svc = AppContext.open(sqlite_settings.replace(precision="int8", int8_calibration=other))
    try:
        with pytest.raises(Conflict, match="one space cannot hold two models"):
            provenance.check_embedders(svc, "pets", {space: svc.embedder(space)})
        with pytest.raises(Conflict, match="search by image refused"):
            provenance.check_query(svc, coll.id, space)
        provenance.check_query(svc, coll.id, LITE)  # the fp32 space is untouched
    finally:
        svc.close()
