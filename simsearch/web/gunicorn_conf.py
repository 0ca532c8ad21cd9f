"""gunicorn settings for simsearch:

    gunicorn -c python:simsearch.web.gunicorn_conf -b 0.0.0.0:8000 'simsearch.web.wsgi:app'

Before gunicorn listens, :func:`on_starting` refuses an address beyond loopback when no API key is
set (``SIMSEARCH_API_KEYS``; see :mod:`simsearch.web.exposure`): one ``error:`` line, exit status
2. Command-line options override the defaults below. gunicorn started without this file does not
make the check.

Slow or hostile clients (docs/operations.md): threaded workers (``gthread``), so a connection
holds one thread rather than a whole worker process, and deadlines, so it holds that thread only
so long: the request headers within ``SIMSEARCH_REQUEST_HEADER_TIMEOUT`` seconds (here, in
:class:`Worker`), the body and the response at ``SIMSEARCH_REQUEST_MIN_RATE_KB`` after a grace
(:mod:`simsearch.web.deadlines`, wrapped around the app in :mod:`simsearch.web.wsgi`). gunicorn
itself already sets aside connections that send nothing and closes idle kept-alive ones.
"""

from __future__ import annotations

import sys

from gunicorn.workers.gthread import ThreadWorker

from simsearch.config import Settings
from simsearch.errors import SimsearchError
from simsearch.web.deadlines import WATCHDOG
from simsearch.web.exposure import require_api_key

workers = 2
worker_class = "simsearch.web.gunicorn_conf.Worker"
# per worker: how many requests it serves at once (searches, reads) while others trickle in
threads = 16
# gthread: a worker whose main loop stops for this long is restarted (a request may take longer:
# the first search of a large collection opens its index, a first request may build a model)
timeout = 120
keepalive = 5


class Worker(ThreadWorker):
    """gunicorn's threaded worker with a deadline on each request's headers."""

    _header_timeout: float | None = None

    def handle(self, conn):  # noqa: ANN001 - gunicorn's TConn
        if self._header_timeout is None:
            type(self)._header_timeout = Settings.from_env().request_header_timeout
        WATCHDOG.watch(conn.sock, self._header_timeout)
        try:
            return super().handle(conn)
        finally:
            WATCHDOG.release(conn.sock)


def on_starting(server) -> None:
    try:
        require_api_key(server.cfg.bind, Settings.from_env().api_keys, server="gunicorn")
    except SimsearchError as exc:
        print(f"error: {exc.message}", file=sys.stderr, flush=True)
        if getattr(server, "pidfile", None) is not None:
            server.pidfile.unlink()
        sys.exit(2)
