"""Alembic environment: uses the connection simsearch passes in (``simsearch db upgrade``), or a
URL from ``-x url=...`` / the settings (``SIMSEARCH_DATABASE_URL``) when Alembic is run by hand."""

from alembic import context
from sqlalchemy import create_engine, text

from simsearch.store.db import normalise_url
from simsearch.store.models import Base

target_metadata = Base.metadata
config = context.config


def _run(connection) -> None:
    if connection.dialect.name == "postgresql":
        # Several workers may start at once: let one of them migrate at a time.
        connection.execute(text("SELECT pg_advisory_xact_lock(727272)"))
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from simsearch.config import Settings

    url = context.get_x_argument(as_dictionary=True).get("url") or Settings.from_env().database_url
    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        _run(conn)
