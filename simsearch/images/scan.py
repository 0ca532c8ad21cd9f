"""Find image files under a directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from simsearch.errors import InvalidInput

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")


def is_image_name(name: str) -> bool:
    """True when ``name`` has one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def scan_images(root: str | os.PathLike) -> Iterator[Path]:
    """Yield image files under ``root``, recursively, sorted by path.

    Only regular files (or symlinks to them) with a suffix in :data:`IMAGE_EXTENSIONS` are
    yielded; files and directories whose name starts with ``.`` are skipped, and symlinked
    directories are not followed (no loops). When ``root`` is itself a file it is yielded as
    given, whatever its name: the caller asked for it, so a bad file should fail loudly when
    decoded rather than be skipped silently.
    """
    root_path = Path(root)
    if root_path.is_file():
        yield root_path
        return
    if not root_path.is_dir():
        raise InvalidInput(f"{root_path}: no such file or directory", field="path")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root_path):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or not is_image_name(name):
                continue
            path = Path(dirpath, name)
            if path.is_file():
                found.append(path)
    found.sort(key=lambda p: p.parts)
    yield from found
