"""Reads of bucket objects and URLs (simsearch/ingest/remote.py: read_bytes): an object read in
byte ranges from a server that sends the whole object's checksum with each range (`rclone serve
s3` after a boto3 upload: the 4 failed files of the 10,000-file collection run) is read, not
failed on botocore's checksum check; a body that ends before the size the server gave for it is
read again, not handed to the decoder as a cut image that would fail as a "truncated JPEG" and
blame the file."""

from __future__ import annotations

import base64
import http.server
import threading
import zlib

import pytest

from simsearch.errors import ImageDecodeError
from simsearch.ingest import remote

BODY = b"\xff\xd8\xff" + bytes(range(256)) * 12 + b"\xff\xd9"


class _Body:
    """An open object: ``size`` as the server gave it, ``data`` what the stream yields."""

    def __init__(self, data: bytes, size: int | None):
        self.data, self.size, self.pos = data, size, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def read(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out


class _Server:
    """Answers each open with the next of ``bodies`` (the last one again once they run out)."""

    def __init__(self, bodies: list[bytes], size: int | None = len(BODY)):
        self.bodies, self.size, self.opened = bodies, size, 0

    def open(self, uri: str, mode: str, block_size: int | None = None) -> _Body:
        body = self.bodies[min(self.opened, len(self.bodies) - 1)]
        self.opened += 1
        return _Body(body, self.size)


@pytest.fixture
def server(monkeypatch):
    def install(bodies: list[bytes], size: int | None = len(BODY)) -> _Server:
        fake = _Server(bodies, size)
        monkeypatch.setattr(remote, "filesystem", lambda scheme: fake)
        monkeypatch.setattr(remote, "BACKOFF", 0.0)
        return fake

    return install


def test_a_body_cut_short_once_is_read_again(server):
    fake = server([BODY[:1000], BODY])
    assert remote.read_bytes("s3://bench/photos/a/0000001.jpg") == BODY
    assert fake.opened == 2


def test_a_body_always_cut_short_fails_saying_so_not_as_a_broken_image(server):
    fake = server([BODY[:1000]])
    with pytest.raises(ImageDecodeError) as err:
        remote.read_bytes("s3://bench/photos/a/0000002.jpg")
    assert err.value.reason == f"the read was cut short (1000 of {len(BODY)} bytes)"
    assert err.value.source == "s3://bench/photos/a/0000002.jpg"
    assert fake.opened == remote.ATTEMPTS


def test_a_body_of_the_size_given_or_of_no_size_given_is_read_once(server):
    fake = server([BODY])
    assert remote.read_bytes("s3://bench/photos/a/0000003.jpg") == BODY
    assert fake.opened == 1
    streamed = server([BODY[:700]], size=None)  # a URL answered without a length: nothing to check
    assert remote.read_bytes("https://example.org/0000004.jpg") == BODY[:700]
    assert streamed.opened == 1


# ---- a server that sends the whole object's checksum with a part of it ---------------------------

OBJECT = bytes(range(256)) * 10_000  # 2.56 MB: more than the first ranged read (2 MiB) fetches


class _ChecksumOfWholeObject(http.server.BaseHTTPRequestHandler):
    """An S3 server as `rclone serve s3` is after a boto3 upload (which sends a CRC32): every answer
    for the object, a byte range too, carries the whole object's x-amz-checksum-crc32."""

    def _headers(self, status: int, length: int, extra: dict) -> None:
        self.send_response(status)
        crc = base64.b64encode(zlib.crc32(OBJECT).to_bytes(4, "big")).decode()
        for name, value in {"Content-Length": str(length), "ETag": '"obj-1"', "Content-Type": "image/jpeg",
                            "Last-Modified": "Mon, 07 Dec 2026 05:50:00 GMT", "x-amz-checksum-crc32": crc,
                            "Accept-Ranges": "bytes", **extra}.items():
            self.send_header(name, value)
        self.end_headers()

    def do_HEAD(self):  # noqa: N802 (the base class's name)
        self._headers(200, len(OBJECT), {})

    def do_GET(self):  # noqa: N802
        start, _, end = self.headers.get("Range", "bytes=0-").removeprefix("bytes=").partition("-")
        start, end = int(start), min(int(end or len(OBJECT) - 1), len(OBJECT) - 1)
        part = OBJECT[start:end + 1]
        self._headers(206, len(part), {"Content-Range": f"bytes {start}-{end}/{len(OBJECT)}"})
        self.wfile.write(part)

    def log_message(self, format, *args):  # noqa: A002
        pass


@pytest.fixture
def whole_checksum_server(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ChecksumOfWholeObject)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWHOLECHECKSUM01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "whole-checksum-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setattr(remote, "BACKOFF", 0.0)
    yield
    server.shutdown()
    server.server_close()


def test_an_object_read_in_ranges_from_a_server_that_sends_the_whole_checksum_is_read(whole_checksum_server):
    """The 4 failed files of the 10,000-file collection run (benchmarks/collection_run.py): the 4
    objects over 2 MiB failed with "FlexibleChecksumError: Expected checksum ... did not match"."""
    pytest.importorskip("s3fs")
    assert remote.read_bytes("s3://bench/photos/big.jpg") == OBJECT
