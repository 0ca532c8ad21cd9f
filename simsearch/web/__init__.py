"""The web app: a JSON API at ``/api`` and (when installed) the browser UI at ``/``.

``create_app(config)`` opens one :class:`~simsearch.context.AppContext` per app, so models and
FAISS indexes are loaded once per process and shared by all requests (its index manager picks up
a new index generation written by another process without a restart). The views call the
operations in :mod:`simsearch.ops` with it.

Configuration: :class:`~simsearch.config.Settings` from the environment (``Settings.from_env``),
overridden by ``config``: either a ``Settings`` or a dict of Flask config keys plus
``SETTINGS`` (a Settings), ``SIMSEARCH_HOME``, ``SIMSEARCH_DATABASE_URL``, ``SIMSEARCH_REDIS_URL``,
``SIMSEARCH_API_KEYS`` (list or comma-separated), ``SIMSEARCH_WEIGHTS_DIR``, ``SIMSEARCH_MAX_PIXELS``.
Web-only keys (also read from the environment):

- ``MAX_CONTENT_LENGTH``: largest request body in bytes (default 64 MB; env
  ``SIMSEARCH_MAX_UPLOAD_MB``); larger requests get 413.
- ``SIMSEARCH_ALLOW_SERVER_PATHS``: a folder; when set, ``POST /api/collections/<name>/ingest``
  accepts ``{"server_path": ...}`` for folders inside it (administrator opt-in; off by default).
- ``SECRET_KEY``: signs the session cookie. Default: env ``SIMSEARCH_SECRET_KEY``, else a key kept in
  ``<home>/secret_key`` (created on first start), else random per process.
- ``SIMSEARCH_JOBS``: ``thread`` (in-process pool, the default) or ``rq`` (the default when
  ``SIMSEARCH_REDIS_URL`` is set); ``SIMSEARCH_QUEUE`` (RQ queue name, default ``simsearch``);
  ``SIMSEARCH_JOB_THREADS`` (default 1).
- ``SIMSEARCH_SEARCH_THREADS``: FAISS threads per request (default 1: lowest latency per query).
- ``SIMSEARCH_ZIP_MAX_ENTRIES``, ``SIMSEARCH_ZIP_MAX_BYTES``, ``SIMSEARCH_ZIP_MAX_ENTRY_BYTES``,
  ``SIMSEARCH_ZIP_MAX_RATIO``: zip bomb limits for uploaded archives.
"""

from __future__ import annotations

import logging
import os

from flask import Flask, redirect

from simsearch.config import Settings

log = logging.getLogger("simsearch.web")

DEFAULT_MAX_CONTENT_LENGTH = 64 * 1024 * 1024

_SETTINGS_KEYS = {
    "SIMSEARCH_HOME": "home",
    "SIMSEARCH_DATABASE_URL": "database_url",
    "SIMSEARCH_REDIS_URL": "redis_url",
    "SIMSEARCH_API_KEYS": "api_keys",
    "SIMSEARCH_WEIGHTS_DIR": "weights_path",
    "SIMSEARCH_MAX_PIXELS": "max_pixels",
}
_ENV_CONFIG = ("SIMSEARCH_ALLOW_SERVER_PATHS", "SIMSEARCH_JOBS", "SIMSEARCH_QUEUE", "SIMSEARCH_JOB_THREADS",
               "SIMSEARCH_ZIP_MAX_ENTRIES", "SIMSEARCH_ZIP_MAX_BYTES", "SIMSEARCH_ZIP_MAX_ENTRY_BYTES",
               "SIMSEARCH_ZIP_MAX_RATIO")


def settings_from_config(config: dict) -> Settings:
    from pathlib import Path

    over = {}
    for key, attr in _SETTINGS_KEYS.items():
        if config.get(key) is None:
            continue
        value = config[key]
        if attr == "api_keys":
            value = tuple(k.strip() for k in (value.split(",") if isinstance(value, str) else value) if k and k.strip())
        elif attr == "weights_path":
            value = Path(value).expanduser().resolve()
        elif attr == "max_pixels":
            value = int(value)
        over[attr] = value
    home = over.pop("home", None)
    url = over.pop("database_url", None)
    return Settings.from_env(home=home, database_url=url, **over)


def create_app(config: dict | Settings | None = None):
    """The Flask app (see the module docstring for ``config``)."""
    from simsearch.context import AppContext
    from simsearch.jobs.runners import make_runner
    from simsearch.web import guards, security
    from simsearch.web.api import bp as api_bp
    from simsearch.web.errors import register_error_handlers
    from simsearch.web.openapi import bp as docs_bp

    if isinstance(config, Settings):
        settings, overrides = config, {}
    else:
        overrides = dict(config or {})
        settings = overrides.pop("SETTINGS", None) or settings_from_config(overrides)

    app = Flask(__name__)
    max_mb = os.environ.get("SIMSEARCH_MAX_UPLOAD_MB")
    app.config.update(
        MAX_CONTENT_LENGTH=int(float(max_mb) * 1024 * 1024) if max_mb else DEFAULT_MAX_CONTENT_LENGTH,
        MAX_FORM_PARTS=20_000,  # a multipart upload of many images has one part per file
        MAX_FORM_MEMORY_SIZE=1024 * 1024,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        JSON_SORT_KEYS=False,
    )
    for key in _ENV_CONFIG:
        if os.environ.get(key):
            app.config[key] = os.environ[key]
    app.config.update({k: v for k, v in overrides.items() if k not in _SETTINGS_KEYS})
    app.json.sort_keys = False
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = security.load_secret_key(settings.home)

    ctx = AppContext.open(settings)
    app.extensions["simsearch"] = ctx
    app.extensions["simsearch_jobs"] = make_runner(ctx, app.config)

    register_error_handlers(app)
    jobs = app.extensions["simsearch_jobs"]
    if hasattr(jobs, "recover_once"):  # in-process runner: resume jobs of a stopped process
        app.before_request(jobs.recover_once)
    app.before_request(security.check_host)
    guards.install(app)
    app.before_request(_single_query_threads(int(app.config.get("SIMSEARCH_SEARCH_THREADS", 1))))
    app.before_request(security.check_request)
    app.jinja_env.globals.update(security.jinja_globals())
    app.register_blueprint(api_bp, url_prefix="/api")
    app.register_blueprint(docs_bp, url_prefix="/api")

    ui = _import_ui()
    if ui is not None:
        app.register_blueprint(ui)
    app.register_blueprint(security.auth_bp)  # /login and /logout (the UI's page when installed)
    if "/" not in {r.rule for r in app.url_map.iter_rules()}:
        app.add_url_rule("/", "index", lambda: redirect("/api/docs"))
    return app


def _single_query_threads(n: int):
    """A hook limiting FAISS's OpenMP threads *for the request thread* (the setting is per thread,
    so background ingest and index builds keep every core). One query gains nothing from several
    threads, and on a busy machine OpenMP's spin-waiting made a 2,000-vector search take 15 ms
    instead of 2 ms."""

    def hook():
        import faiss

        if faiss.omp_get_max_threads() != n:
            faiss.omp_set_num_threads(n)

    return hook


def _import_ui():
    try:
        from simsearch.web.ui import bp
    except ModuleNotFoundError as exc:
        if exc.name in ("simsearch.web.ui",):
            return None
        raise
    return bp


def shutdown(app, wait: bool = True) -> None:
    """Stop the app's background threads and close its database connections (tests, tools)."""
    app.extensions["simsearch_jobs"].shutdown(wait=wait)
    app.extensions["simsearch"].indexes.shutdown(wait=wait)
    app.extensions["simsearch"].close()
