"""The simsearch command as a user meets it: help, ingest, search, similar, collections, reindex, errors."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from simsearch.cli import cli
from tests.conftest import CATS_DOGS, copy_subset, dataset_files


def test_help_does_not_import_tensorflow_faiss_keras_or_sklearn():
    # What made --help slow was importing the heavy libraries; that is what is checked, not a time.
    code = ("import sys; from simsearch.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(*[m in sys.modules for m in ('tensorflow', 'faiss', 'keras', 'sklearn')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    loaded = out.stdout.strip().splitlines()[-1].split()
    assert loaded == ["False"] * 4, dict(zip(("tensorflow", "faiss", "keras", "sklearn"), loaded))
    for command in ("ingest", "search", "similar", "collections", "reindex", "backbones"):
        assert command in out.stdout


@pytest.fixture
def run(tmp_path, weights_dir):
    env = {"SIMSEARCH_HOME": str(tmp_path / "home"), "SIMSEARCH_DATABASE_URL": f"sqlite:///{tmp_path / 'home' / 'db.sqlite'}",
           "SIMSEARCH_WEIGHTS_DIR": str(weights_dir), "SIMSEARCH_REDIS_URL": ""}
    runner = CliRunner()

    def _run(*args, code=0):
        result = runner.invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return _run


def test_errors_are_one_line_and_exit_2(run, tmp_path):
    r = run("search", dataset_files(CATS_DOGS / "cats", 1)[0], "--collection", "nope", code=2)
    assert "error: no collection named 'nope'" in r.output
    r = run("ingest", tmp_path / "missing", "--collection", "x", code=2)
    assert "error:" in r.output and "no such file" in r.output
    r = run("ingest", tmp_path, "--collection", "bad name", code=2)
    assert "no image files found" in r.output or "collection name" in r.output
    r = run("ingest", tmp_path, "--collection", "x", "--backbone", "alexnet", code=2)
    assert "alexnet" in r.output
    r = run("similar", "12345", code=2)
    assert "no image with id 12345" in r.output
    r = run("collections", "--json")
    assert json.loads(r.output) == []


@pytest.mark.model
def test_ingest_search_similar_collections_reindex(run, tmp_path):
    root = copy_subset(tmp_path / "pets", 8)
    r = run("ingest", root, "--collection", "pets", "--labels", "folders", "--json")
    report = json.loads(r.output)
    assert report["added"] == 16 and report["failed"] == 0 and report["images_per_second"] > 0
    r = run("ingest", root, "--collection", "pets", "--labels", "folders")
    assert "0 new images" in r.output and "16 already present" in r.output

    query = dataset_files(CATS_DOGS / "cats", 1, start=120)[0]
    r = run("search", query, "--collection", "pets", "-k", "5", "--json")
    res = json.loads(r.output)
    assert res["backbone"] == "efficientnet_lite0" and len(res["results"]) == 5
    assert sum(h["label"] == "cats" for h in res["results"]) >= 4
    r = run("search", query, "--collection", "pets", "-k", "3")
    assert "most similar to" in r.output and "[cats]" in r.output

    first = res["results"][0]["image_id"]
    r = run("similar", first, "-k", "4", "--json")
    sim = json.loads(r.output)
    assert sim["query"]["image_id"] == first and first not in [h["image_id"] for h in sim["results"]]

    r = run("collections", "--json")
    (coll,) = json.loads(r.output)
    assert coll["name"] == "pets" and coll["images_ok"] == 16 and coll["images_failed"] == 0
    assert coll["backbones"]["efficientnet_lite0"]["vectors_in_db"] == 16
    assert coll["backbones"]["efficientnet_lite0"]["vectors_in_index"] == 16

    r = run("reindex", "--collection", "pets", "--json")
    (info,) = json.loads(r.output)
    assert info["vectors"] == 16

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    r = run("search", bad, "--collection", "pets", code=2)
    assert "bad.jpg" in r.output and "not an image" in r.output
