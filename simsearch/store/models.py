"""SQLAlchemy 2 models. The database is the source of truth for every vector.

Tables:
- ``collections``: a named set of images.
- ``images``: one row per distinct file content within a collection (``content_hash`` unique per
  collection); ``status`` is ``ok`` or ``failed`` (then ``error`` says why). ``source_path`` is its
  first file's path, ``file_count`` how many files (paths) have its bytes.
- ``image_files``: every file that resolved to an image (many files -> one image per collection):
  the path as given to ingest, its size and modification time, the run that saw it; unique per
  (image, path). Byte-identical copies are the images with ``file_count > 1``.
- ``thumbnails``: JPEG thumbnails keyed by content hash (shared across collections).
- ``embeddings``: one float32 vector per (image, space). A *space* is a backbone with its pooling,
  e.g. ``efficientnet_lite0`` or ``efficientnet_lite0@max``.
- ``index_states``: the generation and fingerprint of each (collection, space) FAISS index, and
  what the index policy chose and measured: its kind, tuned parameters, recall@10 on sampled
  queries, memory and build time; the ids of deleted vectors it still holds, masked in searches
  until compaction (see :mod:`simsearch.index.policy`).
- ``ingest_runs``: one row per job: an ingest (CLI or web; ``kind`` 'ingest') with its counters
  and status, or a background analysis (``kind`` 'clusters', 'map', 'evaluation' or 'comparison',
  its parameters in ``params``; ``processed``/``total`` count its steps).
- ``derived_spaces``: a collection's spaces derived from its backbone spaces (concatenation,
  a learned linear transform, re-ranking at query time; see :mod:`simsearch.ops.derived`): the
  recipe, the fitted arrays and the scores that chose it. Their vectors are ``embeddings`` rows
  under the derived space's name. ``collections.default_space``: the space searches and
  analyses use when none is named (set by ``simsearch tune --set-default``).
- ``analysis_results``: cached cluster runs and projections keyed by parameters and the
  fingerprint of the vectors they were computed from.
- ``image_hashes``: perceptual hashes of each image's picture, for the near-duplicate finder.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def max_id(dialect: str) -> int:
    """The largest id an ``Integer`` primary key can hold on ``dialect``: 32-bit ``integer`` on
    PostgreSQL, 64-bit ``INTEGER`` on SQLite. Larger ids cannot exist, and passing one to the
    driver fails (``NumericValueOutOfRange`` / ``OverflowError``) instead of finding nothing."""
    return 2**31 - 1 if dialect == "postgresql" else 2**63 - 1


class Base(DeclarativeBase):
    pass


class Collection(Base):
    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    default_space: Mapped[str | None] = mapped_column(String(100))  # None: the settings' default backbone

    images: Mapped[list["Image"]] = relationship(back_populates="collection", cascade="all, delete-orphan", passive_deletes=True)


class Thumbnail(Base):
    __tablename__ = "thumbnails"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    mime_type: Mapped[str] = mapped_column(String(40), default="image/jpeg", nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("collection_id", "content_hash", name="uq_images_collection_hash"),
        # with status: a label filter's ids come from the index alone (SQLite took the status index
        # and read every row of the collection: 15 ms per filtered search at 100k images)
        Index("ix_images_collection_label_status", "collection_id", "label", "status"),
        Index("ix_images_collection_status", "collection_id", "status"),
        # the images with byte-identical copies (a few, even among a million): the exact tier's files
        Index("ix_images_collection_copies", "collection_id", "id", postgresql_where=text("file_count > 1"),
              sqlite_where=text("file_count > 1")),
        # the images a run stored: a job's images when one of its shards ran twice (jobs.shards.progress)
        Index("ix_images_ingest_run", "ingest_run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), nullable=False)
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    source_path: Mapped[str] = mapped_column(Text, nullable=False)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    label: Mapped[str | None] = mapped_column(String(200))
    meta: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="ok", nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    thumbnail_hash: Mapped[str | None] = mapped_column(ForeignKey("thumbnails.content_hash", ondelete="SET NULL"))
    ingest_run_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    # how many image_files rows it has (kept by the writes that add or drop them: lists read it, never count)
    file_count: Mapped[int] = mapped_column(Integer, default=1, server_default="1", nullable=False)

    collection: Mapped[Collection] = relationship(back_populates="images")
    embeddings: Mapped[list["Embedding"]] = relationship(back_populates="image", cascade="all, delete-orphan", passive_deletes=True)
    files: Mapped[list["ImageFile"]] = relationship(back_populates="image", cascade="all, delete-orphan", passive_deletes=True,
                                                    order_by="ImageFile.id")


class ImageFile(Base):
    """A file whose bytes are an image's: its path as ingest was given it (an upload: where it was
    staged, shown as the uploaded name), size in bytes and modification time when it was read."""

    __tablename__ = "image_files"
    __table_args__ = (UniqueConstraint("image_id", "path", name="uq_image_files_image_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ingest_run_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)

    image: Mapped[Image] = relationship(back_populates="files")


class Embedding(Base):
    __tablename__ = "embeddings"
    __table_args__ = (Index("ix_embeddings_space", "space"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    space: Mapped[str] = mapped_column(String(100), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    vector: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # float32 little-endian, L2-normalised
    seconds: Mapped[float | None] = mapped_column(Float)  # model time per image when it was embedded
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)

    image: Mapped[Image] = relationship(back_populates="embeddings")


class IndexState(Base):
    __tablename__ = "index_states"

    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True)
    space: Mapped[str] = mapped_column(String(100), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    vector_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), default="", nullable=False)
    built_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the index policy's choice and measurements (simsearch.index.policy); null before migration 0005's first build
    kind: Mapped[str | None] = mapped_column(String(32))  # flat | ivf_sq8 | hnsw_sq8 | ivf_pq_refine
    params: Mapped[dict | None] = mapped_column(JSON)  # tuned search parameters, e.g. {"nprobe": 48}
    recall: Mapped[float | None] = mapped_column(Float)  # recall@10 on sampled stored vectors at that setting
    memory_bytes: Mapped[int | None] = mapped_column(BigInteger)  # the index's size (serialised = in memory)
    build_seconds: Mapped[float | None] = mapped_column(Float)  # the last full build, tuning included
    checked_count: Mapped[int | None] = mapped_column(Integer)  # vectors when the recall was last measured
    masked: Mapped[bytes | None] = mapped_column(LargeBinary)  # int64 ids of deleted vectors still in the index


class IngestRun(Base):
    __tablename__ = "ingest_runs"
    __table_args__ = (Index("ix_ingest_runs_kind_status", "kind", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="ingest", server_default="ingest", nullable=False)
    params: Mapped[dict | None] = mapped_column(JSON)  # analysis jobs: what to compute (AnalysisTask.params)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    spaces: Mapped[list] = mapped_column(JSON, default=list, nullable=False)
    # queued|running|done|failed, or interrupted (a CLI ingest whose process stopped mid-way)
    status: Mapped[str] = mapped_column(String(16), default="queued", nullable=False)
    total: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    processed: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    added: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    skipped: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # files whose bytes an image of the collection already had under another path (kept as its paths)
    duplicates: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    failed: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    errors: Mapped[list] = mapped_column(JSON, default=list, nullable=False)  # [{"file":..., "reason":...}]
    message: Mapped[str | None] = mapped_column(Text)
    # Who runs it: "thread:<host>:<pid>:<token>" (an in-process runner), "cli:<host>:<pid>:<token>"
    # (a `simsearch ingest` command) or "rq:<RQ job id>" (a worker; see simsearch.jobs.runners)
    owner: Mapped[str | None] = mapped_column(String(200))
    # A shard of a large queued ingest (kind "shard"): its parent job; params {"start", "stop"}
    # index the parent's manifest (see simsearch.jobs.shards)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_runs.id", ondelete="CASCADE"), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    # Who asked for it through the API ("key:<digest>" or "addr:<address>"), for the cap on each
    # client's unfinished jobs (simsearch.web.ratelimit); None: the CLI, or made by another job
    requested_by: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class AnalysisResult(Base):
    __tablename__ = "analysis_results"
    __table_args__ = (UniqueConstraint("collection_id", "space", "kind", "params_key", name="uq_analysis_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), nullable=False)
    space: Mapped[str] = mapped_column(String(100), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)  # "clusters" | "map" | "evaluation"
    params_key: Mapped[str] = mapped_column(String(200), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)  # of the vectors used
    result: Mapped[dict] = mapped_column(JSON, nullable=False)
    arrays: Mapped[bytes | None] = mapped_column(LargeBinary)  # npz bytes (coordinates, labels)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class DerivedSpace(Base):
    __tablename__ = "derived_spaces"

    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    bases: Mapped[list] = mapped_column(JSON, nullable=False)  # the spaces its vectors are made from, in order
    recipe: Mapped[dict] = mapped_column(JSON, nullable=False)  # transform, rerank and their parameters
    arrays: Mapped[bytes | None] = mapped_column(LargeBinary)  # the fitted transform (npz: mean, matrix)
    report: Mapped[dict | None] = mapped_column(JSON)  # how it was chosen: fitted on, CV scores
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class ImageHashes(Base):
    """Perceptual hashes of an image's picture (:mod:`simsearch.images.phash`), stored at ingest:
    the near-duplicate finder's check of its candidate pairs. ``method`` names what ``hashes``
    holds (little-endian uint64s); a row of another method is stale and computed again."""

    __tablename__ = "image_hashes"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    method: Mapped[str] = mapped_column(String(100), nullable=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class ImageFeatures(Base):
    """Local features of an image's picture (:mod:`simsearch.images.local_features`, serialised):
    the geometric verification of search results. ``method`` names how they were extracted; a
    row of another method is stale and extracted again. A row of method ``unreadable:METHOD``
    (empty ``features``) records that a features pass could not read the image's original
    (:func:`simsearch.store.features.record_unreadable`)."""

    __tablename__ = "image_features"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    method: Mapped[str] = mapped_column(String(100), nullable=False)
    features: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class SpaceFingerprint(Base):
    """What made a collection's vectors of one space (:mod:`simsearch.provenance`): the model
    (backbone, weights SHA-256, pooling, views, precision, dimension) or, for vectors made
    elsewhere, what their file said; and how the space came to be (``origin``)."""

    __tablename__ = "space_fingerprints"

    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True)
    space: Mapped[str] = mapped_column(String(100), primary_key=True)
    fingerprint: Mapped[dict] = mapped_column(JSON, nullable=False)
    # embedded (ingest, compare) | assumed (vectors from before fingerprints) | imported | variant (tune's, internal)
    origin: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
