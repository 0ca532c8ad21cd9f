"""Staging uploaded files and zip archives in a folder of their own, before a job takes them.

The web app (or any caller) writes an upload into ``<home>/uploads/.staging-<random>/``; creating
the job (:func:`simsearch.jobs.execute.create_run`) then moves the folder to
``<home>/uploads/<run_id>/``, where an ingest job (in this process or in ``simsearch worker``)
reads it. Zip archives are extracted defensively:

- refused outright when any entry is absolute, has a ``..`` component, is a symlink or is
  encrypted (a malicious archive is refused whole, not partly used);
- refused as a *zip bomb* when the headers announce too many entries, too many bytes in total
  (1 GiB by default) or in one entry, or a compression ratio no image archive has, for one entry
  or for the image files together (images are compressed already: a 220 KB zip of 200 files of
  1 MB of zeros is 1000:1) -- and checked again while extracting, counting the bytes actually
  produced, since headers can lie.
"""

from __future__ import annotations

import re
import shutil
import stat
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

from werkzeug.utils import secure_filename

from simsearch.errors import InvalidInput
from simsearch.images.scan import is_image_name

CHUNK = 1 << 20


class Upload(Protocol):
    """An uploaded file: its name as the client sent it, and a way to write it to disk
    (werkzeug's ``FileStorage`` is one)."""

    filename: str | None

    def save(self, dst) -> None: ...


@dataclass
class ZipLimits:
    max_entries: int = 50_000
    max_total_bytes: int = 1 << 30  # uncompressed, all entries (a request body is at most 64 MB)
    max_entry_bytes: int = 512 << 20  # uncompressed, one entry
    max_ratio: float = 100.0  # uncompressed / compressed: for entries, and for all image files together,
    ratio_floor: int = 1 << 20  # once they unpack to more than this

    @classmethod
    def from_settings(cls, settings) -> "ZipLimits":
        return cls(max_entries=settings.zip_max_entries, max_total_bytes=settings.zip_max_bytes,
                   max_entry_bytes=settings.zip_max_entry_bytes, max_ratio=settings.zip_max_ratio)


@dataclass
class StagedFile:
    rel: str  # path relative to the staging folder, '/'-separated
    label: str | None = None


@dataclass
class Staging:
    dir: Path
    files: list[StagedFile] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    bytes: int = 0


def new_staging_dir(uploads: Path) -> Path:
    d = uploads / f".staging-{uuid.uuid4().hex}"
    d.mkdir(parents=True)
    return d


def _unique(dest: Path, rel: PurePosixPath, taken: set[str]) -> PurePosixPath:
    candidate, n = rel, 1
    while str(candidate) in taken:
        candidate = rel.with_name(f"{rel.stem}-{n}{rel.suffix}")
        n += 1
    taken.add(str(candidate))
    return candidate


def _label_for(rel: PurePosixPath, labels: str | None, label: str | None) -> str | None:
    if labels == "folders" and len(rel.parts) > 1:
        return rel.parts[-2][:200]
    return label


def sanitised_upload_name(filename: str | None, index: int) -> PurePosixPath:
    """A browser's upload name (possibly 'folder/file.jpg' from a folder upload) made safe."""
    parts = [secure_filename(p) for p in (filename or "").replace("\\", "/").split("/") if p not in ("", ".", "..")]
    parts = [p for p in parts if p][-8:]
    if not parts:
        parts = [f"upload-{index}"]
    return PurePosixPath(*parts)


def stage_files(storages: list[Upload], dest: Path, *, labels: str | None = None, label: str | None = None) -> Staging:
    staging = Staging(dir=dest)
    taken: set[str] = set()
    for i, fs in enumerate(storages):
        rel = _unique(dest, sanitised_upload_name(fs.filename, i), taken)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.save(target)
        staging.bytes += target.stat().st_size
        staging.files.append(StagedFile(rel=str(rel), label=_label_for(rel, labels, label)))
    return staging


_DRIVE = re.compile(r"^[A-Za-z]:")


def _check_entry_name(info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        raise InvalidInput(f"zip archive refused: entry {name!r} has an absolute path", field="archive",
                           details={"entry": name, "reason": "absolute path"})
    parts = PurePosixPath(norm).parts
    if ".." in parts:
        raise InvalidInput(f"zip archive refused: entry {name!r} points outside the archive ('..')", field="archive",
                           details={"entry": name, "reason": "path traversal"})
    if "\x00" in name:
        raise InvalidInput(f"zip archive refused: entry {name!r} has a NUL byte in its name", field="archive",
                           details={"entry": name, "reason": "bad name"})
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_ISLNK(mode):
        raise InvalidInput(f"zip archive refused: entry {name!r} is a symbolic link", field="archive",
                           details={"entry": name, "reason": "symlink"})
    if info.flag_bits & 0x1:
        raise InvalidInput(f"zip archive refused: entry {name!r} is encrypted", field="archive",
                           details={"entry": name, "reason": "encrypted"})
    return PurePosixPath(*[p for p in parts if p not in ("", ".")]) if parts else PurePosixPath("")


def _bomb(message: str, **details) -> InvalidInput:
    return InvalidInput(f"zip archive refused as a possible zip bomb: {message}", field="archive",
                        details={"reason": "zip bomb", **details})


def extract_zip(fileobj, dest: Path, limits: ZipLimits, *, labels: str | None = None, label: str | None = None) -> Staging:
    """Extract the image files of a zip archive into ``dest`` (see the module docstring)."""
    try:
        zf = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise InvalidInput(f"archive is not a readable zip file ({exc})", field="archive") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_entries:
            raise _bomb(f"{len(infos)} entries (the limit is {limits.max_entries})", entries=len(infos))
        # 1) the headers
        total = 0
        kept_bytes = kept_compressed = 0
        kept: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        staging = Staging(dir=dest)
        for info in infos:
            rel = _check_entry_name(info)
            if info.is_dir() or not rel.parts:
                continue
            if info.file_size > limits.max_entry_bytes:
                raise _bomb(f"entry {info.filename!r} unpacks to {info.file_size} bytes (the limit is {limits.max_entry_bytes})",
                            entry=info.filename)
            if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
                raise _bomb(f"entry {info.filename!r} has a compression ratio of {info.file_size / max(info.compress_size, 1):.0f}:1 "
                            f"(the limit is {limits.max_ratio:.0f}:1)", entry=info.filename)
            total += info.file_size
            if total > limits.max_total_bytes:
                raise _bomb(f"it unpacks to more than {limits.max_total_bytes} bytes", total_bytes=total)
            hidden = any(p.startswith(".") or p == "__MACOSX" for p in rel.parts)
            if hidden or not is_image_name(rel.name):
                if not hidden:
                    staging.ignored.append(str(rel))
                continue
            kept.append((info, rel))
            kept_bytes += info.file_size
            kept_compressed += info.compress_size
        if kept_bytes > limits.ratio_floor and kept_bytes > limits.max_ratio * max(kept_compressed, 1):
            raise _bomb(f"its image files unpack to {kept_bytes} bytes from {kept_compressed} "
                        f"(a compression ratio of {kept_bytes / max(kept_compressed, 1):.0f}:1; the limit is "
                        f"{limits.max_ratio:.0f}:1)", total_bytes=kept_bytes)
        # 2) extraction, counting what is really produced
        taken: set[str] = set()
        written = 0
        root = dest.resolve()
        for info, rel in kept:
            safe_rel = PurePosixPath(*[secure_filename(p) or "_" for p in rel.parts])
            safe_rel = _unique(dest, safe_rel, taken)
            target = dest / safe_rel
            if not target.resolve().is_relative_to(root):  # belt and braces after the name checks
                raise InvalidInput(f"zip archive refused: entry {info.filename!r} points outside the archive", field="archive")
            target.parent.mkdir(parents=True, exist_ok=True)
            produced = 0
            try:
                with zf.open(info) as src, open(target, "xb") as out:
                    while True:
                        chunk = src.read(CHUNK)
                        if not chunk:
                            break
                        produced += len(chunk)
                        written += len(chunk)
                        if produced > info.file_size or produced > limits.max_entry_bytes:
                            raise _bomb(f"entry {info.filename!r} unpacks to more bytes than its header says", entry=info.filename)
                        if written > limits.max_total_bytes:
                            raise _bomb(f"it unpacks to more than {limits.max_total_bytes} bytes", total_bytes=written)
                        if produced > limits.ratio_floor and produced > limits.max_ratio * max(info.compress_size, 1):
                            raise _bomb(f"entry {info.filename!r} has a compression ratio above {limits.max_ratio:.0f}:1",
                                        entry=info.filename)
                        out.write(chunk)
            except (zipfile.BadZipFile, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
                raise InvalidInput(f"zip archive refused: entry {info.filename!r} cannot be extracted ({exc})", field="archive",
                                   details={"entry": info.filename, "reason": str(exc)}) from None
            staging.files.append(StagedFile(rel=str(safe_rel), label=_label_for(rel, labels, label)))
        staging.bytes = written
        return staging


def remove_quietly(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
