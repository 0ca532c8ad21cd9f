"""Slow and hostile clients against gunicorn started with the shipped configuration
(``-c python:simsearch.web.gunicorn_conf``, its workers, threads and deadlines): connections that
send a search's headers with a large Content-Length and then hold back the body, or trickle their
headers, must not stall the health check, and they get 408 (or are closed) once their deadline
passes, giving their thread back. Real sockets on loopback; no durations asserted (client
timeouts are hang detectors only)."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest
import requests

from tests.helpers.servers import BIN, base_env, stop
from tests.helpers.servers import free_port, wait_up

HANGS = 60  # seconds after which a client counts as stalled (the deadlines here are 1-20 s)


@pytest.fixture
def serve(sqlite_settings, tmp_path):
    procs = []

    def start(**env) -> int:
        port = free_port()
        log = open(tmp_path / f"gunicorn-{port}.log", "w+")
        cmd = [str(BIN / "gunicorn"), "-c", "python:simsearch.web.gunicorn_conf", "-b", f"127.0.0.1:{port}",
               "simsearch.web.wsgi:app"]
        proc = subprocess.Popen(cmd, env=base_env(sqlite_settings, **env), stdout=log, stderr=subprocess.STDOUT,
                                text=True, cwd=tmp_path)
        proc.stderr = log  # wait_up shows it if the server exits
        procs.append(proc)
        wait_up(f"http://127.0.0.1:{port}/api/health", proc)
        return port

    yield start
    for proc in procs:
        stop(proc)


def held_body(port: int) -> socket.socket:
    """A search whose headers announce 50 MB and whose body never comes (a few bytes only)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /api/collections/c/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
              b"Content-Length: 50000000\r\n\r\n\xff\xd8\xff")
    return s


def held_headers(port: int) -> socket.socket:
    """A request whose headers never end."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /api/collections/c/search HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    return s


def answer(s: socket.socket) -> bytes:
    """Everything the server sends before it closes the connection."""
    s.settimeout(HANGS)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def health_ok(port: int) -> bool:
    return requests.get(f"http://127.0.0.1:{port}/api/health", timeout=HANGS).status_code == 200


def test_slow_clients_do_not_stall_the_shipped_server(serve):
    """Six held-back bodies and six unfinished headers (three times the old two sync workers):
    the health check and other requests are answered meanwhile."""
    port = serve()
    slow = [held_body(port) for _ in range(6)] + [held_headers(port) for _ in range(6)]
    try:
        for _ in range(3):
            assert health_ok(port)
        resp = requests.post(f"http://127.0.0.1:{port}/api/collections", json={"name": "c"}, timeout=HANGS)
        assert resp.status_code == 201
    finally:
        for s in slow:
            s.close()


def test_held_bodies_get_408_and_their_threads_back(serve):
    """More held-back bodies than the server has threads (2 workers x 16): each gets 408
    request_timeout once its deadline passes, unfinished headers are closed, and the server
    answers again."""
    port = serve(SIMSEARCH_REQUEST_BODY_TIMEOUT="1", SIMSEARCH_REQUEST_HEADER_TIMEOUT="1")
    bodies = [held_body(port) for _ in range(40)]
    headers = [held_headers(port) for _ in range(8)]
    try:
        for s in bodies:
            head, _, body = answer(s).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408 "), head
            assert json.loads(body)["error"]["code"] == "request_timeout"
        for s in headers:
            assert b"HTTP/1.1 2" not in answer(s)  # closed (or told 400), never served
        assert health_ok(port)
    finally:
        for s in bodies + headers:
            s.close()


def test_a_trickled_body_is_cut_but_a_steady_upload_is_not(serve, sqlite_settings):
    """The body's deadline is a rate after a grace, not a fixed time: an upload that keeps coming
    is served (here 200 KB sent in pieces), one that trickles a byte at a time is cut."""
    port = serve(SIMSEARCH_REQUEST_BODY_TIMEOUT="1", SIMSEARCH_REQUEST_MIN_RATE_KB="1")
    assert requests.post(f"http://127.0.0.1:{port}/api/collections", json={"name": "c"}, timeout=HANGS).status_code == 201

    def pieces():
        for _ in range(20):
            yield b"\0" * 10_000

    resp = requests.post(f"http://127.0.0.1:{port}/api/collections/c/search", data=pieces(),
                         headers={"Content-Type": "image/jpeg"}, timeout=HANGS)
    # read in full, then judged (an empty collection: 404 naming what is missing), never cut
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found", resp.text
    s = held_body(port)
    try:
        for _ in range(HANGS * 4):
            try:
                s.sendall(b"\0")
            except OSError:  # cut while sending
                break
            s.settimeout(0.25)
            try:
                if s.recv(1, socket.MSG_PEEK):
                    break
            except TimeoutError:
                continue
        head = answer(s).split(b"\r\n", 1)[0]
        assert head.startswith(b"HTTP/1.1 408 ") or head == b"", head
    finally:
        s.close()
    assert health_ok(port)
