"""Shared fixtures: data directories, both databases (SQLite and PostgreSQL), small image subsets.

PostgreSQL tests use a fresh database per test on ``SIMSEARCH_TEST_POSTGRES_URL``
(default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``); `.ci/run` makes sure the
server is up. They fail, not skip, when it is down: the store must be covered on both.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

# The browser tests' fixtures (browser, live, _no_js_errors), registered once for every module.
pytest_plugins = ["tests.helpers.browser"]

ROOT = Path(__file__).resolve().parents[1]
DATASETS = (ROOT.parent / "shared" / "datasets").resolve()
CATS_DOGS = DATASETS / "cats-dogs"
FLOWERS = DATASETS / "flowers"
PG_URL = os.environ.get("SIMSEARCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

# The default precision (auto) is bf16 on CPUs with AMX / AVX512-BF16 and fp32 elsewhere, so the
# default space's name depends on the machine CI happens to run on. The suite pins fp32 (for this
# process and every CLI or server it starts); tests of bf16 and of `auto` set their own.
os.environ["SIMSEARCH_PRECISION"] = "fp32"


def dataset_files(folder: Path, n: int | None = None, start: int = 0) -> list[Path]:
    """The first ``n`` images of a dataset folder (sorted by number, so subsets are stable)."""
    files = sorted(folder.iterdir(), key=lambda p: (len(p.name), p.name))
    return files[start : start + n if n is not None else None]


def copy_subset(dest: Path, per_class: int, *, start: int = 0, dataset: Path = CATS_DOGS) -> Path:
    """Copy ``per_class`` images of each class of ``dataset`` into dest/<class>/ (tests only)."""
    for cls in sorted(p for p in dataset.iterdir() if p.is_dir()):
        (dest / cls.name).mkdir(parents=True, exist_ok=True)
        for f in dataset_files(cls, per_class, start):
            shutil.copy(f, dest / cls.name / f.name)
    return dest


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory) -> Path:
    """One weights folder for the whole test session, so converted weights are made once."""
    return tmp_path_factory.mktemp("weights")


def _pg_admin_url() -> str:
    return PG_URL.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def postgres_url():
    import psycopg

    name = f"simsearch_test_{uuid.uuid4().hex[:12]}"
    base = _pg_admin_url()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'simsearch.db'}"
    return request.getfixturevalue("postgres_url")


def upgraded(settings):
    """``settings`` after ``simsearch db upgrade`` on its database (servers only check the schema)."""
    from simsearch.store.db import Database

    settings.ensure_dirs()
    db = Database.from_settings(settings)
    try:
        db.upgrade()
    finally:
        db.dispose()
    return settings


@pytest.fixture
def settings(tmp_path, db_url, weights_dir):
    from simsearch.config import Settings

    return upgraded(Settings.from_env(home=tmp_path / "home", database_url=db_url, weights_path=weights_dir))


@pytest.fixture
def sqlite_settings(tmp_path, weights_dir):
    from simsearch.config import Settings

    return upgraded(Settings.from_env(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'home' / 'simsearch.db'}",
                                      weights_path=weights_dir))


@pytest.fixture
def ctx(settings):
    """The application context on the test's settings (both databases)."""
    from simsearch.context import AppContext

    app_ctx = AppContext.open(settings)
    yield app_ctx
    app_ctx.close()


@pytest.fixture
def pets_small(tmp_path) -> Path:
    """8 cats and 8 dogs, in cats/ and dogs/."""
    return copy_subset(tmp_path / "pets", 8)


def record_responses(app, seen: list) -> None:
    """Keep (request, response text) of every text response ``app`` gives (for
    :func:`server_paths_in`); streamed and binary responses are not read."""
    from flask import request

    def record(resp):
        if not resp.is_streamed and not resp.direct_passthrough and resp.mimetype and (
                resp.mimetype.startswith("text/") or resp.mimetype.endswith("json")):
            try:
                asked = request.full_path + request.get_data(as_text=True) + str(dict(request.form))
            except Exception:  # a body refused (413) or not readable: the URL is what was asked
                asked = request.full_path
            seen.append((f"{request.method} {request.full_path}", asked, resp.get_data(as_text=True)))
        return resp

    app.after_request(record)


def server_paths_in(seen: list, folders) -> list[str]:
    """The responses (of ``seen``) showing one of ``folders`` (absolute paths) that the request
    did not contain itself."""
    folders = [str(f) for f in folders if f and len(str(f)) > 1]
    found = []
    for what, asked, text in seen:
        for f in folders:
            at = text.find(f)
            if at >= 0 and f not in asked:
                found.append(f"{what}: ...{text[max(0, at - 150):at + len(f) + 80]}...")
                break
    return found


@pytest.fixture
def make_app(settings, tmp_path):
    """Makes Flask apps on the test's settings (both databases); shuts their job runners down after.

    No response of these apps may show the data folder, the test's folders (sources of ingests)
    or the weights folder by their absolute paths unless SIMSEARCH_EXPOSE_PATHS is set (issue 19,
    item 6): every text response is scanned after the test."""
    from simsearch.web import create_app, shutdown

    apps, seen = [], []

    def make(settings_=None, **config):
        app = create_app({"SETTINGS": settings_ or settings, "TESTING": True, **config})
        apps.append(app)
        if not app.extensions["simsearch"].settings.expose_paths:
            record_responses(app, seen)
        return app

    yield make
    for app in apps:
        shutdown(app)
    folders = {tmp_path.resolve(), tmp_path, settings.weights_dir}
    for app in apps:
        folders |= {app.extensions["simsearch"].settings.home, app.extensions["simsearch"].settings.weights_dir}
    leaks = server_paths_in(seen, folders)
    assert not leaks, "responses show server paths (SIMSEARCH_EXPOSE_PATHS is unset):\n" + "\n".join(leaks[:10])


@pytest.fixture
def offline_keras_weights(monkeypatch):
    """Make sure no keras.applications weights can be found or downloaded (fast, whatever the network)."""
    from simsearch.embedding.backbones import keras_apps

    monkeypatch.setattr(keras_apps, "keras_cache_dirs", lambda: [])
    monkeypatch.setattr(keras_apps, "DOWNLOAD_HOST", "keras-weights.invalid")
    monkeypatch.delenv("SIMSEARCH_WEIGHTS_RESNET50", raising=False)


@pytest.fixture
def weight_probes(monkeypatch):
    """The network probes that resolving Keras weights makes, as (host, timeout, answer: None when
    reachable, else why not); a test fails if a download is then attempted anyway. How a test
    checks "fails fast offline" without timing it: one bounded probe, and no download."""
    from simsearch.embedding.backbones import keras_apps

    seen, real = [], keras_apps._network_reachable

    def probe(host, timeout):
        seen.append((host, timeout, real(host, timeout)))
        return seen[-1][2]

    monkeypatch.setattr(keras_apps, "_network_reachable", probe)
    monkeypatch.setattr(keras_apps, "download_timeout", lambda: pytest.fail("a weights download was attempted"))
    return seen
