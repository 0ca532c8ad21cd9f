"""Web commands: serve (the API and UI) and worker (RQ ingest jobs)."""

from __future__ import annotations

import errno
import socket

import click

from simsearch.cli.app import cli, context_from, settings_from
from simsearch.errors import InvalidInput
from simsearch.jobs.worker_check import check as check_workers
from simsearch.jobs.worker_loop import run_worker


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--allow-server-paths", type=click.Path(file_okay=False),
              help="Let ingest take a folder on this machine, inside this one [env SIMSEARCH_ALLOW_SERVER_PATHS].")
@click.option("--max-upload-mb", type=click.FloatRange(min=0.001), help="Largest request body [env SIMSEARCH_MAX_UPLOAD_MB; default: 64].")
@click.pass_context
def serve(ctx, host, port, allow_server_paths, max_upload_mb):
    """Run the web app (API at /api, docs at /api/docs) for local use.

    A threaded development server: fine on one machine. For a shared server use gunicorn:
    `gunicorn -c python:simsearch.web.gunicorn_conf -b 0.0.0.0:8000 'simsearch.web.wsgi:app'`.
    An address beyond this machine (0.0.0.0, a LAN address) needs SIMSEARCH_API_KEYS set.
    """
    from simsearch.web import create_app
    from simsearch.web.exposure import require_api_key

    settings = settings_from(ctx, allow_server_paths=allow_server_paths, max_upload_mb=max_upload_mb)
    require_api_key([host], settings.api_keys, server="simsearch serve")  # before anything starts
    # refuses a missing or old schema; waits for a database that is down; the bound address is an allowed Host
    app = create_app({"SETTINGS": settings, "SIMSEARCH_BIND_HOST": host})
    jobs = app.extensions["simsearch_jobs"].kind
    if not settings.api_keys:
        keys = "no API keys (open writes from this machine's clients)"
    else:
        keys = ("API keys required for writes (reads open: SIMSEARCH_PUBLIC_READS)" if settings.public_reads
                else "API keys required for reads and writes")
    if settings.api_keys and settings.public_search:
        per = settings.public_search_per_minute
        keys += f"; search by upload open to everyone ({f'{per} a minute per address' if per else 'no rate limit'})"
    server = _bind(app, host, port)  # a busy port is a one-line error before the banner, not Werkzeug's
    click.echo(f"simsearch on http://{host}:{port}/  (API docs: /api/docs; jobs: {jobs}; {keys})", err=True)
    runner = app.extensions["simsearch_jobs"]
    if hasattr(runner, "recover_once"):  # resume at once, not on the first request
        runner.recover_once()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _bind(app, host: str, port: int):
    """Werkzeug's threaded development server (what ``app.run`` starts) on a socket bound here to
    ``host:port``, or :class:`InvalidInput` naming ``--port``/``--host`` when the address cannot
    be taken (Werkzeug would print two lines of its own and exit)."""
    from werkzeug.serving import get_sockaddr, make_server, select_address_family

    family = select_address_family(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Werkzeug's own server does
    try:
        sock.bind(get_sockaddr(host, port, family))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InvalidInput(f"port {port} on {host} is in use by another program (another simsearch?): "
                               f"stop it or choose another port with --port", field="port") from None
        if exc.errno == errno.EACCES:
            raise InvalidInput(f"port {port} on {host} needs more privileges than this user has: "
                               f"choose a port above 1023 with --port", field="port") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
            raise InvalidInput(f"--host {host}: not an address of this machine ({exc.strerror or exc})",
                               field="host") from None
        raise
    try:
        return make_server(host, port, app, threaded=True, fd=sock.fileno())  # it keeps a duplicate
    finally:
        sock.close()


@cli.command()
@click.option("--queue", "-q", "queues", multiple=True,
              help="Queue(s) to consume [default: simsearch; env SIMSEARCH_QUEUE].")
@click.option("--burst", is_flag=True, help="Quit when the queue is empty.")
@click.option("--simple", is_flag=True,
              help="Run jobs in this process (models stay loaded) instead of a forked process per job.")
@click.option("--name", help="Worker name (default: RQ's).")
@click.option("--check", is_flag=True,
              help="Do not work: exit 0 when a worker of this host is registered with Redis and running (a health check).")
@click.pass_context
def worker(ctx, queues, burst, simple, name, check):
    """Run ingest jobs queued by the web app (needs SIMSEARCH_REDIS_URL).

    Share the database and the data directory (SIMSEARCH_HOME) with the web app: uploaded files
    are staged there. Each job carries the web app's settings; jobs queued by an older version
    without them use this command's.
    """
    settings = settings_from(ctx)
    if not settings.redis_url:
        raise InvalidInput("set SIMSEARCH_REDIS_URL (e.g. redis://127.0.0.1:6379/0) to use a worker", field="redis_url")
    if check:
        click.echo(f"ok: {check_workers(settings.redis_url)}")
        return
    _ping_redis(settings.redis_url)
    context_from(ctx, server=True)  # refuses a missing or old schema before taking jobs
    names = [q for raw in queues for q in raw.split(",") if q] or [q for q in settings.queue.split(",") if q]
    click.echo(f"simsearch worker on {', '.join(names)} ({'burst' if burst else 'waiting for jobs'})", err=True)
    ok = run_worker(settings.redis_url, names, burst=burst, simple=simple, name=name, settings=settings)
    ctx.exit(0 if ok or burst else 1)


def _ping_redis(url: str) -> None:
    """Fail before starting RQ when Redis does not answer: one line (see :mod:`simsearch.cli`),
    not RQ's 70-line traceback."""
    from redis import Redis

    try:
        conn = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    except ValueError as exc:
        raise InvalidInput(f"SIMSEARCH_REDIS_URL is not a Redis URL: {exc}", field="redis_url") from None
    try:
        conn.ping()
    finally:
        conn.close()
