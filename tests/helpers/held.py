"""An ingest job held mid-way for real: its last file is a named pipe (FIFO), so the ingest stores
its first batches, then waits in ``read()`` until the test feeds the pipe an image (:func:`feed`).
Its row is ``running`` with progress, like a long ingest, with no patched code."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from tests.helpers.waiting import wait_until


def held_ingest(ctx, runner, collection: str, images: list[Path], pipe: Path, *, batch_size: int = 2) -> int:
    """Queue an ingest of ``images`` then ``pipe`` (a new FIFO) on ``runner``; returns its job id."""
    from simsearch.jobs.execute import create_run
    from simsearch.jobs.manifest import ManifestFile, uploads_dir
    from simsearch.jobs.staging import Staging, new_staging_dir

    os.mkfifo(pipe)
    files = [ManifestFile(path=str(p), name=p.name, label=p.parent.name) for p in [*images, pipe]]
    staging = Staging(dir=new_staging_dir(uploads_dir(ctx.settings)), ignored=[])
    run_id = create_run(ctx, collection, ["efficientnet_lite0"], "held upload", staging, absolute_files=files,
                        batch_size=batch_size)
    runner.submit(run_id, {"batch_size": batch_size})
    return run_id


def _open_writer(pipe: Path):
    try:
        return os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # nobody reads it (yet)
            return None
        raise


def _write(fd: int, image: Path) -> None:
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        os.write(fd, image.read_bytes())
    finally:
        os.close(fd)


def feed(pipe: Path, image: Path, timeout: float = 60) -> None:
    """Write ``image``'s bytes into ``pipe`` once the ingest reads it (then it goes on)."""
    _write(wait_until(lambda: _open_writer(pipe), timeout=timeout, message=f"nobody reads {pipe.name}"), image)


def release(pipe: Path, image: Path) -> None:
    """Feed ``pipe`` if an ingest waits on it now (a test's cleanup: never leave a thread blocked)."""
    fd = _open_writer(pipe) if pipe.exists() else None
    if fd is not None:
        _write(fd, image)
