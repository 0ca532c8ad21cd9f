"""Ingest: a folder (or list of files) -> images, thumbnails and vectors in the database -> index.

- :mod:`~simsearch.ingest.sources`: the files to read (:class:`SourceFile`, :func:`files_from_folder`).
- :mod:`~simsearch.ingest.pipeline`: :class:`Ingester`, decode threads overlapping batched
  inference, one transaction per batch, and its :class:`IngestReport`.
- :mod:`~simsearch.ingest.writes`: the store step, upserts keyed by content, so any number of
  ingests may store overlapping files into the same or different collections at once.
"""

from simsearch.ingest.pipeline import DEFAULT_BATCH_SIZE, Ingester, IngestReport, default_workers
from simsearch.ingest.sources import SourceFile, files_from_folder, read_metadata_csv
from simsearch.ingest.writes import Prepared

__all__ = ["DEFAULT_BATCH_SIZE", "Ingester", "IngestReport", "Prepared", "SourceFile", "default_workers",
           "files_from_folder", "read_metadata_csv"]
