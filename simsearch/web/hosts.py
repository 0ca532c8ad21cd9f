"""The ``Host`` allow-list (DNS rebinding): every request, reads too, must name an allowed host in
its ``Host`` header (400 ``bad_host`` otherwise). See :mod:`simsearch.web.security`'s docstring."""

from __future__ import annotations

import ipaddress

from flask import current_app, request

from simsearch.errors import HostNotAllowed

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")
BIND_HOST_KEY = "SIMSEARCH_BIND_HOST"  # app.config: the address `simsearch serve` listens on


def host_name(host: str) -> str:
    """The name part of a ``Host`` header or an allow-list entry, lower-case, without the port or
    a trailing dot: ``Example.COM:5000`` -> ``example.com``, ``[::1]:5000`` -> ``::1``."""
    h = (host or "").strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[1:end] if end > 0 else ""
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(host: str, allowed, bind: str | None = None) -> bool:
    """Whether ``host`` (a Host header) matches the allow-list ``allowed`` plus the defaults."""
    name = host_name(host)
    if not name:
        return False
    if name in LOCAL_HOSTS:
        return True
    if bind is not None:
        if host_name(bind) == name:
            return True
        if host_name(bind) in WILDCARD_BINDS and _is_ip(name):
            return True
    for entry in allowed:
        entry = entry.strip().lower()
        if entry == "*":
            return True
        if entry.startswith("."):
            base = entry[1:].rstrip(".")
            if name == base or name.endswith("." + base):
                return True
        elif host_name(entry) == name:
            return True
    return False


def check_host() -> None:
    """``before_request`` hook: 400 unless the ``Host`` header names an allowed host."""
    allowed = current_app.extensions["simsearch"].settings.allowed_hosts
    host = request.host
    if not host_allowed(host, allowed, current_app.config.get(BIND_HOST_KEY)):
        shown = host_name(host)[:100] or host[:100]
        raise HostNotAllowed(f"host {shown!r} is not served here: add it to SIMSEARCH_ALLOWED_HOSTS "
                             "(comma-separated) to allow it", field="host")
