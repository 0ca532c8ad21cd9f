"""`simsearch tune`: choose and store a collection's best derived space (:mod:`simsearch.derived`).

With labels (two or more labels, enough images for the folds), every candidate -- a transform
(none, PCA-whitening, supervised projection) with a re-ranking (none, alpha-QE, DBA + alpha-QE),
over the collection's base space and, when it has several backbone spaces, their concatenation
-- is scored by nested stratified cross-validation (:mod:`simsearch.analysis.tuning`: fitted on
the training folds only, held-out queries against the training folds), and the one-standard-error
rule picks the simplest candidate within one standard error of the best. The winner's
hyper-parameters are then chosen by the same inner cross-validation on all labelled images and
its transform fitted on them (a whitening on every image: it needs no labels); it is stored as
a derived space and, with ``set_default``, made the collection's default search space.

Pooling and test-time-view variants of the base (``@gem2``..``@gem4``, ``+flip``, ``+flip+ms``:
:data:`VARIANT_POOLINGS` x :data:`VARIANT_VIEWS`) are candidates too, with labels: the collection's
images are embedded in them again (:mod:`simsearch.ops.reembed`; their model seconds are reported)
and each is cross-validated raw and with the supervised projection (:data:`VARIANT_FAMILIES`: the
re-rankings and the whitening, which add less than their spread on the base, are not repeated
for every variant). A variant costs more per query image (``+flip`` two forwards, ``+flip+ms``
four), which the one-standard-error rule counts as complexity. Only the chosen variant's vectors
are kept: the ones embedded for the others are removed again.

Everything is scored on a seeded sample by label whose size does not grow with the collection
(``sample``, default :data:`simsearch.ops.sampling.CAP` labelled images, stratified or, with many
labels, whole labels: :func:`simsearch.ops.sampling.stratified_sample`; ``"all"``: every one): the variants embed only the sampled images, the cross-validation and the choice of
hyper-parameters use only them; then the chosen variant (if one is) embeds the rest of the
collection once (a re-embedding job run in the tuning's process: :mod:`simsearch.ops.reembed_jobs`),
and the winner's transform is fitted on every image (``report.sample`` says which).

Without labels there is nothing to score retrieval against: a PCA-whitening is fitted with the
grid setting whose neighbour lists are the most stable across disjoint halves of the collection,
and the stability is reported instead of P@10. It becomes the default only when asked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select

from simsearch import derived, space_defaults
from simsearch.ops.sampling import ALL, CAP as SAMPLE_CAP, check_sample, describe as describe_sample, rule as sample_rule, \
    stratified_sample
from simsearch.errors import InvalidInput
from simsearch.ops.analysis import Steps
from simsearch.spaces import GEM_P, is_backbone_space, parse, space_key
from simsearch.store import repo
from simsearch.jobs import reembed
from simsearch.ops import reembed_jobs
from simsearch.ops.reembed import Reembedded, embed_collection
from simsearch.store.models import Collection, Image
from simsearch import provenance
from simsearch.analysis import neighbour_overlap, tuning
from simsearch.store.models import Embedding

PROTOCOL = ("nested stratified {folds}-fold cross-validation over the labelled images (seed {seed}): "
            "transforms fitted on the training folds only, hyper-parameters chosen by an inner {inner}-fold "
            "CV on them; held-out images are the queries, the training folds the database; "
            "P@10, ARI (k-means at the number of labels, on the held-out images) and neighbour preservation "
            "(a held-out image's raw top-10 kept in its top-50) per fold; chosen by their mean (one-standard-error rule)")


VARIANT_POOLINGS = tuple(GEM_P)  # besides the base's own pooling
VARIANT_VIEWS = ((), ("flip",), ("flip", "ms"))
VARIANT_FAMILIES = (("none", "none"), ("discriminant", "none"))  # (transform, rerank) scored on each variant


def variant_spaces(space: str) -> list[str]:
    """The pooling and view variants of a backbone space tried by :func:`tune` (not the space itself):
    ``efficientnet_lite0`` -> ``efficientnet_lite0+flip``, ``efficientnet_lite0@gem3``, ..."""
    spec = parse(space)
    own = spec.pooling if spec.pooling in ("avg", "max") else "avg"
    out = [space_key(spec.backbone, p, spec.precision, v) for v in VARIANT_VIEWS for p in (own, *VARIANT_POOLINGS)]
    return [sp for sp in out if sp != space]


def _base_cost(bases: list[str]) -> int:
    """What a base set adds to a candidate's complexity: each further concatenated space, a GeM
    pooling, and each extra forward pass per query image (test-time views)."""
    cost = len(bases) - 1
    for b in bases:
        if is_backbone_space(b):
            spec = parse(b)
            cost += (spec.pooling in GEM_P) + len(spec.view_list) - 1
    return cost


@dataclass
class TuneReport:
    collection: str
    mode: str  # "labelled" (cross-validated P@10) or "unlabelled" (neighbour stability)
    n_images: int
    n_labelled: int
    n_labels: int
    protocol: str
    candidates: list[dict] = field(default_factory=list)
    chosen: str | None = None  # the chosen space's name (a base space when nothing beats it)
    created: dict | None = None  # the derived space stored (simsearch.derived.Derived.to_dict)
    default_space: str | None = None  # the collection's default after the run
    seconds: float = 0.0
    embedding: dict | None = None  # the variants' embedding pass: images, seconds, spaces (None: none run)
    sample: dict | None = None  # what the candidates were scored on: sampling.describe
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _bases(ctx, coll_id: int, base: str | None) -> tuple[str, list[list[str]]]:
    """The base space (a backbone's, never a derived one) and the base sets to try: the base
    alone, and every backbone space of the collection concatenated when it has several."""
    if base is not None:
        space = space_defaults.resolve_space(ctx, coll_id, base)
    else:
        space = space_defaults.resolve_space(ctx, coll_id, None)
        d = derived.get(ctx, coll_id, space)
        if d is not None:  # the default is derived already: tune again from its first base
            space = d.bases[0]
    if derived.get(ctx, coll_id, space) is not None:
        raise InvalidInput(f"{space!r} is a derived space: tune from a backbone's space", field="backbone")
    with ctx.db.session() as s:
        spaces = [sp for sp in repo.spaces_of(s, coll_id) if is_backbone_space(sp)]
    options = [[space]]
    if space in spaces and len(spaces) > 1:
        options.append([space] + [sp for sp in spaces if sp != space])
    return space, options


def _labels(ctx, coll_id: int, ids: np.ndarray) -> np.ndarray:
    with ctx.db.session() as s:
        return np.asarray(repo.labels_for(s, ids), dtype=object)


def tune(ctx, collection: str, *, base: str | None = None, set_default: bool = False, folds: int = 5,
         seed: int = 0, concat: bool = True, variants: bool = True, sample: int | str | None = SAMPLE_CAP,
         progress=None) -> TuneReport:
    """Score the candidates, store the best as a derived space, optionally make it the default.
    ``variants``: also try the base's pooling and test-time-view variants (embeds the images again).
    ``sample``: score on a seeded sample stratified by label of at most this many images
    (:func:`simsearch.ops.sampling.stratified_sample`; ``"all"`` / None: every image)."""
    t0 = time.perf_counter()
    folds = int(folds)
    cap = check_sample(sample)
    if not 2 <= folds <= 20:
        raise InvalidInput(f"folds must be between 2 and 20, not {folds}", field="folds")
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, collection).id
    space, options = _bases(ctx, coll_id, base)
    if not concat:
        options = options[:1]
    ids, parts = derived.base_vectors(ctx, coll_id, [space])
    if len(ids) < 8:
        raise InvalidInput(f"tuning needs at least 8 images with {space} vectors; this collection has {len(ids)}",
                           field="collection")
    labels = _labels(ctx, coll_id, ids)
    has = np.array([lab is not None for lab in labels])
    n_labels = len(set(labels[has]))
    labelled_ok = True
    try:
        tuning.check_labelled(np.unique(labels[has].astype(str), return_inverse=True)[1] if has.any() else
                              np.zeros(0, int), folds)
    except InvalidInput:
        labelled_ok = False
    if labelled_ok:
        pick = stratified_sample(labels[has], cap or len(ids), seed=seed)
        how = sample_rule(labels[has], cap)
        try:  # a sample too small for the folds (a small cap, many labels): every labelled image instead
            tuning.check_labelled(np.unique(labels[has][pick].astype(str), return_inverse=True)[1], folds)
        except InvalidInput:
            pick, how = np.arange(int(has.sum())), ALL
        chosen_ids = ids[has][pick]
        report = _tune_labelled(ctx, collection, coll_id, options, folds, seed, progress,
                                variant_spaces(space) if variants and is_backbone_space(space) else [], chosen_ids)
        report.sample = describe_sample(len(chosen_ids), int(has.sum()), seed, "label", cap, rule=how,
                                        labels=len(set(labels[has][pick].tolist())))
        report.n_images = len(ids)
    else:
        pick = stratified_sample([None] * len(ids), cap or len(ids), seed=seed)
        report = _tune_unlabelled(ctx, collection, coll_id, space, ids, parts, seed, progress, pick)
        report.sample = describe_sample(len(pick), len(ids), seed, "none (no labels)", cap,
                                        rule=sample_rule([None] * len(ids), cap))
        if variants:
            report.notes.append("pooling and test-time-view variants are scored against labels: none tried")
    report.n_labelled, report.n_labels = int(has.sum()), n_labels
    if set_default and report.chosen is not None:
        space_defaults.set_default(ctx, collection, report.chosen)
    report.default_space = space_defaults.default_space(ctx, coll_id)
    report.seconds = round(time.perf_counter() - t0, 2)
    return report


def _embed_variants(ctx, coll_id: int, spaces: list[str], steps, report_notes: list[str], ids):
    """Embed the sampled images ``ids`` in the variant spaces the collection lacks; returns (the
    pass, the spaces it created)."""
    with ctx.db.session() as s:
        have = set(repo.spaces_of(s, coll_id))
    new = [sp for sp in spaces if sp not in have]
    if not new:
        return None, []
    with ctx.db.session() as s:
        collection = s.get(Collection, coll_id).name
    space_defaults.keep_default(ctx, collection, new)  # the variants do not change what the collection uses
    steps(f"embedding {len(ids)} sampled images in {len(new)} pooling / test-time-view variants")
    done = embed_collection(ctx, coll_id, new, ids=ids)
    if done.unavailable:
        report_notes.append(f"variants not tried: {done.unavailable}")
        return done, []
    for sp in new:  # internal: out of the pages' pickers unless chosen as a space of its own
        provenance.record(ctx, coll_id, sp, provenance.of_space(ctx, sp), provenance.INTERNAL, replace=True)
    return done, new


def _drop_vectors(ctx, coll_id: int, spaces: list[str]) -> None:
    from sqlalchemy import delete, select

    if not spaces:
        return
    with ctx.db.session() as s:
        have = select(Image.id).where(Image.collection_id == coll_id)
        s.execute(delete(Embedding).where(Embedding.space.in_(spaces), Embedding.image_id.in_(have)))
        s.commit()
    provenance.forget(ctx, coll_id, spaces)


def _tune_labelled(ctx, collection: str, coll_id: int, options: list[list[str]], folds: int, seed: int,
                   progress, variants: list[str], sample_ids: np.ndarray) -> TuneReport:
    """Cross-validate every candidate on the sampled labelled images ``sample_ids``; then embed the
    rest of the collection in the chosen variant (when one is chosen) and fit the winner on all."""
    fams = tuning.families()
    var_fams = [tuning.Family(t, r) for t, r in VARIANT_FAMILIES]
    steps = Steps(progress, len(options) + 1 + (len(variants) + 2 if variants else 0))
    notes: list[str] = []
    embedded, created = _embed_variants(ctx, coll_id, variants, steps, notes, sample_ids) if variants else (None, [])
    with ctx.db.session() as s:
        have = set(repo.spaces_of(s, coll_id))
    plan = [(bases, fams) for bases in options] + [([v], var_fams) for v in variants if v in have]
    scored = []  # (bases, CandidateScore)
    data = {}
    for bases, fset in plan:
        steps(f"cross-validating {len(fset)} candidates over {' + '.join(bases)} on {len(sample_ids)} sampled images")
        ids, parts = derived.base_vectors(ctx, coll_id, bases, ids=sample_ids)  # the sample's rows only: O(sample)
        x = parts[0] if len(parts) == 1 else derived.Derived(coll_id, "", bases, {}, None).transform(parts)
        labels = _labels(ctx, coll_id, ids)
        has = np.fromiter((lab is not None for lab in labels), dtype=bool, count=len(labels))
        if not has.any():  # e.g. a variant space embedded for a few unlabelled images only
            steps(f"skipped {' + '.join(bases)}: none of its {len(ids)} images has a label")
            continue
        data[tuple(bases)] = (x, labels, has)
        for sc in tuning.cross_validate(x[has], labels[has].astype(str), fset, n_folds=folds, seed=seed):
            scored.append((bases, sc))

    def name(bases, sc):
        return bases[0] if len(bases) == 1 and sc.family.transform == "none" and sc.family.rerank == "none" \
            else derived.derived_name(bases, sc.family.name)

    def embed_seconds(b):
        return round(sum(embedded.space_seconds(sp) for sp in b if sp in created), 2) if embedded else 0.0

    def pick(cands):
        return tuning.select([sc for _, sc in cands],
                             complexity=lambda sc: (sc.family.complexity[0] + _cost_of(cands, sc), sc.family.complexity[1]))

    best = pick(scored)
    bases = next(b for b, sc in scored if sc is best)
    rows = [{"space": name(b, sc), "bases": b, **sc.to_dict(), "embed_seconds": embed_seconds(b),
             "cv_images": int(data[tuple(b)][2].sum())} for b, sc in scored]
    report = TuneReport(collection, "labelled", 0, 0, 0, PROTOCOL.format(folds=folds, seed=seed,
                                                                                 inner=tuning.INNER_FOLDS),
                        candidates=rows, chosen=name(bases, best), notes=notes)
    if embedded is not None and not embedded.unavailable:
        report.embedding = {"images": embedded.images, "seconds": round(embedded.seconds, 2),
                            "spaces": embedded.spaces,
                            "view_seconds": {k: round(v, 2) for k, v in embedded.view_seconds.items()}}
    _drop_vectors(ctx, coll_id, [sp for sp in created if sp not in bases])  # only the chosen variant stays
    chosen_new = [sp for sp in created if sp in bases]
    if chosen_new:
        steps(f"embedding the rest of the collection in {chosen_new[0]}")
        rest = _embed_rest(ctx, coll_id, chosen_new, report)
        if rest is not None and rest.unavailable:  # the chosen variant cannot cover the collection
            notes.append(f"{chosen_new[0]} was chosen on the sample but not kept: {rest.unavailable}")
            _drop_vectors(ctx, coll_id, chosen_new)
            scored = [(b, sc) for b, sc in scored if not set(b) & set(created)]
            best = pick(scored)
            bases = next(b for b, sc in scored if sc is best)
            report.chosen, chosen_new = name(bases, best), []
    for sp in chosen_new:
        ctx.sync_index(coll_id, sp, force_rebuild=True)
    if report.chosen in created and chosen_new:  # a variant chosen as it is: a space of its own, shown in the pickers
        provenance.set_origin(ctx, coll_id, [report.chosen], "embedded")
    steps(f"fitting {report.chosen} on the whole collection")
    if report.chosen not in bases:
        xs, ls, hs = data[tuple(bases)]  # the hyper-parameters: by the inner CV on the sample
        setting = tuning.choose(xs[hs], ls[hs].astype(str), [best.family], seed=seed)[best.family]
        ids, parts = derived.base_vectors(ctx, coll_id, bases)  # the transform: fitted on every image
        x = parts[0] if len(parts) == 1 else derived.Derived(coll_id, "", bases, {}, None).transform(parts)
        labels = _labels(ctx, coll_id, ids)
        has = np.fromiter((lab is not None for lab in labels), dtype=bool, count=len(labels))
        fit_rows = has if best.family.supervised else np.ones(len(x), bool)
        linear = tuning.fit(x[fit_rows], labels[fit_rows].astype(str) if best.family.supervised else None, setting)
        cv = next(r for r in rows if r["space"] == report.chosen)
        info = {"fitted_on": {"images": int(fit_rows.sum()), "labelled": best.family.supervised},
                "cv": {k: cv[k] for k in ("p_at_10_mean", "p_at_10_std", "ari_mean", "ari_std", "kept_mean",
                                          "served_mean")},
                "cv_sample": {"size": int(len(sample_ids))},
                "protocol": report.protocol, "chosen_over": len(rows)}
        d = derived.save(ctx, coll_id, report.chosen, bases, setting.to_dict(), linear, info)
        report.created = d.to_dict()
    steps.finish()
    return report


def _embed_rest(ctx, coll_id: int, spaces: list[str], report: TuneReport):
    """Embed the collection's images that lack the chosen variant's vectors (those outside the
    sample), once, as a re-embedding job run here (:mod:`simsearch.ops.reembed_jobs`: shards,
    progress, cancel); recorded in ``report.embedding["collection_pass"]``. None when none lack
    them; ``unavailable`` says why the variant cannot cover the collection (an image unreadable,
    the job not done)."""
    with ctx.db.session() as s:
        ok = np.asarray(s.scalars(select(Image.id).where(Image.collection_id == coll_id, Image.status == "ok")).all(),
                        np.int64)
        lacking = np.setdiff1d(ok, repo.vector_ids(s, coll_id, spaces[0]))
        collection = s.get(Collection, coll_id).name
    if not len(lacking):
        return None
    gone = sum(path is None for _i, path, _src in reembed.sources(ctx, lacking))
    if gone:
        return Reembedded(spaces=list(spaces), unavailable=f"{gone} of {len(lacking)} images can no longer be read "
                                                           "where they were ingested from (uploads are not kept)")
    t0 = time.perf_counter()
    job = reembed_jobs.run_here(ctx, collection, spaces, ids=lacking, source=f"tune: {', '.join(spaces)}")
    done = Reembedded(spaces=list(spaces), images=job["embedded"], seconds=time.perf_counter() - t0)
    if job["status"] != "done":
        done.unavailable = f"its re-embedding job #{job['job_id']} ended {job['status']}: {job['message']}"
    elif job["failed"]:  # (an image that can no longer be decoded is one error of its shard)
        done.unavailable = (f"{job['failed']} of {len(lacking)} images could not be embedded by its re-embedding job "
                            f"#{job['job_id']}" + (f", e.g. {job['errors'][0]['file']}: {job['errors'][0]['reason']}"
                                                  if job["errors"] else ""))
    else:
        report.embedding = {**(report.embedding or {}), "collection_pass": {
            "images": done.images, "seconds": round(done.seconds, 2), "spaces": list(spaces), "job_id": job["job_id"]}}
    return done


def _cost_of(scored, sc) -> int:
    return next(_base_cost(b) for b, s in scored if s is sc)


def _tune_unlabelled(ctx, collection: str, coll_id: int, space: str, ids, parts, seed: int, progress,
                     pick: np.ndarray) -> TuneReport:
    """The whitening grid scored by neighbour stability on the sampled rows ``pick``, fitted on all."""
    x = parts[0]
    xs = x[pick]
    grid = tuning.unsupervised_grid(xs)
    steps = Steps(progress, len(grid) + 1)
    rows = []
    for setting in grid:
        steps(f"neighbour stability of whitening at {setting.dims} dims, shrinkage {setting.shrinkage}")
        t0 = time.perf_counter()
        st = tuning.stability(xs, setting, seed=seed)
        rows.append({"setting": setting, "stability": st, "seconds": time.perf_counter() - t0})
    best = max(rows, key=lambda r: (round(r["stability"], 4), -r["setting"].dims))  # ties: fewer dims
    setting = best["setting"]
    steps("fitting the whitening on the whole collection")
    linear = tuning.fit(x, None, setting)
    name = derived.derived_name([space], "whiten")
    changed = neighbour_overlap(x, linear.apply(x), k=min(10, len(x) - 1))
    info = {"fitted_on": {"images": int(len(x)), "labelled": False}, "stability": round(best["stability"], 4),
            "overlap_with_base": round(float(changed), 4),
            "protocol": "no labels: the whitening grid point whose top-10 neighbours agree most between fits on "
                        "disjoint random halves (mean Jaccard over 3 seeded splits)"}
    d = derived.save(ctx, coll_id, name, [space], setting.to_dict(), linear, info)
    table = [{"space": name, "bases": [space], "candidate": "whiten", "dims": r["setting"].dims,
              "shrinkage": r["setting"].shrinkage, "stability": round(r["stability"], 4),
              "seconds": round(r["seconds"], 3), "chosen": r is best} for r in rows]
    steps.finish()
    return TuneReport(collection, "unlabelled", int(len(x)), 0, 0, info["protocol"], candidates=table,
                      chosen=name, created=d.to_dict())
