"""Backbone registry, preprocessing and Keras-application weight resolution."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simsearch.embedding.backbones import Backbone, get_backbone, list_backbones
from simsearch.embedding.backbones import keras_apps
from simsearch.errors import InvalidInput, WeightsUnavailable

ROOT = Path(__file__).resolve().parent.parent

EXPECTED = {  # name: (input size, feature dim, family)
    "resnet50": (224, 2048, "caffe"),
    "vgg16": (224, 512, "caffe"),
    "vgg19": (224, 512, "caffe"),
    "inception_v3": (299, 2048, "tf"),
    "mobilenet_v2": (224, 1280, "tf"),
    "efficientnet_b0": (224, 1280, "raw"),
    "efficientnet_lite0": (224, 1280, "lite"),
    "efficientnet_lite1": (240, 1280, "lite"),
    "efficientnet_lite2": (260, 1280, "lite"),
}
KERAS_APPS = [n for n, (_, _, fam) in EXPECTED.items() if fam != "lite"]
PREPROCESS_MODULES = {"resnet50": "resnet50", "vgg16": "vgg16", "vgg19": "vgg19", "inception_v3": "inception_v3",
                      "mobilenet_v2": "mobilenet_v2", "efficientnet_b0": "efficientnet"}


@pytest.fixture
def no_keras_cache(tmp_path, monkeypatch):
    """Point Keras's cache somewhere empty so only the weights_dir counts."""
    monkeypatch.setattr(keras_apps, "keras_cache_dirs", lambda: [tmp_path / "keras-cache" / "models"])
    for name in EXPECTED:
        monkeypatch.delenv(f"SIMSEARCH_WEIGHTS_{name.upper()}", raising=False)


def test_registry_contents():
    assert list_backbones() == list(EXPECTED)
    for name, (size, dim, family) in EXPECTED.items():
        b = get_backbone(name)
        assert isinstance(b, Backbone)
        assert (b.name, b.input_size, b.dim, b.family) == (name, size, dim, family)
    assert get_backbone(" ResNet50 ").name == "resnet50"


def test_unknown_backbone_names_the_choices():
    with pytest.raises(InvalidInput) as exc:
        get_backbone("alexnet")
    assert "alexnet" in exc.value.message
    for name in EXPECTED:
        assert name in exc.value.message
    assert exc.value.field == "backbone" and exc.value.details["choices"] == list(EXPECTED)


def test_import_does_not_load_tensorflow():
    code = ("import sys, simsearch.embedding.backbones as b; b.get_backbone('resnet50').preprocess(__import__('numpy')"
            ".zeros((1, 2, 2, 3))); b.get_backbone('efficientnet_lite0').weights_status('/nonexistent');"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", KERAS_APPS)
def test_preprocess_matches_keras(name):
    import importlib

    mod = importlib.import_module(f"keras.applications.{PREPROCESS_MODULES[name]}")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(2, 5, 7, 3), dtype=np.uint8)
    b = get_backbone(name)
    for batch in (pixels, pixels.astype(np.float32)):
        before = batch.copy()
        ours = b.preprocess(batch)
        assert ours.dtype == np.float32 and ours.shape == batch.shape
        np.testing.assert_array_equal(batch, before)  # input untouched
        theirs = np.asarray(mod.preprocess_input(pixels.astype(np.float32).copy()))
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-4)


def test_preprocess_rejects_wrong_shapes():
    with pytest.raises(InvalidInput):
        get_backbone("vgg16").preprocess(np.zeros((224, 224, 3)))
    with pytest.raises(InvalidInput):
        get_backbone("efficientnet_lite0").preprocess(np.zeros((1, 224, 224, 4)))


def test_bad_pooling_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInput, match="pooling"):
        get_backbone("mobilenet_v2").build_feature_model(tmp_path, pooling="sum")


def test_weights_status_keras_app_not_downloaded(tmp_path, no_keras_cache):
    b = get_backbone("resnet50")
    ok, reason = b.weights_status(tmp_path)
    assert not ok
    assert reason.startswith("not downloaded yet")
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in reason and str(tmp_path) in reason
    (tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"x")
    assert b.weights_status(tmp_path) == (True, "")


def test_weights_status_lite_available_offline(tmp_path):
    assert get_backbone("efficientnet_lite0").weights_status(tmp_path) == (True, "")


def test_offline_missing_weights_fail_fast(tmp_path, no_keras_cache, monkeypatch, weight_probes):
    monkeypatch.setattr(keras_apps, "DOWNLOAD_HOST", "keras-weights.invalid")  # never resolves
    with pytest.raises(WeightsUnavailable) as exc:
        get_backbone("vgg16").build_feature_model(tmp_path)
    # fast = one bounded probe of the host, then the error: no download attempt waiting on the network
    assert [(host, timeout) for host, timeout, _ in weight_probes] == [("keras-weights.invalid", 5.0)]
    assert weight_probes[0][2] is not None and weight_probes[0][2] in exc.value.message
    msg = exc.value.message
    assert "vgg16" in msg and "--weights vgg16=FILE" in msg and "SIMSEARCH_WEIGHTS_VGG16=FILE" in msg
    assert str(tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5") in msg
    assert exc.value.details["file"] == "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


def test_real_download_attempt_does_not_hang_offline(tmp_path, no_keras_cache, weight_probes):
    if keras_apps._network_reachable(keras_apps.DOWNLOAD_HOST, 5.0) is None:
        pytest.skip("network is reachable: this would download the weights")
    weight_probes.clear()  # that probe was this test's own
    with pytest.raises(WeightsUnavailable, match="inception_v3_weights_tf_dim_ordering_tf_kernels.h5") as exc:
        get_backbone("inception_v3").build_classifier(tmp_path)
    # one probe bounded by its timeout answered "unreachable", and no download was started after it
    assert [(host, timeout) for host, timeout, _ in weight_probes] == [(keras_apps.DOWNLOAD_HOST, 5.0)]
    assert weight_probes[0][2] is not None and weight_probes[0][2] in exc.value.message


def test_missing_explicit_or_env_weights_file(tmp_path, monkeypatch):
    missing = tmp_path / "my_resnet.h5"
    with pytest.raises(WeightsUnavailable, match="my_resnet.h5"):
        get_backbone("resnet50").build_feature_model(tmp_path, weights=missing)
    monkeypatch.setenv("SIMSEARCH_WEIGHTS_RESNET50", str(tmp_path / "from_env.h5"))
    with pytest.raises(WeightsUnavailable, match="from_env.h5"):
        get_backbone("resnet50").build_feature_model(tmp_path)
    assert get_backbone("resnet50").weights_status(tmp_path)[0] is False


# -- building real Keras applications (random weights written to a local file) -------------------
@pytest.fixture(scope="module")
def mobilenet_file(tmp_path_factory):
    """A legacy-format .h5 weights file named exactly like Keras's MobileNetV2 notop download."""
    import keras

    b = get_backbone("mobilenet_v2")
    d = tmp_path_factory.mktemp("mobilenet")
    keras.utils.set_random_seed(1)
    model = keras.applications.MobileNetV2(weights=None, include_top=False, pooling="avg",
                                           input_shape=(224, 224, 3))
    path = d / b.spec.notop_file
    model.save(str(path))  # legacy H5, like the files Keras downloads
    return path, model.get_weights()


def _assert_same_weights(model, expected):
    got = model.get_weights()
    assert len(got) == len(expected)
    for a, e in zip(got, expected):
        np.testing.assert_array_equal(a, e)


@pytest.mark.model
def test_keras_app_weights_from_weights_dir_and_argument(mobilenet_file, tmp_path, no_keras_cache, monkeypatch):
    path, weights = mobilenet_file
    b = get_backbone("mobilenet_v2")
    monkeypatch.setattr(keras_apps, "DOWNLOAD_HOST", "keras-weights.invalid")
    assert b.weights_status(path.parent) == (True, "")

    from_dir = b.build_feature_model(path.parent)  # found by its Keras file name in weights_dir
    assert from_dir.output_shape == (None, 1280)
    _assert_same_weights(from_dir, weights)

    renamed = tmp_path / "anything.h5"
    renamed.write_bytes(path.read_bytes())
    _assert_same_weights(b.build_feature_model(tmp_path / "empty", weights=renamed), weights)

    monkeypatch.setenv("SIMSEARCH_WEIGHTS_MOBILENET_V2", str(renamed))
    _assert_same_weights(b.build_feature_model(tmp_path / "empty"), weights)


@pytest.mark.model
def test_keras_app_pooling_shapes(mobilenet_file, no_keras_cache):
    path, _ = mobilenet_file
    b = get_backbone("mobilenet_v2")
    x = b.preprocess(np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8))
    avg = b.build_feature_model(path.parent, pooling="avg")
    mx = b.build_feature_model(path.parent, pooling="max")
    assert avg.output_shape == mx.output_shape == (None, b.dim)
    fa, fm = avg.predict(x, verbose=0), mx.predict(x, verbose=0)
    assert fa.shape == fm.shape == (2, 1280)
    assert np.all(fm >= fa) and not np.allclose(fa, fm, rtol=1e-3, atol=0)  # random init: tiny values


@pytest.mark.model
def test_corrupt_local_weights_file_is_reported(tmp_path, no_keras_cache):
    bad = tmp_path / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    bad.write_bytes(b"not an hdf5 file")
    with pytest.raises(WeightsUnavailable, match="cannot load weights from"):
        get_backbone("mobilenet_v2").build_feature_model(tmp_path)


@pytest.mark.model
@pytest.mark.parametrize("name", KERAS_APPS)
def test_keras_app_feature_dims(name):
    """The registry's dim/input size match the real architecture (built without weights)."""
    import keras

    b = get_backbone(name)
    ctor = getattr(keras.applications, b.spec.constructor)
    model = ctor(weights=None, include_top=False, pooling="avg", input_shape=(b.input_size, b.input_size, 3))
    assert model.output_shape == (None, b.dim)
    keras.backend.clear_session()
