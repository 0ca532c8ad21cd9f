"""Database commands: ``simsearch db upgrade`` (create or migrate the schema) and ``db current``."""

from __future__ import annotations

import click

from simsearch.cli.app import cli, settings_from
from simsearch.store.db import Database


@cli.group()
def db():
    """Create or upgrade the database schema (run before starting servers and workers)."""


def _database(ctx):
    settings = settings_from(ctx)
    settings.ensure_dirs()
    return Database.from_settings(settings)


@db.command()
@click.pass_context
def upgrade(ctx):
    """Bring the schema to this version of simsearch (safe to run again; concurrent runs wait)."""
    database = _database(ctx)
    try:
        before, head = database.revision()
        database.upgrade()
    finally:
        database.dispose()
    if before == head:
        click.echo(f"database schema already at {head}")
    else:
        click.echo(f"database schema upgraded from {before or 'nothing'} to {head}")


@db.command()
@click.pass_context
def current(ctx):
    """Show the schema's revision and whether it is up to date (exit status 1 when not)."""
    database = _database(ctx)
    try:
        rev, head = database.revision()
    finally:
        database.dispose()
    state = "up to date" if rev == head else "needs `simsearch db upgrade`"
    click.echo(f"database schema: {rev or 'none'} (this simsearch: {head}; {state})")
    ctx.exit(0 if rev == head else 1)
