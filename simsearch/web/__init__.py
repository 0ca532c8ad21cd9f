"""The web app: a JSON API at ``/api`` and (when installed) the browser UI at ``/``.

``create_app(config)`` opens one :class:`~simsearch.context.AppContext` per app, so models and
FAISS indexes are loaded once per process and shared by all requests (its index manager picks up
a new index generation written by another process without a restart). The views call the
operations in :mod:`simsearch.ops` with it.

Configuration is one :class:`~simsearch.config.Settings` (every ``SIMSEARCH_*`` variable; see the
README's table). ``config`` is either a Settings, or a dict of Flask config keys plus ``SETTINGS``
(a Settings; default: from the environment) and ``SIMSEARCH_<NAME>`` keys that override its fields
(``{"SIMSEARCH_QUEUE": "q2", "SIMSEARCH_API_KEYS": "k1,k2"}``), validated like the environment.
Flask keys derived from the settings unless given: ``MAX_CONTENT_LENGTH`` (``SIMSEARCH_MAX_UPLOAD_MB``;
larger requests get 413) and ``SECRET_KEY`` (``SIMSEARCH_SECRET_KEY``, else a key kept in
``<home>/secret_key``, created on first start, else random per process).
"""

from __future__ import annotations

import logging

from flask import redirect

from simsearch.config import ENV_PREFIX, Settings
from simsearch import __version__

log = logging.getLogger("simsearch.web")


def split_config(config: dict | Settings | None) -> tuple[Settings, dict]:
    """``(settings, flask_config)`` from ``create_app``'s argument."""
    if isinstance(config, Settings):
        return config, {}
    flask_config = dict(config or {})
    base = flask_config.pop("SETTINGS", None)
    over = {}
    for key in [k for k in flask_config if k.startswith(ENV_PREFIX)]:
        name = key if key == "SIMSEARCH_WEIGHTS_DIR" else key[len(ENV_PREFIX):].lower()
        if name in Settings.model_fields or name == "SIMSEARCH_WEIGHTS_DIR":
            value = flask_config.pop(key)
            if value is not None:
                over["weights_path" if name == "SIMSEARCH_WEIGHTS_DIR" else name] = value
    if base is None:
        return Settings.from_env(**over), flask_config
    return (base.replace(**over) if over else base), flask_config


def create_app(config: dict | Settings | None = None):
    """The Flask app (see the module docstring for ``config``)."""
    from apiflask import APIFlask

    from simsearch.context import AppContext
    from simsearch.jobs.runners import make_runner
    from simsearch.web import contract, guards, security
    from simsearch.web.api import bp as api_bp
    from simsearch.web.docs import bp as docs_bp
    from simsearch.web.errors import register_error_handlers
    from simsearch.web.ratelimit import RateLimiter

    settings, overrides = split_config(config)

    # APIFlask: a Flask app that generates the OpenAPI document and request validation from the
    # declared contract (simsearch.web.schemas); its own spec and docs routes are replaced by ours.
    app = APIFlask(__name__, title="simsearch API", version=__version__, spec_path=None, docs_path=None,
                   json_errors=False)
    contract.configure(app)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_content_length,
        MAX_FORM_PARTS=20_000,  # a multipart upload of many images has one part per file
        MAX_FORM_MEMORY_SIZE=1024 * 1024,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        JSON_SORT_KEYS=False,
    )
    app.config.update(overrides)
    app.json.sort_keys = False
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = security.load_secret_key(settings.home, settings.secret_key)

    ctx = AppContext.open(settings, wait_for_database=True)
    app.extensions["simsearch"] = ctx
    app.extensions["simsearch_jobs"] = make_runner(ctx)

    register_error_handlers(app)
    app.before_request(_schema_hook(ctx))
    jobs = app.extensions["simsearch_jobs"]
    if hasattr(jobs, "recover_once"):  # in-process runner: resume jobs of a stopped process
        app.before_request(jobs.recover_once)
    app.before_request(security.check_host)
    guards.install(app)
    app.before_request(_single_query_threads(settings.search_threads))
    app.before_request(security.check_request)
    app.extensions[security.LIMITER_KEY] = RateLimiter(settings.public_search_per_minute)
    if settings.proxy_hops:  # the client's address from the trusted proxies' X-Forwarded-For
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=0, x_host=0, x_port=0, x_prefix=0)
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


def _schema_hook(app_ctx):
    """Until the schema has been checked (the database was down at start), check it first: 503
    ``database_unavailable`` or ``schema_outdated`` instead of errors from a missing table. The
    health endpoint reports it itself."""

    def hook():
        from flask import request

        if not app_ctx.schema_checked and request.endpoint != "api.health":
            app_ctx.ensure_schema()

    return hook


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
