"""File digests: SHA-256, memoised per (path, size, mtime) within the process, and digest
side-files (``<file>.sha256``) that let a cached file be verified when it is loaded."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

_MEMO: dict[tuple, str] = {}
_LOCK = threading.Lock()


def file_sha256(path: os.PathLike | str) -> str:
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    with _LOCK:
        hit = _MEMO.get(key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _LOCK:
        _MEMO[key] = digest
    return digest


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_sidecar(path: Path, digest: str | None = None) -> str:
    """Record ``path``'s digest next to it (``sha256sum`` format)."""
    digest = digest or file_sha256(path)
    write_atomic(sidecar(path), f"{digest}  {path.name}\n".encode())
    return digest


def check_sidecar(path: Path) -> str | None:
    """None when ``path`` matches the digest recorded next to it, else why not."""
    side = sidecar(path)
    try:
        recorded = side.read_text(encoding="ascii").split()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        return f"no digest recorded for {path.name} ({side.name} missing or unreadable)"
    actual = file_sha256(path)
    if actual != recorded:
        return f"{path.name} does not match its recorded SHA-256 (damaged or changed since it was written)"
    return None


def import_hash(key: str) -> str:
    """The content hash of an image created for ``key`` by a vectors import (unique per key, never a
    file's SHA-256 in practice): the import writes it, the originals' lookup recognises it."""
    return hashlib.sha256(b"simsearch-import\x00" + key.encode("utf-8")).hexdigest()
