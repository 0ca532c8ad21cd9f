"""Engine and sessions. SQLite (embedded, WAL mode) or PostgreSQL via ``SIMSEARCH_DATABASE_URL``.

The schema is created and upgraded by the Alembic migrations in ``migrations/`` (inside the
package, so a wheel install has them), only on request: :meth:`Database.upgrade`, which
``simsearch db upgrade`` runs (PostgreSQL: under an advisory lock, so two upgrades never race).
Servers and workers only :meth:`Database.check_schema` and refuse to start on a missing or old
schema; the CLI's other commands upgrade an SQLite database themselves.

Failing safely (docs/operations.md): every database call ends in bounded time, whatever the
server does.

* PostgreSQL: connecting gives up after ``connect_timeout`` seconds; the server cancels a statement
  after ``statement_timeout`` and ends a session left idle inside a transaction after
  ``idle_transaction_timeout``; TCP keepalives and ``tcp_user_timeout`` drop a connection whose
  peer vanished. None of that helps when the server accepts and then never answers (frozen, or a
  network path that swallows packets): so every wait on a connection also has a client-side
  deadline (:class:`DeadlineConnection`, ``statement_timeout`` plus a grace), after which the
  connection is closed and the call fails like a lost connection.
* SQLite: lock waits end after ``statement_timeout`` (busy timeout) and so do statements (a
  progress handler interrupts them).
* :func:`answer_within` shortens every call in a block (the health check answers in seconds).

Pooled connections are pinged before use, so the first request after the database comes back
works. :func:`unavailable` turns connection errors and timeouts (SQLAlchemy's or the driver's own)
into :class:`~simsearch.errors.DatabaseUnavailable` (503, ``Retry-After``) with a reason and never
the SQL; :func:`storage_error` a full disk (507 ``storage_full``) or a read-only database
(503 ``storage_read_only``).
"""

from __future__ import annotations

import math
import re
import time
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from simsearch.errors import DatabaseRefused, DatabaseUnavailable, InvalidInput, SchemaOutdated, StorageFull, StorageReadOnly

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
UPGRADE_HINT = "run `simsearch db upgrade`"


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


# seconds a client-side deadline waits beyond the server's statement_timeout (whose cancel should
# come first: a deadline that fires means the server did not answer at all)
DEADLINE_GRACE = 5.0
# the absolute time.monotonic() by which every database call in this context must have answered
_answer_by: ContextVar[float | None] = ContextVar("simsearch_db_answer_by", default=None)


@contextmanager
def answer_within(seconds: float) -> Iterator[None]:
    """Every database call in the block (connecting included) ends within ``seconds`` of its start,
    together: past that, they fail as :class:`DatabaseUnavailable` (the health check's bound)."""
    token = _answer_by.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _answer_by.reset(token)


def _remaining(limit: float) -> float:
    """The seconds the next call may take: ``limit``, or less inside :func:`answer_within`."""
    by = _answer_by.get()
    return limit if by is None else min(limit, by - time.monotonic())


def deadline_connection_class(limit: float):
    """A psycopg connection class whose every wait on the server (statement, fetch, commit,
    rollback, ping) ends after ``limit`` seconds (less inside :func:`answer_within`): then the
    connection is closed and ``psycopg.OperationalError`` raised, which SQLAlchemy treats as a lost
    connection (it is dropped from the pool)."""
    import inspect
    import logging

    import psycopg
    from psycopg import errors as pg_errors

    if not hasattr(pg_errors, "_WaitTimeout") or "timeout" not in inspect.signature(psycopg.Connection.wait).parameters:
        logging.getLogger("simsearch.db").warning(
            "psycopg %s has no timeout on its waits: a PostgreSQL server that stops answering can hang requests "
            "(upgrade psycopg)", psycopg.__version__)
        return psycopg.Connection

    class DeadlineConnection(psycopg.Connection):
        def wait(self, gen, interval=0.1, timeout=None):  # noqa: ANN001 - psycopg's signature
            allowed = _remaining(limit)
            if timeout is None or timeout > allowed:
                timeout = allowed
            try:
                if timeout <= 0:
                    raise pg_errors._WaitTimeout("no time left")
                return super().wait(gen, interval=interval, timeout=timeout)
            except pg_errors._WaitTimeout:
                self.close()  # it may be mid-statement: never reuse it
                raise psycopg.OperationalError(
                    f"the server did not answer within {max(timeout, 0):.1f} s (timed out; connection closed)") from None

    return DeadlineConnection


SUPPORTED_URLS = "postgresql://user@host:5432/name (PostgreSQL, through psycopg 3) or sqlite:///path/to/file.db"


def _check_driver(parsed) -> None:
    """:class:`InvalidInput` for a database or driver simsearch does not ship (``mysql://``,
    ``postgresql+psycopg2://``): one line naming what works, instead of an ImportError later."""
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite" and driver in ("pysqlite", ""):
        return
    if backend == "postgresql" and driver == "psycopg":
        return
    what = backend if backend not in ("sqlite", "postgresql") else f"the {driver} driver for {backend}"
    raise InvalidInput(f"SIMSEARCH_DATABASE_URL: {what} is not supported; use {SUPPORTED_URLS}",
                       field="database_url")


def make_engine(url: str, *, connect_timeout: float = 3.0, statement_timeout: float = 30.0,
                idle_transaction_timeout: float = 120.0) -> Engine:
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"SIMSEARCH_DATABASE_URL: not a database URL: {url!r}", field="database_url") from exc
    _check_driver(parsed)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        busy_ms = int(statement_timeout * 1000)
        engine = create_engine(url, connect_args={"timeout": statement_timeout, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.close()
            info = record.info

            def past_deadline() -> int:  # nonzero interrupts the running statement
                by = info.get("answer_by")
                return 1 if by is not None and time.monotonic() > by else 0

            dbapi_conn.set_progress_handler(past_deadline, 20_000)

        @event.listens_for(engine, "before_cursor_execute")
        def _sqlite_deadline(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
            conn.info["answer_by"] = time.monotonic() + _remaining(statement_timeout)

        @event.listens_for(engine, "after_cursor_execute")
        def _sqlite_deadline_done(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
            conn.info.pop("answer_by", None)

        return engine
    connect_args = {}
    if parsed.get_backend_name() == "postgresql":
        # libpq counts whole seconds, at least 2; tcp_user_timeout drops a connection whose sent
        # data goes unacknowledged (a server that vanished) instead of waiting for TCP's minutes;
        # keepalives find a peer that vanished while nothing was being sent.
        server_options = (f"-c statement_timeout={int(statement_timeout * 1000)} "
                          f"-c idle_in_transaction_session_timeout={int(idle_transaction_timeout * 1000)}")
        connect_args = {"connect_timeout": max(2, math.ceil(connect_timeout)),
                        "options": server_options,
                        "tcp_user_timeout": int(max(connect_timeout, 1) * 1000) + int(statement_timeout * 1000),
                        "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 5, "keepalives_count": 3}
    engine = create_engine(url, pool_pre_ping=True, pool_timeout=max(2.0, connect_timeout), connect_args=connect_args)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg":
        connection_class = deadline_connection_class(statement_timeout + max(DEADLINE_GRACE, connect_timeout))

        @event.listens_for(engine, "do_connect")
        def _connect(dialect, record, cargs, cparams):  # noqa: ANN001
            remaining = _remaining(float(cparams.get("connect_timeout", connect_timeout)))
            if remaining <= 0:
                import psycopg

                raise psycopg.OperationalError("no time left to connect (timed out)")
            cparams = dict(cparams, connect_timeout=max(2, math.ceil(remaining)))
            return connection_class.connect(*cargs, **cparams)

    return engine


_CONNECTION_ERRORS = (OperationalError, InterfaceError, PoolTimeout)


def _driver_error(exc: BaseException) -> BaseException | None:
    """The driver's exception behind ``exc`` when it is about the connection (psycopg's or
    sqlite3's OperationalError/InterfaceError, raw or wrapped by SQLAlchemy); else None."""
    if isinstance(exc, _CONNECTION_ERRORS):
        return getattr(exc, "orig", None) or exc
    module = type(exc).__module__.split(".")[0]
    if module in ("psycopg", "sqlite3") and type(exc).__name__ != "Error":
        import sqlite3

        try:
            import psycopg
            kinds: tuple = (psycopg.OperationalError, psycopg.InterfaceError, sqlite3.OperationalError)
        except ImportError:  # pragma: no cover - psycopg is a dependency
            kinds = (sqlite3.OperationalError,)
        if isinstance(exc, kinds):
            return exc
    return None


def storage_error(exc: BaseException) -> StorageFull | StorageReadOnly | None:
    """A database that cannot write because its disk is full (507) or it is read-only (503)."""
    orig = _driver_error(exc)
    if orig is None:
        return None
    text = str(orig).lower()
    state = getattr(getattr(orig, "diag", None), "sqlstate", None) or getattr(orig, "sqlstate", None)
    if state == "53100" or "disk is full" in text or "no space left" in text or "disk full" in text:
        return StorageFull("the database cannot write: its disk is full (free space on the database server, "
                           "then try again)")
    if state == "25006" or "readonly database" in text or "read-only" in text or "read only" in text:
        return StorageReadOnly("the database is read-only: it accepts no changes until it is writable again "
                               "(reads still work)")
    return None


def _setup_problem(orig: BaseException, text: str) -> str | None:
    """A message for a server that answers but refuses this URL (a database or role that does not
    exist, a wrong password): fix the URL or the server, waiting will not help."""
    state = getattr(getattr(orig, "diag", None), "sqlstate", None) or getattr(orig, "sqlstate", None)
    def named(what: str) -> str:
        found = re.search(what + r' "([^"]+)" does not exist', str(orig))
        return found.group(1) if found else "?"

    if state == "3D000" or re.search(r'database "[^"]*" does not exist', text):
        name = named("database")
        return (f"the database {name!r} does not exist on the server: create it (`createdb {name}`) "
                "or fix the name in SIMSEARCH_DATABASE_URL")
    if re.search(r'role "[^"]*" does not exist', text):
        name = named("role")
        return (f"the database role (user) {name!r} does not exist on the server: create it "
                f"(`createuser {name}`) or fix the user in SIMSEARCH_DATABASE_URL")
    if state == "28P01" or "password authentication failed" in text or "authentication failed" in text:
        return ("the database refused the password for the user in SIMSEARCH_DATABASE_URL "
                "(authentication failed): fix the password or the server's pg_hba.conf")
    if state == "28000" or "no pg_hba.conf entry" in text:
        return ("the database server refuses connections from this machine for that user and database "
                "(no pg_hba.conf entry): allow them on the server or fix SIMSEARCH_DATABASE_URL")
    return None


def unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """The :class:`DatabaseUnavailable` that ``exc`` means, or None when it is something else
    (a constraint, bad data, a full disk: those are the caller's to map, see :func:`storage_error`)."""
    orig = _driver_error(exc)
    if orig is None or storage_error(exc) is not None:
        return None
    text = str(orig).lower()
    if isinstance(exc, PoolTimeout) or "timeout" in text or "timed out" in text or "canceling statement" in text \
            or "interrupted" in text:
        reason = "it did not answer in time"
    elif "refused" in text:
        reason = "connection refused"
    elif "database is locked" in text:
        reason = "it stayed locked by another process"
    elif (setup := _setup_problem(orig, text)) is not None:
        return DatabaseRefused(setup)
    elif "no such table" in text:
        return DatabaseUnavailable(f"the database has no simsearch schema: {UPGRADE_HINT}")
    elif "closed" in text or "terminat" in text or "lost" in text or "reset" in text or "eof" in text:
        reason = "the connection was lost"
    else:
        reason = "the connection failed"
    return DatabaseUnavailable(f"the database is unavailable ({reason}); try again shortly")


def _alembic_config(engine: Engine):
    from alembic.config import Config

    if not (MIGRATIONS_DIR / "env.py").exists():
        raise RuntimeError(f"Alembic migrations not found at {MIGRATIONS_DIR}: a broken installation")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration this simsearch has."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The database's migration (None: no simsearch schema)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    from alembic import command

    cfg = _alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def check_schema(engine: Engine) -> None:
    """Raise :class:`SchemaOutdated` unless the database is at this simsearch's newest revision."""
    from alembic.script import ScriptDirectory

    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaOutdated(f"the database has no simsearch schema yet: {UPGRADE_HINT}")
    known = {rev.revision for rev in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions()}
    if current not in known:
        raise SchemaOutdated(f"the database schema ({current}) is newer than this simsearch ({head}): "
                             "upgrade simsearch")
    raise SchemaOutdated(f"the database schema is at revision {current}, this simsearch needs {head}: {UPGRADE_HINT}")


class Database:
    """An engine and a session factory. The schema is not touched: see :meth:`upgrade` and
    :meth:`check_schema`."""

    def __init__(self, url: str, *, connect_timeout: float = 3.0, statement_timeout: float = 30.0,
                 idle_transaction_timeout: float = 120.0):
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, connect_timeout=connect_timeout, statement_timeout=statement_timeout,
                                  idle_transaction_timeout=idle_transaction_timeout)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings) -> "Database":
        return cls(settings.database_url, connect_timeout=settings.db_connect_timeout,
                   statement_timeout=settings.db_statement_timeout,
                   idle_transaction_timeout=settings.db_idle_transaction_timeout)

    def upgrade(self) -> None:
        """Bring the schema to the newest revision (``simsearch db upgrade``)."""
        try:
            upgrade(self.engine)
        except (OperationalError, InterfaceError, PoolTimeout) as exc:
            raise (unavailable(exc) or exc) from None

    def check_schema(self) -> None:
        """Raise SchemaOutdated (or DatabaseUnavailable) unless the schema is current."""
        try:
            check_schema(self.engine)
        except (OperationalError, InterfaceError, PoolTimeout) as exc:
            raise (unavailable(exc) or exc) from None

    def revision(self) -> tuple[str | None, str]:
        """``(the database's revision, this simsearch's newest)``."""
        try:
            return current_revision(self.engine), head_revision()
        except (OperationalError, InterfaceError, PoolTimeout) as exc:
            raise (unavailable(exc) or exc) from None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self.sessionmaker() as session:
            with session.begin():
                yield session

    def table_names(self) -> list[str]:
        return inspect(self.engine).get_table_names()

    def dispose(self) -> None:
        self.engine.dispose()
