"""The files an ingest reads: :class:`SourceFile` (a path, a bucket object or URL, or the bytes of
an upload, with its label and metadata), :func:`files_from_folder` (the images under a folder,
labelled by sub-folder or by a metadata CSV) and :func:`files_from_bucket` (the same for the
objects under an ``s3://`` prefix). A manifest file of URIs: :mod:`simsearch.ingest.manifests`."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from simsearch.errors import ImageDecodeError, InvalidInput
from simsearch.images import scan_images
from simsearch.images.scan import is_image_name
from simsearch.ingest import remote


@dataclass
class SourceFile:
    """One file to ingest: where it is (or its bytes, for uploads) and what we know about it."""

    name: str  # shown to the user and stored as source_path
    path: Path | None = None
    data: bytes | None = None
    uri: str | None = None  # s3:// or http(s):// (read with the environment's endpoint and credentials)
    label: str | None = None
    meta: dict = field(default_factory=dict)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.uri is not None:
            return remote.read_bytes(self.uri, name=self.name)
        try:
            return self.path.read_bytes()
        except IsADirectoryError:
            raise ImageDecodeError(self.name, "is a directory, not a file")
        except FileNotFoundError:
            raise ImageDecodeError(self.name, "file not found (it disappeared during the ingest?)")
        except PermissionError:
            raise ImageDecodeError(self.name, "permission denied")
        except OSError as exc:
            raise ImageDecodeError(self.name, f"cannot read: {exc.strerror or exc}")



def files_from_folder(root: Path, *, labels: str | None = None, metadata_csv: Path | None = None) -> tuple[list[SourceFile], list[str]]:
    """The image files under ``root`` (recursive) and the names of ignored non-image files
    (FIFOs, sockets and other files that are not regular files too), as paths relative to the
    folder: they are shown to whoever asked for the ingest, who may not be shown where the
    server keeps its files.

    ``labels='folders'``: each image's label is the name of the folder it is in (below root).
    ``metadata_csv``: a CSV with a ``path`` column (relative to root, or absolute), an optional
    ``label`` column and any further columns, stored as free-form metadata.
    """
    root = Path(root)
    if not root.exists():
        raise InvalidInput(f"{root}: no such file or folder", field="path")
    if labels not in (None, "folders"):
        raise InvalidInput(f"--labels must be 'folders', not {labels!r}", field="labels")
    base = root if root.is_dir() else root.parent
    table = read_metadata_csv(metadata_csv, base) if metadata_csv else {}
    files = []
    base = Path(os.path.abspath(base))
    for path in scan_images(root):
        path = Path(os.path.abspath(path))
        rel = path.relative_to(base)
        label = rel.parent.name if labels == "folders" and rel.parent != Path(".") else None
        meta = dict(table.get(path.resolve(), {}))
        if "label" in meta:
            label = meta.pop("label") or label
        files.append(SourceFile(name=str(path), path=path, label=label, meta=meta))
    ignored = []
    if root.is_dir():
        image_set = {f.path for f in files}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                p = Path(os.path.abspath(Path(dirpath) / fn))
                if not fn.startswith(".") and p not in image_set and (metadata_csv is None or p.resolve() != Path(metadata_csv).resolve()):
                    ignored.append(p.relative_to(base).as_posix())
    return files, ignored


def files_from_bucket(uri: str, *, labels: str | None = None) -> tuple[list[SourceFile], list[str]]:
    """The image objects under ``uri`` (``s3://bucket/prefix``: the keys below the prefix, or one
    key), and the keys ignored for their extension, relative to the prefix, as
    :func:`files_from_folder` gives a folder's: ``labels='folders'`` labels each image by the
    folder (key segment) it is in below the prefix."""
    if labels not in (None, "folders"):
        raise InvalidInput(f"--labels must be 'folders', not {labels!r}", field="labels")
    keys = remote.list_objects(uri)
    prefix = uri.rstrip("/")
    files, ignored = [], []
    for key in keys:
        rel = key[len(prefix):].lstrip("/") if key.startswith(prefix + "/") else key.rsplit("/", 1)[-1]
        if any(part.startswith(".") for part in rel.split("/")):
            continue  # hidden, as in a folder
        if not is_image_name(rel):
            ignored.append(rel)
            continue
        folder = rel.rsplit("/", 1)[0].rsplit("/", 1)[-1] if "/" in rel else None
        files.append(SourceFile(name=remote.display(key), uri=key, label=folder if labels == "folders" else None))
    return files, ignored


def read_metadata_csv(csv_path: Path, base: Path) -> dict[Path, dict]:
    csv_path = Path(csv_path)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput(f"{csv_path}: cannot read metadata CSV ({exc.strerror or exc})", field="metadata")
    except UnicodeDecodeError:
        raise InvalidInput(f"{csv_path}: metadata CSV is not UTF-8 text", field="metadata")
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "path" not in reader.fieldnames:
        raise InvalidInput(f"{csv_path}: metadata CSV needs a 'path' column (found: {reader.fieldnames or 'no header'})", field="metadata")
    table: dict[Path, dict] = {}
    for lineno, row in enumerate(reader, start=2):
        if None in row:
            raise InvalidInput(f"{csv_path}, line {lineno}: more fields than header columns", field="metadata")
        raw = (row.pop("path") or "").strip()
        if not raw:
            raise InvalidInput(f"{csv_path}, line {lineno}: empty 'path'", field="metadata")
        p = Path(raw)
        p = (p if p.is_absolute() else base / p).resolve()
        table[p] = {k: v for k, v in row.items() if v not in (None, "")}
    return table
