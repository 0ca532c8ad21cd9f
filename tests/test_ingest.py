"""Ingest end to end with the real default backbone (efficientnet_lite0) on small real subsets."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from simsearch.errors import InvalidInput
from simsearch.ingest import files_from_folder
from simsearch.context import AppContext
from simsearch.store import repo
from simsearch.store.models import Embedding, Image, IngestRun
from tests.conftest import CATS_DOGS, copy_subset, dataset_files
from tests.helpers.db import SPACE, ingest

pytestmark = pytest.mark.model


def test_ingest_labels_and_is_idempotent(ctx, pets_small):
    first = ingest(ctx, pets_small)
    assert (first.added, first.embedded, first.failed, first.skipped) == (16, 16, 0, 0)
    with ctx.db.session() as s:
        coll = repo.get_collection(s, "pets")
        labels = s.scalars(select(Image.label).where(Image.collection_id == coll.id)).all()
        assert sorted(set(labels)) == ["cats", "dogs"] and labels.count("cats") == 8
        img = s.scalars(select(Image).where(Image.collection_id == coll.id)).first()
        assert img.width > 0 and img.height > 0 and img.thumbnail_hash == img.content_hash
        vec = repo.bytes_to_vector(s.get(Embedding, (img.id, SPACE)).vector)
        assert vec.shape == (1280,) and abs(np.linalg.norm(vec) - 1) < 1e-5
        run = s.get(IngestRun, first.run_id)
        assert (run.status, run.total, run.processed, run.added) == ("done", 16, 16, 16)
    assert ctx.index(coll.id, SPACE).ntotal == 16

    again = ingest(ctx, pets_small)
    assert (again.added, again.embedded, again.skipped, again.failed) == (0, 0, 16, 0)
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Image)) == 16
        assert s.scalar(select(func.count()).select_from(Embedding)) == 16


def test_duplicate_content_in_one_folder_is_stored_once_with_both_paths(sqlite_settings, tmp_path):
    root = tmp_path / "dups"
    root.mkdir()
    src = dataset_files(CATS_DOGS / "cats", 1)[0]
    for name in ("a.jpg", "b.jpg"):
        (root / name).write_bytes(src.read_bytes())
    ctx = AppContext.open(sqlite_settings)
    report = ingest(ctx, root, labels=None)
    assert (report.added, report.skipped, report.duplicates) == (1, 0, 1)  # (tests/test_image_files.py: the paths)


def _png(img: PILImage.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def make_mixed_folder(root: Path) -> tuple[set[str], dict[str, str]]:
    """Good images needing conversion, and every kind of bad input. Returns (good names, bad name -> reason word)."""
    root.mkdir(parents=True)
    cat = PILImage.open(dataset_files(CATS_DOGS / "cats", 1)[0]).convert("RGB")
    good = {}
    good["real.jpg"] = dataset_files(CATS_DOGS / "dogs", 1)[0].read_bytes()
    buf = io.BytesIO()
    cat.convert("CMYK").save(buf, format="JPEG")
    good["cmyk.jpg"] = buf.getvalue()
    pal = cat.convert("P", palette=PILImage.ADAPTIVE)
    pal.info["transparency"] = 0
    good["palette_transparent.png"] = _png(pal, transparency=0)
    good["la.png"] = _png(cat.convert("LA"))
    good["onebit.png"] = _png(cat.convert("1"))
    arr16 = (np.asarray(cat.convert("L"), dtype=np.uint16) * 257)
    good["sixteen.png"] = _png(PILImage.fromarray(arr16))
    frames = [cat.resize((120, 90)), PILImage.new("RGB", (120, 90), "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    good["animated.gif"] = buf.getvalue()
    exif = cat.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    cat.save(buf, format="JPEG", exif=exif)
    good["rotated.jpg"] = buf.getvalue()

    bad = {}
    real = dataset_files(CATS_DOGS / "cats", 2)[1].read_bytes()
    bad["truncated.jpg"] = (real[: len(real) // 2], "truncated")
    bad["empty.png"] = (b"", "empty")
    bad["corrupt.jpg"] = (b"\xff\xd8\xff\xe0" + os.urandom(3000), "")
    bad["notes.jpg"] = (b"these are my notes, not a picture\n" * 20, "not an image")
    bad["bomb.png"] = (_png(PILImage.new("L", (3000, 3000))), "pixels")
    for name, data in good.items():
        (root / name).write_bytes(data)
    for name, (data, _) in bad.items():
        (root / name).write_bytes(data)
    (root / "readme.txt").write_text("not an image extension")
    return set(good), {name: word for name, (_, word) in bad.items()}


def test_mixed_good_and_bad_files(sqlite_settings, tmp_path):
    ctx = AppContext.open(sqlite_settings.replace(max_pixels=4_000_000))
    good, bad = make_mixed_folder(tmp_path / "mixed")
    report = ingest(ctx, tmp_path / "mixed", labels=None, batch_size=4)
    assert report.added == len(good), report.errors
    failed = {Path(e["file"]).name: e["reason"] for e in report.errors}
    assert set(failed) == set(bad)
    for name, word in bad.items():
        assert word in failed[name].lower(), (name, failed[name])
    assert [Path(p).name for p in report.ignored] == ["readme.txt"]
    with ctx.db.session() as s:
        rows = {Path(i.source_path).name: i for i in s.scalars(select(Image))}
        assert {n for n, i in rows.items() if i.status == "ok"} == good
        assert rows["rotated.jpg"].width < rows["rotated.jpg"].height  # EXIF orientation applied
        assert rows["truncated.jpg"].status == "failed" and rows["truncated.jpg"].error
    # A second run adds nothing and reports the bad files again.
    again = ingest(ctx, tmp_path / "mixed", labels=None, batch_size=4)
    assert again.added == 0 and {Path(e["file"]).name for e in again.errors} == set(bad)


def test_metadata_csv(sqlite_settings, tmp_path):
    root = copy_subset(tmp_path / "p", 2)
    csv_path = tmp_path / "meta.csv"
    names = sorted(p.relative_to(root) for p in root.rglob("*.jpg"))
    lines = ["path,label,photographer"] + [f"{n},{'kitty' if 'cat' in n.name else ''},ann" for n in names]
    csv_path.write_text("\n".join(lines) + "\n")
    ctx = AppContext.open(sqlite_settings)
    files, _ = files_from_folder(root, labels="folders", metadata_csv=csv_path)
    got = {Path(f.name).name: (f.label, f.meta) for f in files}
    assert got["cat.1.jpg"] == ("kitty", {"photographer": "ann"})
    assert got["dog.1.jpg"] == ("dogs", {"photographer": "ann"})  # empty CSV label -> folder label
    ingest(ctx, root, metadata_csv=csv_path)
    with ctx.db.session() as s:
        stored = {Path(i.source_path).name: (i.label, i.meta) for i in s.scalars(select(Image))}
    assert stored["cat.1.jpg"] == ("kitty", {"photographer": "ann"}) and stored["dog.2.jpg"][0] == "dogs"
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\nx.jpg,cat\n")
    with pytest.raises(InvalidInput, match="needs a 'path' column"):
        files_from_folder(root, metadata_csv=bad)
    with pytest.raises(InvalidInput, match="no such file"):
        files_from_folder(tmp_path / "nowhere")


def test_search_with_a_held_out_cat_returns_mostly_cats(sqlite_settings, tmp_path):
    from simsearch.search import search_image, similar_to

    root = copy_subset(tmp_path / "pets", 20)
    held_out = dataset_files(CATS_DOGS / "cats", 1, start=150)[0]
    ctx = AppContext.open(sqlite_settings)
    ingest(ctx, root, batch_size=16)
    space, hits = search_image(ctx, "pets", held_out.read_bytes(), str(held_out), k=10)
    assert space == SPACE and len(hits) == 10
    assert sum(h.label == "cats" for h in hits) >= 8, [h.label for h in hits]
    assert hits == sorted(hits, key=lambda h: -h.score)
    _, img, similar = similar_to(ctx, hits[0].image_id, k=5)
    assert img.image_id == hits[0].image_id and img.image_id not in [h.image_id for h in similar] and len(similar) == 5


def test_sigkill_midway_then_rerun_leaves_each_image_once(sqlite_settings, tmp_path):
    root = copy_subset(tmp_path / "pets", 30)
    env = dict(os.environ, SIMSEARCH_HOME=str(sqlite_settings.home), SIMSEARCH_DATABASE_URL=sqlite_settings.database_url,
               SIMSEARCH_WEIGHTS_DIR=str(sqlite_settings.weights_dir))
    cmd = [sys.executable, "-m", "simsearch.cli", "ingest", str(root), "--collection", "pets", "--labels", "folders",
           "--batch-size", "4", "--no-progress"]
    ctx = AppContext.open(sqlite_settings)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    count = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with ctx.db.session() as s:
                count = s.scalar(select(func.count()).select_from(Embedding))
        except Exception:
            count = 0
        if count >= 12:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "ingest finished before it could be killed: " + proc.stdout.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with ctx.db.session() as s:
        partial = s.scalar(select(func.count()).select_from(Image))
    assert 0 < partial < 60

    out = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    with ctx.db.session() as s:
        hashes = s.scalars(select(Image.content_hash)).all()
        coll_id = repo.get_collection(s, "pets").id
        n_vec = s.scalar(select(func.count()).select_from(Embedding))
    assert len(hashes) == len(set(hashes)) == 60 and n_vec == 60
    loaded = ctx.index(coll_id, SPACE, verify=True)
    with ctx.db.session() as s:
        assert loaded.fingerprint == repo.fingerprint(repo.vector_ids(s, coll_id, SPACE))
    assert loaded.ntotal == 60


def test_a_file_that_failed_before_is_stored_when_it_decodes_now(sqlite_settings, tmp_path):
    root = tmp_path / "big"
    root.mkdir()
    (root / "large.png").write_bytes(_png(PILImage.new("RGB", (1200, 1000), "orange")))
    shutil_src = dataset_files(CATS_DOGS / "cats", 1)[0]
    (root / "small.jpg").write_bytes(shutil_src.read_bytes())
    strict = AppContext.open(sqlite_settings.replace(max_pixels=1_000_000))
    first = ingest(strict, root, labels=None)
    assert (first.added, first.failed) == (1, 1) and "pixels" in first.errors[0]["reason"]
    relaxed = AppContext.open(sqlite_settings)  # the default limit lets it through
    again = ingest(relaxed, root, labels=None)
    assert (again.added, again.failed, again.skipped) == (1, 0, 1)
    with relaxed.db.session() as s:
        img = s.scalars(select(Image).where(Image.source_path.like("%large.png"))).one()
        assert (img.status, img.error, img.width, img.thumbnail_hash) == ("ok", None, 1200, img.content_hash)
        assert s.get(Embedding, (img.id, SPACE)) is not None
