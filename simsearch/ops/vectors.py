"""A collection's stored vectors in one embedding space, as the analysis operations read them.

:func:`peek` is cheap (the ids and their fingerprint, no vectors): enough to tell whether a cached
result is still valid. :func:`load` reads the vectors too (N x D float32: hundreds of MB for a
large collection), so a caller that needs them for several results loads them once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from simsearch.store import repo
from simsearch.space_defaults import resolve_space
from simsearch.store.models import Image


@dataclass
class VectorSet:
    """The ok images of ``collection`` that have ``space`` vectors, by ascending id."""

    collection: str
    collection_id: int
    space: str
    ids: np.ndarray  # int64 (N,)
    fingerprint: str  # of the ids: repo.fingerprint
    x: np.ndarray | None = None  # float32 (N, D) once loaded

    def __len__(self) -> int:
        return int(len(self.ids))

    def labels(self, ctx) -> list[str | None]:
        """The images' labels, in the order of ``ids`` (read now: labels change without the vectors).
        One query over the collection (no IN lists), so it stays cheap enough for a request."""
        from sqlalchemy import select

        with ctx.db.session() as s:
            mapping = dict(s.execute(select(Image.id, Image.label).where(Image.collection_id == self.collection_id)).all())
        return [mapping.get(int(i)) for i in self.ids]


def _resolve(ctx, collection: str, space: str | None) -> tuple[int, str]:
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, collection).id
    return coll_id, resolve_space(ctx, coll_id, space)


def peek(ctx, collection: str, space: str | None) -> VectorSet:
    """Ids and fingerprint only. Raises NotFound for an unknown collection or a space without vectors."""
    coll_id, space = _resolve(ctx, collection, space)
    with ctx.db.session() as s:
        ids = repo.vector_ids(s, coll_id, space)
    return VectorSet(collection, coll_id, space, ids, repo.fingerprint(ids))


def load(ctx, collection: str, space: str | None, ids: np.ndarray | None = None) -> VectorSet:
    """Ids, fingerprint and vectors (read in one query, so they agree with each other). ``ids``:
    only those of the collection's ok images (a sample: what is read does not grow with the
    collection)."""
    coll_id, space = _resolve(ctx, collection, space)
    with ctx.db.session() as s:
        if ids is None:
            ids, x = repo.load_vectors(s, coll_id, space)
        else:
            ids, x = repo.load_vectors_for_ids(s, space, ids)
    return VectorSet(collection, coll_id, space, ids, repo.fingerprint(ids), x)


def labels_fingerprint(labels: list[str | None]) -> str:
    """Identifies a list of labels (in order): results scored against labels are keyed by it too."""
    h = hashlib.sha256()
    for lab in labels:
        data = b"" if lab is None else lab.encode("utf-8", "surrogatepass")
        h.update(b"\xff\xff\xff\xff" if lab is None else len(data).to_bytes(4, "little") + data)
    return h.hexdigest()


def combined_fingerprint(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode("ascii")).hexdigest()
