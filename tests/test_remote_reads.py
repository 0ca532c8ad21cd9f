"""A bucket object or URL whose body ends before the size the server gave for it (the server
closed the stream early, or answered a range with nothing) is read again, not handed to the
decoder as a cut image that would fail as a "truncated JPEG" and blame the file
(simsearch/ingest/remote.py: read_bytes)."""

from __future__ import annotations

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
