"""Servers run as subprocesses (``simsearch serve``, gunicorn, redis): ports, environments, start and stop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.helpers.waiting import wait_until

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    """Wait until ``url`` answers 200; fails at once if ``proc`` exits first."""
    import requests

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {proc.stderr.read()[-3000:]}")
        try:
            return requests.get(url, timeout=10).status_code == 200
        except requests.RequestException:
            return False

    wait_until(up, timeout, 0.2, "server did not come up")


def base_env(settings, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMSEARCH_")}
    env.update(SIMSEARCH_HOME=str(settings.home), SIMSEARCH_DATABASE_URL=settings.database_url,
               SIMSEARCH_WEIGHTS_DIR=str(settings.weights_dir))
    env.update(extra)
    return env


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
