"""Which space imported vectors go to, from the fingerprint their file carries (:mod:`simsearch.provenance`).

An export writes the space's fingerprint into the ``.npz`` (member ``fingerprint``: one JSON
string). On import:

- into a backbone's space, the file's model must be the one this server embeds that space with
  (and the one that made the collection's vectors there): vectors of another model with the same
  dimension would be searched as if that backbone made them. A file that names no model is
  refused there too, unless the caller vouches for it (``same_model``: ``--same-model``);
- into any other name, a file whose model differs from the one already recorded for that name is
  refused (one name, one model);
- with no space named, the file's own: its backbone's space when this server runs that model,
  else a space named for the model and its weights (:func:`simsearch.provenance.foreign_name`).
"""

from __future__ import annotations

from pathlib import PurePath

from sqlalchemy import select

from simsearch import provenance
from simsearch.errors import Conflict, InvalidInput
from simsearch.spaces import check_space_name, is_backbone_space
from simsearch.store.models import Collection


def _collection_id(ctx, collection: str) -> int | None:
    with ctx.db.session() as s:
        return s.scalar(select(Collection.id).where(Collection.name == collection))


def _own_name(name: str) -> str:
    stem = PurePath(str(name)).stem or "imported"
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in stem).strip("._-")[:80] or "imported"


def own_space(ctx, fp: dict) -> str:
    """The space a fingerprinted file's vectors belong to here: its backbone's space when this
    server embeds that space with the same model, else one named for the model."""
    own = fp.get("space")
    if isinstance(own, str) and is_backbone_space(own) and not provenance.differs(fp, provenance.of_space(ctx, own)):
        return own
    return provenance.foreign_name(fp)


def target(ctx, collection: str, space: str | None, fp: dict | None, name: str, dim: int, *,
           same_model: bool = False) -> tuple[str, dict | None]:
    """(the space to import into, the fingerprint to record for it, None: none known)."""
    if space is None:
        if fp is None:
            raise InvalidInput(f"{name} does not say which model made its vectors (it has no 'fingerprint' array): "
                               "name the space to import them into", field="space")
        space = own_space(ctx, fp)
    is_backbone = check_space_name(space)
    coll_id = _collection_id(ctx, collection)
    have = provenance.recorded(ctx, coll_id, space) if coll_id is not None else None
    if is_backbone:
        expected = have[0] if have is not None else provenance.of_space(ctx, space)
        if fp is None:
            if dim != expected.get("dim"):
                return space, None  # the dimension check names the mix-up more plainly
            if not same_model:
                raise InvalidInput(f"{name} does not say which model made its vectors; {space} is a backbone's space, "
                                   f"where another model's vectors of the same size would be searched as {space}'s: "
                                   f"import them under their own name (e.g. {_own_name(name)}), or vouch that "
                                   f"{provenance.describe(expected)} made them (--same-model)", field="space")
            return space, expected
        if provenance.differs(fp, expected):
            raise Conflict(f"{name} holds vectors of {provenance.describe(fp)}, not of {provenance.describe(expected)} "
                           f"as {space}'s are: import them under their own name ({own_space(ctx, fp)})",
                           field="space")
        return space, fp
    if fp is not None and have is not None and provenance.differs(fp, have[0]):
        raise Conflict(f"{name} holds vectors of {provenance.describe(fp)}, but this collection's {space} vectors are "
                       f"of {provenance.describe(have[0])}: import them under their own name "
                       f"({provenance.foreign_name(fp)})", field="space")
    return space, fp


def record(ctx, collection_id: int, space: str, fp: dict | None) -> None:
    if fp is not None:
        provenance.record(ctx, collection_id, space, fp, "imported")
