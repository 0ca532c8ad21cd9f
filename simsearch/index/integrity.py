"""Integrity of saved index files: a checksum trailer, written with the index, verified before FAISS reads it.

A saved file is the FAISS bytes followed by a trailer: a JSON record ``{"format", "algorithm",
"digest", "size", "ntotal"}``, its length (4 bytes, little-endian) and :data:`TRAILER_MAGIC`.
A trailer rather than a sidecar file: the checksum is published by the same rename as the index,
so it can never describe another version of it (no second file to keep in step across a crash,
to fsync, or to remove with the collection). FAISS never sees the trailer (it reads through a
callback that stops at ``size``), and plain ``faiss.read_index`` ignores trailing bytes anyway.

CRC-32 (zlib): 3.1 GB/s from the page cache on the 2-core Xeon of the benchmarks, against 1.4 for
SHA-256 (with SHA-NI) and 0.84 for BLAKE2b, so a 1M x 1280 index (~5 GB) is checked in about 1.7 s
at each process start. It guards against damage (bit rot, a truncated copy, zeroed blocks); it is
not a defence against someone who can write the index folder (they could write any index).
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

from simsearch.errors import IndexCorrupt

TRAILER_MAGIC = b"SSIDXSUM"
TRAILER_FORMAT = 1
ALGORITHM = "crc32"
_TAIL = 4 + len(TRAILER_MAGIC)
_TRAILER_MAX = 4096
_CHUNK = 1 << 22


def write_checksummed(index, fh) -> dict:
    """Write ``index`` to the open binary file ``fh``, then its trailer (the checksum is computed
    while the bytes are written: one pass). Returns the trailer's record."""
    import faiss

    state = [0, 0]  # crc, size

    def write(data: bytes) -> int:
        fh.write(data)
        state[0] = zlib.crc32(data, state[0])
        state[1] += len(data)
        return len(data)

    faiss.write_index(index, faiss.PyCallbackIOWriter(write))
    record = {"format": TRAILER_FORMAT, "algorithm": ALGORITHM, "digest": f"{state[0]:08x}", "size": state[1],
              "ntotal": int(index.ntotal)}
    body = json.dumps(record, separators=(",", ":")).encode("ascii")
    fh.write(body + struct.pack("<I", len(body)) + TRAILER_MAGIC)
    return record


def read_trailer(path: Path) -> dict:
    """The checksum record at the end of an index file. IndexCorrupt when there is none or it does
    not fit the file (truncated, or written by an older simsearch or by FAISS directly)."""
    with open(path, "rb") as fh:
        return _trailer(path, fh)


def _trailer(path: Path, fh) -> dict:
    total = os.fstat(fh.fileno()).st_size
    if total < _TAIL:
        raise IndexCorrupt(f"{path}: unreadable index file: no checksum (a file of {total} bytes)")
    fh.seek(total - _TAIL)
    tail = fh.read(_TAIL)
    length = struct.unpack("<I", tail[:4])[0]
    if tail[4:] != TRAILER_MAGIC or not 0 < length <= _TRAILER_MAX or length + _TAIL > total:
        raise IndexCorrupt(f"{path}: unreadable index file: no checksum at its end (truncated, or not written by "
                           "this simsearch)")
    fh.seek(total - _TAIL - length)
    try:
        record = json.loads(fh.read(length))
        size, digest, ntotal, algorithm = int(record["size"]), str(record["digest"]), int(record["ntotal"]), record["algorithm"]
    except (ValueError, KeyError, TypeError) as exc:
        raise IndexCorrupt(f"{path}: unreadable checksum record") from exc
    if algorithm != ALGORITHM:
        raise IndexCorrupt(f"{path}: checksum algorithm {algorithm!r} unknown to this simsearch")
    if size != total - _TAIL - length:
        raise IndexCorrupt(f"{path}: {total - _TAIL - length} bytes of index where its checksum covers {size} (truncated?)")
    return {"size": size, "digest": digest, "ntotal": ntotal, "algorithm": algorithm}


def verify(path: Path) -> dict:
    """Check an index file against its trailer (IndexCorrupt on any mismatch); returns the record."""
    with open(path, "rb", buffering=0) as fh:
        return _verified(path, fh)


def _verified(path: Path, fh) -> dict:
    """:func:`verify` of the file open as ``fh`` (the inode it opened, whatever ``path`` names since)."""
    record = _trailer(path, fh)
    crc, left = 0, record["size"]
    view = memoryview(bytearray(_CHUNK))
    fh.seek(0)
    while left:
        n = fh.readinto(view[: min(_CHUNK, left)])
        if not n:
            raise IndexCorrupt(f"{path}: ends before the {record['size']} bytes its checksum covers")
        crc = zlib.crc32(view[:n], crc)
        left -= n
    if f"{crc:08x}" != record["digest"]:
        raise IndexCorrupt(f"{path}: checksum mismatch ({ALGORITHM} {crc:08x}, recorded {record['digest']}): "
                           "the file is damaged")
    return record


def read_checked(path: Path, *, mmap: bool = False, check: bool = True):
    """The FAISS index in ``path`` after :func:`verify` (FAISS reads the verified bytes only).
    IndexCorrupt when the checksum fails, FAISS cannot parse it, or it holds another number of
    vectors than recorded.

    ``mmap``: FAISS maps the file read-only (``IO_FLAG_MMAP_IFC``) instead of copying it: its codes,
    graph and lists stay in the page cache, one copy for every process of the machine that maps
    the same file. The checksum is verified on the same open file that is mapped (through
    ``/proc/self/fd``), so a rename by another process in between cannot swap the file. FAISS maps
    the whole file and stops reading at the index's end: the trailer stays unread. Such an index
    must never be changed (FAISS aborts the process on a write into a mapped array).
    ``check``: False skips the checksum pass (a file this process has just written and fsynced)."""
    import faiss

    with open(path, "rb", buffering=0) as raw:
        record = _verified(path, raw) if check else _trailer(path, raw)
        try:
            fd_path = f"/proc/self/fd/{raw.fileno()}"
            if mmap and os.path.exists(fd_path):
                index = faiss.read_index(fd_path, faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
            else:
                raw.seek(0)
                fh = io.BufferedReader(raw, _CHUNK)
                left = [record["size"]]

                def read(n: int) -> bytes:
                    data = fh.read(min(n, left[0]))
                    left[0] -= len(data)
                    return data

                index = faiss.read_index(faiss.PyCallbackIOReader(read))
        except Exception as exc:  # faiss raises RuntimeError with a C++ message
            raise IndexCorrupt(f"{path}: unreadable FAISS index ({str(exc).splitlines()[0][:200]})") from exc
    if int(index.ntotal) != record["ntotal"]:
        raise IndexCorrupt(f"{path}: holds {index.ntotal} vectors where its checksum record says {record['ntotal']}")
    return index
