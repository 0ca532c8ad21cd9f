"""Deployment: no server beyond localhost without an API key (`simsearch serve`, gunicorn with
simsearch's config), the worker health check, and the Docker files (compose.yaml, Dockerfile,
.dockerignore) checked without a Docker engine: parsed and cross-checked here, and validated with
`docker compose config` where a compose v2 CLI is installed (`scripts/compose_cli.sh` unpacks one in CI)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SIMSEARCH = [sys.executable, "-c", "from simsearch.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(settings, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMSEARCH_")}
    env.update(SIMSEARCH_HOME=str(settings.home), SIMSEARCH_DATABASE_URL=settings.database_url,
               SIMSEARCH_WEIGHTS_DIR=str(settings.weights_dir))
    env.update(extra)
    return env


def wait_health(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}: {proc.stderr.read()[-3000:]}")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError("did not come up")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- an API key before listening beyond localhost ------------------------------------------

@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("127.0.0.1:8000", True), ("127.8.9.1:80", True), ("localhost", True),
    ("localhost:5000", True), ("::1", True), ("[::1]:8000", True), ("unix:/run/simsearch.sock", True),
    ("0.0.0.0", False), ("0.0.0.0:8000", False), ("::", False), ("[::]:8000", False), (":8000", False),
    ("", False), ("192.168.1.5:8000", False), ("10.0.0.1", False), ("example.com:80", False),
    ("fd://3", False),
])
def test_which_addresses_are_loopback(address, loopback):
    from simsearch.web.exposure import is_loopback

    assert is_loopback(address) is loopback


def test_require_api_key():
    from simsearch.errors import InvalidInput
    from simsearch.web.exposure import require_api_key

    require_api_key(["127.0.0.1:8000", "unix:/tmp/s"], ())
    require_api_key(["0.0.0.0:8000"], ("k1",))
    with pytest.raises(InvalidInput) as exc:
        require_api_key(["127.0.0.1:8000", "0.0.0.0:8000"], ("", ), server="gunicorn")
    assert "\n" not in exc.value.message
    assert exc.value.message.startswith("gunicorn refuses to listen on 0.0.0.0:8000 (reachable beyond this machine)")
    assert "SIMSEARCH_API_KEYS" in exc.value.message


def test_serve_refuses_every_interface_without_a_key(sqlite_settings):
    proc = subprocess.run(SIMSEARCH + ["serve", "--host", "0.0.0.0", "--port", str(free_port())],
                          env=base_env(sqlite_settings), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: simsearch serve refuses to listen on 0.0.0.0"), proc.stderr
    assert "SIMSEARCH_API_KEYS" in lines[0]


def test_serve_on_every_interface_with_a_key(sqlite_settings):
    port = free_port()
    proc = subprocess.Popen(SIMSEARCH + ["serve", "--host", "0.0.0.0", "--port", str(port)],
                            env=base_env(sqlite_settings, SIMSEARCH_API_KEYS="k1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_health(f"http://127.0.0.1:{port}/api/health", proc)
        assert requests.post(f"http://127.0.0.1:{port}/api/collections", json={"name": "a"}, timeout=10).status_code == 401
        ok = requests.post(f"http://127.0.0.1:{port}/api/collections", json={"name": "a"}, timeout=10,
                           headers={"Authorization": "Bearer k1"})
        assert ok.status_code == 201, ok.text
    finally:
        stop(proc)


def gunicorn(bind: str) -> list[str]:
    return [str(BIN / "gunicorn"), "-c", "python:simsearch.web.gunicorn_conf", "-w", "1", "-b", bind,
            "simsearch.web.wsgi:app"]


def test_gunicorn_refuses_every_interface_without_a_key(sqlite_settings, tmp_path):
    bind = f"0.0.0.0:{free_port()}"
    env = base_env(sqlite_settings)
    proc = subprocess.run(gunicorn(bind), env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: gunicorn refuses to listen on {bind} (reachable beyond this machine) without an API key: "
                      "set SIMSEARCH_API_KEYS (comma-separated; make one with python -c 'import secrets; "
                      "print(secrets.token_urlsafe(32))'), or listen on 127.0.0.1"], proc.stderr
    assert "Listening at" not in proc.stderr and "Booting worker" not in proc.stderr


def test_gunicorn_on_loopback_needs_no_key(sqlite_settings, tmp_path):
    port = free_port()
    env = base_env(sqlite_settings)
    proc = subprocess.Popen(gunicorn(f"127.0.0.1:{port}"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        wait_health(f"http://127.0.0.1:{port}/api/health", proc)
    finally:
        stop(proc)


# ---- the worker's health check ---------------------------------------------------------------

@pytest.fixture
def private_redis(tmp_path):
    """A Redis of this test's own: other tests' and sessions' workers share the usual one."""
    server = shutil.which("redis-server")
    if not server:
        pytest.fail("redis-server is needed (.ci/run installs and starts Redis)")
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    conn = redis.Redis(port=port)
    for _ in range(100):
        try:
            conn.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.redis
def test_worker_check(sqlite_settings, private_redis):
    env = base_env(sqlite_settings, SIMSEARCH_REDIS_URL=private_redis)

    def check():
        return subprocess.run(SIMSEARCH + ["worker", "--check"], env=env, capture_output=True, text=True, timeout=60)

    none = check()
    assert none.returncode == 1
    assert none.stderr.strip() == f"error: no live simsearch worker on {socket.gethostname()} is registered with Redis"
    worker = subprocess.Popen(SIMSEARCH + ["worker", "--name", "checked"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while (alive := check()).returncode != 0:
            assert worker.poll() is None, worker.stderr.read()[-3000:]
            assert time.monotonic() < deadline, alive.stderr
            time.sleep(0.5)
        assert alive.stdout.startswith(f"ok: checked (pid {worker.pid}, ") and "queues simsearch" in alive.stdout
    finally:
        worker.send_signal(signal.SIGKILL)  # its registration stays in Redis: the pid check sees it die
        worker.wait()
    dead = check()
    assert dead.returncode == 1 and "no live simsearch worker" in dead.stderr
    down = subprocess.run(SIMSEARCH + ["worker", "--check"], env=dict(env, SIMSEARCH_REDIS_URL="redis://127.0.0.1:1/0"),
                          capture_output=True, text=True, timeout=60)
    assert down.returncode == 1 and down.stderr.startswith("error: Redis does not answer")
