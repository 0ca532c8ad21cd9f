"""The CLI as a new user met it (issue #12): one spelling of -k, the weights hint, plurals,
delete and rename, exit statuses, one-line errors for an unreachable Redis or PostgreSQL, files
written only where named (or to the documented reports folder), and summaries when not on a TTY."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from simsearch.text import plural, verb
from tests.conftest import CATS_DOGS, ROOT, copy_subset, dataset_files
from tests.helpers.cli import SPACE, env, imported, run  # noqa: F401 (fixtures)


# ---- -k, the weights hint, plurals -------------------------------------------------------------

def test_k_is_spelled_the_same_everywhere_and_the_old_spelling_still_works(run, imported):
    for command in ("search", "similar", "cluster"):
        helptext = run(command, "--help").output
        assert "  -k " in helptext, command
        assert "--k" not in helptext, command  # the old spelling is a hidden alias
    short = json.loads(run("cluster", "-c", "ext", "-k", "2", "--json").output)
    long = json.loads(run("cluster", "-c", "ext", "--k", "2", "--json").output)
    assert short["k"] == long["k"] == 2 and sorted(c["size"] for c in short["clusters"]) == [15, 15]
    assert "disagree" in run("cluster", "-c", "ext", "-k", "2", "--k", "3", code=2).output
    assert json.loads(run("cluster", "-c", "ext", "--json").output)["auto"] is True


def test_weights_hints_name_the_backbone(run, tmp_path):
    from simsearch.embedding.backbones import get_backbone

    r = run("ingest", tmp_path, "-c", "x", "--weights", "model.h5", code=2)
    assert "error: --weights takes BACKBONE=FILE, not 'model.h5'" in r.output
    lite = get_backbone("efficientnet_lite0")
    msg = lite._not_installed().message
    assert "--weights efficientnet_lite0=FILE" in msg and "SIMSEARCH_WEIGHTS_EFFICIENTNET_LITE0=FILE" in msg
    assert "--weights FILE" not in msg


def test_plural():
    assert [plural(n, "new image") for n in (0, 1, 2)] == ["0 new images", "1 new image", "2 new images"]
    assert plural(1, "file") == "1 file" and plural(3, "match") == "3 matches" and plural(2, "entry") == "2 entries"
    assert plural(2, "index", "indexes") == "2 indexes" and plural(4, "day") == "4 days"
    assert (verb(1, "was"), verb(2, "was")) == ("was", "were")


def test_counts_of_one_are_singular(run, tmp_path):
    np.savez(tmp_path / "one.npz", vectors=np.ones((1, 4), "float32"), keys=np.array(["only"]))
    out = run("import-vectors", tmp_path / "one.npz", "-c", "solo", "-s", SPACE).output
    assert "1 vector added" in out and "1 new image," in out and "1 row x 4" in out
    assert "index: 1 vector," in out and not re.search(r"(?<![\d.,])1 vectors\b", out)  # not "141 vectors/s"
    assert "1 vector was not of unit length and was L2-normalised" in out
    out = run("collections").output
    assert "solo: 1 image ok" in out and "1 vector in the database" in out
    assert "wrote 1 vector (" in run("export", "-c", "solo", "--out", tmp_path / "o.npz").output


@pytest.mark.model
def test_ingest_of_one_image_says_image_not_images(run, tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(dataset_files(CATS_DOGS / "cats", 1)[0], folder / "cat.jpg")
    out = run("ingest", folder, "-c", "one").output
    assert "1 new image, 1 new vector" in out and "1 file in" in out


# ---- delete and rename ---------------------------------------------------------------------

def test_delete_images_asks_first(run, imported):
    a, b = imported["/photos/a/img0.jpg"], imported["/photos/a/img1.jpg"]
    r = run("delete", "image", a, b, input="n\n", code=1)
    assert "Delete 2 images (#" in r.output and "/photos/a/img0.jpg in ext" in r.output and "nothing deleted" in r.output
    assert run("collections", "--json").output.count('"images_ok": 30') == 1
    r = run("delete", "image", a, input="y\n")
    assert f"deleted 1 image: #{a}" in r.output
    assert json.loads(run("delete", "image", b, "--yes", "--json").output) == {"deleted": [b]}
    assert json.loads(run("collections", "--json").output)[0]["images_ok"] == 28
    r = run("delete", "image", a, "--yes", code=2)  # gone: one line, nothing asked
    assert f"error: no image with id {a}" in r.output and "Delete" not in r.output
    # an unknown id among known ones: nothing deleted at all
    c = imported["/photos/a/img2.jpg"]
    run("delete", "image", c, 999999, "--yes", code=2)
    assert json.loads(run("collections", "--json").output)[0]["images_ok"] == 28


def test_delete_collection_asks_first(run, imported):
    r = run("delete", "collection", "ext", input="\n", code=1)  # the default is no
    assert "Delete collection 'ext' (30 images, 30 vectors)?" in r.output
    r = run("delete", "collection", "ext", input="y\n")
    assert "deleted collection ext (30 images)" in r.output
    assert json.loads(run("collections", "--json").output) == []
    assert "no collection named 'ext'" in run("delete", "collection", "ext", "-y", code=2).output


def test_rename_collection_and_image(run, imported, tmp_path):
    r = run("rename", "collection", "ext", "renamed")
    assert "renamed collection ext to renamed (30 images)" in r.output
    assert [c["name"] for c in json.loads(run("collections", "--json").output)] == ["renamed"]
    run("import-vectors", tmp_path / "v.npz", "-c", "other", "-s", SPACE)
    r = run("rename", "collection", "renamed", "other", code=1)
    assert "error: a collection named 'other' already exists" in r.output
    assert "is not valid" in run("rename", "collection", "renamed", "bad name", code=2).output

    image = imported["/photos/b/img20.jpg"]
    r = run("rename", "image", image, "kitten.jpg")
    assert f"renamed image #{image}: /photos/b/img20.jpg -> /photos/b/kitten.jpg" in r.output
    assert "note: there is no file at /photos/b/kitten.jpg" in r.stderr
    hits = json.loads(run("similar", image, "-k", "3", "--json").output)
    assert hits["query"]["path"] == "/photos/b/kitten.jpg"
    for bad in ("../x.jpg", "a/b.jpg", "..", " "):
        assert "error:" in run("rename", "image", image, bad, code=2).output


def test_rename_keeps_vectors_and_drops_cached_analyses(run, imported):
    before = json.loads(run("cluster", "-c", "ext", "-k", "2", "--json").output)
    run("rename", "collection", "ext", "moved")
    after = json.loads(run("cluster", "-c", "moved", "-k", "2", "--json").output)
    assert after["collection"] == "moved" and before["collection"] == "ext"
    assert sorted(c["size"] for c in after["clusters"]) == [15, 15]


# ---- exit statuses and one-line errors -----------------------------------------------------

@pytest.mark.model
def test_ingest_exits_1_when_every_file_failed(run, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"not a jpeg")
    (bad / "b.png").write_bytes(b"")
    r = run("ingest", bad, "-c", "bad", code=1)
    assert "0 new images" in r.stdout and "2 failed" in r.stdout and "failed: " in r.stdout
    assert r.stderr.strip() == "error: every file failed (2 files; the reasons are listed)"
    r = run("ingest", bad, "-c", "bad", "--json", code=1)
    assert json.loads(r.stdout)["failed"] == 2
    # one good file among bad ones: success
    shutil.copy(dataset_files(CATS_DOGS / "dogs", 1)[0], bad / "dog.jpg")
    run("ingest", bad, "-c", "bad")


def _one_line_error(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_unreachable_redis_is_one_line_in_every_command(run, env, tmp_path):
    down = {"SIMSEARCH_REDIS_URL": "redis://127.0.0.1:1/0"}
    run("db", "upgrade")
    line = _one_line_error(run("worker", code=1, extra_env=down))
    assert "Redis" in line and "unreachable" in line and "Connection refused" in line
    assert "Redis" in _one_line_error(run("worker", "--check", code=1, extra_env=down))
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(dataset_files(CATS_DOGS / "cats", 1)[0], folder / "c.jpg")
    assert "unreachable" in _one_line_error(run("ingest", folder, "-c", "q", "--queue", code=1, extra_env=down))
    assert "not a Redis URL" in _one_line_error(run("worker", code=2, extra_env={"SIMSEARCH_REDIS_URL": "http://x"}))


def test_worker_with_redis_down_as_a_process_prints_one_line(env):
    """The real command (not click's runner): no RQ traceback on stderr."""
    full = {**os.environ, **env, "SIMSEARCH_REDIS_URL": "redis://127.0.0.1:1/0", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "simsearch", "db", "upgrade"], env=full, check=True, capture_output=True, timeout=120)
    out = subprocess.run([sys.executable, "-m", "simsearch", "worker"], env=full, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith("error: the job queue"), out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("args", [("collections",), ("db", "upgrade"), ("db", "current"), ("jobs",), ("reindex",),
                                  ("similar", "1"), ("cluster", "-c", "x"), ("delete", "collection", "x", "--yes"),
                                  ("rename", "collection", "x", "y"), ("worker",)])
def test_unreachable_postgres_is_one_line_in_every_command(run, args):
    pg_down = {"SIMSEARCH_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/test",
               "SIMSEARCH_DB_CONNECT_TIMEOUT": "2", "SIMSEARCH_REDIS_URL": "redis://127.0.0.1:6379/0"}
    line = _one_line_error(run(*args, code=1, extra_env=pg_down))
    assert "database is unavailable" in line


# ---- files only where named; summaries and progress ------------------------------------------

def test_map_writes_to_the_reports_folder_unless_out_is_given(run, imported, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    r = run("map", "-c", "ext", "--method", "pca", "--thumbnails", "0")
    expected = tmp_path / "home" / "reports" / f"ext-{SPACE}-pca.png"
    assert f"wrote {expected}" in r.stdout and expected.stat().st_size > 1000
    assert list(cwd.iterdir()) == []  # nothing in the current directory
    r = run("map", "-c", "ext", "--method", "pca", "--thumbnails", "0", "-o", "mine.png")
    assert (cwd / "mine.png").is_file() and "wrote mine.png" in r.stdout
    assert "--out must be a .png" in run("map", "-c", "ext", "--out", "x.jpg", code=2).output


def test_reindex_progress_on_stderr_when_asked_summary_always(run, imported):
    r = run("reindex")  # not a terminal: no progress, the summary on stdout
    assert r.stderr == "" and "ext / ext-vectors: 30 vectors indexed" in r.stdout
    r = run("reindex", "--progress")
    assert r.stderr.splitlines() == ["reindex: [1/1] ext / ext-vectors"]
    assert "30 vectors indexed" in r.stdout
    r = run("cluster", "-c", "ext", "-k", "2", "--progress")
    assert r.stderr.startswith("cluster: [1/") and "k = 2 clusters" in r.stdout


def test_import_vectors_progress_on_stderr_when_asked(run, tmp_path):
    np.savez(tmp_path / "p.npz", vectors=np.eye(3, 4, dtype="float32"), keys=np.array(["a", "b", "c"]))
    r = run("import-vectors", tmp_path / "p.npz", "-c", "p", "-s", SPACE)
    assert r.stderr == "" and "3 vectors added" in r.stdout
    r = run("import-vectors", tmp_path / "p.npz", "-c", "q", "-s", SPACE, "--progress")
    assert r.stderr.splitlines() == ["import-vectors: [1/3] checking 3 keys, labels and metadata",
                                     "import-vectors: [2/3] writing 3 vectors (4-d)",
                                     "import-vectors: [3/3] bringing the index up to date"]


@pytest.mark.model
def test_compare_prints_its_summary_when_not_on_a_tty_and_writes_to_reports(run, tmp_path, monkeypatch):
    pets = copy_subset(tmp_path / "pets", 6)
    run("ingest", pets, "-c", "pets", "--labels", "folders")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    r = run("compare", "-c", "pets", "-b", "efficientnet_lite0")
    assert r.stderr == ""  # no progress without a terminal...
    report = tmp_path / "home" / "reports" / "pets-compare.html"
    lines = r.stdout.splitlines()  # ...but the summary
    assert lines[0] == "pets: 12 images, 1 backbone"
    assert lines[1] == "compared on all 12 images"  # (a collection under the sample's cap)
    assert lines[3].split()[0] == "efficientnet_lite0"
    assert lines[-1].startswith(f"wrote {report} (") and report.is_file() and report.with_suffix(".json").is_file()
    assert list(cwd.iterdir()) == []


def test_the_readme_quick_start_writes_nothing_into_the_repository():
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Quick start")
    quick = readme[start:readme.index("\n## ", start + 5)]
    for line in quick.splitlines():
        if line.startswith(("simsearch map", "simsearch compare")):
            assert "--out" not in line or "--out /" in line or "--out ~" in line, line
