"""WSGI entry point: ``gunicorn -w 2 'simsearch.web.wsgi:app'``.

Settings come from the environment (SIMSEARCH_HOME, SIMSEARCH_DATABASE_URL, SIMSEARCH_REDIS_URL,
SIMSEARCH_API_KEYS, ...). Each gunicorn worker process builds its own app, so models and indexes
load once per worker, on first use. Keep the secret key shared by all workers: it is read from
``<home>/secret_key`` or ``SIMSEARCH_SECRET_KEY``.
"""

from simsearch.web import create_app

app = create_app()
