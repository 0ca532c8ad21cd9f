"""Concurrent writes (issue 10, item 1): any number of ingests, in threads or processes, into the
same or different collections at once, store every image exactly once per collection, none lost,
every vector once, and report truthfully what each stored; creating a collection that exists is a
409, also when two requests race; two first ingests into a new collection both succeed.

The races are made real: each run's first store waits at a barrier until every run has taken its
snapshot of what is stored and embedded its first batch, so they all write the same files at once
(before the upserts, these tests failed with UniqueViolation / UNIQUE constraint failed, a 500
instead of the 409, and thumbnails_pkey across collections)."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import event, func, select

from simsearch.config import Settings
from simsearch.context import AppContext
from simsearch.errors import public_reason
from simsearch.images import content_hash
from simsearch.ingest import Ingester, SourceFile, files_from_folder
from simsearch.store import repo
from simsearch.store.models import Collection, Embedding, Image, IngestRun, Thumbnail
from tests.conftest import copy_subset, upgraded
from tests.helpers.races import WAIT, create_collections, ingest, race_first_stores, run_at_once

pytestmark = pytest.mark.model
SPACE = "efficientnet_lite0"


@pytest.fixture
def pets(tmp_path) -> list[SourceFile]:
    """24 images (12 cats, 12 dogs), labelled by folder."""
    files, _ = files_from_folder(copy_subset(tmp_path / "pets", 12), labels="folders")
    return files


def windows(files: list, parts: int, size: int) -> list[list]:
    """``parts`` windows of ``size`` files, each starting ``len(files) // parts`` further on
    (wrapping round): neighbouring windows share files, every file is in one at least."""
    step = len(files) // parts
    return [[files[(k * step + j) % len(files)] for j in range(size)] for k in range(parts)]


def hashes(files: list[SourceFile]) -> set[str]:
    return {content_hash(f.read()) for f in files}


def race_inserts_into_collections(engine, parties: int):
    """Every connection about to insert into ``collections`` waits until ``parties`` are about
    to: each has looked the name up and not found it. Returns the listener (to remove it)."""
    barrier = threading.Barrier(parties, timeout=WAIT)

    def hook(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO COLLECTIONS"):
            barrier.wait()

    event.listen(engine, "before_cursor_execute", hook)
    return hook


def check_collection(ctx, name: str, expected: set[str], reports: list[dict]) -> None:
    """Each expected image exactly once with one vector, every run done, and the reports add up."""
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, name).id
        stored = s.scalars(select(Image.content_hash).where(Image.collection_id == coll_id)).all()
        statuses = set(s.scalars(select(Image.status).where(Image.collection_id == coll_id)))
        vectors = s.scalar(select(func.count()).select_from(Embedding).join(Image)
                           .where(Image.collection_id == coll_id, Embedding.space == SPACE))
        runs = s.execute(select(IngestRun.status, IngestRun.message).where(IngestRun.collection_id == coll_id)).all()
    assert len(stored) == len(set(stored)), "an image stored twice"
    assert set(stored) == expected, f"{len(expected - set(stored))} images lost"
    assert statuses == {"ok"} and vectors == len(expected)
    assert all(status == "done" for status, _ in runs), runs
    assert sum(r["added"] for r in reports) == len(expected), reports
    assert sum(r["embedded"] for r in reports) == len(expected), reports
    for r in reports:
        assert r["failed"] == 0 and r["added"] + r["skipped"] == r["total"], r
    assert ctx.index(coll_id, SPACE, verify=True).ntotal == len(expected)


# ---- threads, both databases -------------------------------------------------------------------------

def test_concurrent_ingests_of_overlapping_files_into_one_collection(ctx, pets, monkeypatch):
    parts = windows(pets, 4, 12)  # each file in two of the four runs
    create_collections(ctx, "pets")
    barrier = race_first_stores(monkeypatch, len(parts))
    reports = run_at_once(*(lambda p=p: ingest(ctx, "pets", p) for p in parts), barrier=barrier)
    check_collection(ctx, "pets", hashes(pets), [r.to_dict() for r in reports])


def test_concurrent_ingests_into_two_collections_share_thumbnails(ctx, pets, monkeypatch):
    w = windows(pets, 4, 12)
    jobs = [("a", w[0]), ("a", w[1]), ("b", w[1]), ("b", w[2])]  # w[1] goes to both collections
    create_collections(ctx, "a", "b")
    barrier = race_first_stores(monkeypatch, len(jobs))
    reports = run_at_once(*(lambda c=c, p=p: ingest(ctx, c, p) for c, p in jobs), barrier=barrier)
    for name in ("a", "b"):
        mine = [r.to_dict() for r in reports if r.collection == name]
        check_collection(ctx, name, hashes([f for c, p in jobs if c == name for f in p]), mine)
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Thumbnail)) == len(hashes(w[0] + w[1] + w[2]))


def test_two_first_ingests_into_a_new_collection_both_succeed(ctx, pets):
    hook = race_inserts_into_collections(ctx.db.engine, 2)
    try:
        reports = run_at_once(lambda: ingest(ctx, "fresh", pets[:6]), lambda: ingest(ctx, "fresh", pets[4:10]))
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", hook)
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Collection).where(Collection.name == "fresh")) == 1
    check_collection(ctx, "fresh", hashes(pets[:10]), [r.to_dict() for r in reports])


def test_the_same_files_twice_at_once_count_as_added_once(ctx, pets, monkeypatch):
    create_collections(ctx, "twice")
    barrier = race_first_stores(monkeypatch, 3)
    reports = run_at_once(*(lambda: ingest(ctx, "twice", pets[:8]) for _ in range(3)), barrier=barrier)
    check_collection(ctx, "twice", hashes(pets[:8]), [r.to_dict() for r in reports])


def test_a_failed_image_that_decodes_now_is_promoted_by_one_of_two_runs(settings, tmp_path, monkeypatch):
    root = tmp_path / "big"
    root.mkdir()
    PILImage.new("RGB", (1200, 1000), "orange").save(root / "large.png")
    files, _ = files_from_folder(root)
    strict = AppContext.open(settings.replace(max_pixels=1_000_000))
    try:
        assert ingest(strict, "big", files).failed == 1
    finally:
        strict.close()
    ctx = AppContext.open(settings)  # the default limit lets it through
    try:
        barrier = race_first_stores(monkeypatch, 2)
        reports = run_at_once(lambda: ingest(ctx, "big", files), lambda: ingest(ctx, "big", files), barrier=barrier)
        assert sorted((r.added, r.skipped, r.failed) for r in reports) == [(0, 1, 0), (1, 0, 0)]
        with ctx.db.session() as s:
            img = s.scalars(select(Image)).one()
            assert (img.status, img.error, img.width, img.thumbnail_hash) == ("ok", None, 1200, img.content_hash)
            assert s.scalar(select(func.count()).select_from(Embedding)) == 1
    finally:
        ctx.close()


# ---- the API ------------------------------------------------------------------------------------------

def test_two_creates_of_one_collection_at_once_give_201_and_409(make_app):
    app = make_app()
    services = app.extensions["simsearch"]
    engine = getattr(services, "services", services).db.engine
    hook = race_inserts_into_collections(engine, 2)
    try:
        answers = run_at_once(*(lambda: app.test_client().post("/api/collections", json={"name": "same"})
                                for _ in range(2)))
    finally:
        event.remove(engine, "before_cursor_execute", hook)
    assert sorted(a.status_code for a in answers) == [201, 409], [a.get_json() for a in answers]
    conflict = next(a for a in answers if a.status_code == 409).get_json()["error"]
    assert conflict["code"] == "conflict" and conflict["field"] == "name" and "already exists" in conflict["message"]
    assert app.test_client().post("/api/collections", json={"name": "same"}).status_code == 409


def test_a_function_job_failing_on_the_database_records_no_sql(make_app, monkeypatch):
    """An analysis job (run by its function's name) that fails on a database error records the
    driver's reason, not the statement and its parameters (ingest jobs: tests/test_no_leaks.py)."""
    from simsearch.jobs import runners

    app = make_app()
    services = app.extensions["simsearch"]
    ctx = getattr(services, "services", services)
    with ctx.db.session() as s:
        coll = repo.get_or_create_collection(s, "c")
        run = IngestRun(collection_id=coll.id, kind="clusters", source="test", spaces=[SPACE], status="running")
        s.add(run)
        s.flush()
        run_id = run.id

    def fails(ctx_, run_id_):
        with ctx_.db.session() as s:
            s.add(Collection(name="c", description="secret " * 100))

    monkeypatch.setattr(runners, "resolve_target", lambda target: fails)
    runner = app.extensions["simsearch_jobs"]
    runner._call(run_id, "simsearch.ops.analysis_jobs:execute")
    with ctx.db.session() as s:
        run = s.get(IngestRun, run_id)
        assert run.status == "failed"
        assert "INSERT" not in run.message.upper() and "secret" not in run.message, run.message


# ---- separate processes, PostgreSQL -------------------------------------------------------------------

def _ingest_in_a_process(home: str, url: str, weights: str, collection: str, paths: list[str], barrier, out) -> None:
    """A child process: ingest ``paths`` with its own context, its first store at ``barrier``."""
    try:
        ctx = AppContext.open(Settings.from_env(home=Path(home), database_url=url, weights_path=Path(weights)))
        original = Ingester._store
        waited = []

        def store(self, *args, **kwargs):
            if not waited:
                waited.append(True)
                barrier.wait(WAIT)
            return original(self, *args, **kwargs)

        Ingester._store = store
        files = [SourceFile(name=p, path=Path(p), label=Path(p).parent.name) for p in paths]
        out.put(ingest(ctx, collection, files).to_dict())
        ctx.close()
    except BaseException as exc:  # the parent reports it
        out.put({"error": f"{type(exc).__name__}: {public_reason(exc)}", "collection": collection})


@pytest.mark.postgres
def test_concurrent_ingest_processes_on_postgres(tmp_path, postgres_url, weights_dir, pets):
    settings = upgraded(Settings.from_env(home=tmp_path / "home", database_url=postgres_url, weights_path=weights_dir))
    ctx = AppContext.open(settings)
    try:
        ctx.embedder(SPACE).load()  # convert the weights once, before the children load them
        w = windows(pets, 3, 12)
        jobs = [("pets", w[0]), ("pets", w[1]), ("other", w[1] + w[2][:4])]
        mp = multiprocessing.get_context("spawn")
        barrier, out = mp.Barrier(len(jobs)), mp.Queue()
        procs = [mp.Process(target=_ingest_in_a_process, args=(str(settings.home), postgres_url, str(weights_dir), c,
                                                              [str(f.path) for f in p], barrier, out))
                 for c, p in jobs]
        for p in procs:
            p.start()
        reports = [out.get(timeout=600) for _ in procs]
        for p in procs:
            p.join(60)
        assert not [r for r in reports if "error" in r], reports
        for name in ("pets", "other"):
            expected = hashes([f for c, p in jobs if c == name for f in p])
            check_collection(ctx, name, expected, [r for r in reports if r["collection"] == name])
    finally:
        ctx.close()
