"""A collection's search spaces as the API and the Spaces page show them: the backbone spaces it
has vectors in, its derived spaces (recipe, cross-validated P@10), spaces of imported vectors, which
one is the default, and the newest tuning's candidates (:mod:`simsearch.ops.tune_jobs`). What a
space is: :mod:`simsearch.spaces`; which one is the default: :mod:`simsearch.space_defaults`."""

from __future__ import annotations

from simsearch import derived, provenance, space_defaults, spaces
from simsearch.errors import Conflict
from simsearch.store import repo
from simsearch.ops import tune_jobs


def overview(ctx, collection: str) -> dict:
    with ctx.db.session() as s:
        coll = repo.get_collection(s, collection)
        coll_id, chosen = coll.id, coll.default_space
        counts = repo.vector_counts(s, coll_id)
    rows_derived = {r["name"]: r for r in derived.list_derived(ctx, collection)}
    made_by = provenance.all_of(ctx, coll_id)
    # several spaces and none of them the default: no default (a search must name one)
    default = space_defaults.default_of(ctx, coll_id) if counts else None
    out = []
    for name in sorted(counts):
        d = rows_derived.get(name)
        cv = ((d or {}).get("report") or {}).get("cv")
        fp, origin = made_by.get(name, (None, None))
        kind = spaces.kind_of(name, set(rows_derived))
        title, explanation = spaces.describe(name, kind)
        out.append({"name": name, "title": title, "explanation": explanation, "kind": kind, "vectors": int(counts[name]),
                    "default": name == default, "bases": d["bases"] if d else None,
                    "recipe": d["recipe"] if d else None, "dim": d["dim"] if d else None, "cv": cv,
                    "fingerprint": fp, "internal": origin == provenance.INTERNAL and name != default})
    return {"collection": collection, "default_space": default, "default_chosen": chosen is not None,
            "spaces": out, "last_tuning": _with_words(tune_jobs.last_report(ctx, coll_id), set(rows_derived)),
            "scores": spaces.score_words(), "not_measured": spaces.NOT_MEASURED}


def _with_words(last: dict | None, derived_names: set[str]) -> dict | None:
    """The newest tuning with each candidate's space in words (``title``, ``explanation``)."""
    report = (last or {}).get("report")
    if not report:
        return last
    rows = [{**c, **spaces.describe(c["space"], "derived" if c["space"] in derived_names else None)._asdict()}
            if isinstance(c, dict) and c.get("space") else c for c in report.get("candidates") or []]
    return {**last, "report": {**report, "candidates": rows}}


def picker(ctx, collection: str) -> dict:
    """What a page's space picker offers: the spaces with vectors, the default first, without the
    internal ones (the pooling / view variants `simsearch tune` embedded as a derived space's
    base); and the default, preselected."""
    with ctx.db.session() as s:
        coll = repo.get_collection(s, collection)
        coll_id, counts = coll.id, repo.vector_counts(s, coll.id)
    default = space_defaults.default_of(ctx, coll_id) if counts else None
    hidden = provenance.internal_spaces(ctx, coll_id) - {default}
    shown = sorted((sp for sp in counts if sp not in hidden), key=lambda sp: (sp != default, sp))
    internal = sorted(hidden & set(counts))
    return {"spaces": shown, "default": default, "internal": internal,
            "words": {sp: spaces.describe(sp)._asdict() for sp in [*shown, *internal]}}


def derived_spaces(ctx, collection: str) -> list[dict]:
    """The collection's derived spaces: recipe, bases, dimension, report and whether it is the default."""
    return derived.list_derived(ctx, collection)


def set_default(ctx, collection: str, space: str | None) -> dict:
    """Make ``space`` the collection's default (None: back to the settings' default backbone)."""
    return space_defaults.set_default(ctx, collection, space)


def remove(ctx, collection: str, space: str) -> dict:
    """Remove a derived space; a backbone space or imported vectors are refused (409): they are
    the collection's own vectors, not something made from them."""
    with ctx.db.session() as s:
        coll = repo.get_collection(s, collection)
        coll_id, have = coll.id, repo.spaces_of(s, coll.id)
    if derived.get(ctx, coll_id, space) is None and space in have:
        raise Conflict(f"{space!r} is not a derived space: its vectors are the collection's own (from a backbone or "
                       "imported); only derived spaces are removed here", field="space")
    return derived.remove(ctx, collection, space)
