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

from pathlib import PurePath

from flask import current_app, has_app_context


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
    return PurePath(str(_services().settings.home)) / "uploads"


def shown_path(path: str | None, source: str | None = None) -> str | None:
    """``path`` as a response may show it; ``source`` is the ingest run's source, if known."""
    if path is None or exposed():
        return path
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
    from simsearch.store import hot

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
