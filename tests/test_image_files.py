"""Files of images (issue 18, items 1 and 3): every file that resolved to an image is kept as one of
its paths; byte-identical copies are reported by ingest and listed by the exact tier with every
path; acting on duplicate groups (preview, apply) from the CLI and the API; export; ``--json``
returns every group.

One module-level collection (SQLite, the real default backbone): 22 flower photos in keep/, a
byte-identical copy of each in copies/ (other names), and one copy of the first with a JPEG comment
inserted (other bytes, the same pixels). The tests that change it come last.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from simsearch.store.models import Image, ImageFile, IngestRun
from tests.conftest import FLOWERS, dataset_files, upgraded
from tests.helpers.api import get_until_done

pytestmark = pytest.mark.model
SPACE = "efficientnet_lite0"
PHOTOS = 22


def _photos(n: int) -> list[Path]:
    per = -(-n // 4)
    out = []
    for cls in ("daisy", "rose", "sunflower", "tulip"):
        out += dataset_files(FLOWERS / cls, per, start=10)
    return out[:n]


def _comment_copy(data: bytes) -> bytes:
    """The same JPEG with a comment segment inserted after SOI: other bytes, the same pixels."""
    assert data[:2] == b"\xff\xd8"
    note = b"simsearch test copy"
    return data[:2] + b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note + data[2:]


def _files(ctx, image_id: int) -> list[str]:
    with ctx.db.session() as s:
        return list(s.scalars(select(ImageFile.path).where(ImageFile.image_id == image_id).order_by(ImageFile.id)))


def _consistent(ctx) -> None:
    """Every image's file_count is its number of file rows, and (image, path) is unique."""
    with ctx.db.session() as s:
        rows = s.execute(select(Image.id, Image.file_count, func.count(ImageFile.id))
                         .outerjoin(ImageFile, ImageFile.image_id == Image.id).group_by(Image.id, Image.file_count)).all()
        dup = s.execute(select(ImageFile.image_id, ImageFile.path).group_by(ImageFile.image_id, ImageFile.path)
                        .having(func.count() > 1)).all()
    assert all(count == n for _, count, n in rows), [r for r in rows if r[1] != r[2]]
    assert not dup


# ---- the migration -------------------------------------------------------------------------------


def test_migration_gives_each_existing_image_its_source_path_as_first_file(db_url):
    from simsearch.store.db import Database
    from tests.helpers.db import at_revision

    at_revision(db_url, "0006")
    db = Database(db_url)
    try:
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO collections (id, name, created_at) VALUES (1, 'old', CURRENT_TIMESTAMP)"))
            conn.execute(text("INSERT INTO ingest_runs (id, kind, collection_id, source, spaces, status, total, "
                              "processed, added, skipped, failed, errors, attempts, created_at) VALUES (1, 'ingest', 1, "
                              "'/photos', '[]', 'done', 2, 2, 2, 0, 0, '[]', 0, CURRENT_TIMESTAMP)"))
            for i, (h, path, status) in enumerate((("a" * 64, "/photos/a.jpg", "ok"), ("b" * 64, "/photos/b.png", "ok"),
                                                   ("c" * 64, "/photos/bad.jpg", "failed")), start=1):
                conn.execute(text("INSERT INTO images (id, collection_id, content_hash, source_path, meta, status, "
                                  "ingest_run_id, created_at) VALUES (:id, 1, :h, :p, '{}', :st, 1, CURRENT_TIMESTAMP)"),
                             {"id": i, "h": h, "p": path, "st": status})
        db.upgrade()
        assert db.revision()[0] == db.revision()[1]  # at the head (0007 and every later migration)
        with db.session() as s:
            files = s.execute(select(ImageFile.image_id, ImageFile.path, ImageFile.ingest_run_id, ImageFile.size)
                              .order_by(ImageFile.image_id)).all()
            counts = dict(s.execute(select(Image.id, Image.file_count)).all())
            assert s.scalar(select(IngestRun.duplicates).where(IngestRun.id == 1)) == 0
        assert files == [(1, "/photos/a.jpg", 1, None), (2, "/photos/b.png", 1, None), (3, "/photos/bad.jpg", 1, None)]
        assert counts == {1: 1, 2: 1, 3: 1}
        with db.engine.begin() as conn:  # (image, path) is unique
            with pytest.raises(Exception):
                conn.execute(text("INSERT INTO image_files (image_id, path, created_at) "
                                  "VALUES (1, '/photos/a.jpg', CURRENT_TIMESTAMP)"))
    finally:
        db.dispose()


# ---- ingest: a second copy is kept and reported ---------------------------------------------------


def test_a_second_copy_is_kept_as_a_path_and_reported_and_reingest_adds_nothing(ctx, tmp_path):
    from simsearch.ingest import Ingester, files_from_folder

    a, b = _photos(2)
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / "a.jpg").write_bytes(a.read_bytes())
    (root / "sub" / "a-copy.jpg").write_bytes(a.read_bytes())
    (root / "b.jpg").write_bytes(b.read_bytes())

    def ingest(folder):
        files, _ = files_from_folder(folder)
        return Ingester(ctx, spaces=[SPACE], batch_size=2, workers=1).run("c", files, source=str(folder))

    first = ingest(root)
    assert (first.added, first.duplicates, first.skipped, first.failed) == (2, 1, 0, 0), first.to_dict()
    with ctx.db.session() as s:
        img = s.scalar(select(Image).where(Image.source_path == str(root / "a.jpg")))
        image_id, count = img.id, img.file_count
        run = s.get(IngestRun, first.run_id)
        assert run.duplicates == 1
        size, mtime = s.execute(select(ImageFile.size, ImageFile.mtime).where(ImageFile.image_id == image_id)
                                .order_by(ImageFile.id)).first()
    assert count == 2 and _files(ctx, image_id) == [str(root / "a.jpg"), str(root / "sub" / "a-copy.jpg")]
    assert size == a.stat().st_size and mtime is not None

    again = ingest(root)  # the same folder: nothing new, no file row twice
    assert (again.added, again.duplicates, again.skipped) == (0, 0, 3), again.to_dict()
    (root / "later-copy.jpg").write_bytes(a.read_bytes())  # a copy found by a later run (its image is known)
    later = ingest(root)
    assert (later.added, later.duplicates, later.skipped) == (0, 1, 3), later.to_dict()
    assert len(_files(ctx, image_id)) == 3
    _consistent(ctx)

    # the API: the first path and a count in lists and hits, every file in detail
    from simsearch.ops import images as ops_images
    from simsearch.search import similar_to

    detail = ops_images.get(ctx, image_id)
    assert detail["file_count"] == 3 and [f["path"] for f in detail["files"]][0] == str(root / "a.jpg")
    assert {f["path"] for f in detail["files"]} == {str(root / n) for n in ("a.jpg", "sub/a-copy.jpg", "later-copy.jpg")}
    page = ops_images.list_page(ctx, "c")
    assert sorted(i["file_count"] for i in page["images"]) == [1, 3]
    _, _, hits = similar_to(ctx, [i["id"] for i in page["images"] if i["file_count"] == 1][0], k=5)
    assert [(h.image_id, h.file_count, h.to_dict()["file_count"]) for h in hits] == [(image_id, 3, 3)]


@pytest.mark.postgres
def test_concurrent_ingests_of_copies_record_each_path_once(tmp_path, postgres_url, weights_dir, monkeypatch):
    """Runs at once, each with copies of the same bytes under their own names and some paths in
    common: one image per content, one file row per (image, path), file counts exact, and
    added + duplicates over the runs = the distinct paths."""
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ingest import SourceFile
    from tests.helpers.races import create_collections, ingest, race_first_stores, run_at_once

    photos = _photos(6)
    root = tmp_path / "race"
    runs = []
    for k in range(3):
        (root / f"r{k}").mkdir(parents=True)
        files = []
        for n, p in enumerate(photos):
            dest = root / f"r{k}" / f"{n}.jpg"
            dest.write_bytes(p.read_bytes())
            files.append(SourceFile(name=str(dest), path=dest))
        shared = [SourceFile(name=str(root / f"r{(k + 1) % 3}" / f"{n}.jpg"), path=root / f"r{(k + 1) % 3}" / f"{n}.jpg")
                  for n in range(2)]  # two paths another run has too
        runs.append(files + shared)
    settings = upgraded(Settings.from_env(home=tmp_path / "home", database_url=postgres_url, weights_path=weights_dir))
    ctx = AppContext.open(settings)
    try:
        create_collections(ctx, "race")
        barrier = race_first_stores(monkeypatch, len(runs))
        reports = run_at_once(*(lambda f=f: ingest(ctx, "race", f) for f in runs), barrier=barrier)
        with ctx.db.session() as s:
            images = s.scalar(select(func.count()).select_from(Image))
            file_rows = s.scalar(select(func.count()).select_from(ImageFile))
        assert images == len(photos) and file_rows == 3 * len(photos)
        assert sum(r.added for r in reports) == len(photos)
        assert sum(r.added + r.duplicates for r in reports) == 3 * len(photos), [r.to_dict() for r in reports]
        _consistent(ctx)
    finally:
        ctx.close()


def test_a_sharded_job_records_copies_across_its_shards(ctx, tmp_path):
    from simsearch.jobs import shards
    from simsearch.ops import jobs as jobs_ops
    from tests.helpers.jobs import queue_folder

    folder = tmp_path / "sharded"
    for n, p in enumerate(_photos(3)):
        for sub in ("a", "b"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            (folder / sub / f"{n}.jpg").write_bytes(p.read_bytes())
    job_id = queue_folder(ctx, folder, "sharded")
    ids = shards.create_shards(ctx, job_id, 2)
    assert len(ids) == 3
    for i in ids:  # a/ in the first shards, its copies in b/ in the later ones
        shards.execute_shard(ctx, i)
    done = jobs_ops.get(ctx, job_id)
    assert done["status"] == "done", done
    assert (done["processed"], done["added"], done["duplicates"], done["skipped"]) == (6, 3, 3, 0), done
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ImageFile)) == 6
        assert sorted(s.scalars(select(Image.file_count))) == [2, 2, 2]
    _consistent(ctx)


# ---- the collection with copies (module scope) ---------------------------------------------------


@pytest.fixture(scope="module")
def coll(tmp_path_factory, weights_dir):
    from simsearch.config import Settings
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.web import create_app, shutdown

    base = tmp_path_factory.mktemp("files")
    folder = base / "photos"
    (folder / "keep").mkdir(parents=True)
    (folder / "copies").mkdir()
    for n, p in enumerate(_photos(PHOTOS)):
        data = p.read_bytes()
        (folder / "keep" / f"p{n:02d}.jpg").write_bytes(data)
        (folder / "copies" / f"c{n:02d}.jpg").write_bytes(data)
        if n == 0:
            (folder / "keep" / "m00.jpg").write_bytes(_comment_copy(data))
    home = base / "home"
    settings = upgraded(Settings.from_env(home=home, database_url=f"sqlite:///{home / 'simsearch.db'}",
                                          weights_path=weights_dir))
    app = create_app({"SETTINGS": settings, "TESTING": True})
    ctx = app.extensions["simsearch"]
    files, _ = files_from_folder(folder)
    report = Ingester(ctx, spaces=[SPACE], batch_size=16).run("files", files, source=str(folder))
    assert (report.added, report.duplicates) == (PHOTOS + 1, PHOTOS), report.to_dict()
    app.config["SIMSEARCH_HOME"] = str(home)
    yield app, folder
    shutdown(app)


def _env(app) -> dict:
    home = app.config["SIMSEARCH_HOME"]
    return {"SIMSEARCH_HOME": home, "SIMSEARCH_DATABASE_URL": f"sqlite:///{home}/simsearch.db", "SIMSEARCH_REDIS_URL": ""}


def _cli(app, *args, code=0):
    from simsearch.cli import cli

    r = CliRunner().invoke(cli, list(args), env=_env(app), catch_exceptions=False)
    assert r.exit_code == code, r.output
    return r.output


def test_the_exact_tier_lists_identical_files_and_pixels_with_every_path(coll):
    from simsearch.ops import duplicates as dup

    app, folder = coll
    ctx = app.extensions["simsearch"]
    result = dup.find(ctx, "files", tier="exact", per_page=None).to_dict()  # (its JSON, as the CLI prints it)
    assert result["total_groups"] == PHOTOS and result["tiers"]["exact"] == {"groups": PHOTOS, "images": PHOTOS + 1,
                                                                            "files": 2 * PHOTOS + 1}
    first = result["groups"][0]  # the most files: p00 (two identical files) and m00 (identical pixels)
    assert (first["size"], first["files"], first["identical_files"]) == (2, 3, True)
    paths = {f["path"] for img in first["images"] for f in img["files"]}
    assert paths == {str(folder / "keep" / "p00.jpg"), str(folder / "copies" / "c00.jpg"), str(folder / "keep" / "m00.jpg")}
    for g in result["groups"][1:]:  # one image, its two files
        (img,) = g["images"]
        n = Path(img["path"]).stem[1:]
        assert {f["path"] for f in img["files"]} == {str(folder / "keep" / f"p{n}.jpg"), str(folder / "copies" / f"c{n}.jpg")}
        assert g["pairs"] == [] and img["file_count"] == 2
    # the vectors' export: every path of each image (the first is its key)
    import numpy as np

    from simsearch.ops.vectors_io import export_stream

    _, chunks = export_stream(ctx, "files")
    with np.load(io.BytesIO(b"".join(chunks)), allow_pickle=False) as f:
        keys, exported_paths = f["keys"].tolist(), f["paths"].tolist()
    both = {str(folder / "keep" / "p01.jpg"), str(folder / "copies" / "c01.jpg")}
    (row,) = [r for r, key in enumerate(keys) if key in both]
    assert set(json.loads(exported_paths[row])) == both and json.loads(exported_paths[row])[0] == keys[row]
    assert sum(len(json.loads(p)) for p in exported_paths) == 2 * PHOTOS + 1
    # the API: the same groups, paths shown as the API shows them (inside the ingested folder)
    body = get_until_done(app.test_client(), "/api/collections/files/duplicates?tier=exact&per_page=500").get_json()
    shown = {f["path"] for f in body["groups"][0]["images"][0]["files"] + body["groups"][0]["images"][1]["files"]}
    assert shown == {"keep/p00.jpg", "copies/c00.jpg", "keep/m00.jpg"}
    detail = app.test_client().get(f"/api/images/{first['images'][0]['id']}").get_json()
    assert detail["file_count"] == len(detail["files"]) >= 2 and detail["files"][0]["path"] == detail["path"]
    assert all(f["size"] > 0 and f["mtime"] for f in detail["files"])


def test_json_returns_every_group_and_all_lists_them(coll):
    app, _ = coll
    data = json.loads(_cli(app, "duplicates", "-c", "files", "--tier", "exact", "--json"))
    assert data["total_groups"] == PHOTOS > 20 and len(data["groups"]) == PHOTOS and data["pages"] == 1
    everything = json.loads(_cli(app, "duplicates", "-c", "files", "--json"))  # every tier, every group
    assert len(everything["results"]["exact"]["groups"]) == PHOTOS
    page2 = json.loads(_cli(app, "duplicates", "-c", "files", "--tier", "exact", "--json", "--page", "2"))
    assert page2["page"] == 2 and len(page2["groups"]) == PHOTOS - 20  # a page only when asked for
    out = _cli(app, "duplicates", "-c", "files", "--tier", "exact", "--all")
    assert f"group {PHOTOS}:" in out and "page 1 of" not in out
    out = _cli(app, "duplicates", "-c", "files", "--tier", "exact")
    assert "group 20:" in out and "group 21:" not in out and "page 1 of 2" in out
    assert "= " in out and "copies/c01.jpg" in out  # the second path of an image
    assert "--all lists every group" in _cli(app, "duplicates", "-c", "files", "--all", "--page", "2", code=2)


def test_export_writes_every_group_with_every_path(coll, tmp_path):
    app, folder = coll
    out = _cli(app, "duplicates", "-c", "files", "--export", str(tmp_path / "dups.csv"))
    assert f"wrote {PHOTOS} exact groups" in out
    rows = list(csv.DictReader((tmp_path / "dups.csv").open()))
    assert len(rows) == 2 * PHOTOS + 1
    assert {r["path"] for r in rows} >= {str(folder / "copies" / f"c{n:02d}.jpg") for n in range(PHOTOS)}
    assert sum(r["first_path"] == "yes" for r in rows) == PHOTOS + 1
    _cli(app, "duplicates", "-c", "files", "--export", str(tmp_path / "dups.json"))
    assert len(json.loads((tmp_path / "dups.json").read_text())["groups"]) == PHOTOS
    assert "must end in .csv or .json" in _cli(app, "duplicates", "-c", "files", "--export", str(tmp_path / "x.txt"),
                                               code=2)
    resp = get_until_done(app.test_client(), "/api/collections/files/duplicates/export?tier=exact&format=csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    api_rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert {r["path"] for r in api_rows} >= {"keep/p00.jpg", "copies/c00.jpg", "keep/m00.jpg"}
    resp = get_until_done(app.test_client(), "/api/collections/files/duplicates/export?tier=exact&format=json")
    assert len(resp.get_json()["groups"]) == PHOTOS
    assert app.test_client().get("/api/collections/files/duplicates/export?format=xml").status_code == 400


@pytest.mark.browser
def test_the_duplicates_page_shows_every_path_links_exports_and_previews(coll):
    from tests.helpers.browser import LiveServer, by_testid, chromium, console_errors, wait

    app, _ = coll
    server = LiveServer(app)
    try:
        with chromium() as driver:
            driver.get(server.url + "/c/files/duplicates?tier=exact")
            wait(driver, lambda d: len(by_testid(d, "dup-group", many=True)) == 20, message="exact groups")
            first = by_testid(driver, "dup-group", many=True)[0]
            assert "3 files" in first.text
            paths = first.find_element("css selector", '[data-testid="dup-paths"]')
            paths.find_element("css selector", "summary").click()
            assert all(p in paths.text for p in ("keep/p00.jpg", "copies/c00.jpg", "keep/m00.jpg")), paths.text
            assert "format=csv" in by_testid(driver, "dups-export-csv").get_attribute("href")
            by_testid(driver, "dups-preview").click()
            wait(driver, lambda d: "Preview (nothing changed yet)" in by_testid(d, "dups-plan").text, message="preview")
            assert f"{PHOTOS} groups acted on" in by_testid(driver, "dups-plan").text
            assert not by_testid(driver, "dups-apply").get_attribute("disabled")
            # browsing: an image with copies says how many files it has
            driver.get(server.url + "/c/files")
            wait(driver, lambda d: len(by_testid(d, "copies", many=True)) > 0, message="copy badges")
            tiles, badges = by_testid(driver, "tile", many=True), by_testid(driver, "copies", many=True)
            # every photo has one copy under copies/ (2 files); only m00 (other bytes, the same pixels) has one file
            assert {b.text for b in badges} == {"×2"} and len(tiles) - 1 <= len(badges) < len(tiles) + 1, (len(tiles), len(badges))
            severe = console_errors(driver)
            assert not severe, severe
    finally:
        server.stop()


def test_preview_then_apply_through_the_api(coll):
    app, folder = coll
    ctx = app.extensions["simsearch"]
    client = app.test_client()
    get_until_done(client, "/api/collections/files/duplicates?tier=exact")
    url = "/api/collections/files/duplicates/resolve"
    bad = client.post(url, json={"pattern": ""})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "pattern"
    assert client.post(url, json={"keep": "newest"}).status_code == 400
    gone = client.post(url, json={"keep": "oldest", "groups": [99]})
    assert gone.status_code == 409 and gone.get_json()["error"]["field"] == "groups"
    preview = client.post(url, json={"pattern": "keep/*", "groups": [1]})
    assert preview.status_code == 200, preview.get_json()
    plan = preview.get_json()
    (g,) = plan["groups"]
    assert plan["applied"] is False and g["keep"]["path"] in ("keep/p00.jpg", "keep/m00.jpg")
    with ctx.db.session() as s:  # nothing changed
        assert s.scalar(select(func.count()).select_from(Image)) == PHOTOS + 1
        assert s.scalar(select(func.count()).select_from(ImageFile)) == 2 * PHOTOS + 1
    stale = client.post(url, json={"pattern": "keep/*", "groups": [1], "digest": "0" * 16})
    assert stale.status_code == 409 and stale.get_json()["error"]["field"] == "digest"
    done = client.post(url, json={"pattern": "keep/*", "groups": [1], "digest": plan["digest"]}).get_json()
    assert done["applied"] is True and done["summary"]["images_deleted"] == 1
    kept_id = g["keep"]["image_id"]
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Image)) == PHOTOS
        kept = s.get(Image, kept_id)
        assert kept.file_count == 1 and _files(ctx, kept_id) == [kept.source_path]
        assert kept.source_path.startswith(str(folder / "keep"))
    assert all(p.exists() for p in (folder / "keep" / "p00.jpg", folder / "copies" / "c00.jpg", folder / "keep" / "m00.jpg"))
    _consistent(ctx)


def test_preview_then_apply_from_the_cli_and_delete_files_only_when_asked(coll):
    app, folder = coll
    ctx = app.extensions["simsearch"]
    out = _cli(app, "duplicates", "-c", "files", "--pattern", "*/keep/*")
    assert "preview (nothing changed" in out and "drop file record" in out
    plan = json.loads(_cli(app, "duplicates", "-c", "files", "--keep", "oldest", "--pattern", "*/keep/*", "--json"))
    assert plan["summary"]["files_dropped"] == PHOTOS - 1 and plan["summary"]["images_deleted"] == 0
    assert all(f["path"].startswith(str(folder / "copies")) for g in plan["groups"] for f in g["drop_files"])
    assert "--apply goes with --keep or --pattern" in _cli(app, "duplicates", "-c", "files", "--apply", code=2)
    # apply, deleting the removed files on disk (asked for); the kept ones stay
    out = _cli(app, "duplicates", "-c", "files", "--keep", "oldest", "--pattern", "*/keep/*", "--apply",
               "--plan", plan["digest"], "--delete-files")
    assert "applied" in out and f"{PHOTOS - 1} files deleted on disk" in out
    assert all((folder / "keep" / f"p{n:02d}.jpg").exists() for n in range(1, PHOTOS))
    assert not any((folder / "copies" / f"c{n:02d}.jpg").exists() for n in range(1, PHOTOS))
    assert (folder / "copies" / "c00.jpg").exists()  # (its group was resolved by the API without touching disk)
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ImageFile)) == PHOTOS
        assert set(s.scalars(select(Image.file_count))) == {1}
    _consistent(ctx)
    data = json.loads(_cli(app, "duplicates", "-c", "files", "--tier", "exact", "--json"))
    assert data["total_groups"] == 0 and data["groups"] == []
