"""The application context: what one process keeps for its whole life.

:class:`AppContext` holds the settings, the database, the index manager (open FAISS indexes and
the policy that keeps them in step with the database) and the local weights files chosen for
its spaces; the models themselves are in the process's one model cache (:mod:`simsearch.embedding`).
The CLI, the web app and the RQ worker each open one and pass it explicitly to the operations
(:mod:`simsearch.ops`), searches, ingests and jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simsearch import spaces
from simsearch.config import Settings
from simsearch.embedding.embedder import Embedder
from simsearch.errors import DatabaseRefused, DatabaseUnavailable
from simsearch.index.build_jobs import recorder
from simsearch.index.descriptors import DescriptorIndexes
from simsearch.index.manager import IndexManager
from simsearch.index.policy import IndexPolicy
from simsearch.owners import this_process
from simsearch.store.db import Database


@dataclass
class AppContext:
    settings: Settings
    db: Database
    indexes: IndexManager
    # space -> the local weights file its embedder uses (``--weights``): once chosen, the space's
    # later embedders (a search, a fingerprint) use the same model
    weights: dict[str, str] = field(default_factory=dict, repr=False)

    schema_checked: bool = True
    # the collections' descriptor indexes (candidates by local features), made on first use
    descriptors: DescriptorIndexes | None = field(default=None, repr=False)

    @classmethod
    def open(cls, settings: Settings, *, schema: str | None = "check", wait_for_database: bool = False) -> "AppContext":
        """Create the data folders, open the database and make an empty index cache.

        ``schema``: ``"check"`` (the default: refuse a missing or old schema with SchemaOutdated,
        as servers and workers must), ``"upgrade"`` (bring it up to date: the CLI on SQLite) or
        None. ``wait_for_database``: when the database is down, open anyway (a server starting
        before its database) and check the schema when it answers (:meth:`ensure_schema`)."""
        settings.ensure_dirs()
        db = Database.from_settings(settings)
        checked = schema != "check"
        try:
            if schema == "upgrade":
                db.upgrade()
            elif schema == "check":
                db.check_schema()
                checked = True
        except DatabaseUnavailable as exc:
            if not wait_for_database or isinstance(exc, DatabaseRefused):  # waiting cannot fix a wrong URL
                db.dispose()
                raise
        except BaseException:
            db.dispose()
            raise
        indexes = IndexManager(db, settings.index_dir, IndexPolicy.from_settings(settings), mmap=settings.index_mmap)
        indexes.build_jobs = recorder(db, this_process())
        return cls(settings=settings, db=db, indexes=indexes, schema_checked=checked)

    def ensure_schema(self) -> None:
        """Check the schema if the database was down when this process started (cheap after)."""
        if not self.schema_checked:
            self.db.check_schema()
            self.schema_checked = True

    # Shorthands used by search, ingest and analysis.
    def embedder(self, space: str, *, weights: str | None = None) -> Embedder:
        """The embedder of ``space`` on these settings' runtime and device (cheap: its model is
        opened once per process, in :data:`simsearch.embedding.MODELS`). ``weights``: a local
        weights file, used for this space from now on."""
        if weights:
            self.weights[space] = weights
        return Embedder(spaces.to_embed(space), self.settings.weights_dir, weights=self.weights.get(space),
                        runtime=self.settings.runtime, device=self.settings.device,
                        calibration=self.settings.int8_calibration)

    def new_space(self, backbone: str, pooling: str = "avg", precision: str | None = None) -> str:
        """The space new vectors of ``backbone`` go to under these settings (``precision`` auto:
        ``+bf16`` where this CPU computes bf16 natively and the runtime uses it, else fp32)."""
        return spaces.new_space(self.settings, backbone, pooling, precision)

    def index(self, collection_id: int, space: str, *, verify: bool | None = None, state_generation=...):
        return self.indexes.get(collection_id, space, verify=verify, state_generation=state_generation)

    def sync_index(self, collection_id: int, space: str, *, force_rebuild: bool = False):
        return self.indexes.sync(collection_id, space, force_rebuild=force_rebuild)

    def descriptor_index(self, collection_id: int):
        """The collection's index of stored local descriptors (:mod:`simsearch.index.descriptors`),
        None when none of its images has stored features."""
        if self.descriptors is None:
            self.descriptors = DescriptorIndexes(self.db, self.settings.index_dir)
        return self.descriptors.get(collection_id)

    def descriptor_coverage(self, collection_id: int) -> float:
        """The share of the collection's images with stored local features (what ``local``'s
        default of a search by upload follows: :func:`simsearch.ops.verify.local_default`)."""
        if self.descriptors is None:
            self.descriptors = DescriptorIndexes(self.db, self.settings.index_dir)
        return self.descriptors.coverage(collection_id)

    def close(self) -> None:
        """Finish background index updates and close the database connections."""
        self.indexes.shutdown(wait=True)
        self.db.dispose()
