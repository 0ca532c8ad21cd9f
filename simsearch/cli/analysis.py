"""Analysis commands: cluster, evaluate, map, compare (over the vectors stored in the database)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from simsearch.cli.app import cli, context_from
from simsearch.cli.core import emit_json, json_option, parse_weights, progress_option, progress_printer
from simsearch.cli.reembed import estimate_line
from simsearch.errors import InvalidInput
from simsearch.ops.sampling import CAP as SAMPLE_CAP, words as sample_words
from simsearch.text import plural
from simsearch import limits
from simsearch.ops import analysis, cluster_labels, images as ops_images, space_scores
from simsearch.ops.backbones import check_space
from simsearch.ops.comparison import compare as compare_backbones
from simsearch.ops.space_scores import in_sample_cv
from simsearch.paths import reports_dir as under
from simsearch.reports.compare_report import write_report
from simsearch.reports.map_plot import load_thumbnails, render_map


def _f(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _sweep_line(sw, mark: int | None = None) -> str:
    return "  ".join(f"k={k}: {s:.3f}{'*' if k == mark else ''}" for k, s in zip(sw.ks, sw.scores))


def _curve(sw, chosen: int, ari: list | None = None) -> list[str]:
    """The silhouette curve as a table, one k a line (``*``: the chosen k, ``best``: the highest score)."""
    how = f"{sw.metric} silhouette{' of the mean-centred vectors' if sw.centred else ''}, {sw.sample_size} images"
    lines = [f"silhouette by k ({how}; ARI against the labels):" if ari else f"silhouette by k ({how}):",
             "      k   silhouette" + ("    ARI" if ari else "")]
    for i, (k, s) in enumerate(zip(sw.ks, sw.scores)):
        mark = ("*" if k == chosen else " ") + (" best" if k == sw.best_k else "")
        lines.append(f"  {k:>5}   {s:>10.4f}" + (f" {_f(ari[i]):>6}" if ari else "") + f" {mark}".rstrip())
    return lines




@cli.command()
@click.option("--collection", "-c", required=True)
@click.option("--backbone", "-b", help="Backbone (space) whose vectors to cluster [default: the collection's].")
@click.option("-k", "k", default=None, help="Number of clusters, or 'auto' to choose it by silhouette over k = 2..10, "
                                             "then steps of x1.5 up to one cluster per 10 images (at most 200) "
                                             "[default: auto].")
@click.option("--k", "k_long", default=None, hidden=True)  # the old spelling, kept for scripts
@click.option("--representatives", "n_reps", default=8, show_default=True, help="Representative images per cluster (nearest its centre).")
@progress_option
@json_option
@click.pass_context
def cluster(ctx, collection, backbone, k, k_long, n_reps, progress, as_json):
    """Cluster a collection with k-means: sizes, label make-up, representative images, silhouette
    and agreement with the labels (ARI) by k."""
    if k is not None and k_long is not None and k != k_long:
        raise InvalidInput(f"-k {k} and --k {k_long} disagree: give -k once", field="k")
    k = limits.check(limits.ClusterK, k or k_long or "auto", "k")  # the API's limit (2..200 or auto), the API's message
    app = context_from(ctx)
    result = cluster_labels.compute(app, collection, backbone, k=k, n_representatives=n_reps,
                                    progress=progress_printer("cluster", progress))
    view = result.to_dict()
    info = ops_images.brief(app, [r for c in result.clusters for r in c.representatives])
    for c in view["clusters"]:
        c["representative_images"] = [info[i] for i in c["representatives"] if i in info]
        c["label_counts"] = {("(no label)" if e["label"] is None else e["label"]): e["count"] for e in c["labels"]}
    if as_json:
        emit_json(view)
        return
    how = "chosen by silhouette" if result.auto else "as asked"
    agree = result.label_agreement
    scored = agree is not None and agree.ari_at_k is not None
    click.echo(f"{collection} / {result.backbone}: {plural(result.n_images, 'image')} in k = {result.k} clusters ({how}), "
               f"silhouette {_f(result.silhouette_at_k)}")
    for line in _curve(result.silhouette, result.k, agree.ari if scored else None):
        click.echo(line)
    click.echo(f"chosen k: {result.k} ({'the best silhouette' if result.auto else 'as asked'}; the best silhouette is "
               f"at k = {result.silhouette.best_k}; another k: -k N)")
    if scored:
        click.echo(f"ARI against the {agree.n_labels} labels ({agree.n_labelled} labelled images) at k = {result.k}: "
                   f"{_f(agree.ari_at_k)}")
    for c in view["clusters"]:
        counts = c["label_counts"]
        labels = ", ".join(f"{lab} {n}" for lab, n in counts.items()) if set(counts) - {"(no label)"} else ""
        named = f" \"{c['name']}\"" if c.get("name") else ""
        click.echo(f"cluster {c['cluster']}{named}: {plural(c['size'], 'image')}" + (f" (labels: {labels})" if labels else ""))
        for r in c["representative_images"]:
            click.echo(f"    #{r['image_id']}  {r['path']}" + (f"  [{r['label']}]" if r["label"] else ""))


@cli.command()
@click.option("--collection", "-c", required=True)
@click.option("--backbone", "--space", "-b", "backbone",
              help="Space (a backbone's or a derived one) to evaluate [default: the collection's, then every space].")
@progress_option
@json_option
@click.pass_context
def evaluate(ctx, collection, backbone, progress, as_json):
    """Clustering and retrieval quality: silhouette by k, ARI/NMI against the labels, kNN precision@10.

    Without --space: the default space in detail, then one line per space of the collection
    (backbones and derived spaces)."""
    app = context_from(ctx)
    ev = analysis.evaluate(app, collection, backbone, progress=progress_printer("evaluate", progress))
    others = space_scores.every_space(app, collection, ev) if backbone is None else []
    if as_json:
        emit_json({**ev.to_dict(), **({"spaces": others} if others else {})})
        return
    click.echo(f"{collection} / {ev.backbone}: {plural(ev.n_images, 'image')}, {ev.n_labelled} labelled, "
               f"{plural(ev.n_labels, 'distinct label')}")
    click.echo(f"silhouette by k: {_sweep_line(ev.silhouette, ev.best_k)}")
    click.echo(f"best k by silhouette: {ev.best_k}")
    lab = ev.labels
    if lab is None:
        click.echo(ev.note)
    else:
        for s, what in ((lab.at_n_labels, "at k = number of labels"), (lab.at_best_k, "at the best k")):
            if s is not None:
                click.echo(f"{what} ({s.k}): ARI {_f(s.ari)}  NMI {_f(s.nmi)}  "
                           f"homogeneity {_f(s.homogeneity)}  completeness {_f(s.completeness)}")
        click.echo(f"kNN precision@{lab.precision_k} (leave-one-out, labelled images): {_f(lab.knn_precision)}")
        _in_sample_note(app, collection, ev.backbone)
    if others:
        click.echo("every space (P@10 and ARI at k = number of labels on the stored vectors):")
        for o in others:
            cv = o.get("cross_validated")
            note = (f"  [fitted on these labels: in-sample; cross-validated P@10 {cv['p_at_10_mean']:.3f} ± "
                    f"{cv['p_at_10_std']:.3f}]" if cv else "")
            click.echo(f"  {o['space']:<52} best k {o['best_k']:>2}  ARI {_f(o['ari'])}  P@10 {_f(o['p_at_10'])}{note}")


def _in_sample_note(app, collection: str, space: str) -> None:
    cv = in_sample_cv(app, collection, space)
    if cv:
        click.echo(f"note: {space} was fitted on these labels, so the figures above are in-sample; its "
                   f"cross-validated P@10 is {cv['p_at_10_mean']:.3f} ± {cv['p_at_10_std']:.3f} (simsearch tune)")


def reports_dir(settings) -> Path:
    """Where ``map`` and ``compare`` write when not given ``--out``: ``<data directory>/reports``
    (:func:`simsearch.paths.reports_dir`)."""
    return under(settings.home)


def write_coords(path: Path, data, paths: dict) -> None:
    """The map's points (a MapResult) as CSV (image_id,x,y,label,cluster,path) or JSON (a list of
    the same records)."""
    import csv
    import json

    records = [{"image_id": int(i), "x": float(x), "y": float(y), "label": lab, "cluster": int(c),
                "path": paths.get(int(i), {}).get("path")}
               for i, x, y, lab, c in zip(data.ids, data.x, data.y, data.labels, data.clusters)]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps({"collection": data.collection, "backbone": data.backbone,
                                    "method": data.method, "points": records}, indent=1))
        return
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image_id", "x", "y", "label", "cluster", "path"])
        w.writeheader()
        for r in records:
            w.writerow({**r, "label": "" if r["label"] is None else r["label"], "path": r["path"] or ""})


@cli.command("map")
@click.option("--collection", "-c", required=True)
@click.option("--backbone", "-b", help="Backbone (space) to map [default: the collection's].")
@click.option("--method", type=click.Choice(["tsne", "pca"]), default="tsne", show_default=True)
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Scatter plot (PNG) with thumbnails [default: REPORTS/COLLECTION-BACKBONE-METHOD.png, REPORTS being "
                   "the data directory's reports/ folder].")
@click.option("--coords", type=click.Path(dir_okay=False, path_type=Path), help="Also write the 2-D coordinates (.csv or .json).")
@click.option("--colour-by", "--color-by", "colour_by", type=click.Choice(["label", "cluster"]), default="label", show_default=True,
              help="Point colours (label falls back to cluster when nothing is labelled).")
@click.option("--thumbnails", "max_thumbs", default=150, show_default=True, help="At most this many thumbnails, spread over the map (0: none).")
@progress_option
@json_option
@click.pass_context
def map_command(ctx, collection, backbone, method, out, coords, colour_by, max_thumbs, progress, as_json):
    """A 2-D map of a collection (t-SNE or PCA): a PNG scatter with thumbnails, and the coordinates."""
    if coords is not None and coords.suffix.lower() not in (".csv", ".json"):
        raise InvalidInput(f"--coords must end in .csv or .json, not {coords.name!r}", field="coords")
    if out is not None and out.suffix.lower() != ".png":
        raise InvalidInput(f"--out must be a .png file, not {out.name!r}", field="out")
    app = context_from(ctx)
    data = analysis.map_2d(app, collection, backbone, method=method, progress=progress_printer("map", progress))
    thumbs = load_thumbnails(app, data.ids) if max_thumbs > 0 else {}
    if out is None:
        out = reports_dir(app.settings) / f"{collection}-{data.backbone}-{data.method}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    png = render_map(data, out, thumbs=thumbs, colour_by=colour_by, max_thumbs=max_thumbs)
    paths = ops_images.brief(app, data.ids)
    if coords is not None:
        write_coords(coords, data, paths)
    if as_json:
        emit_json({**data.to_dict(), "paths": [paths.get(int(i), {}).get("path") for i in data.ids], "out": str(out),
                   "png_bytes": len(png), "coords_file": str(coords) if coords else None})
        return
    how = "from the cache" if data.cached else f"computed in {data.seconds or 0:.1f} s"
    click.echo(f"{collection} / {data.backbone}: {data.method} map of {plural(data.n, 'image')} ({how}); "
               f"wrote {out} ({len(png) / 1024:.0f} KB)" + (f" and {coords}" if coords else ""))


@cli.command()
@click.option("--collection", "-c", required=True)
@click.option("--backbones", "-b", "backbones", required=True, help="Comma-separated backbones (spaces), e.g. efficientnet_lite0,resnet50.")
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML report; its data goes beside it with a .json suffix [default: "
                   "REPORTS/COLLECTION-compare.html, REPORTS being the data directory's reports/ folder].")
@click.option("--progress/--no-progress", default=None,
              help="Progress on stderr: the steps, and a bar while embedding [default: when stderr is a terminal].")
@click.option("--weights", multiple=True, metavar="BACKBONE=FILE", help="Local weights file for a Keras backbone (air-gapped installs).")
@click.option("--sample", "sample", default=SAMPLE_CAP, show_default=True, type=click.IntRange(min=20),
              help="Embed and evaluate a seeded sample of at most this many images by label (stratified, or whole labels when there are many).")
@click.option("--all", "all_images", is_flag=True, help="Compare on every image instead of a sample.")
@json_option
@click.pass_context
def compare(ctx, collection, backbones, out, progress, weights, sample, all_images, as_json):
    """Compare backbones on one collection in a self-contained HTML report.

    Images without vectors for a backbone are embedded first, from their source files (a
    re-embedding job run here, its cost estimate printed before it starts; interrupted, the same
    command continues it). A backbone whose weights cannot be had is shown as unavailable, with
    the reason, instead of failing."""
    spaces = [b.strip() for b in backbones.split(",") if b.strip()]
    if not spaces:
        raise InvalidInput("--backbones needs at least one backbone name", field="backbones")
    for sp in spaces:
        check_space(sp)  # unknown names are a usage error, not an "unavailable" backbone
    app = context_from(ctx)
    show = (sys.stderr.isatty() and not as_json) if progress is None else progress

    def announce(space: str, est: dict) -> None:  # before each embedding job, on stderr (--json: in its `embedding`)
        if not as_json:
            click.echo(f"{space}: {estimate_line(est)}", err=True)

    comparison = compare_backbones(app, collection, spaces, embed=True, show_bar=show,
                                   weights=parse_weights(weights), progress=progress_printer("compare", show),
                                   sample="all" if all_images else sample, announce=announce)
    written = write_report(app, comparison, out or reports_dir(app.settings) / f"{collection}-compare.html")
    if as_json:
        emit_json({**comparison.to_dict(maps=False), "report": written})
        return
    click.echo(f"{collection}: {plural(comparison.n_images, 'image')}, {plural(len(spaces), 'backbone')}")
    smp = comparison.sample
    if smp is not None:
        click.echo(f"compared on {smp.size} of {smp.of} images ({sample_words(smp.model_dump())}; --all for every image)"
                   if smp.size < smp.of else f"compared on all {smp.of} images")
    click.echo(f"  {'backbone':<22} {'dim':>5} {'ms/img':>7} {'best k':>6} {'ARI':>6} {'NMI':>6} {'P@10':>6}")
    for p in comparison.backbones:
        if not p.available:
            click.echo(f"  {p.backbone:<22} {p.dim:>5}  unavailable: {p.reason}")
            continue
        lab = p.labels
        at_n = lab.at_n_labels if lab else None
        prec = lab.knn_precision if lab else None
        ms = p.embed_seconds_per_image
        click.echo(f"  {p.backbone:<22} {p.dim:>5} {('-' if ms is None else f'{ms * 1000:.1f}'):>7} {p.best_k:>6} "
                   f"{_f(at_n and at_n.ari):>6} {_f(at_n and at_n.nmi):>6} {_f(prec):>6}")
        emb = p.embedding
        if emb is not None and emb.failed:
            click.echo(f"    {plural(emb.failed, 'image')} could not be embedded, e.g. {emb.errors[0]['file']}: {emb.errors[0]['reason']}")
    for o in comparison.neighbour_overlap:
        click.echo(f"  top-10 neighbour overlap {o.a} / {o.b}: {o.jaccard:.3f}")
    click.echo(f"wrote {written['html']} ({written['html_bytes'] / 1e6:.1f} MB) and {written['json']}")
