"""A collection's evaluation across its spaces, as `simsearch evaluate` shows it without ``--space``:
one line per space (backbone or derived), and the cross-validated figure of a derived space
fitted on the labels (its figures on those labels are in-sample)."""

from __future__ import annotations

from simsearch import derived
from simsearch.ops import analysis
from simsearch.store import repo


def _collection_id(ctx, collection: str) -> int:
    with ctx.db.session() as s:
        return repo.get_collection(s, collection).id


def in_sample_cv(ctx, collection: str, space: str) -> dict | None:
    """The cross-validated P@10 (``p_at_10_mean``, ``p_at_10_std``) of ``space`` when it is a derived
    space fitted on the collection's labels, else None."""
    d = derived.get(ctx, _collection_id(ctx, collection), space)
    report = (d.report or {}) if d is not None else {}
    cv = report.get("cv")
    return cv if cv and report.get("fitted_on", {}).get("labelled") else None


def every_space(ctx, collection: str, ev) -> list[dict]:
    """One evaluation line per space of the collection, when it has more than one (``ev``: the
    evaluation already made of one of them). A derived space fitted on the labels scores itself
    in-sample: its cross-validated figure goes with it."""
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, collection).id
        spaces = repo.spaces_of(s, coll_id)
    if len(spaces) < 2:
        return []
    out = []
    for space in spaces:
        e = ev if space == ev.backbone else analysis.evaluate(ctx, collection, space)
        lab = e.labels
        d = derived.get(ctx, coll_id, space)
        report = (d.report or {}) if d is not None else {}
        supervised = bool(report.get("fitted_on", {}).get("labelled"))
        out.append({"space": space, "derived": d is not None, "best_k": e.best_k,
                    "ari": lab.at_n_labels.ari if lab and lab.at_n_labels else None,
                    "p_at_10": lab.knn_precision if lab else None,
                    "cross_validated": report.get("cv") if supervised else None})
    return out
