"""The analysis result cache: table ``analysis_results``.

One row per (collection, space, kind, parameters) holds the latest result computed for those
parameters: a JSON part (``info``) and optional numpy arrays (stored as compressed ``.npz`` bytes),
with the *fingerprint* of the inputs it was computed from (for most kinds the sha256 of the sorted
vector ids, see :func:`simsearch.store.repo.fingerprint`; kinds that also depend on the labels mix
them in). A read with another fingerprint is a miss, so a result is reused exactly while its
inputs are unchanged; a write replaces the row for the same parameters.

Functions take the :class:`~simsearch.store.db.Database` and open their own short transaction.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from simsearch.store.models import AnalysisResult


@dataclass(frozen=True)
class ResultKey:
    """Which result: ``kind`` and ``params`` name the computation, ``fingerprint`` its inputs."""

    collection_id: int
    space: str
    kind: str
    params: str
    fingerprint: str


@dataclass
class StoredResult:
    info: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def pack(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def unpack(data: bytes | None, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` blob (only ``names`` when given: the others are not decompressed)."""
    if not data:
        return {}
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        wanted = npz.files if names is None else [n for n in names if n in npz.files]
        return {k: npz[k] for k in wanted}


def _where(key: ResultKey):
    return (AnalysisResult.collection_id == key.collection_id, AnalysisResult.space == key.space,
            AnalysisResult.kind == key.kind, AnalysisResult.params_key == key.params)


def get(db, key: ResultKey, arrays: Iterable[str] | None = None) -> StoredResult | None:
    """The stored result for ``key`` if it was computed from the same inputs, else None.
    ``arrays``: the names of the arrays to read (default all)."""
    with db.session() as s:
        row = s.execute(select(AnalysisResult.fingerprint, AnalysisResult.result, AnalysisResult.arrays)
                        .where(*_where(key))).first()
    if row is None or row.fingerprint != key.fingerprint:
        return None
    return StoredResult(info=dict(row.result or {}), arrays=unpack(row.arrays, arrays))


def exists(db, key: ResultKey) -> bool:
    """Whether :func:`get` would hit, without reading the result."""
    with db.session() as s:
        fp = s.scalar(select(AnalysisResult.fingerprint).where(*_where(key)))
    return fp == key.fingerprint


def put(db, key: ResultKey, info: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
    """Store (replace) the result for ``key``'s parameters. When another process stores the same
    parameters at the same moment (the unique key refuses one of the two rows) its row is kept:
    both computed the same thing from the inputs they saw."""
    blob = pack(arrays) if arrays else None
    try:
        with db.session() as s:
            s.execute(delete(AnalysisResult).where(*_where(key)))
            s.add(AnalysisResult(collection_id=key.collection_id, space=key.space, kind=key.kind,
                                 params_key=key.params, fingerprint=key.fingerprint, result=info, arrays=blob))
    except IntegrityError:
        pass
