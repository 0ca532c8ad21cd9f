"""No server beyond this machine without an API key.

Without ``SIMSEARCH_API_KEYS`` every non-browser client may write (create, ingest, delete): fine
on 127.0.0.1, not on an address other machines reach. ``simsearch serve`` and gunicorn (run with
``-c python:simsearch.web.gunicorn_conf``) call :func:`require_api_key` with the addresses they
are about to listen on: an address beyond loopback with no key set stops them with one line
before they listen.

We refuse rather than generate a key and print it: a generated key would change at every restart
(or be one more secret to keep on the data volume), gunicorn's processes would each need the same
one, and whatever is printed stays in every log collector.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from simsearch.errors import InvalidInput

KEY_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def bind_host(address: str) -> str:
    """The host part of an address to listen on: ``simsearch serve --host`` (``0.0.0.0``, ``::1``)
    or a gunicorn ``--bind`` (``127.0.0.1:8000``, ``[::1]:8000``, ``:8000``, ``unix:/run/s.sock``,
    ``fd://3``; the last two are returned as given)."""
    a = (address or "").strip()
    if a.startswith(("unix:", "fd://")):
        return a
    if a.startswith("["):
        end = a.find("]")
        return a[1:end] if end > 0 else a
    if a.count(":") == 1:  # host:port (a bare IPv6 address has several colons)
        return a.split(":", 1)[0]
    return a


def is_loopback(address: str) -> bool:
    """Whether only this machine can reach ``address``: a loopback IP (127.0.0.0/8, ::1),
    ``localhost``, or a Unix socket (whoever may open the file: the proxy in front decides).
    Anything else (``0.0.0.0``, ``::``, an empty host, another name, an inherited ``fd://``) is not."""
    host = bind_host(address)
    if host.startswith("unix:"):
        return True
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_api_key(addresses: Iterable[str], api_keys: Iterable[str], *, server: str = "simsearch") -> None:
    """Raise :class:`InvalidInput` (one line) when an address is beyond loopback and no API key is set."""
    if any(k for k in api_keys):
        return
    exposed = [a for a in addresses if not is_loopback(a)]
    if exposed:
        raise InvalidInput(
            f"{server} refuses to listen on {', '.join(exposed)} (reachable beyond this machine) without an API "
            f"key: set SIMSEARCH_API_KEYS (comma-separated; make one with {KEY_HINT}), or listen on 127.0.0.1",
            field="api_keys")
