"""The vectors file (``.npz``): read in chunks and checked before anything is stored; written as a stream.

An ``.npz`` is a zip of ``.npy`` arrays. Import reads ``vectors`` (N x D, floating point) and
``keys`` (N strings), optional ``labels`` and ``metadata`` (N strings, ``""`` for none; metadata
as JSON objects); ``ids`` and ``paths`` (from an export) are ignored, and so is anything else (reported). The
vectors are never loaded whole: a 1M x 1280 file is 5 GB, read ``CHUNK_ROWS`` rows at a time
straight from the zip member (stored or deflated). Pickled (object) arrays are refused.

Export writes the same members with :func:`npz_stream`, one ``.npy`` header and then its data in
chunks, into a zip written to an unseekable stream (data descriptors, ZIP64), so neither the CLI
nor the API holds the file in memory.
"""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from simsearch.errors import InvalidInput
from simsearch import limits

CHUNK_ROWS = 16384
KEY_MAX = 4096
KNOWN = ("vectors", "keys", "labels", "metadata", "ids", "fingerprint", "paths")
NPZ_HELP = "an .npz file (numpy.savez) with 'vectors' (N x D float32) and 'keys' (N unique strings), optional 'labels'"


def _bad(message: str, field: str = "file") -> InvalidInput:
    return InvalidInput(message, field=field)


@dataclass
class Member:
    name: str
    info: zipfile.ZipInfo
    shape: tuple
    dtype: np.dtype
    fortran: bool
    header_at: int = 0  # bytes from the member's start to its data


@dataclass
class VectorsFile:
    """An opened vectors file: its members' shapes and types, checked as far as that goes."""

    zf: zipfile.ZipFile
    members: dict[str, Member]
    ignored: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, source, name: str = "the file") -> "VectorsFile":
        """``source``: a path or a seekable binary file."""
        try:
            zf = zipfile.ZipFile(source)
            infos = zf.infolist()
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise _bad(f"{name} is not {NPZ_HELP}, or is truncated ({exc})") from None
        members, ignored = {}, []
        for info in infos:
            base = info.filename.removesuffix(".npy")
            if base not in KNOWN or not info.filename.endswith(".npy"):
                ignored.append(info.filename)
                continue
            members[base] = _header(zf, info, base)
        out = cls(zf, members, ignored)
        for required in ("vectors", "keys"):
            if required not in members:
                have = ", ".join(repr(m.filename.removesuffix(".npy")) for m in infos) or "nothing"
                raise _bad(f"{name} has no {required!r} array (it has: {have}); expected {NPZ_HELP}", field=required)
        return out

    def close(self) -> None:
        self.zf.close()

    @property
    def shape(self) -> tuple[int, int]:
        m = self.members["vectors"]
        if len(m.shape) != 2 or m.shape[0] < 1 or m.shape[1] < 1:
            raise _bad(f"vectors must be a 2-D array (N x D) with N, D >= 1, not of shape {m.shape}", "vectors")
        if m.dtype.kind != "f" or m.dtype.itemsize not in (2, 4, 8):
            raise _bad(f"vectors must be floating point (float32), not {m.dtype}", "vectors")
        return int(m.shape[0]), int(m.shape[1])

    def strings(self, name: str, n: int) -> list[str] | None:
        """A 1-D array of N strings as a list (None when the member is absent)."""
        m = self.members.get(name)
        if m is None:
            return None
        if m.dtype.kind not in "US":
            raise _bad(f"{name} must be an array of strings (numpy dtype <U), not {m.dtype}", name)
        if m.shape != (n,):
            raise _bad(f"{name} must have one entry per vector: shape ({n},), not {m.shape}", name)
        with self.zf.open(m.info) as fh:
            arr = np.lib.format.read_array(fh, allow_pickle=False)
        if arr.dtype.kind == "U":
            return arr.tolist()
        out = []
        for row, raw in enumerate(arr.tolist()):
            try:
                out.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise _bad(f"{name}: row {row} is not UTF-8 text", name) from None
        return out

    def fingerprint(self) -> dict | None:
        """The ``fingerprint`` member (one JSON object as a string: what made the vectors, see
        :mod:`simsearch.provenance`), or None when the file has none."""
        m = self.members.get("fingerprint")
        if m is None:
            return None
        if m.dtype.kind != "U" or m.shape not in ((), (1,)):
            raise _bad(f"fingerprint must be one string (numpy dtype <U, shape () or (1,)), not {m.dtype} {m.shape}",
                       "fingerprint")
        with self.zf.open(m.info) as fh:
            text = str(np.lib.format.read_array(fh, allow_pickle=False).reshape(-1)[0])
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise _bad(f"fingerprint is not JSON ({exc})", "fingerprint") from None
        if not isinstance(value, dict):
            raise _bad("fingerprint must be a JSON object", "fingerprint")
        return value

    def chunks(self, rows: int = CHUNK_ROWS, *, check_crc: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, block)`` of the vectors as stored (any float type), ``rows`` at a time.
        ``check_crc``: check the zip's CRC-32 of the member (for a deflated one zipfile always does)."""
        m = self.members["vectors"]
        n, dim = self.shape
        if not m.fortran and m.info.compress_type == zipfile.ZIP_STORED and not m.info.flag_bits & 1:
            yield from self._stored_chunks(m, n, dim, rows, check_crc)
            return
        try:
            with self.zf.open(m.info) as fh:
                if m.fortran:  # column-major: no row blocks on disk, read it whole
                    arr = np.ascontiguousarray(np.lib.format.read_array(fh, allow_pickle=False))
                    for start in range(0, n, rows):
                        yield start, arr[start:start + rows]
                    return
                fh.read(m.header_at)
                width = dim * m.dtype.itemsize
                for start in range(0, n, rows):
                    count = min(rows, n - start)
                    data = fh.read(count * width)
                    if len(data) != count * width:
                        raise _bad(f"vectors: the array ends at row {start + len(data) // width} of {n} (truncated file)",
                                   "vectors")
                    yield start, np.frombuffer(data, dtype=m.dtype).reshape(count, dim)
                fh.read()  # to the end: zipfile checks the CRC there
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise _bad(f"vectors: the file is damaged ({exc})", "vectors") from None

    def _stored_chunks(self, m: Member, n: int, dim: int, rows: int, check_crc: bool):
        """An uncompressed member read straight from the archive (zipfile's reader copies and
        checks every byte in Python-sized steps: 200 MB/s here, against GB/s for plain reads)."""
        fp = self.zf.fp
        fp.seek(m.info.header_offset)
        local = fp.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise _bad("vectors: the zip entry's header is damaged", "vectors")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        data_at = m.info.header_offset + 30 + name_len + extra_len
        width = dim * m.dtype.itemsize
        if m.header_at + n * width > m.info.file_size:
            raise _bad(f"vectors: the zip entry holds {m.info.file_size} bytes, too few for {n} x {dim} {m.dtype}", "vectors")
        crc = 0
        if check_crc:
            fp.seek(data_at)
            crc = zlib.crc32(fp.read(m.header_at))
        for start in range(0, n, rows):
            count = min(rows, n - start)
            fp.seek(data_at + m.header_at + start * width)
            data = fp.read(count * width)
            if len(data) != count * width:
                raise _bad(f"vectors: the array ends at row {start + len(data) // width} of {n} (truncated file)", "vectors")
            if check_crc:
                crc = zlib.crc32(data, crc)
            yield start, np.frombuffer(data, dtype=m.dtype).reshape(count, dim)
        if check_crc:
            rest = m.info.file_size - m.header_at - n * width
            if rest:
                fp.seek(data_at + m.header_at + n * width)
                crc = zlib.crc32(fp.read(rest), crc)
            if crc != m.info.CRC:
                raise _bad(f"vectors: the file is damaged (CRC-32 {crc:08x} where the zip says {m.info.CRC:08x})", "vectors")


def _header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> Member:
    try:
        with zf.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"npy format version {version}")
            at = fh.tell()
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise _bad(f"{name}: not a readable .npy array ({str(exc).splitlines()[0][:200]})", name) from None
    if dtype.hasobject:
        raise _bad(f"{name}: object arrays (pickled Python objects) are refused; save strings as a numpy string "
                   "array (dtype <U)", name)
    return Member(name, info, tuple(int(d) for d in shape), dtype, bool(fortran), at)


# ---- checks -----------------------------------------------------------------------------------

def check_keys(keys: list[str]) -> None:
    """Keys: non-empty, at most KEY_MAX characters, no NUL, unique (duplicates name both rows)."""
    for row, key in enumerate(keys):
        if not key or len(key) > KEY_MAX or "\x00" in key:
            why = "empty" if not key else ("longer than 4096 characters" if len(key) > KEY_MAX else "contains NUL")
            raise _bad(f"keys: row {row} is {why}", "keys")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise _bad(f"keys: row {row} is not valid Unicode text", "keys") from None
    if len(set(keys)) != len(keys):
        seen: dict[str, int] = {}
        for row, key in enumerate(keys):
            if key in seen:
                raise _bad(f"keys: duplicate key {key[:200]!r} at rows {seen[key]} and {row}: keys must be unique", "keys")
            seen[key] = row


def check_labels(labels: list[str], keys: list[str]) -> list[str | None]:
    """Labels as stored: trimmed, ``""`` (or blank) -> None; at most 200 characters, no NUL."""
    out: list[str | None] = []
    for row, label in enumerate(labels):
        label = label.strip()
        if len(label) > limits.LABEL_MAX or "\x00" in label:
            raise _bad(f"labels: row {row} (key {keys[row][:200]!r}) is longer than {limits.LABEL_MAX} characters or "
                       "contains NUL", "labels")
        out.append(label or None)
    return out


def check_metadata(metadata: list[str], keys: list[str]) -> list[dict]:
    """Metadata as stored: each row ``""`` ({}) or a JSON object."""
    out = []
    for row, text in enumerate(metadata):
        if not text:
            out.append({})
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise _bad(f"metadata: row {row} (key {keys[row][:200]!r}) is not JSON ({exc})", "metadata") from None
        if not isinstance(value, dict):
            raise _bad(f"metadata: row {row} (key {keys[row][:200]!r}) must be a JSON object", "metadata")
        out.append(value)
    return out


def unit_rows(block: np.ndarray, start: int, keys: list[str]) -> tuple[np.ndarray, int]:
    """``block`` as float32 unit vectors; rows already of unit length (within 1e-5) are kept bit for
    bit. Returns (vectors, how many rows were rescaled). NaN, infinities, values beyond float32
    and zero vectors are refused, naming the row and its key. Norms are float32 (numpy sums rows
    pairwise: about 1e-7 off), so a 16k x 1280 block takes ~50 ms."""
    native = block.dtype == np.float32 and block.dtype.isnative
    if native:
        x = block
    else:
        with np.errstate(over="ignore"):  # values beyond float32 become infinities, refused below
            x = block.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.linalg.norm(x, axis=1)
    odd = np.flatnonzero(~(np.isfinite(norms) & (norms > 0)))  # NaN, infinity, overflow, zero: look closer
    for row in odd:
        where = f"vectors: row {start + row} (key {keys[start + row][:200]!r})"
        if np.isnan(block[row]).any():
            raise _bad(f"{where} contains NaN", "vectors")
        if np.isinf(block[row]).any():
            raise _bad(f"{where} contains an infinite value", "vectors")
        if not np.isfinite(x[row]).all():
            raise _bad(f"{where} has a value beyond float32's range", "vectors")
        if not x[row].any():
            raise _bad(f"{where} is all zeros (a vector needs a direction: similarity is the cosine)", "vectors")
        norms[row] = np.linalg.norm(x[row].astype(np.float64))  # finite, but its square overflowed float32
    off = np.abs(norms - 1.0) > 1e-5
    if off.any():
        x = x.copy() if native else x
        x[off] = (x[off].astype(np.float64) / norms[off, None].astype(np.float64)).astype(np.float32)
    return np.ascontiguousarray(x, dtype="<f4"), int(off.sum())


# ---- writing ----------------------------------------------------------------------------------

class _Sink:
    """An unseekable stream that collects what zipfile writes, for a generator to hand out."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        self.size = 0
        return out


@dataclass
class Array:
    """One member to write: its dtype and shape, and its data as chunks of raw bytes in C order."""

    name: str
    dtype: str
    shape: tuple
    chunks: Iterable[bytes]


def npz_stream(arrays: Iterable[Array], flush_at: int = 1 << 22) -> Iterator[bytes]:
    """The bytes of an ``.npz`` holding ``arrays``, as they are produced (uncompressed members)."""
    import io

    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for arr in arrays:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": np.dtype(arr.dtype).str, "fortran_order": False,
                                                          "shape": tuple(arr.shape)})
            with zf.open(arr.name + ".npy", "w", force_zip64=True) as member:
                member.write(header.getvalue())
                for chunk in arr.chunks:
                    member.write(chunk)
                    if sink.size >= flush_at:
                        yield sink.take()
            yield sink.take()
    yield sink.take()


def string_chunks(values: list[str], rows: int = CHUNK_ROWS) -> tuple[str, Iterator[bytes]]:
    """A list of strings as a numpy ``<U`` array's dtype and data chunks (encoded a chunk at a time)."""
    width = max((len(v) for v in values), default=0) or 1
    dtype = f"<U{width}"

    def gen():
        for start in range(0, len(values), rows):
            yield np.asarray(values[start:start + rows], dtype=dtype).tobytes()

    return dtype, gen()
