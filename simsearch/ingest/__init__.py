"""Ingest: a folder (or list of files) -> images, thumbnails and vectors in the database -> index.

- :mod:`~simsearch.ingest.sources`: the files to read (:class:`SourceFile`, :func:`files_from_folder`,
  :func:`files_from_bucket`); :mod:`~simsearch.ingest.remote`: buckets and URLs through fsspec;
  :mod:`~simsearch.ingest.manifests`: a CSV manifest of URIs, labels and metadata.
- :mod:`~simsearch.ingest.pipeline`: :class:`Ingester`, decode threads overlapping batched
  inference, one transaction per batch, and its :class:`IngestReport`.
- :mod:`~simsearch.ingest.writes`: the store step, upserts keyed by content, so any number of
  ingests may store overlapping files into the same or different collections at once.
"""

from simsearch.ingest.pipeline import DEFAULT_BATCH_SIZE, Ingester, IngestReport, default_workers
from simsearch.ingest.sources import SourceFile, files_from_bucket, files_from_folder, read_metadata_csv
from simsearch.ingest.manifests import files_from_manifest
from simsearch.ingest.remote import display as display_uri, is_remote
from simsearch.ingest.writes import Prepared

__all__ = ["DEFAULT_BATCH_SIZE", "Ingester", "IngestReport", "Prepared", "SourceFile", "default_workers",
           "display_uri", "files_from_bucket", "files_from_folder", "files_from_manifest", "is_remote",
           "read_metadata_csv"]
