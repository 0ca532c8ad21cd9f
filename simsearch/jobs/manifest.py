"""A job's manifest: the files to ingest and how, written as ``manifest.json`` in its folder."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from simsearch import paths
from simsearch.errors import InvalidInput
from simsearch.ingest import SourceFile, display_uri, is_remote

FILENAME = "manifest.json"


def uploads_dir(settings) -> Path:
    """Where job folders live: ``<home>/uploads``."""
    return paths.uploads_dir(settings.home)


def run_folder(settings, run_id: int) -> Path:
    return uploads_dir(settings) / str(int(run_id))


@dataclass
class ManifestFile:
    path: str  # absolute, relative to the job's folder ('/'-separated), or an s3:// or http(s):// URI
    name: str | None = None  # how reports name the file; default: its path
    label: str | None = None
    meta: dict = field(default_factory=dict)


@dataclass
class Manifest:
    run_id: int
    collection: str
    files: list[ManifestFile]
    ignored: list[str] = field(default_factory=list)
    batch_size: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        try:
            data = json.loads(text)
            files = [ManifestFile(path=str(f["path"]), name=f.get("name"), label=f.get("label"), meta=f.get("meta") or {})
                     for f in data["files"]]
            return cls(run_id=int(data["run_id"]), collection=str(data["collection"]), files=files,
                       ignored=list(data.get("ignored") or []), batch_size=data.get("batch_size"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(f"the job's manifest is not valid ({type(exc).__name__}: {exc})") from None

    def write(self, folder: Path) -> None:
        """Write atomically (a reader never sees half a manifest)."""
        tmp = folder / (FILENAME + ".tmp")
        tmp.write_text(self.to_json())
        os.replace(tmp, folder / FILENAME)

    @classmethod
    def read(cls, folder: Path) -> "Manifest":
        try:
            text = (folder / FILENAME).read_text()
        except FileNotFoundError:
            raise InvalidInput(f"the job's staged files are gone (its {FILENAME} is missing from the upload folder)") from None
        return cls.from_json(text)

    def source_files(self, folder: Path) -> list:
        """The files as :class:`~simsearch.ingest.SourceFile` (relative paths resolved in ``folder``)."""
        out = []
        for f in self.files:
            if is_remote(f.path):  # read by whichever worker runs it, with its own credentials
                out.append(SourceFile(name=f.name or display_uri(f.path), uri=f.path, label=f.label, meta=f.meta or {}))
                continue
            path = Path(f.path)
            if not path.is_absolute():
                path = folder / path
            out.append(SourceFile(name=f.name or str(path), path=path, label=f.label, meta=f.meta or {}))
        return out
