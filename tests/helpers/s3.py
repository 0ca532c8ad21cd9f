"""A real S3-compatible server for the bucket tests: moto's standalone server (``python -m
moto.server``) started as a subprocess on 127.0.0.1 with a free port, the AWS environment
pointing at it, and a static http server (a thread on the loopback interface) for URL ingests."""

from __future__ import annotations

import functools
import http.server
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.helpers.waiting import wait_until

ACCESS_KEY = "AKIASIMSEARCHTEST01"
SECRET_KEY = "s3cr3t-Simsearch-Never-Shown-8f2c41"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def moto_server():
    """The endpoint URL of a moto server of this module's own (buckets live in its memory)."""
    pytest.importorskip("moto")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: answers(port) or proc.poll() is not None, timeout=60, message="the moto server to listen")
        assert proc.poll() is None, "the moto server exited at start"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def aws_env(moto_server, monkeypatch):
    """This process's (and its subprocesses') AWS environment: the moto endpoint and test keys."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    return moto_server


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY)


def make_bucket(endpoint: str, bucket: str, files: dict[str, bytes | Path]) -> None:
    """Create ``bucket`` holding ``files`` ({key: bytes or a file to upload})."""
    client = s3_client(endpoint)
    client.create_bucket(Bucket=bucket)
    for key, body in files.items():
        client.put_object(Bucket=bucket, Key=key, Body=body.read_bytes() if isinstance(body, Path) else body)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder; the first two requests for a path under ``/flaky/`` answer 503 (a
    transient failure a read retries)."""

    failed: dict[str, int] = {}

    def send_head(self):
        if self.path.startswith("/flaky/") and self.failed.get(self.path, 0) < 2:
            self.failed[self.path] = self.failed.get(self.path, 0) + 1
            self.send_error(503, "try again")
            return None
        if self.path.startswith("/flaky/"):
            self.path = self.path[len("/flaky"):]
        return super().send_head()

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@pytest.fixture
def http_files(tmp_path):
    """(base URL, folder): a static http server on 127.0.0.1 serving a fresh folder, in a thread."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
