"""The database failing: refused connections, a server that accepts TCP and never answers, a locked
SQLite file. Requests get 503 ``database_unavailable`` (no SQL) instead of 500 or a hang, the health
endpoint names the dependency that is down, the app recovers without a restart, and an in-process
job whose failure could not be written is marked failed once the database is back."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from simsearch.config import Settings
from simsearch.store.db import Database
from simsearch.store.models import IngestRun
from tests.conftest import ROOT, upgraded

HANGS = 30  # seconds after which a request counts as hanging (the timeouts are 3-5 s)


class Proxy:
    """A TCP proxy to PostgreSQL on a fixed local port: ``forward``, ``refuse`` (nothing listens),
    ``blackhole`` (connections are accepted and never answered), ``freeze`` (a server that stops
    answering: open connections stay open and nothing more passes either way, new ones are
    accepted and never answered) or ``cut`` (open connections pass pings on, a query closes its
    connection, new connections are refused: PostgreSQL going down between a request's pooled
    checkout and its query)."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.port = None
        self.listener = None
        self.mode = "refuse"
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()

    def set(self, mode: str) -> None:
        with self.lock:
            if mode in ("freeze", "cut") and self.mode == "forward":  # the open connections stay
                self.mode = mode
                if mode == "freeze":
                    return
                conns, self.conns = self.conns, []
        if mode == "cut":
            self.set("refuse")
            with self.lock:
                self.conns, self.mode = conns, "cut"
            return
        with self.lock:
            if self.listener is not None:
                try:
                    self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
                except OSError:
                    pass
                self.listener.close()
                self.listener = None
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self.conns.clear()
            self.mode = mode
            if mode == "refuse":
                return
            lst = socket.socket()
            lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lst.bind(("127.0.0.1", self.port or 0))
            self.port = lst.getsockname()[1]
            lst.listen(64)
            self.listener = lst
        threading.Thread(target=self._accept, args=(lst, mode), daemon=True).start()

    def _accept(self, lst: socket.socket, mode: str) -> None:
        while True:
            try:
                client, _ = lst.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(client)
            if mode == "forward" and self.mode == "forward":
                try:
                    server = socket.create_connection(self.target)
                except OSError:
                    client.close()
                    continue
                with self.lock:
                    self.conns.append(server)
                for a, b in ((client, server), (server, client)):
                    threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if self.mode == "freeze":
                    continue  # swallowed: the server neither reads nor answers
                if self.mode == "cut" and b"SELECT" in data.upper():
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def url(self, real_url: str) -> str:
        head, tail = real_url.split("@", 1)
        return f"{head}@127.0.0.1:{self.port}/{tail.split('/', 1)[1]}"


@pytest.fixture
def proxy(postgres_url):
    from sqlalchemy.engine import make_url

    p = Proxy(make_url(postgres_url).port or 5432)
    p.set("forward")
    yield p
    p.set("refuse")


def timed(fn, limit: float = HANGS):
    """``fn()``'s result; fails if it has not returned after ``limit`` seconds (a hang)."""
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", fn()), daemon=True)
    t.start()
    t.join(limit)
    assert not t.is_alive(), f"no answer within {limit} s: the request hangs"
    return box["r"]


def assert_unavailable(resp):
    assert resp.status_code == 503, resp.get_data(as_text=True)
    err = resp.get_json()["error"]
    assert err["code"] == "database_unavailable"
    assert "SELECT" not in err["message"] and "INSERT" not in err["message"] and "%(" not in err["message"]
    return err


def make(settings):
    from simsearch.web import create_app

    return create_app({"SETTINGS": settings, "TESTING": True})


def close(app):
    from simsearch.web import shutdown

    shutdown(app, wait=False)


@pytest.mark.postgres
@pytest.mark.parametrize("outage", ["refuse", "blackhole"])
def test_postgres_outage_gives_503_then_recovers_without_restart(tmp_path, postgres_url, proxy, weights_dir, outage):
    settings = upgraded(Settings.from_env(home=tmp_path / "home", database_url=proxy.url(postgres_url),
                                          weights_path=weights_dir))
    app = make(settings)
    try:
        client = app.test_client()
        assert client.post("/api/collections", json={"name": "before"}).status_code == 201
        proxy.set(outage)
        assert_unavailable(timed(lambda: client.get("/api/collections")))
        assert_unavailable(timed(lambda: client.post("/api/collections", json={"name": "during"})))
        health = timed(lambda: client.get("/api/health"))
        assert health.status_code == 503
        body = health.get_json()["error"]
        assert body["code"] == "database_unavailable" and "(down: database)" in body["message"]
        assert body["details"]["checks"] == {"database": "unavailable", "job_queue": "in-process"}
        proxy.set("forward")
        assert client.get("/api/health").status_code == 200
        names = [c["name"] for c in client.get("/api/collections").get_json()["collections"]]
        assert names == ["before"]
        assert client.post("/api/collections", json={"name": "after"}).status_code == 201
    finally:
        close(app)


@pytest.mark.postgres
def test_fresh_app_starts_while_the_database_is_down(tmp_path, postgres_url, proxy, weights_dir):
    """A server may start before its database (compose, reboots): 503s until it is there, then it
    checks the schema once and serves."""
    upgraded(Settings.from_env(home=tmp_path / "h0", database_url=postgres_url))
    proxy.set("blackhole")
    settings = Settings.from_env(home=tmp_path / "home", database_url=proxy.url(postgres_url), weights_path=weights_dir)
    app = timed(lambda: make(settings))
    try:
        client = app.test_client()
        assert_unavailable(timed(lambda: client.get("/api/collections")))
        assert timed(lambda: client.get("/api/health")).get_json()["error"]["details"]["checks"]["database"] == "unavailable"
        proxy.set("forward")
        assert client.get("/api/collections").status_code == 200
    finally:
        close(app)


def test_closed_port_gives_503_and_a_cli_error_line(tmp_path, weights_dir):
    url = "postgresql://postgres@127.0.0.1:1/none"
    settings = Settings.from_env(home=tmp_path / "home", database_url=url, weights_path=weights_dir)
    app = make(settings)
    try:
        client = app.test_client()
        err = assert_unavailable(client.get("/api/collections"))
        assert err["message"] == "the database is unavailable (connection refused); try again shortly"
        assert client.get("/api/health").status_code == 503
    finally:
        close(app)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMSEARCH_")}
    env.update(SIMSEARCH_HOME=str(tmp_path / "home"), SIMSEARCH_DATABASE_URL=url, PYTHONPATH=str(ROOT))
    for args in (["collections"], ["db", "upgrade"]):
        proc = subprocess.run([sys.executable, "-m", "simsearch.cli", *args], env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 1
        assert proc.stderr.strip() == "error: the database is unavailable (connection refused); try again shortly"


def test_locked_sqlite_gives_503_then_works(tmp_path, weights_dir):
    db_file = tmp_path / "home" / "simsearch.db"
    settings = upgraded(Settings.from_env(home=tmp_path / "home", database_url=f"sqlite:///{db_file}",
                                          weights_path=weights_dir, db_statement_timeout=1))
    app = make(settings)
    try:
        client = app.test_client()
        holder = sqlite3.connect(db_file, timeout=0, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process writing and not letting go
        try:
            err = assert_unavailable(timed(lambda: client.post("/api/collections", json={"name": "x"})))
            assert "locked" in err["message"]
            assert client.get("/api/collections").status_code == 200  # WAL: reads go on
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert client.post("/api/collections", json={"name": "x"}).status_code == 201
    finally:
        close(app)


@pytest.mark.postgres
def test_job_failure_recorded_once_the_database_is_back(tmp_path, postgres_url, proxy, weights_dir, monkeypatch):
    """An in-process job whose failure could not be written (the database went away mid-job) is
    marked failed, with its reason, when the database returns: it does not stay running."""
    from simsearch.ingest import Ingester
    from simsearch.jobs.manifest import Manifest, run_folder

    settings = upgraded(Settings.from_env(home=tmp_path / "home", database_url=proxy.url(postgres_url),
                                          weights_path=weights_dir))
    direct = Database(postgres_url)
    app = make(settings)
    services = app.extensions["simsearch"]
    services = getattr(services, "services", services)
    runner = app.extensions["simsearch_jobs"]

    def dies_with_the_database(self, collection, files, *, source, ignored=(), run_id=None):
        with self.ctx.db.session() as s:
            s.get(IngestRun, run_id).status = "running"
        proxy.set("refuse")
        with self.ctx.db.session() as s:  # the next progress write
            s.execute(text("SELECT 1"))

    monkeypatch.setattr(Ingester, "run", dies_with_the_database)
    try:
        client = app.test_client()
        assert client.post("/api/collections", json={"name": "c"}).status_code == 201
        with direct.session() as s:
            run = IngestRun(collection_id=1, source="test", spaces=["efficientnet_lite0"], status="queued", total=0)
            s.add(run)
            s.flush()
            run_id = run.id
        folder = run_folder(settings, run_id)
        folder.mkdir(parents=True)
        Manifest(run_id=run_id, collection="c", files=[], ignored=[]).write(folder)
        runner.submit(run_id, {})
        deadline = time.monotonic() + HANGS
        while run_id not in runner.pending_failures():
            assert time.monotonic() < deadline, "the failure was not kept for later"
            time.sleep(0.1)
        with direct.session() as s:
            assert s.get(IngestRun, run_id).status == "running"  # could not be written
        proxy.set("forward")
        deadline = time.monotonic() + HANGS
        while True:
            with direct.session() as s:
                run = s.get(IngestRun, run_id)
                if run.status != "running":
                    break
            assert time.monotonic() < deadline, "the job stayed running after the database came back"
            time.sleep(0.2)
        assert run.status == "failed"
        assert run.message == ("the database is unavailable (connection refused) while the job ran; "
                               "ingest the same files again to finish it")
        assert runner.pending_failures() == {}
        job = client.get(f"/api/jobs/{run_id}").get_json()
        assert job["status"] == "failed" and "SELECT" not in job["message"]
    finally:
        close(app)
        direct.dispose()


# ---- a frozen server, a connection cut mid-request, time bounds on both databases -------------

def assert_retry_after(resp):
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert int(resp.headers["Retry-After"]) > 0
    return resp


def every_route(client, collection: str) -> dict:
    """One request of each kind the issue names: health, browse, create, search, similar, jobs."""
    image = (ROOT.parent / "shared" / "datasets" / "flowers").rglob("*.jpg")
    body = next(image).read_bytes()
    return {
        "health": lambda: client.get("/api/health"),
        "collections": lambda: client.get("/api/collections"),
        "create": lambda: client.post("/api/collections", json={"name": "during"}),
        "search": lambda: client.post(f"/api/collections/{collection}/search", data=body,
                                      content_type="image/jpeg"),
        "similar": lambda: client.get("/api/images/1/similar"),
        "jobs": lambda: client.get("/api/jobs"),
        "job": lambda: client.get("/api/jobs/1"),
    }


@pytest.mark.postgres
def test_frozen_postgres_gives_503_with_retry_after_on_every_route(tmp_path, postgres_url, proxy, weights_dir):
    """PostgreSQL that accepts connections and then never answers (frozen, or a network that
    swallows packets): open pooled connections and new ones alike. Every route answers 503 with
    Retry-After (client-side deadlines), and serving resumes when the server does."""
    settings = upgraded(Settings.from_env(home=tmp_path / "home", database_url=proxy.url(postgres_url),
                                          weights_path=weights_dir, db_statement_timeout=1, db_connect_timeout=1))
    app = make(settings)
    try:
        client = app.test_client()
        assert client.post("/api/collections", json={"name": "c"}).status_code == 201
        routes = every_route(client, "c")
        assert routes["collections"]().status_code == 200  # pooled connections open to the server
        proxy.set("freeze")
        for name, call in routes.items():
            resp = assert_retry_after(timed(call))
            assert resp.get_json()["error"]["code"] == "database_unavailable", name
        proxy.set("forward")
        assert client.get("/api/health").status_code == 200
        assert [c["name"] for c in client.get("/api/collections").get_json()["collections"]] == ["c"]
    finally:
        close(app)


@pytest.mark.postgres
def test_health_answers_while_postgres_is_frozen_with_default_timeouts(tmp_path, postgres_url, proxy, weights_dir):
    """The health check has its own few-second bound (SIMSEARCH_HEALTH_TIMEOUT), well inside the
    30 s statement timeout that other requests wait for: a load balancer's probe gets its answer."""
    settings = upgraded(Settings.from_env(home=tmp_path / "home", database_url=proxy.url(postgres_url),
                                          weights_path=weights_dir))
    app = make(settings)
    try:
        client = app.test_client()
        assert client.get("/api/health").status_code == 200
        proxy.set("freeze")
        for _ in range(2):  # the open pooled connection, then a new one
            health = assert_retry_after(timed(lambda: client.get("/api/health"), limit=25))
            assert health.get_json()["error"]["details"]["checks"]["database"] == "unavailable"
        proxy.set("forward")
        assert client.get("/api/health").status_code == 200
    finally:
        close(app)


@pytest.mark.postgres
@pytest.mark.parametrize("route", ["similar", "search"])
def test_postgres_lost_between_checkout_and_query_is_503_not_500(tmp_path, postgres_url, proxy, weights_dir, route):
    """The fast read path (store/hot.py) runs on the driver's connection: psycopg's own errors are
    mapped like SQLAlchemy's. The pooled connection passes its ping, then PostgreSQL goes away
    before the query (and refuses new connections)."""
    settings = upgraded(Settings.from_env(home=tmp_path / "home", database_url=proxy.url(postgres_url),
                                          weights_path=weights_dir))
    app = make(settings)
    try:
        client = app.test_client()
        assert client.post("/api/collections", json={"name": "c"}).status_code == 201
        call = every_route(client, "c")[route]
        assert call().status_code in (200, 404)  # no such image; nothing indexed: answered all the same
        proxy.set("cut")
        err = assert_unavailable(assert_retry_after(timed(call)))
        assert err["message"].startswith("the database is unavailable (the connection was lost")
        assert_unavailable(timed(call))  # and with the server refusing: still 503
        proxy.set("forward")
        assert call().status_code in (200, 404)
    finally:
        close(app)


@pytest.mark.postgres
def test_postgres_sessions_carry_the_server_side_limits(postgres_url):
    """Statement and idle-in-transaction limits are set on every session (a client that froze
    inside a transaction does not hold its locks forever)."""
    db = Database(postgres_url, statement_timeout=7, idle_transaction_timeout=11)
    try:
        with db.session() as s:
            assert s.execute(text("SHOW statement_timeout")).scalar() == "7s"
            assert s.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "11s"
    finally:
        db.dispose()


RUNAWAY = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"


def test_sqlite_statement_is_interrupted_at_its_timeout(tmp_path):
    """SQLite has no statement timeout of its own: a progress handler ends a statement that runs
    past SIMSEARCH_DB_STATEMENT_TIMEOUT, and it is reported as the database not answering."""
    from simsearch.store.db import unavailable

    db = Database(f"sqlite:///{tmp_path / 'x.db'}", statement_timeout=0.5)
    try:
        def run():
            try:
                with db.session() as s:
                    s.execute(text(RUNAWAY)).scalar()
            except Exception as exc:  # noqa: BLE001 - returned for the assertions
                return exc
        exc = timed(run)
        assert unavailable(exc) is not None, repr(exc)
        assert "did not answer in time" in unavailable(exc).message
        with db.session() as s:  # the connection is usable afterwards
            assert s.execute(text("SELECT 1")).scalar() == 1
    finally:
        db.dispose()


def test_full_sqlite_database_is_507_storage_full(tmp_path, weights_dir):
    """A database that cannot grow (here SQLite's page limit, the same error as a full disk) is
    507 storage_full, not 'database unavailable': reads go on."""
    from sqlalchemy import event

    settings = upgraded(Settings.from_env(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'f.db'}",
                                          weights_path=weights_dir))
    app = make(settings)
    try:
        engine = app.extensions["simsearch"].db.engine
        with engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
        event.listen(engine, "connect", lambda c, _r: c.execute(f"PRAGMA max_page_count={pages}"))
        engine.dispose()
        client = app.test_client()
        filler = [{"name": f"c{i}-" + "x" * 50} for i in range(300)]
        statuses = {client.post("/api/collections", json=f).status_code for f in filler}
        assert statuses <= {201, 507} and 507 in statuses, statuses
        resp = client.post("/api/collections", json={"name": "more-" + "y" * 50})
        assert resp.status_code == 507 and "Retry-After" not in resp.headers
        err = resp.get_json()["error"]
        assert err["code"] == "storage_full" and "disk is full" in err["message"]
        assert client.get("/api/collections").status_code == 200
    finally:
        close(app)


def test_read_only_sqlite_database_is_503_storage_read_only(tmp_path, weights_dir):
    db_file = tmp_path / "ro.db"
    upgraded(Settings.from_env(home=tmp_path / "h0", database_url=f"sqlite:///{db_file}"))
    settings = Settings.from_env(home=tmp_path / "home", weights_path=weights_dir,
                                 database_url=f"sqlite:///file:{db_file}?mode=ro&uri=true")
    app = make(settings)
    try:
        client = app.test_client()
        assert client.get("/api/collections").status_code == 200
        resp = assert_retry_after(client.post("/api/collections", json={"name": "x"}))
        err = resp.get_json()["error"]
        assert err["code"] == "storage_read_only" and "read-only" in err["message"]
    finally:
        close(app)
    photos = tmp_path / "photos"
    photos.mkdir()
    photos.joinpath("a.jpg").write_bytes(next((ROOT.parent / "shared" / "datasets" / "flowers").rglob("*.jpg")).read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMSEARCH_")}
    env.update(SIMSEARCH_HOME=str(settings.home), SIMSEARCH_DATABASE_URL=settings.database_url,
               SIMSEARCH_WEIGHTS_DIR=str(weights_dir), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "simsearch.cli", "ingest", str(photos), "-c", "x"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: the database is read-only: it accepts no changes until it is writable again (reads still work)")


@pytest.fixture
def small_mount(tmp_path):
    """A 1 MB tmpfs (a disk that fills up, and can be made read-only); skipped where this process
    may not mount file systems (not root, or a container without the capability)."""
    point = tmp_path / "mnt"
    point.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_full_or_read_only_data_folder_is_507_or_503(tmp_path, small_mount, weights_dir):
    """Uploads staged into a data folder whose disk is full: 507 storage_full; the same folder
    read-only: 503 storage_read_only with Retry-After. Reads go on in both."""
    import io

    home = small_mount / "home"
    settings = upgraded(Settings.from_env(home=home, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                                          weights_path=weights_dir))
    app = make(settings)
    try:
        client = app.test_client()
        big = os.urandom(700_000)
        files = [(io.BytesIO(big), f"p{i}.jpg") for i in range(3)]
        resp = client.post("/api/collections/c/ingest", data={"files": files}, content_type="multipart/form-data")
        assert resp.status_code == 507, resp.get_data(as_text=True)
        assert resp.get_json()["error"]["code"] == "storage_full" and "Retry-After" not in resp.headers
        assert client.get("/api/collections").status_code == 200
        subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
        resp = assert_retry_after(client.post("/api/collections/d/ingest", data={"files": [(io.BytesIO(b"x" * 10), "a.jpg")]},
                                              content_type="multipart/form-data"))
        err = resp.get_json()["error"]
        assert err["code"] == "storage_read_only" and "read-only" in err["message"], err
        assert client.get("/api/collections").status_code == 200
    finally:
        close(app)


@pytest.mark.postgres
def test_full_postgres_disk_is_507_storage_full(postgres_url, weights_dir, tmp_path):
    """PostgreSQL's own disk-full error (SQLSTATE 53100): the collections table is moved to a
    tablespace on a 64 KB tmpfs and filled through the API. Skipped unless this process may mount
    file systems and the PostgreSQL server runs on this machine as the user ``postgres``."""
    import pwd
    import tempfile

    import psycopg

    try:
        pg_user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no local PostgreSQL server user")
    point = Path(tempfile.mkdtemp(prefix="simsearch-full-pg-", dir="/tmp"))
    point.chmod(0o755)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(point)],
                                           capture_output=True).returncode != 0:
        point.rmdir()
        pytest.skip("cannot mount a tmpfs here")
    os.chown(point, pg_user.pw_uid, pg_user.pw_gid)
    space = f"full_{point.name.rsplit('-', 1)[-1].lower()}"
    settings = upgraded(Settings.from_env(home=tmp_path / "home", database_url=postgres_url, weights_path=weights_dir))
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    admin = plain.rsplit("/", 1)[0] + "/postgres"
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            try:
                conn.execute(f"CREATE TABLESPACE {space} LOCATION '{point}'")
            except psycopg.Error as exc:
                pytest.skip(f"PostgreSQL cannot use a tablespace here: {exc}")
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE collections SET TABLESPACE {space}")
            conn.execute("ALTER TABLE collections SET (fillfactor = 10)")  # few rows a page: full sooner
        app = make(settings)
        try:
            client = app.test_client()
            statuses = []
            for i in range(5000):
                statuses.append(client.post("/api/collections", json={"name": f"c{i}-" + "x" * 50}).status_code)
                if statuses[-1] != 201:
                    break
            assert statuses[-1] == 507 and set(statuses[:-1]) == {201}, statuses[-3:]
            resp = client.post("/api/collections", json={"name": "one-more-" + "y" * 50})
            err = resp.get_json()["error"]
            assert resp.status_code == 507 and err["code"] == "storage_full" and "disk is full" in err["message"]
            assert client.get("/api/collections").status_code == 200
        finally:
            close(app)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            name = plain.rsplit("/", 1)[1]
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f"DROP TABLESPACE IF EXISTS {space}")
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
        point.rmdir()
