"""Derived spaces: a collection's spaces made from its backbone spaces without training a network.

A derived space (a ``derived_spaces`` row) records its *bases* (one backbone space, or several
concatenated: :func:`simsearch.analysis.transforms.concatenate`), a fitted linear transform
(PCA-whitening or a supervised projection, its arrays stored as npz bytes) and an optional
re-ranking (``qe``: alpha query expansion at query time; ``dba+qe``: the stored vectors are
database-side augmented too). Its vectors are ``embeddings`` rows under its name, and its index
is built from them as for any space.

Queries use the same path whichever way they come: a query's vector in a derived space is the
transform applied to its base vectors (:func:`vector_of_image` reads them from the database,
:func:`simsearch.search.vector_of_upload` embeds the image with each base backbone), then expanded
(:func:`expand_query`) when the recipe says so. The stored vector of an image is the same
transform (augmented, with DBA), so without DBA it equals the query vector.

Names: ``<base>.<candidate>``, e.g. ``efficientnet_lite0.discriminant`` or
``efficientnet_lite0.whiten-qe`` (:func:`simsearch.spaces.derived_name`): valid space names that are
no backbone's. Which space a collection uses by default: :mod:`simsearch.space_defaults`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import delete, select

from simsearch.errors import Conflict, InvalidInput, NotFound
from simsearch.store import repo
from simsearch.store.models import DerivedSpace, Embedding, Image, IndexState

from simsearch.spaces import derived_name, is_backbone_space
from simsearch.analysis.rerank import DUPLICATE, dba, expand
from simsearch.analysis.transforms import Linear, concatenate, normalise
from simsearch.store import bulk

__all__ = ["Derived", "base_vectors", "derived_name", "derived_vectors", "expand_query", "get", "list_derived",
           "names", "refresh", "refresh_for_bases", "remove", "save", "vector_of_image"]


@dataclass
class Derived:
    """A derived space as loaded: its recipe and fitted transform (None: none)."""

    collection_id: int
    name: str
    bases: list[str]
    recipe: dict
    linear: object | None  # simsearch.analysis.transforms.Linear
    report: dict | None = None

    @property
    def rerank(self) -> str:
        return self.recipe.get("rerank", "none")

    @property
    def qe(self) -> bool:
        return self.rerank in ("qe", "dba+qe")

    @property
    def dba(self) -> bool:
        return self.rerank == "dba+qe"

    def transform(self, parts: list[np.ndarray]) -> np.ndarray:
        """Base vectors (one (N, D_i) array per base, same rows) -> derived vectors (N, d), before DBA."""
        x = parts[0] if len(parts) == 1 else concatenate(parts)
        return normalise(x) if self.linear is None else self.linear.apply(x)

    def to_dict(self) -> dict:
        return {"name": self.name, "bases": self.bases, "recipe": self.recipe,
                "dim": self.linear.out_dim if self.linear is not None else None, "report": self.report}


def _loaded(row: DerivedSpace) -> Derived:
    return Derived(row.collection_id, row.name, list(row.bases), dict(row.recipe),
                   Linear.from_bytes(row.arrays) if row.arrays else None, row.report)


def get(ctx, collection_id: int, name: str) -> Derived | None:
    """The derived space ``name`` of the collection, or None when ``name`` is no derived space."""
    with ctx.db.session() as s:
        row = s.get(DerivedSpace, (collection_id, name))
        return _loaded(row) if row is not None else None


def names(ctx, collection_id: int) -> list[str]:
    with ctx.db.session() as s:
        return list(s.scalars(select(DerivedSpace.name).where(DerivedSpace.collection_id == collection_id)
                              .order_by(DerivedSpace.name)))


def list_derived(ctx, collection: str) -> list[dict]:
    """The collection's derived spaces: recipe, bases, dimension and how they were chosen."""
    with ctx.db.session() as s:
        coll = repo.get_collection(s, collection)
        rows = s.scalars(select(DerivedSpace).where(DerivedSpace.collection_id == coll.id)
                         .order_by(DerivedSpace.name)).all()
        default = coll.default_space
        return [{**_loaded(r).to_dict(), "default": r.name == default} for r in rows]


def base_vectors(ctx, collection_id: int, bases: list[str], ids: np.ndarray | None = None
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
    """(ids, one array per base) of the collection's ok images that have vectors in every base
    (``ids``: only these), rows in the order of the ids."""
    parts_ids, parts = [], []
    with ctx.db.session() as s:
        for base in bases:
            if ids is None:
                i, x = repo.load_vectors(s, collection_id, base)
            else:
                i, x = repo.load_vectors_for_ids(s, base, ids)
            parts_ids.append(i)
            parts.append(x)
    common = parts_ids[0]
    for i in parts_ids[1:]:
        common = np.intersect1d(common, i)
    out = []
    for i, x in zip(parts_ids, parts):
        out.append(x[np.searchsorted(i, common)] if len(common) else np.zeros((0, max(x.shape[1], 1)), np.float32))
    return common, out


def derived_vectors(ctx, d: Derived) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of every image with all base vectors, as stored: transformed, and with DBA
    augmented over the whole collection."""
    ids, parts = base_vectors(ctx, d.collection_id, d.bases)
    if len(ids) == 0:
        return ids, np.zeros((0, 0), np.float32)
    x = d.transform(parts)
    if d.dba and len(x) > 1:
        x = dba(x, d.recipe["k"], d.recipe["alpha"])
    return ids, x


def _write_vectors(ctx, collection_id: int, name: str, ids: np.ndarray, x: np.ndarray) -> None:
    now = datetime.now(timezone.utc)
    with ctx.db.session() as s:
        have = select(Image.id).where(Image.collection_id == collection_id)
        s.execute(delete(Embedding).where(Embedding.space == name, Embedding.image_id.in_(have)))
        if len(ids):
            bulk.write_vectors(s, bulk.prepare_vectors(ctx.db.dialect, ids, name, x, now), now)
        s.commit()


def save(ctx, collection_id: int, name: str, bases: list[str], recipe: dict, linear, report: dict | None) -> Derived:
    """Store (or replace) a derived space: its row, its vectors, and a rebuilt index."""
    if is_backbone_space(name):
        raise InvalidInput(f"{name!r} is a backbone's space: a derived space needs another name", field="name")
    with ctx.db.session() as s:
        if s.scalar(select(Embedding.image_id).join(Image).where(Image.collection_id == collection_id,
                                                                  Embedding.space == name).limit(1)) is not None \
                and s.get(DerivedSpace, (collection_id, name)) is None:
            raise Conflict(f"this collection has imported vectors named {name!r}; remove them first", field="name")
        row = s.get(DerivedSpace, (collection_id, name)) or DerivedSpace(collection_id=collection_id, name=name)
        row.bases, row.recipe, row.report = list(bases), dict(recipe), report
        row.arrays = linear.to_bytes() if linear is not None else None
        row.created_at = datetime.now(timezone.utc)
        s.add(row)
        s.commit()
    d = Derived(collection_id, name, list(bases), dict(recipe), linear, report)
    refresh(ctx, d)
    return d


def refresh(ctx, d: Derived) -> int:
    """Recompute and store the derived space's vectors from its bases (after new images came in:
    the transform stays as fitted), and rebuild its index. Returns the vectors written."""
    ids, x = derived_vectors(ctx, d)
    _write_vectors(ctx, d.collection_id, d.name, ids, x)
    ctx.sync_index(d.collection_id, d.name, force_rebuild=True)
    return int(len(ids))


def refresh_for_bases(ctx, collection_id: int, spaces: list[str]) -> list[str]:
    """Refresh the collection's derived spaces made from any of ``spaces`` (after an ingest added
    vectors to them: the derived vectors follow, with the transforms as fitted)."""
    done = []
    for name in names(ctx, collection_id):
        d = get(ctx, collection_id, name)
        if d is not None and set(d.bases) & set(spaces):
            refresh(ctx, d)
            done.append(name)
    return done


def remove(ctx, collection: str, name: str) -> dict:
    """Delete a derived space: its row, its vectors and its index (its bases are untouched); the
    collection's default goes back to the settings' when it was this space."""
    import shutil

    with ctx.db.session() as s:
        coll = repo.get_collection(s, collection)
        row = s.get(DerivedSpace, (coll.id, name))
        if row is None:
            have = ", ".join(names(ctx, coll.id)) or "none"
            raise NotFound(f"no derived space {name!r} in collection {collection!r} (it has: {have})", field="space")
        # the row first, counting: of parallel removals one removes it, the others are 404
        gone = delete(DerivedSpace).where(DerivedSpace.collection_id == coll.id, DerivedSpace.name == name)
        if s.execute(gone.execution_options(synchronize_session=False)).rowcount != 1:
            raise NotFound(f"no derived space {name!r} in collection {collection!r} (removed meanwhile)", field="space")
        s.expunge(row)
        have = select(Image.id).where(Image.collection_id == coll.id)
        n = s.execute(delete(Embedding).where(Embedding.space == name, Embedding.image_id.in_(have))).rowcount
        s.execute(delete(IndexState).where(IndexState.collection_id == coll.id, IndexState.space == name))
        was_default = coll.default_space == name
        if was_default:
            coll.default_space = None
        coll_id = coll.id
        s.commit()
    ctx.indexes.forget(coll_id, name)
    path = ctx.indexes.path_for(coll_id, name)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
    return {"collection": collection, "space": name, "vectors_deleted": int(n or 0), "was_default": was_default}


# ---- queries ------------------------------------------------------------------------------------


def vector_of_image(ctx, d: Derived, image_id: int) -> np.ndarray | None:
    """The query vector of an ingested image: the transform of its stored base vectors (None when
    it lacks one)."""
    ids, parts = base_vectors(ctx, d.collection_id, d.bases, np.asarray([image_id], np.int64))
    if len(ids) == 0:
        return None
    return d.transform(parts)[0]


def expand_query(ctx, d: Derived, index, query: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """Alpha query expansion of ``query`` against the derived space's stored vectors (the index
    finds the neighbours; their vectors come from the database): its ``k`` nearest, leaving out
    the query's own image (cosine >= the duplicate threshold), whatever way the query came."""
    k = int(d.recipe["k"])
    scores, ids = index.search(query, k + 2, allowed_ids=allowed)
    pairs = [(int(i), float(sc)) for i, sc in zip(ids[0], scores[0]) if i >= 0 and sc < DUPLICATE][:k]
    if not pairs:
        return query
    with ctx.db.session() as s:
        got, x = repo.load_vectors_for_ids(s, d.name, np.asarray([i for i, _ in pairs], np.int64))
    by_id = {int(i): row for i, row in zip(got, x)}
    keep = [(by_id[i], sc) for i, sc in pairs if i in by_id]
    if not keep:
        return query
    # cosines recomputed from the stored vectors, so both query paths weigh the same numbers
    neigh = np.stack([row for row, _ in keep])
    return expand(query, neigh, neigh @ query, float(d.recipe["alpha"]))
