"""gunicorn settings for simsearch:

    gunicorn -c python:simsearch.web.gunicorn_conf -b 0.0.0.0:8000 'simsearch.web.wsgi:app'

Before gunicorn listens, :func:`on_starting` refuses an address beyond loopback when no API key is
set (``SIMSEARCH_API_KEYS``; see :mod:`simsearch.web.exposure`): one ``error:`` line, exit status
2. Command-line options override the defaults below. gunicorn started without this file does not
make the check.
"""

from __future__ import annotations

import sys

workers = 2
# the first search of a large collection opens its index; a first request may build a model
timeout = 300


def on_starting(server) -> None:
    from simsearch.config import Settings
    from simsearch.errors import SimsearchError
    from simsearch.web.exposure import require_api_key

    try:
        require_api_key(server.cfg.bind, Settings.from_env().api_keys, server="gunicorn")
    except SimsearchError as exc:
        print(f"error: {exc.message}", file=sys.stderr, flush=True)
        if getattr(server, "pidfile", None) is not None:
            server.pidfile.unlink()
        sys.exit(2)
