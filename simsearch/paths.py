"""The data folder's layout, spelled once. Under the data directory (``home``: SIMSEARCH_HOME):

.. code-block:: text

    simsearch.db                          the SQLite database (without SIMSEARCH_DATABASE_URL)
    secret_key                            the web app's session key (without SIMSEARCH_SECRET_KEY)
    weights/                              backbone weights (SIMSEARCH_WEIGHTS_DIR puts them elsewhere)
      converted/<key>/                    converted models (OpenVINO, ONNX), validated when loaded
    indexes/collection-<id>/<space>.faiss the FAISS indexes: a cache of the database's vectors
    uploads/<run id>/                     a job's manifest and its staged files
    originals/                            originals kept by the duplicate actions
    reports/                              `simsearch map` and `compare` output without --out

Every module that reads or writes one of these asks here (:mod:`simsearch.config` for the
settings' ``weights_dir``, ``index_dir`` and default database).
"""

from __future__ import annotations

from pathlib import Path

DATABASE_FILE = "simsearch.db"
SECRET_KEY_FILE = "secret_key"


def database_file(home) -> Path:
    return Path(home) / DATABASE_FILE


def secret_key_file(home) -> Path:
    return Path(home) / SECRET_KEY_FILE


def weights_dir(home) -> Path:
    """The default weights directory (the settings' ``weights_path`` replaces it)."""
    return Path(home) / "weights"


def converted_dir(weights_dir) -> Path:
    """Where converted models are cached (:mod:`simsearch.embedding.runtimes.cache`)."""
    return Path(weights_dir) / "converted"


def index_dir(home) -> Path:
    return Path(home) / "indexes"


def collection_index_dir(index_dir, collection_id: int) -> Path:
    return Path(index_dir) / f"collection-{int(collection_id)}"


def index_file(index_dir, collection_id: int, space: str) -> Path:
    """The index of ``space`` in a collection (characters outside ``[A-Za-z0-9._@-]`` of the space's
    name become ``_``)."""
    safe = "".join(c if c.isalnum() or c in "._-@" else "_" for c in space)
    return collection_index_dir(index_dir, collection_id) / f"{safe}.faiss"


def uploads_dir(home) -> Path:
    """Where job folders live (one per run: :func:`simsearch.jobs.manifest.run_folder`)."""
    return Path(home) / "uploads"


def originals_dir(home) -> Path:
    return Path(home) / "originals"


def reports_dir(home) -> Path:
    """Where ``map`` and ``compare`` write when not given ``--out`` (never the current directory:
    a quick start run in a repository would litter it)."""
    return Path(home) / "reports"
