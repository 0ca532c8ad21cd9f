"""File paths as API responses show them: never where the server keeps its files.

An image's ``source_path`` is stored as ingest saw it (an absolute path: ``embed_missing`` reads
the file again from there). Responses show instead, unless ``SIMSEARCH_EXPOSE_PATHS`` is set:

- an uploaded file: its name as uploaded (``cats/1.jpg``), without ``<home>/uploads/<run>/``;
- a file ingested from a folder (``server_path``, ``simsearch ingest``): its path inside that
  folder (the run's source, or ``SIMSEARCH_ALLOW_SERVER_PATHS``);
- anything else: the file's name alone.

A job's ``source`` is shown the same way: the ingested folder's path inside the allowed root, or
its name alone.
"""

from __future__ import annotations

import os
from pathlib import PurePath

from flask import current_app, has_app_context

from simsearch.paths import uploads_dir
from simsearch.store import hot


def _services():
    svc = current_app.extensions["simsearch"]
    return getattr(svc, "services", svc)


def exposed() -> bool:
    """Whether paths are shown as they are: ``SIMSEARCH_EXPOSE_PATHS``, or no app (not a response)."""
    return not has_app_context() or bool(_services().settings.expose_paths)


def _roots() -> list[PurePath]:
    roots = []
    allowed = _services().settings.allow_server_paths
    if allowed:
        roots.append(PurePath(str(allowed)))
    return roots


def _uploads() -> PurePath:
    return PurePath(str(uploads_dir(_services().settings.home)))


def _plain(path: str) -> bool:
    """An absolute POSIX path with no empty, ``.`` or ``..`` part: string prefixes then compare
    exactly as :class:`PurePath` parts do."""
    return (path.startswith("/") and os.sep == "/" and "//" not in path and "/./" not in path
            and "/../" not in path and not path.endswith(("/.", "/..")))


def _shown_plain(path: str, source: str | None) -> str | None:
    """:func:`shown_path` by string prefixes (10x faster; a search response shows 11 paths), or
    None when a path involved is not :func:`_plain`."""
    settings = _services().settings
    uploads = f"{str(settings.home).rstrip('/')}/uploads"
    roots = [r for r in (source, settings.allow_server_paths and str(settings.allow_server_paths)) if r]
    if not all(_plain(x) or x == "/" for x in (path, uploads, *(r for r in roots if r.startswith("/")))):
        return None
    if path.rstrip("/") == uploads or path.startswith(uploads + "/"):
        parts = [x for x in path[len(uploads) + 1:].rstrip("/").split("/")[1:] if x]  # past <run id> (or .staging-...)
        return "/".join(parts) if parts else path.rstrip("/").rsplit("/", 1)[-1]
    for root in roots:
        if not root.startswith("/"):
            continue
        prefix = root.rstrip("/") + "/"
        if path.rstrip("/") != root.rstrip("/") and path.startswith(prefix):
            return path[len(prefix):].rstrip("/")
    return path.rstrip("/").rsplit("/", 1)[-1]


def shown_path(path: str | None, source: str | None = None) -> str | None:
    """``path`` as a response may show it; ``source`` is the ingest run's source, if known."""
    if path is None or exposed():
        return path
    if path.startswith("/"):
        fast = _shown_plain(path, source)
        if fast is not None:
            return fast
    p = PurePath(path)
    if not p.is_absolute():
        return path
    uploads = _uploads()
    if p.is_relative_to(uploads):
        parts = p.relative_to(uploads).parts[1:]  # past <run id> (or .staging-...)
        return PurePath(*parts).as_posix() if parts else p.name
    roots = []
    if source and PurePath(source).is_absolute():
        roots.append(PurePath(source))
    roots.extend(_roots())
    for root in roots:
        if p != root and p.is_relative_to(root):
            return p.relative_to(root).as_posix()
    return p.name


def shown_source(source: str | None) -> str | None:
    """A job's ``source`` (a folder path, or ``upload: ...``) as a response may show it."""
    if source is None or exposed():
        return source
    p = PurePath(source)
    if not p.is_absolute():
        return source
    for root in _roots():
        if p.is_relative_to(root):
            rel = p.relative_to(root).as_posix()
            return rel if rel != "." else p.name
    return p.name


def run_sources(image_ids) -> dict[int, str]:
    """``{image id: its ingest run's source}`` for the given images (one query)."""
    if exposed():
        return {}
    return hot.run_sources(_services().db, image_ids)


def needs_sources(paths) -> bool:
    """Whether any of ``paths`` is absolute and outside the uploads folder (its run's source is
    then needed to show it relative): a search of uploaded images needs no extra query."""
    if exposed():
        return False
    uploads = _uploads()
    return any(p and PurePath(p).is_absolute() and not PurePath(p).is_relative_to(uploads) for p in paths)


def hide_server_paths(text: str | None) -> str | None:
    """``text`` with the data directory, the weights directory and the server user's home folder
    replaced by placeholders (messages about weights name files there)."""
    if not text or exposed():
        return text
    import os

    settings = _services().settings
    for folder, shown in ((settings.weights_dir, "$SIMSEARCH_WEIGHTS_DIR"), (settings.home, "$SIMSEARCH_HOME"),
                          (os.path.expanduser("~"), "~")):
        folder = str(folder)
        if len(folder) > 1:
            text = text.replace(folder, shown)
    return text


def public_job(job: dict) -> dict:
    """A job as :func:`simsearch.jobs.status.job_dict` made it, with its source and the files of
    its errors shown as above."""
    raw = job.get("source")
    job["errors"] = [{**e, "file": shown_path(e["file"], raw)} if isinstance(e, dict) and e.get("file") else e
                     for e in job.get("errors") or []]
    job["source"] = shown_source(raw)
    return job
