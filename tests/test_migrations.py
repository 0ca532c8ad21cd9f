"""Migrations live in the package; `simsearch db upgrade` applies them; servers and workers refuse
a missing or old schema with one line saying what to run; the CLI upgrades SQLite itself; a wheel
installed elsewhere works."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

from simsearch.store.db import Database, head_revision
from tests.helpers.db import at_revision

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HINT = "run `simsearch db upgrade`"


def env_for(home: Path, url: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMSEARCH_")}
    env.update(SIMSEARCH_HOME=str(home), SIMSEARCH_DATABASE_URL=url, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3",
               **extra)
    return env


def simsearch(args, env, timeout=180, cwd=None):
    return subprocess.run([sys.executable, "-m", "simsearch.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def revision_of(url: str) -> str | None:
    db = Database(url)
    try:
        return db.revision()[0]
    finally:
        db.dispose()


def test_migrations_are_inside_the_package():
    import simsearch.store

    folder = Path(simsearch.store.__file__).parent / "migrations"
    assert (folder / "env.py").is_file() and sorted(p.name for p in (folder / "versions").glob("0*.py"))
    assert not (ROOT / "migrations").exists()


@pytest.mark.parametrize("revision", [None, "0001"])
def test_serve_and_worker_refuse_an_old_schema_until_db_upgrade(tmp_path, db_url, revision):
    at_revision(db_url, revision)
    env = env_for(tmp_path / "home", db_url, SIMSEARCH_REDIS_URL="redis://127.0.0.1:6379/0")
    expected = (f"error: the database has no simsearch schema yet: {HINT}" if revision is None else
                f"error: the database schema is at revision 0001, this simsearch needs {head_revision()}: {HINT}")
    for args in (["serve", "--port", "1"], ["worker", "--burst"]):
        proc = simsearch(args, env)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == expected
    assert revision_of(db_url) == revision  # nothing migrated behind the user's back

    proc = simsearch(["db", "current"], env)
    assert proc.returncode == 1 and "needs `simsearch db upgrade`" in proc.stdout
    proc = simsearch(["db", "upgrade"], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"database schema upgraded from {revision or 'nothing'} to {head_revision()}"
    assert revision_of(db_url) == head_revision()
    assert simsearch(["db", "upgrade"], env).stdout.strip() == f"database schema already at {head_revision()}"
    proc = simsearch(["db", "current"], env)
    assert proc.returncode == 0 and "up to date" in proc.stdout


def test_gunicorn_refuses_an_old_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    at_revision(url, "0001")
    env = env_for(tmp_path / "home", url)
    proc = subprocess.run([str(BIN / "gunicorn"), "-w", "2", "-b", "127.0.0.1:0", "simsearch.web.wsgi:app"], env=env,
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode != 0
    assert f"error: the database schema is at revision 0001, this simsearch needs {head_revision()}: {HINT}" in proc.stderr
    assert revision_of(url) == "0001"


@pytest.mark.postgres
def test_cli_upgrades_sqlite_itself_but_not_postgres(tmp_path, postgres_url):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    at_revision(url, "0001")
    proc = simsearch(["collections"], env_for(tmp_path / "home", url))
    assert proc.returncode == 0, proc.stderr
    assert revision_of(url) == head_revision()
    # the default: no URL, SQLite in the data directory, created on first use
    env = env_for(tmp_path / "fresh", "")
    del env["SIMSEARCH_DATABASE_URL"]
    assert simsearch(["collections"], env).returncode == 0
    assert revision_of(f"sqlite:///{tmp_path / 'fresh' / 'simsearch.db'}") == head_revision()
    # a shared PostgreSQL database is only migrated on request
    proc = simsearch(["collections"], env_for(tmp_path / "home", postgres_url))
    assert proc.returncode == 1 and proc.stderr.strip() == f"error: the database has no simsearch schema yet: {HINT}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_wheel_installs_and_runs_from_another_directory(tmp_path):
    """`pip install` of a built wheel (not editable) into a fresh venv: `simsearch --help`,
    `simsearch db upgrade` and `simsearch serve` answering /api/health, run from an unrelated folder."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build",
                                                             "dist", ".pytest_cache", "tests", "benchmarks"))
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(src), "-w", str(wheels)],
                           timeout=600, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    wheel = next(wheels.glob("simsearch-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    # Reuse this environment's heavy dependencies (TensorFlow, FAISS...) without its simsearch: a
    # plain path in a .pth file adds the folder but not the editable install hooks it holds.
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "zz_parent_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q",
                                str(wheel)], timeout=600, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMSEARCH_") and k != "PYTHONPATH"}
    env.update(SIMSEARCH_HOME=str(tmp_path / "home"), TF_CPP_MIN_LOG_LEVEL="3")
    exe = str(venv / "bin" / "simsearch")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import simsearch, sys; print(simsearch.__file__)"],
                           env=env, cwd=elsewhere, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(venv))  # the installed copy, not the source tree
    assert "db" in subprocess.run([exe, "--help"], env=env, cwd=elsewhere, capture_output=True, text=True,
                                  check=True, timeout=120).stdout
    up = subprocess.run([exe, "db", "upgrade"], env=env, cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == f"database schema upgraded from nothing to {head_revision()}"
    port = _free_port()
    proc = subprocess.Popen([exe, "serve", "--port", str(port)], env=env, cwd=elsewhere, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "serve did not answer"
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
