"""Rows and vectors written straight into a store (no model), and a database put at a revision."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPACE = "efficientnet_lite0"
DIM = 32


def add_images(db, name="c", n=5, dim=8, space="efficientnet_lite0", seed=0, label=None):
    """``n`` images with random unit vectors in collection ``name``: (collection id, image ids, vectors)."""
    from simsearch.store import repo
    from simsearch.store.models import Embedding, Image

    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with db.session() as s:
        coll = repo.get_or_create_collection(s, name)
        ids = []
        for i in range(n):
            img = Image(collection_id=coll.id, content_hash=f"{name}-{seed}-{i:04d}", source_path=f"/x/{i}.jpg",
                        label=label or ("a" if i % 2 else "b"), meta={"i": i})
            s.add(img)
            s.flush()
            s.add(Embedding(image_id=img.id, space=space, dim=dim, vector=repo.vector_to_bytes(vecs[i])))
            ids.append(img.id)
        return coll.id, np.asarray(ids), vecs


def clustered(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    """Vectors around 40 centres (neighbours mean something), L2-normalised."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((40, dim))
    x = centres[rng.integers(0, 40, n)] + 0.45 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def insert_vectors(db, vectors: np.ndarray, labels=None, name: str = "c", first: int = 0) -> tuple[int, np.ndarray]:
    """Bulk-insert images with these vectors; (collection id, image ids)."""
    from sqlalchemy import insert

    from simsearch.store import repo
    from simsearch.store.models import Embedding, Image, utcnow

    with db.session() as s:
        coll_id = repo.get_or_create_collection(s, name).id
    n = len(vectors)
    labels = labels if labels is not None else ["a"] * n
    with db.session() as s:
        s.execute(insert(Image), [{"collection_id": coll_id, "content_hash": f"h{first + i:08d}", "source_path": f"/x/{first + i}.jpg",
                                   "label": labels[i], "meta": {}, "status": "ok", "created_at": utcnow()} for i in range(n)])
    with db.session() as s:
        ids = np.asarray(sorted(s.scalars(Image.__table__.select().with_only_columns(Image.id)
                                          .where(Image.collection_id == coll_id, Image.content_hash >= f"h{first:08d}",
                                                 Image.content_hash < f"h{first + n:08d}")).all()), np.int64)
        s.execute(insert(Embedding), [{"image_id": int(i), "space": SPACE, "dim": vectors.shape[1],
                                       "vector": repo.vector_to_bytes(v)} for i, v in zip(ids, vectors)])
    return coll_id, ids


def at_revision(url: str, revision: str | None) -> None:
    """Put the database at ``revision`` (None: leave it empty)."""
    if revision is None:
        return
    from alembic import command

    from simsearch.store.db import Database, _alembic_config

    db = Database(url)
    cfg = _alembic_config(db.engine)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    db.dispose()


def ingest(ctx, root: Path, collection="pets", **kw):
    """Ingest the images under ``root`` (labelled by folder unless told) into ``collection``; the report."""
    from simsearch.ingest import Ingester, files_from_folder

    files, ignored = files_from_folder(root, labels=kw.pop("labels", "folders"), metadata_csv=kw.pop("metadata_csv", None))
    return Ingester(ctx, spaces=kw.pop("spaces", [SPACE]), batch_size=kw.pop("batch_size", 8), **kw).run(
        collection, files, source=str(root), ignored=ignored)


def delete_images(db, ids) -> None:
    from sqlalchemy import delete

    from simsearch.store.models import Image

    with db.session() as s:
        s.execute(delete(Image).where(Image.id.in_([int(i) for i in ids])))


def state_of(ctx, coll_id, space: str = SPACE):
    """The collection's index state row for ``space`` (detached from its session)."""
    from simsearch.store import repo

    with ctx.db.session() as s:
        st = repo.index_state(s, coll_id, space)
        s.expunge(st)
        return st
