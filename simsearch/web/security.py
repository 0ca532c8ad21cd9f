"""Who may read and write: API keys for programs, a session plus a CSRF token for browsers.

Without ``SIMSEARCH_API_KEYS`` reads are open. With keys set the server is private by default:
a read (GET/HEAD) needs a valid key (the headers below) or a browser session signed in with one
at ``/login``, except

- what anyone may see to use the server at all: ``/api/health``, the API's documentation
  (``/api/docs`` and its files, ``/api/openapi.json``), ``/login`` and the UI's static files (:data:`OPEN_READS`);
- everything, when ``SIMSEARCH_PUBLIC_READS`` is set (reads as open as without keys);
- with ``SIMSEARCH_PUBLIC_SEARCH``, what a visitor needs to search and see the results: the UI's
  search page, images similar to a result (rate-limited like searches by upload) and thumbnails
  (:data:`PUBLIC_SEARCH_READS`). Not the originals, the vectors, the listings or the analyses.

A browser asking for a page without a session is sent to ``/login?next=<page>``; any other read
without a key is 401 ``unauthorized``.

A write (POST/PUT/PATCH/DELETE) is accepted when:

- it carries an API key (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``) that is one of
  ``settings.api_keys``. Such headers cannot be sent cross-site without a CORS preflight (which
  this app never grants), so no CSRF token is needed;
- or it comes from a browser (it has an ``Origin`` or ``Sec-Fetch-Site`` header, or our session
  cookie) and carries the session's CSRF token in an ``X-CSRF-Token`` header or a ``csrf_token``
  form field, and -- when API keys are configured -- the session has logged in with a key at
  ``/login``;
- or, when no API keys are configured, it comes from a non-browser client (curl, scripts);
- or it is a search by upload (:data:`PUBLIC_ENDPOINTS`) and ``SIMSEARCH_PUBLIC_SEARCH`` is set:
  a public server (a museum's visual search) lets visitors without a key search while every
  change still needs one. Browsers still need the page's CSRF token. These anonymous searches are
  rate-limited per client address (``SIMSEARCH_PUBLIC_SEARCH_PER_MINUTE``; 429 with
  ``Retry-After``, see :mod:`simsearch.web.ratelimit`); requests with a key or a logged-in
  session are not.

A browser request without a matching token is refused (403 ``csrf_failed``) even when no keys are
configured: otherwise any web page could make the visitor's browser post forms to a local server.
A browser write whose ``Origin`` is not this server is refused (403) before the token is looked at.
The session stores a digest of the key it logged in with, never the key, so removing a key from
``SIMSEARCH_API_KEYS`` logs its sessions out.

Every request (reads too) must name an allowed host in its ``Host`` header (400 ``bad_host``
otherwise): localhost, 127.0.0.1, [::1], the address ``simsearch serve --host`` binds, and the
names in ``SIMSEARCH_ALLOWED_HOSTS``. Without this check a page on a domain that an attacker
re-points at 127.0.0.1 (DNS rebinding) is same-origin with this server: it could read the CSRF
token and write. An IP address cannot be rebound, so when the server listens on every interface
(``--host 0.0.0.0`` or ``::``) any IP-literal host is accepted as well.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, render_template_string, request, session, url_for

from simsearch.errors import CSRFError, InvalidInput, Unauthorized
from simsearch.paths import secret_key_file
# The Host allow-list (DNS rebinding) lives in simsearch.web.hosts; the app installs check_host from here.
from simsearch.web.hosts import BIND_HOST_KEY, HostNotAllowed, check_host, host_allowed, host_name  # noqa: F401

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
# Endpoints that a browser may post to before logging in (CSRF is still checked).
LOGIN_ENDPOINTS = {"auth.login", "auth.logout"}
# Writes in the HTTP sense that change nothing: anonymous clients may make them on a public server
# (SIMSEARCH_PUBLIC_SEARCH), rate-limited.
PUBLIC_ENDPOINTS = {"api.search", "api.search_examples"}
# Reads open to anyone on a server with keys: what is needed to reach the server and sign in.
OPEN_READS = {"api.health", "docs.openapi_json", "docs.docs", "docs.assets", "auth.login", "ui.static", "index"}
# Reads open to anyone on a public server (SIMSEARCH_PUBLIC_SEARCH): the search page and its results.
PUBLIC_SEARCH_READS = {"ui.search", "api.thumbnail"}
# ...of which these are searches, rate-limited like PUBLIC_ENDPOINTS.
PUBLIC_SEARCH_LIMITED = {"api.similar"}
LIMITER_KEY = "simsearch_public_limiter"  # app.extensions


# ---- secret key --------------------------------------------------------------------------

def load_secret_key(home: Path, configured: str | None = None) -> str:
    """``SIMSEARCH_SECRET_KEY``, else ``<home>/secret_key`` (created once, mode 600), else random.

    A file shared by all processes keeps sessions valid across gunicorn workers and restarts; a
    per-process random key is the fallback when the data directory is read-only.
    """
    if configured:
        return configured
    path = secret_key_file(home)
    try:
        return path.read_text().strip() or _create_secret(path)
    except FileNotFoundError:
        try:
            return _create_secret(path)
        except OSError:
            return secrets.token_hex(32)
    except OSError:
        return secrets.token_hex(32)


def _create_secret(path: Path) -> str:
    key = secrets.token_hex(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


# ---- API keys and sessions ---------------------------------------------------------------

def configured_keys() -> tuple[str, ...]:
    return tuple(current_app.extensions["simsearch"].settings.api_keys)


def auth_required() -> bool:
    """True when writes need an API key (``SIMSEARCH_API_KEYS`` is set)."""
    return bool(configured_keys())


def _digest(key: str) -> str:
    return hashlib.sha256(("simsearch-api-key:" + key).encode()).hexdigest()


def key_is_valid(key: str | None) -> bool:
    if not key:
        return False
    ok = False
    for k in configured_keys():  # compare against all, in constant time each
        ok |= hmac.compare_digest(key.encode(), k.encode())
    return ok


def presented_key() -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.headers.get("X-API-Key", "").strip() or None


def is_logged_in() -> bool:
    digest = session.get("auth")
    return bool(digest) and any(hmac.compare_digest(digest, _digest(k)) for k in configured_keys())


def login(key: str) -> bool:
    """Log the browser session in with an API key; False (and no change) if the key is wrong."""
    if not key_is_valid(key):
        return False
    session["auth"] = _digest(key)
    session[CSRF_FIELD] = secrets.token_urlsafe(32)  # new token after a privilege change
    return True


def logout() -> None:
    session.pop("auth", None)
    session[CSRF_FIELD] = secrets.token_urlsafe(32)


def csrf_token() -> str:
    """The session's CSRF token (made on first use). Registered as a Jinja global."""
    token = session.get(CSRF_FIELD)
    if not token:
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def _sent_csrf_token() -> str | None:
    sent = request.headers.get(CSRF_HEADER)
    if sent:
        return sent
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return request.form.get(CSRF_FIELD)
    return None


def csrf_ok() -> bool:
    expected = session.get(CSRF_FIELD)
    sent = _sent_csrf_token()
    return bool(expected and sent) and hmac.compare_digest(str(sent), str(expected))


def is_browser_request() -> bool:
    cookie = current_app.config.get("SESSION_COOKIE_NAME", "session")
    return bool(request.headers.get("Origin") or request.headers.get("Sec-Fetch-Site") or request.cookies.get(cookie))


def _same_origin() -> bool:
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return origin is None
    # Compare host and port only: behind a TLS-terminating proxy the scheme seen here differs.
    return urlsplit(origin).netloc.lower() == request.host.lower()


def client_id() -> str:
    """Who is asking, for the caps on each client's jobs: ``key:<digest>`` for a valid API key
    (sent, or the key a browser session signed in with), else ``addr:<address>``."""
    key = presented_key()
    if key is not None and key_is_valid(key):
        return "key:" + _digest(key)[:24]
    if is_logged_in():
        return "key:" + str(session.get("auth"))[:24]
    return "addr:" + (request.remote_addr or "unknown")[:90]


def public_reads() -> bool:
    return bool(current_app.extensions["simsearch"].settings.public_reads)


def check_read():
    """Reads on a server with keys: see the module docstring. Returns the redirect to the sign-in
    page for a browser asking for a page, or None; raises 401 otherwise."""
    endpoint = request.endpoint
    if endpoint in (None, "static") or endpoint in OPEN_READS or not auth_required() or public_reads():
        return None
    key = presented_key()
    if key is not None:
        if not key_is_valid(key):
            raise Unauthorized("invalid API key", field="api_key")
        return None
    if is_logged_in():
        return None
    if public_search() and endpoint in PUBLIC_SEARCH_READS:
        return None
    if public_search() and endpoint in PUBLIC_SEARCH_LIMITED:
        current_app.extensions[LIMITER_KEY].take(request.remote_addr or "unknown", "searches")
        return None
    if not request.path.startswith("/api/") and request.method == "GET":
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    raise Unauthorized("this server needs an API key to read: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY' "
                       "(in a browser, log in at /login)", field="api_key")


def check_request():
    """``before_request`` hook: refuses reads and writes that are not allowed (see the module docstring)."""
    if request.method in SAFE_METHODS:
        return check_read()
    if request.endpoint in (None, "static"):
        return None
    key = presented_key()
    if key is not None:
        if auth_required() and not key_is_valid(key):
            raise Unauthorized("invalid API key", field="api_key")
        return
    if is_browser_request():
        if not _same_origin():
            raise CSRFError("cross-origin write refused", details={"origin": request.headers.get("Origin")})
        if not csrf_ok():
            raise CSRFError(f"missing or wrong CSRF token: send the page's token in the {CSRF_HEADER} header "
                            f"or a {CSRF_FIELD} form field (reload the page if the session expired)")
        if auth_required() and request.endpoint not in LOGIN_ENDPOINTS and not is_logged_in():
            if public_request():
                return
            raise Unauthorized("log in with an API key first (at /login)", field="api_key")
        return
    if auth_required():
        if public_request():
            return
        raise Unauthorized("this server needs an API key for writes: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                           field="api_key")


def public_search() -> bool:
    """Whether anonymous clients may search by upload (``SIMSEARCH_PUBLIC_SEARCH``). Registered as a Jinja global."""
    return bool(current_app.extensions["simsearch"].settings.public_search)


def public_request() -> bool:
    """An anonymous request to a :data:`PUBLIC_ENDPOINTS` endpoint that a public server accepts:
    True after taking one of the client address's tokens (429 when there is none)."""
    if request.endpoint not in PUBLIC_ENDPOINTS or not public_search():
        return False
    current_app.extensions[LIMITER_KEY].take(request.remote_addr or "unknown", "searches")
    return True


def jinja_globals() -> dict:
    return {"csrf_token": csrf_token, "auth_required": auth_required, "is_logged_in": is_logged_in,
            "public_search": public_search, "public_reads": public_reads}


# ---- /login and /logout -------------------------------------------------------------------

auth_bp = Blueprint("auth", __name__)

_LOGIN_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Log in - simsearch</title>
<style>body{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}
input{font:inherit;padding:.4rem;width:100%;box-sizing:border-box;margin:.4rem 0}.err{color:#b00}</style></head>
<body><h1>Log in</h1>{% if error %}<p class="err">{{ error }}</p>{% endif %}
{% if not auth_required() %}<p>This server does not use API keys: no login needed.</p>{% endif %}
<form method="post" action="{{ url_for('auth.login') }}">
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<label>API key <input type="password" name="key" autocomplete="current-password" required></label>
<input type="hidden" name="next" value="{{ next }}">
<button type="submit">Log in</button></form></body></html>"""


def safe_next(target: str | None) -> str:
    """Only local paths (no scheme, no host, no '//' or '\\\\' tricks) are followed after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


def handle_login_post():
    """Shared logic of POST /login: form field or JSON ``key``. Returns (ok, error message)."""
    data = request.get_json(silent=True) if request.is_json else request.form
    key = (data or {}).get("key") if isinstance(data, dict) or hasattr(data, "get") else None
    if not isinstance(key, str) or not key.strip():
        raise InvalidInput("give the API key in the 'key' field", field="key")
    if not login(key.strip()):
        return False, "wrong API key"
    return True, None


def _login_page(error: str | None, nxt: str, status: int = 200):
    """The browser UI's sign-in page when the UI is installed, else a minimal one."""
    if "ui" in current_app.blueprints:
        return render_template("ui/login.html", page="login", error=error, next=nxt), status
    return render_template_string(_LOGIN_HTML, error=error, next=nxt), status


@auth_bp.route("/login", methods=["GET", "POST"], endpoint="login")
def login_view():
    """Log the browser session in with an API key (only needed when SIMSEARCH_API_KEYS is set)."""
    nxt = safe_next(request.values.get("next"))
    if request.method == "GET":
        return _login_page(None, nxt)
    ok, error = handle_login_post()
    if request.is_json:
        if not ok:
            raise Unauthorized(error, field="key")
        return {"logged_in": True}
    if not ok:
        return _login_page(error, nxt, 401)
    return redirect(nxt)


@auth_bp.route("/logout", methods=["POST"], endpoint="logout")
def logout_view():
    logout()
    if request.is_json:
        return {"logged_in": False}
    return redirect(url_for("ui.index") if "ui" in current_app.blueprints else url_for("auth.login"))
