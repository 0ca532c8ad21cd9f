"""Deadlines for slow clients under gunicorn (docs/operations.md, "Slow clients").

gunicorn's threaded worker hands a connection to a thread, which then reads the request headers
and (inside the app) the body from a blocking socket: a client that sends its headers and then
holds back the body, or trickles a byte now and then, keeps that thread forever. Here one
watchdog thread per worker process holds a deadline for each connection a thread is reading from:

* headers: they must all have arrived ``SIMSEARCH_REQUEST_HEADER_TIMEOUT`` seconds (10) after the
  thread took the connection (:class:`simsearch.web.gunicorn_conf.Worker`);
* body: after ``SIMSEARCH_REQUEST_BODY_TIMEOUT`` seconds (20) of grace it must keep arriving at
  ``SIMSEARCH_REQUEST_MIN_RATE_KB`` KB/s (8) on average since it began (:func:`wsgi_middleware`);
* response: a client that reads it no faster gets the same bound.

Past its deadline the connection's socket is shut down (reading only, while the app can still
answer: the request gets 408 ``request_timeout``; both ways for headers and responses), which wakes
the blocked thread at once. Nothing here imports gunicorn; under another server (``simsearch
serve``: werkzeug) the middleware does nothing, as there is no ``gunicorn.socket``.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Deadline:
    sock: socket.socket
    start: float
    grace: float  # seconds before any rate is required
    min_rate: float = 0.0  # bytes per second on average since start, after the grace (0: none)
    expected: int | None = None  # bytes the phase moves, when known: then the deadline is fixed
    how: int = socket.SHUT_RDWR
    moved: int = 0  # bytes moved so far (updated by the reader)
    fired: bool = field(default=False)

    def overdue(self, now: float) -> bool:
        elapsed = now - self.start
        if elapsed <= self.grace:
            return False
        if self.min_rate <= 0:
            return True
        if self.expected is not None:  # a file sent by the server: its bytes are not counted
            return elapsed > self.grace + self.expected / self.min_rate
        return self.moved < (elapsed - self.grace) * self.min_rate


class Watchdog:
    """One thread that shuts down the sockets whose :class:`Deadline` passed."""

    TICK = 0.25  # seconds between checks: how late past its deadline a connection is cut, at most

    def __init__(self):
        self._lock = threading.Lock()
        self._watched: dict[int, Deadline] = {}
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, grace: float, *, min_rate: float = 0.0, expected: int | None = None,
              how: int = socket.SHUT_RDWR) -> Deadline:
        """Watch ``sock`` (replacing its earlier deadline)."""
        d = Deadline(sock, time.monotonic(), grace, min_rate, expected, how=how)
        with self._lock:
            self._watched[id(sock)] = d
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="simsearch-slow-clients", daemon=True)
                self._thread.start()
        return d

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            self._watched.pop(id(sock), None)

    def watching(self) -> int:
        with self._lock:
            return len(self._watched)

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK)
            now = time.monotonic()
            with self._lock:
                due = [(k, d) for k, d in self._watched.items() if d.overdue(now)]
                for k, _ in due:
                    del self._watched[k]
            for _, d in due:
                d.fired = True
                try:
                    d.sock.shutdown(d.how)
                except OSError:  # already closed
                    pass


WATCHDOG = Watchdog()


def _too_late():
    from werkzeug.exceptions import RequestTimeout

    return RequestTimeout("the request body did not arrive in time (held back, or slower than the server accepts)")


class TimedInput:
    """``wsgi.input`` counting what it reads for the watchdog; a body cut short by its deadline
    raises werkzeug's 408 instead of looking like a client that went away."""

    def __init__(self, stream, deadline: Deadline, length: int | None):
        self._stream = stream
        self._deadline = deadline
        self._left = length

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except Exception:
            if self._deadline.fired:  # the socket was shut down under the reader
                raise _too_late() from None
            raise

    def _got(self, data: bytes, asked: int | None = None) -> bytes:
        self._deadline.moved += len(data)
        if self._left is not None:
            self._left -= len(data)
        if self._deadline.fired and (not data or (asked is not None and asked > 0 and len(data) < asked)):
            raise _too_late()
        if self._left is not None and self._left <= 0 or (not data and asked != 0):
            WATCHDOG.release(self._deadline.sock)  # all of it is here
        return data

    def read(self, size: int | None = -1) -> bytes:
        want = None if size is None or size < 0 else size
        if want is None and self._left is not None:
            want = self._left
        return self._got(self._call(self._stream.read, size), want)

    def readline(self, size: int | None = -1) -> bytes:
        return self._got(self._call(self._stream.readline, size))

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines = self._call(self._stream.readlines, hint)
        self._got(b"".join(lines))
        return lines

    def __iter__(self):
        while line := self.readline():
            yield line


def wsgi_middleware(app, *, body_grace: float, min_rate_kb: float):
    """Wrap a WSGI app so that, under gunicorn, its request body and its response have deadlines."""
    min_rate = min_rate_kb * 1024

    def guarded(environ, start_response):
        sock = environ.get("gunicorn.socket")
        if sock is None:
            return app(environ, start_response)
        length = environ.get("CONTENT_LENGTH") or ""
        length = int(length) if length.isdigit() else None
        chunked = "chunked" in (environ.get("HTTP_TRANSFER_ENCODING") or "").lower()
        if length or chunked:
            d = WATCHDOG.watch(sock, body_grace, min_rate=min_rate, how=socket.SHUT_RD)
            environ["wsgi.input"] = TimedInput(environ["wsgi.input"], d, length)
        else:
            WATCHDOG.release(sock)
        sent_length: list[int] = []

        def start(status, headers, exc_info=None):
            sent_length[:] = [int(v) for k, v in headers if k.lower() == "content-length" and v.isdigit()]
            return start_response(status, headers, exc_info)

        try:
            result = app(environ, start)
        except BaseException:
            WATCHDOG.watch(sock, body_grace, min_rate=min_rate, expected=0)
            raise
        # the app has answered: from here the client must read the response in time
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None and isinstance(result, wrapper):  # keep sendfile(): time it by its length
            WATCHDOG.watch(sock, body_grace, min_rate=min_rate, expected=sent_length[0] if sent_length else 0)
            return result
        return _counted(result, WATCHDOG.watch(sock, body_grace, min_rate=min_rate))

    return guarded


def _counted(result, deadline: Deadline):
    """The response's chunks, counted for the watchdog as the server takes them to send."""
    try:
        for chunk in result:
            deadline.moved += len(chunk)
            yield chunk
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
