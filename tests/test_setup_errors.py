"""Set-up mistakes are one line naming the cause, never a traceback (issue #21, item 8): a database
simsearch has no driver for, a PostgreSQL database or role that does not exist, a refused
password, a port another program holds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import psycopg
import pytest
from click.testing import CliRunner

from simsearch.cli import cli
from simsearch.errors import DatabaseRefused, DatabaseUnavailable
from simsearch.store.db import unavailable

PG_HOST = "127.0.0.1:5432"


def _cli(tmp_path, url: str, *args: str):
    env = {"SIMSEARCH_HOME": str(tmp_path / "home"), "SIMSEARCH_DATABASE_URL": url}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def _one_line_error(result) -> str:
    out = result.output.strip()
    assert result.exit_code != 0, out
    assert "Traceback" not in out and len(out.splitlines()) == 1, out
    assert out.startswith("error: "), out
    return out


@pytest.mark.parametrize("url, named", [("mysql://me@localhost/photos", "mysql is not supported"),
                                        ("postgresql+psycopg2://me@localhost/photos", "psycopg2 driver"),
                                        ("mssql+pyodbc://me@dsn", "mssql is not supported")])
def test_a_database_without_a_driver_names_what_works(tmp_path, url, named):
    out = _one_line_error(_cli(tmp_path, url, "collections"))
    assert named in out and "postgresql://" in out and "sqlite:///" in out, out
    assert "MySQLdb" not in out and "No module" not in out


@pytest.mark.postgres
def test_a_missing_database_or_role_says_so_and_how_to_fix_it(tmp_path):
    missing = f"nosuch_{uuid.uuid4().hex[:8]}"
    out = _one_line_error(_cli(tmp_path, f"postgresql://{PG_HOST}/{missing}", "collections"))
    assert f"the database '{missing}' does not exist" in out and f"createdb {missing}" in out, out
    assert "try again" not in out  # waiting does not create a database

    out = _one_line_error(_cli(tmp_path, f"postgresql://{missing}@{PG_HOST}/test", "collections"))
    assert f"role (user) '{missing}' does not exist" in out and f"createuser {missing}" in out, out


def test_a_refused_password_is_named_not_retried():
    exc = psycopg.OperationalError('connection failed: connection to server at "10.0.0.5", port 5432 failed: '
                                   'FATAL:  password authentication failed for user "curator"')
    err = unavailable(exc)
    assert isinstance(err, DatabaseRefused) and isinstance(err, DatabaseUnavailable)
    assert "authentication failed" in err.message and "password" in err.message
    outage = unavailable(psycopg.OperationalError("connection refused"))
    assert type(outage) is DatabaseUnavailable and "try again" in outage.message


@pytest.mark.postgres
def test_serve_does_not_wait_for_a_database_that_does_not_exist(tmp_path):
    """A server waits for a database that is down (it may be starting), but not for one that is
    not there: the banner never prints and the command ends with the reason."""
    missing = f"nosuch_{uuid.uuid4().hex[:8]}"
    result = _cli(tmp_path, f"postgresql://{PG_HOST}/{missing}", "serve", "--port", str(_free_port()))
    out = _one_line_error(result)
    assert "does not exist" in out and "simsearch on http" not in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_on_a_busy_port_is_one_line_before_the_banner(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    env = dict(os.environ, SIMSEARCH_HOME=str(tmp_path / "home"),
               SIMSEARCH_DATABASE_URL=f"sqlite:///{tmp_path / 'home' / 'db.sqlite'}")
    try:
        subprocess.run([sys.executable, "-m", "simsearch", "db", "upgrade"], env=env, check=True,
                       capture_output=True, timeout=300)
        # a subprocess, so a regression (the server starting anyway) ends at the timeout, not never
        done = subprocess.run([sys.executable, "-m", "simsearch", "serve", "--port", str(port)], env=env,
                              capture_output=True, text=True, timeout=300)
    finally:
        holder.close()
    err = done.stderr.strip()
    assert done.returncode == 2, err
    assert err == (f"error: port {port} on 127.0.0.1 is in use by another program (another simsearch?): "
                   "stop it or choose another port with --port"), err
    assert "simsearch on http" not in done.stdout + done.stderr
