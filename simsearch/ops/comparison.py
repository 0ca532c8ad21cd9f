"""Several backbones side by side on one collection: evaluation, maps and neighbour overlap.

By default on a seeded sample of at most :data:`simsearch.ops.sampling.CAP` images by label
(stratified, or whole labels when there are many: :func:`simsearch.ops.sampling.stratified_sample`; only the sampled images are embedded and evaluated: the cost stops growing with the
collection); ``sample="all"`` compares on every image. The result's ``sample`` says which.

:func:`lookup_comparison` answers from the cache only (None when any part is missing);
:func:`compare` computes what is missing, optionally embedding the images first. Every part is
cached on its own (the evaluation and map per backbone, the overlap per pair), so a comparison
that adds a backbone recomputes only that backbone's parts.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select

from simsearch.errors import InvalidInput, NotFound, SimsearchError
from simsearch.jobs import reembed
from simsearch.ops import analysis, reembed_jobs, vectors as vecs
from simsearch.ops.analysis_results import BackbonePanel, Comparison, EmbedReport, NeighbourOverlap, Sample
from simsearch.ops.sampling import CAP as SAMPLE_CAP, SEED as SAMPLE_SEED, check_sample, describe, rule, stratified_sample
from simsearch.ops.vectors import VectorSet
from simsearch.spaces import check_space_name, is_backbone_space, new_space, parse
from simsearch.spaces.names import split
from simsearch.store import repo, results
from simsearch.store.models import Embedding, Image
from simsearch.store.results import ResultKey
from simsearch.analysis import neighbour_overlap
from simsearch.embedding.backbones import get_backbone

OVERLAP_K = 10


def sample_ids(ctx, coll_id: int, cap: int | None, seed: int = SAMPLE_SEED) -> tuple[np.ndarray, Sample]:
    """The ok images a comparison evaluates: a seeded sample of at most ``cap`` by label
    (:func:`simsearch.ops.sampling.stratified_sample`), or all of them (``cap`` None). Images
    without a label count as one label (``labels`` in the description counts it too)."""
    with ctx.db.session() as s:
        rows = s.execute(select(Image.id, Image.label).where(Image.collection_id == coll_id, Image.status == "ok")
                         .order_by(Image.id)).all()
    ids = np.asarray([r[0] for r in rows], np.int64)
    labels = [r[1] for r in rows]
    pick = stratified_sample(labels, cap or max(len(ids), 1), seed=seed)
    return ids[pick], Sample(**describe(len(pick), len(ids), seed, "label", cap, rule=rule(labels, cap),
                                        labels=len({labels[i] for i in pick})))


def _restrict(vs: VectorSet, keep: np.ndarray) -> VectorSet:
    """The vectors of ``vs`` whose images are in ``keep`` (their own fingerprint: cached apart)."""
    rows = np.isin(vs.ids, keep)
    if rows.all():
        return vs
    ids = vs.ids[rows]
    return VectorSet(vs.collection, vs.collection_id, vs.space, ids, repo.fingerprint(ids),
                     None if vs.x is None else vs.x[rows])


def embed_missing(ctx, collection: str, space: str, *, show_bar: bool = False, weights: str | None = None,
                  ids: np.ndarray | None = None, announce=None) -> EmbedReport:
    """Embed the collection's ok images (``ids``: those of them) that lack ``space`` vectors: the
    re-embedding job of `simsearch embed` (:func:`simsearch.ops.reembed_jobs.run_here`, source
    ``compare:SPACE``) run in this process, each image read again from its source file or kept
    original; resumable, listed with the jobs. ``announce(space, estimate)``: its cost, before it
    starts; ``show_bar``: a progress bar on stderr; ``weights``: a local weights file for it."""
    if weights:
        ctx.embedder(reembed.feature_map(ctx, [space]).space, weights=weights)  # the job's model reads this file
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="img", desc=space, smoothing=0.1, dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        out = reembed_jobs.run_here(ctx, collection, [space], ids=None if ids is None else [int(i) for i in ids],
                                    source=f"compare:{space}", progress=progress if show_bar else None,
                                    announce=None if announce is None else (lambda est: announce(space, est)))
    finally:
        if bar is not None:
            bar.close()
    if out is None:
        return EmbedReport(embedded=0, failed=0, errors=[])
    if out["status"] != "done":  # (cancelled from the jobs page; a shard that failed raised above)
        raise SimsearchError(f"embedding the images in {space} stopped (job {out['job_id']}): {out['message']}")
    return EmbedReport(embedded=out["embedded"], failed=out["failed"], errors=out["errors"], job_id=out["job_id"],
                       estimate=out["estimate"])


def _spaces(spaces: list[str]) -> list[str]:
    if not spaces:
        raise InvalidInput("give at least one backbone to compare", field="backbones")
    spaces = list(dict.fromkeys(spaces))
    for space in spaces:
        check_space_name(space)  # unknown names are bad input, not an unavailable backbone
    return spaces


def as_stored(settings, spaces: list[str], have: list[str]) -> dict[str, str]:
    """Each name -> the space compared. A backbone named without a precision means the space this
    server embeds it in, as ingest does: ``efficientnet_lite0`` on a CPU that computes bf16 is
    ``efficientnet_lite0+bf16`` when the collection has that and not the bare name."""
    out = {}
    for space in spaces:
        here = space
        if space not in have and is_backbone_space(space) and split(space)[3] is None:
            here = new_space(settings, space)
        out[space] = here if here in have else space
    return out


def _check_imported(spaces: list[str], have: list[str]) -> None:
    """Derived and imported vectors' spaces can be compared where the collection has them; any
    other name that is no backbone is a 404 naming what the collection has (as for the map)."""
    for space in spaces:
        if space not in have and not is_backbone_space(space):
            raise NotFound(f"no vectors for backbone {space!r} in this collection (it has: {', '.join(have) or 'none yet'}); "
                           "a backbone's vectors are embedded for the comparison, a derived or imported space must exist",
                           field="backbones")


def _embed_seconds(ctx, coll_id: int, space: str) -> tuple[float | None, float | None]:
    with ctx.db.session() as s:
        secs, count = s.execute(select(func.avg(Embedding.seconds), func.count()).join(Image).where(
            Image.collection_id == coll_id, Embedding.space == space)).one()
    return (float(secs), float(secs * count)) if secs is not None else (None, None)


def _overlap_key(a: VectorSet, b: VectorSet) -> ResultKey:
    return ResultKey(a.collection_id, a.space, "overlap", f"with={b.space};k={OVERLAP_K}",
                     vecs.combined_fingerprint(a.fingerprint, b.fingerprint))


def _overlap(ctx, a: VectorSet, b: VectorSet, *, compute: bool) -> NeighbourOverlap | None | bool:
    """The overlap of a pair; None when they share too few images; False when not cached and not ``compute``."""
    key = _overlap_key(a, b)
    hit = results.get(ctx.db, key, arrays=())
    if hit is not None:
        return NeighbourOverlap.model_validate(hit.info) if hit.info else None
    if not compute:
        return False
    common, ia, ib = np.intersect1d(a.ids, b.ids, return_indices=True)
    value = None
    if len(common) > OVERLAP_K + 1:
        value = NeighbourOverlap(a=a.space, b=b.space, k=OVERLAP_K, n=int(len(common)),
                                 jaccard=float(neighbour_overlap(a.x[ia], b.x[ib], k=OVERLAP_K)))
    results.put(ctx.db, key, value.to_dict() if value else {})
    return value


def _panel(ctx, collection: str, space: str, *, compute: bool, embed: bool, with_maps: bool, show_bar: bool,
           weights: dict[str, str] | None, steps, keep: np.ndarray, sampled: bool,
           announce=None) -> tuple[BackbonePanel | None, VectorSet | None]:
    """One backbone's panel (None when not cached and not ``compute``) and its vectors when available."""
    embedding = None
    if is_backbone_space(space):
        name = parse(space).backbone
        b = get_backbone(name)
        base = {"backbone": space, "dim": b.dim, "input_size": b.input_size}
    else:  # imported vectors: nothing to embed with, no input size
        name, embed = space, False
        with ctx.db.session() as s:
            base = {"backbone": space, "dim": s.scalar(select(Embedding.dim).where(Embedding.space == space).limit(1)),
                    "input_size": None}
    try:
        if embed:
            steps(f"{space}: embedding the images that lack its vectors")
            w = (weights or {}).get(space) or (weights or {}).get(name)
            if w:
                ctx.embedder(reembed.feature_map(ctx, [space]).space, weights=w)
            reembed.feature_map(ctx, [space]).load()  # weights unavailable: this panel says so, before any job
            embedding = embed_missing(ctx, collection, space, show_bar=show_bar, ids=keep, announce=announce)
        if compute:
            steps(f"{space}: evaluation" + (" and map" if with_maps else ""))
            # once per backbone, only the sample's rows when sampled (a space's vectors are 5 GB at 1M)
            vs = _restrict(vecs.load(ctx, collection, space, ids=keep if sampled else None), keep)
            ev = analysis.evaluate(ctx, collection, space, vectors=vs)
            mp = analysis.map_2d(ctx, collection, space, vectors=vs) if with_maps else None
        else:
            vs = _restrict(vecs.peek(ctx, collection, space), keep)
            ev = analysis.lookup_evaluation(ctx, collection, space, vectors=vs)
            mp = analysis.lookup_map(ctx, collection, space, vectors=vs) if with_maps else None
            if ev is None or (with_maps and mp is None):
                return None, None
    except SimsearchError as exc:
        return BackbonePanel(**base, available=False, reason=exc.message, embedding=embedding), None
    per_image, total = _embed_seconds(ctx, vs.collection_id, space)
    return BackbonePanel.scored(ev, **base, embedding=embedding, embed_seconds_per_image=per_image,
                                embed_seconds_total=total, map=mp), vs


def _comparison(ctx, collection: str, spaces: list[str], *, compute: bool, embed: bool = False,
                with_maps: bool = True, show_bar: bool = False, weights: dict[str, str] | None = None,
                progress=None, sample: int | str | None = SAMPLE_CAP, announce=None) -> Comparison | None:
    spaces = _spaces(spaces)
    cap = check_sample(sample)
    with ctx.db.session() as s:
        coll = repo.get_collection(s, collection)
        n_ok = repo.image_counts(s, coll.id).get("ok", 0)
        have = repo.spaces_of(s, coll.id)
    names = as_stored(ctx.settings, spaces, have)
    spaces = list(dict.fromkeys(names.values()))
    if weights:
        weights = {names.get(k, k): v for k, v in weights.items()}
    _check_imported(spaces, have)
    keep, drawn = sample_ids(ctx, coll.id, cap)
    steps = analysis.Steps(progress, len(spaces) * (2 if embed else 1) + 1)
    panels, loaded = [], []
    for space in spaces:
        panel, vs = _panel(ctx, collection, space, compute=compute, embed=embed, with_maps=with_maps,
                           show_bar=show_bar, weights=weights, steps=steps, keep=keep, sampled=cap is not None,
                           announce=announce)
        if panel is None:
            return None
        panels.append(panel)
        if vs is not None:
            loaded.append(vs)
    steps("neighbour overlap between the backbones")
    overlap = []
    for i, a in enumerate(loaded):
        for b in loaded[i + 1:]:
            o = _overlap(ctx, a, b, compute=compute)
            if o is False:
                return None
            if o is not None:
                overlap.append(o)
    steps.finish()
    return Comparison(collection=collection, n_images=n_ok, backbones=panels, neighbour_overlap=overlap, sample=drawn)


def lookup_comparison(ctx, collection: str, spaces: list[str], *, with_maps: bool = False,
                      sample: int | str | None = SAMPLE_CAP) -> Comparison | None:
    """The comparison from cached parts only, or None when some part must be computed. Validates
    the backbone names (InvalidInput) and the collection (NotFound) as :func:`compare` does."""
    return _comparison(ctx, collection, spaces, compute=False, with_maps=with_maps, sample=sample)


def compare(ctx, collection: str, spaces: list[str], *, embed: bool = False, with_maps: bool = True,
            show_bar: bool = False, weights: dict[str, str] | None = None, progress=None,
            sample: int | str | None = SAMPLE_CAP, announce=None) -> Comparison:
    """Side-by-side metrics for several backbones on one collection. A backbone whose weights cannot
    be had (or that has no vectors, when ``embed`` is false) is reported unavailable with the reason.
    ``sample``: evaluate (and embed) a seeded sample of at most this many images by label
    (:func:`sample_ids`); ``"all"`` / None: every image. ``embed``: the images lacking a backbone's
    vectors are embedded first (:func:`embed_missing`; ``announce(space, estimate)`` before each job)."""
    return _comparison(ctx, collection, spaces, compute=True, embed=embed, with_maps=with_maps, show_bar=show_bar,
                       weights=weights, progress=progress, sample=sample, announce=announce)
