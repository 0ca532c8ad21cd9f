"""WSGI entry point: ``gunicorn -c python:simsearch.web.gunicorn_conf 'simsearch.web.wsgi:app'``
(that config refuses to listen beyond localhost without SIMSEARCH_API_KEYS; see gunicorn_conf).

Settings come from the environment (SIMSEARCH_HOME, SIMSEARCH_DATABASE_URL, SIMSEARCH_REDIS_URL,
SIMSEARCH_API_KEYS, ...). Each gunicorn worker process builds its own app, so models and indexes
load once per worker, on first use. Keep the secret key shared by all workers: it is read from
``<home>/secret_key`` or ``SIMSEARCH_SECRET_KEY``.

Request bodies and responses have deadlines here (:mod:`simsearch.web.deadlines`: a client that
holds back or trickles its upload gets 408 instead of keeping a thread); the headers' deadline is
the worker's (:class:`simsearch.web.gunicorn_conf.Worker`).

The schema is not migrated here (workers would race): run ``simsearch db upgrade`` first. On a
missing or old schema, an unreachable database or a bad setting a worker prints one ``error:``
line and exits with gunicorn's "worker failed to boot" status, which stops gunicorn.
"""

import sys

from simsearch.errors import SimsearchError
from simsearch.web import create_app
from simsearch.web.deadlines import wsgi_middleware

WORKER_BOOT_ERROR = 3  # gunicorn halts instead of restarting the worker forever

try:
    flask_app = create_app()
    _settings = flask_app.extensions["simsearch"].settings
    app = wsgi_middleware(flask_app, body_grace=_settings.request_body_timeout,
                          min_rate_kb=_settings.request_min_rate_kb)
except SimsearchError as exc:
    print(f"error: {exc.message}", file=sys.stderr, flush=True)
    sys.exit(WORKER_BOOT_ERROR)
