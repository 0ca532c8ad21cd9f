"""The ``simsearch`` command group and what its sub-commands share (settings, the AppContext, one
line per error). The sub-commands (sibling modules) import from here; :mod:`simsearch.cli`
registers them."""

from __future__ import annotations


import click

from simsearch import __version__
from simsearch.errors import InvalidInput, NotFound, QueueUnavailable, SimsearchError
from simsearch.config import Settings
from simsearch.context import AppContext
from simsearch.store.db import storage_error, unavailable


class SimsearchGroup(click.Group):
    """Turns a SimsearchError into ``error: <message>`` and exit status 2 (bad input) or 1; so too
    an unreachable database or Redis, whichever command meets it (one line, no traceback)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SimsearchError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(2 if isinstance(exc, (InvalidInput, NotFound)) else 1)
        except Exception as exc:
            err = _unreachable(exc)
            if err is None:
                raise
            click.echo(f"error: {err.message}", err=True)
            ctx.exit(1)


def _unreachable(exc: Exception) -> SimsearchError | None:
    """The one-line error for a database or Redis that cannot be reached (or a database that cannot
    write: disk full, read-only), else None."""
    module = type(exc).__module__
    if module.startswith("sqlalchemy"):
        return unavailable(exc) or storage_error(exc)  # a full or read-only database: its own line
    if module.startswith("redis"):
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeout

        if isinstance(exc, (RedisConnectionError, RedisTimeout)):
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return QueueUnavailable(f"the job queue (Redis at SIMSEARCH_REDIS_URL) is unreachable: {type(exc).__name__}"
                                    + (f" ({detail})" if detail else ""))
    return None


@click.group(cls=SimsearchGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--home", type=click.Path(file_okay=False), help="Data directory [env SIMSEARCH_HOME].")
@click.option("--database-url", help="SQLAlchemy URL [env SIMSEARCH_DATABASE_URL; default: SQLite in the data directory].")
@click.version_option(__version__, prog_name="simsearch")
@click.pass_context
def cli(ctx: click.Context, home: str | None, database_url: str | None) -> None:
    """Image similarity search and exploration over your own collections.

    Typical use: `simsearch ingest PHOTOS/ --collection pets --labels folders`, then
    `simsearch search cat.jpg --collection pets`, then `simsearch serve`.
    """
    ctx.obj = {"home": home, "database_url": database_url}


def settings_from(ctx: click.Context, **overrides):
    """This invocation's settings: the environment, then the global options, then ``overrides``
    (a command's own options; None: not given)."""
    obj = ctx.find_root().obj
    if "settings" not in obj:
        obj["settings"] = Settings.from_env(home=obj["home"], database_url=obj["database_url"])
    over = {k: v for k, v in overrides.items() if v is not None}
    if over:
        obj["settings"] = obj["settings"].replace(**over)
    return obj["settings"]


def context_from(ctx: click.Context, *, server: bool = False, **overrides):
    """The :class:`~simsearch.context.AppContext` of this invocation (opened on first use). An
    SQLite database is brought up to date on the way (embedded: one user); a PostgreSQL one, or
    any for a server or worker (``server``: several processes must not race to migrate), is only
    checked: a missing or old schema is refused with a message saying to run ``simsearch db upgrade``."""
    obj = ctx.find_root().obj
    if "app_context" not in obj:
        settings = settings_from(ctx, **overrides)
        embedded = settings.database_url.startswith("sqlite")
        obj["app_context"] = AppContext.open(settings, schema="upgrade" if embedded and not server else "check")
        ctx.call_on_close(obj["app_context"].close)
    return obj["app_context"]


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="simsearch")
