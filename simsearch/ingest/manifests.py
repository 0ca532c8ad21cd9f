"""A manifest file: the files of an ingest listed one a row, wherever they are.

CSV (UTF-8, a header row): a ``uri`` column (``s3://bucket/key``, ``http(s)://...``, or a local
path, absolute or relative to the manifest's folder), an optional ``label`` column, and any
further columns, kept as each image's free-form metadata (empty cells are left out). Parquet
manifests are not read (pyarrow is not a dependency): a ``.parquet`` file is refused, naming
the way out.
"""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from simsearch.errors import InvalidInput
from simsearch.ingest import remote
from simsearch.ingest.sources import SourceFile

FIELD = "manifest"


def files_from_manifest(manifest: Path, *, labels: str | None = None) -> list[SourceFile]:
    """The files a manifest lists, in its order. ``labels='folders'``: a row without a ``label``
    is labelled by the folder its file is in. Errors name the file, the line and the column."""
    manifest = Path(manifest)
    if labels not in (None, "folders"):
        raise InvalidInput(f"--labels must be 'folders', not {labels!r}", field="labels")
    if manifest.suffix.lower() in (".parquet", ".pq"):
        raise InvalidInput(f"{manifest}: Parquet manifests are not read (pyarrow is not installed with simsearch); "
                           "write the manifest as CSV with a 'uri' column", field=FIELD)
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput(f"{manifest}: cannot read the manifest ({exc.strerror or exc})", field=FIELD) from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{manifest}: the manifest is not UTF-8 text (CSV expected)", field=FIELD) from None
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in reader.fieldnames or []]
    if "uri" not in columns:
        raise InvalidInput(f"{manifest}: the manifest has no 'uri' column (found: {', '.join(columns) or 'no header'})",
                           field=FIELD)
    reader.fieldnames = columns
    base = manifest.resolve().parent
    files = []
    for lineno, row in enumerate(reader, start=2):
        if None in row:
            raise InvalidInput(f"{manifest}, line {lineno}: more fields than header columns", field=FIELD)
        uri = (row.pop("uri") or "").strip()
        if not uri:
            raise InvalidInput(f"{manifest}, line {lineno}: empty 'uri'", field=FIELD)
        label = (row.pop("label", None) or "").strip() or None
        meta = {k: v for k, v in row.items() if v not in (None, "")}
        if remote.is_remote(uri):
            folder = PurePosixPath(urlsplit(uri).path).parent.name
            files.append(SourceFile(name=remote.display(uri), uri=uri, label=label or _folder_label(labels, folder),
                                    meta=meta))
        elif "://" in uri:
            raise InvalidInput(f"{manifest}, line {lineno}: 'uri' must be s3://, http(s):// or a local path, not "
                               f"{remote.display(uri)!r}", field=FIELD)
        else:
            path = Path(uri).expanduser()
            path = path if path.is_absolute() else base / path
            files.append(SourceFile(name=str(path), path=path, label=label or _folder_label(labels, path.parent.name),
                                    meta=meta))
    if not files:
        raise InvalidInput(f"{manifest}: the manifest lists no files", field=FIELD)
    return files


def _folder_label(labels: str | None, folder: str) -> str | None:
    return folder or None if labels == "folders" else None
