"""What made a space's vectors: fingerprints, so that two models' vectors are never mixed.

A *fingerprint* says which model computed a collection's vectors of one space:

    {"model": "efficientnet_lite0", "weights_sha256": "9f1c...", "pooling": "avg", "views": [],
     "precision": "fp32", "dim": 1280, "space": "efficientnet_lite0"}

It is recorded (``space_fingerprints``, one row per collection and space) when an ingest first
embeds the space (:func:`record_embedders`), when vectors are imported with one (an export writes
it into the ``.npz``), or, for vectors stored before fingerprints existed, from the model the
server has when it first checks (origin ``assumed``). Then:

- an ingest whose model differs from the recorded one is refused before anything is embedded
  (:func:`check_embedders`): new images would land in the same space as vectors of another model;
- a search by an uploaded image is refused when the server's model for the space is not the one
  that made its vectors (:func:`check_query`): the query vector and the stored ones would come
  from two models, and their cosines mean nothing;
- an import whose file names another model than the space's is refused, and a file of a model
  this server does not run goes to a space named for it (:func:`foreign_name`).

Two fingerprints *differ* when any of model, pooling, views, precision or dimension differ, or
when both name a weights digest (or, for int8, a calibration sample's digest) and the digests
differ (a weights file not yet downloaded has no digest yet: the rest is still compared). The
runtime (Keras, ONNX Runtime, OpenVINO) is not part of it: converted models are checked against Keras's output when they are made.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from simsearch.digest import file_sha256
from simsearch.embedding.runtimes import calibration
from simsearch.embedding.runtimes.openvino_rt import int8_activations
from simsearch.errors import Conflict
from simsearch.spaces import imported_name, is_backbone_space
from simsearch.store.models import SpaceFingerprint
from simsearch.store.models import Collection

KEYS = ("model", "pooling", "views", "precision", "dim", "int8_activations")
DIGESTS = ("weights_sha256", "calibration_sha256")  # compared where both fingerprints name one
INTERNAL = "variant"  # origin of the spaces `simsearch tune` embedded to try (kept as a chosen space's base)


def of_embedder(emb) -> dict:
    """The fingerprint of what ``emb`` (a :class:`simsearch.embedding.embedder.Embedder`) computes."""
    spec = emb.spec
    path = emb.backbone.weights_file(emb.weights_dir, emb.weights)
    sha = file_sha256(path) if path is not None and Path(path).is_file() else None
    fp = {"model": spec.backbone, "weights_sha256": sha, "pooling": spec.pooling, "views": list(spec.views),
          "precision": spec.precision, "dim": int(emb.dim), "space": spec.key}
    if spec.precision == "int8":  # the quantized model depends on the photos it was calibrated on
        fp["calibration_sha256"] = calibration.digest(emb.calibration)
        fp["int8_activations"] = int8_activations()
    return fp


def of_space(ctx, space: str, weights: str | None = None) -> dict:
    """The fingerprint of the model this server embeds ``space`` (a backbone's space) with."""
    return of_embedder(ctx.embedder(space, weights=weights))


def describe(fp: dict | None) -> str:
    """``efficientnet_lite0 (avg pooling, fp32, 1280-d, weights 9f1c2a3b)``, or what is known."""
    if not fp:
        return "an unknown model"
    parts = [f"{fp['pooling']} pooling" if fp.get("pooling") else None,
             "+".join(fp["views"]) + " views" if fp.get("views") else None, fp.get("precision"),
             f"{fp['dim']}-d" if fp.get("dim") else None,
             f"weights {fp['weights_sha256'][:8]}" if fp.get("weights_sha256") else None]
    inner = ", ".join(p for p in parts if p)
    return f"{fp.get('model') or 'an unnamed model'}" + (f" ({inner})" if inner else "")


def differs(a: dict | None, b: dict | None) -> bool:
    """Whether two fingerprints name different models (see the module's rules); False when either
    is unknown or names no model (nothing to compare)."""
    if not a or not b or not a.get("model") or not b.get("model"):
        return False
    for key in KEYS:
        if key in a and key in b and _norm(a[key]) != _norm(b[key]):
            return True
    return any(a.get(key) and b.get(key) and a[key] != b[key] for key in DIGESTS)


def _norm(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def foreign_name(fp: dict) -> str:
    """The space for vectors of a model this server does not run: named for the model and its
    weights, e.g. ``efficientnet_lite0.w-9f1c2a3b`` (:func:`simsearch.spaces.imported_name`)."""
    return imported_name(fp.get("space") or fp.get("model"), fp.get("weights_sha256"))


# ---- the records --------------------------------------------------------------------------------


def recorded(ctx, collection_id: int, space: str) -> tuple[dict, str] | None:
    """(fingerprint, origin) recorded for the collection's space, or None."""
    with ctx.db.session() as s:
        row = s.get(SpaceFingerprint, (collection_id, space))
        return (dict(row.fingerprint), row.origin) if row is not None else None


def record(ctx, collection_id: int, space: str, fp: dict, origin: str, *, replace: bool = False) -> None:
    """Record what made the space's vectors (the first record stays, unless ``replace``)."""
    with ctx.db.session() as s:
        row = s.get(SpaceFingerprint, (collection_id, space))
        if row is not None and not replace:
            return
        row = row or SpaceFingerprint(collection_id=collection_id, space=space)
        row.fingerprint, row.origin, row.created_at = dict(fp), origin, datetime.now(timezone.utc)
        s.add(row)
        try:
            s.commit()
        except IntegrityError:  # recorded at the same moment by another process: the first stays
            s.rollback()


def set_origin(ctx, collection_id: int, spaces: list[str], origin: str) -> None:
    with ctx.db.session() as s:
        for row in s.scalars(select(SpaceFingerprint).where(SpaceFingerprint.collection_id == collection_id,
                                                            SpaceFingerprint.space.in_(list(spaces)))):
            row.origin = origin
        s.commit()


def forget(ctx, collection_id: int, spaces: list[str]) -> None:
    """Drop the records of spaces whose vectors were removed."""
    if not spaces:
        return
    with ctx.db.session() as s:
        s.execute(delete(SpaceFingerprint).where(SpaceFingerprint.collection_id == collection_id,
                                                 SpaceFingerprint.space.in_(list(spaces))))
        s.commit()


def all_of(ctx, collection_id: int) -> dict[str, tuple[dict, str]]:
    """space -> (fingerprint, origin) for every recorded space of the collection."""
    with ctx.db.session() as s:
        rows = s.execute(select(SpaceFingerprint.space, SpaceFingerprint.fingerprint, SpaceFingerprint.origin)
                         .where(SpaceFingerprint.collection_id == collection_id)).all()
    return {sp: (dict(fp), origin) for sp, fp, origin in rows}


def internal_spaces(ctx, collection_id: int) -> set[str]:
    """Spaces `simsearch tune` embedded to try (internal: kept only as a derived space's base)."""
    return {sp for sp, (_, origin) in all_of(ctx, collection_id).items() if origin == INTERNAL}


def ensure(ctx, collection_id: int, space: str) -> dict | None:
    """The space's fingerprint; a backbone space stored before fingerprints existed gets the
    server's current model, recorded as ``assumed``. None for imported vectors without one."""
    have = recorded(ctx, collection_id, space)
    if have is not None:
        return have[0]
    if not is_backbone_space(space):
        return None
    fp = of_space(ctx, space)
    record(ctx, collection_id, space, fp, "assumed")
    return fp


# ---- the checks ---------------------------------------------------------------------------------


def check_embedders(ctx, collection: str, embedders: dict) -> None:
    """Before an ingest embeds anything: refuse a space whose recorded model is not the one the
    ingest would use (the new vectors would be another model's, under the same name)."""
    with ctx.db.session() as s:
        coll_id = s.scalar(select(Collection.id).where(Collection.name == collection))
    if coll_id is None:
        return
    have = all_of(ctx, coll_id)
    for space, emb in embedders.items():
        if space in have:
            now = of_embedder(emb)
            if differs(have[space][0], now):
                raise Conflict(f"{collection}'s {space} vectors were made by {describe(have[space][0])}; this ingest "
                               f"would embed with {describe(now)}: one space cannot hold two models' vectors "
                               "(re-embed the collection, or use the weights it was made with)", field="backbone")


def record_embedders(ctx, collection_id: int, embedders: dict) -> None:
    """After an ingest: record the model of each space that had no record yet."""
    have = all_of(ctx, collection_id)
    for space, emb in embedders.items():
        if space not in have:
            record(ctx, collection_id, space, of_embedder(emb), "embedded")


def check_query(ctx, collection_id: int, space: str) -> None:
    """Before an uploaded image is embedded to search ``space`` (a backbone's): refuse when the
    server's model for it is not the one that made the collection's vectors."""
    have = ensure(ctx, collection_id, space)
    now = of_space(ctx, space)
    if differs(have, now):
        raise Conflict(f"search by image refused: the {space} vectors were made by {describe(have)}, this server "
                       f"embeds with {describe(now)}; search by an image's id, or re-embed the collection",
                       field="backbone")
