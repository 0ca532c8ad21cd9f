"""The objects a process keeps: settings, the database, open FAISS indexes and loaded models.

The CLI, the web app and the worker each make one :class:`Services` and share its methods, so the
rules (database first, index derived and checked) live in one place.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from simsearch.config import Settings
from simsearch.errors import DatabaseUnavailable
from simsearch.store import repo
from simsearch.store.db import Database

# A process that keeps an index open re-checks it against the database this often (seconds);
# in between it trusts the generation number that every index write bumps.
VERIFY_INTERVAL = 30.0


class Services:
    """``schema``: ``"check"`` (the default: refuse a missing or old schema with SchemaOutdated, as
    servers and workers must), ``"upgrade"`` (bring it up to date: the CLI on SQLite) or ``None``."""

    def __init__(self, settings: Settings, *, schema: str | None = "check", wait_for_database: bool = False):
        self.settings = settings
        settings.ensure_dirs()
        self.db = Database.from_settings(settings)
        self.schema_checked = schema != "check"
        try:
            if schema == "upgrade":
                self.db.upgrade()
            elif schema == "check":
                self.db.check_schema()
                self.schema_checked = True
        except DatabaseUnavailable:
            if not wait_for_database:
                self.db.dispose()
                raise
            # a server may start before its database: requests answer 503 until it is back
            # (:meth:`ensure_schema`), then the schema is checked once.
        except BaseException:
            self.db.dispose()
            raise
        self._indexes = None
        self._embedders: dict[str, object] = {}
        self._lock = threading.Lock()
        self._verified_at: dict[tuple[int, str], float] = {}

    def ensure_schema(self) -> None:
        """Check the schema if the database was down when this process started (cheap after)."""
        if not self.schema_checked:
            self.db.check_schema()
            self.schema_checked = True

    # ---- models -------------------------------------------------------------------------
    def embedder(self, space: str, *, weights: str | None = None):
        from simsearch.embed import Embedder

        with self._lock:
            emb = self._embedders.get(space)
            if emb is None or (weights and emb.weights != weights):
                emb = Embedder(space, self.settings.weights_dir, weights=weights)
                self._embedders[space] = emb
        return emb

    # ---- indexes ------------------------------------------------------------------------
    @property
    def indexes(self):
        if self._indexes is None:
            from simsearch.index.faiss_index import IndexCache

            self._indexes = IndexCache(self.settings.index_dir)
        return self._indexes

    def index(self, collection_id: int, space: str, *, verify: bool | None = None, state_generation=...):
        """The checked index of (collection, space): rebuilt from the database when needed.

        ``state_generation``: the generation in ``index_states`` that the caller has just read
        (``None``: no row), to save this method the query."""
        key = (collection_id, space)
        cached = self.indexes.cached(collection_id, space)
        if cached is not None and verify is not True:
            fresh = time.monotonic() - self._verified_at.get(key, 0.0) < VERIFY_INTERVAL
            if state_generation is ...:
                with self.db.session() as s:
                    state = repo.index_state(s, collection_id, space)
                state_generation = state.generation if state is not None else None
            if state_generation is not None and state_generation == cached.generation and (fresh or verify is False):
                return cached
        return self.sync_index(collection_id, space)

    def sync_index(self, collection_id: int, space: str, *, force_rebuild: bool = False):
        """Make the index agree with the database: reuse, extend with missing vectors, or rebuild."""
        from simsearch.index.faiss_index import LoadedIndex, build_index, index_ids, save_index

        cache = self.indexes
        with self.db.session() as s:
            db_ids = repo.vector_ids(s, collection_id, space)
            state = repo.index_state(s, collection_id, space)
        fp = repo.fingerprint(db_ids)
        generation = state.generation if state is not None else 0
        loaded = None if force_rebuild else cache.cached(collection_id, space)
        if loaded is not None and loaded.fingerprint != fp:
            loaded = None
        if loaded is None and not force_rebuild:
            loaded = cache.open_checked(collection_id, space, fp, generation)
            if loaded is None:
                loaded = self._extend_on_disk(collection_id, space, db_ids, fp)
        if loaded is None:
            with self.db.session() as s:
                ids, vectors = repo.load_vectors(s, collection_id, space)
            index = build_index(ids, vectors) if len(ids) else build_index(ids, np.zeros((0, 1), np.float32))
            save_index(index, cache.path_for(collection_id, space))
            loaded = LoadedIndex(index=index, fingerprint=repo.fingerprint(index_ids(index)), generation=generation, rebuilt=True)
        if state is None or state.fingerprint != loaded.fingerprint or loaded.rebuilt:
            with self.db.session() as s:
                new_state = repo.record_index_state(s, collection_id, space, loaded.ntotal, loaded.fingerprint)
                loaded.generation = new_state.generation
        cache.put(collection_id, space, loaded)
        self._verified_at[(collection_id, space)] = time.monotonic()
        return loaded

    def _extend_on_disk(self, collection_id: int, space: str, db_ids: np.ndarray, fp: str):
        """If the on-disk index holds a subset of the database's ids, add the missing vectors."""
        from simsearch.index.faiss_index import IndexCorrupt, LoadedIndex, index_ids, load_index, save_index

        path = self.indexes.path_for(collection_id, space)
        try:
            index = load_index(path)
        except IndexCorrupt:
            return None
        have = index_ids(index)
        missing = np.setdiff1d(db_ids, have)
        if len(np.setdiff1d(have, db_ids)) or not len(missing):
            return None
        with self.db.session() as s:
            ids, vectors = repo.load_vectors_for_ids(s, space, missing)
        if vectors.shape[1] != index.d:
            return None
        index.add_with_ids(vectors, ids)
        save_index(index, path)
        if repo.fingerprint(index_ids(index)) != fp:
            return None
        return LoadedIndex(index=index, fingerprint=fp, generation=0, rebuilt=True)

    def close(self) -> None:
        self.db.dispose()
