"""Engine and sessions. SQLite (embedded, WAL mode) or PostgreSQL via ``SIMSEARCH_DATABASE_URL``.

The schema is created and upgraded by the Alembic migrations in ``migrations/`` (inside the
package, so a wheel install has them), only on request: :meth:`Database.upgrade`, which
``simsearch db upgrade`` runs (PostgreSQL: under an advisory lock, so two upgrades never race).
Servers and workers only :meth:`Database.check_schema` and refuse to start on a missing or old
schema; the CLI's other commands upgrade an SQLite database themselves.

Failing safely: PostgreSQL connections time out after ``connect_timeout`` seconds and statements
after ``statement_timeout``; SQLite waits that long for a lock. Pooled connections are pinged
before use, so the first request after the database comes back works. :func:`unavailable` turns
SQLAlchemy's connection errors into :class:`~simsearch.errors.DatabaseUnavailable` (503) with a
reason and never the SQL.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from simsearch.errors import DatabaseUnavailable, InvalidInput, SchemaOutdated

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
UPGRADE_HINT = "run `simsearch db upgrade`"


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, connect_timeout: float = 3.0, statement_timeout: float = 30.0) -> Engine:
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"SIMSEARCH_DATABASE_URL: not a database URL: {url!r}", field="database_url") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        busy_ms = int(statement_timeout * 1000)
        engine = create_engine(url, connect_args={"timeout": statement_timeout, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.close()

        return engine
    connect_args = {}
    if parsed.get_backend_name() == "postgresql":
        # libpq counts whole seconds, at least 2; tcp_user_timeout drops a connection whose sent
        # data goes unacknowledged (a server that vanished) instead of waiting for TCP's minutes.
        connect_args = {"connect_timeout": max(2, math.ceil(connect_timeout)),
                        "options": f"-c statement_timeout={int(statement_timeout * 1000)}",
                        "tcp_user_timeout": int(max(connect_timeout, 1) * 1000) + int(statement_timeout * 1000),
                        "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 5, "keepalives_count": 3}
    return create_engine(url, pool_pre_ping=True, pool_timeout=max(2.0, connect_timeout), connect_args=connect_args)


def unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """The :class:`DatabaseUnavailable` that ``exc`` means, or None when it is something else
    (a constraint, bad data: those are the caller's to map)."""
    if not isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)):
        return None
    text = str(getattr(exc, "orig", None) or exc).lower()
    if isinstance(exc, PoolTimeout) or "timeout" in text or "timed out" in text or "canceling statement" in text:
        reason = "it did not answer in time"
    elif "refused" in text:
        reason = "connection refused"
    elif "database is locked" in text:
        reason = "it stayed locked by another process"
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

    def __init__(self, url: str, *, connect_timeout: float = 3.0, statement_timeout: float = 30.0):
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, connect_timeout=connect_timeout, statement_timeout=statement_timeout)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings) -> "Database":
        return cls(settings.database_url, connect_timeout=settings.db_connect_timeout,
                   statement_timeout=settings.db_statement_timeout)

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
