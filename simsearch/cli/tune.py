"""`simsearch tune` (choose a derived space by cross-validation) and `simsearch spaces` (list,
make default, remove derived spaces)."""

from __future__ import annotations

import click

from simsearch.cli.app import cli, context_from
from simsearch.cli.analysis import progress_option, progress_printer
from simsearch.cli.core import emit_json, json_option
from simsearch.ops.sampling import CAP as SAMPLE_CAP, words as sample_words
from simsearch.ops.spaces import derived_spaces, overview, remove, set_default
from simsearch.ops.tune import tune as run_tune
from simsearch.provenance import describe


def _f(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


@cli.command()
@click.option("--collection", "-c", required=True)
@click.option("--backbone", "-b", help="Base space to tune from [default: the collection's].")
@click.option("--set-default", is_flag=True, help="Make the chosen space the collection's default search space.")
@click.option("--folds", default=5, show_default=True, help="Cross-validation folds (stratified by label, seeded).")
@click.option("--seed", default=0, show_default=True, help="Seed of the folds and the k-means of the ARI.")
@click.option("--concat/--no-concat", default=True, show_default=True,
              help="Also try the concatenation of the collection's backbone spaces (when it has several).")
@click.option("--variants/--no-variants", default=True, show_default=True,
              help="Also try GeM pooling and test-time views (flip, multi-scale) of the base: embeds the images "
                   "again (they must still be readable where they were ingested from).")
@click.option("--sample", "sample", default=SAMPLE_CAP, show_default=True, type=click.IntRange(min=20),
              help="Score the candidates on a seeded sample of at most this many labelled images by label "
                   "(stratified, or whole labels when there are many; then embed the whole collection once, in the chosen variant only).")
@click.option("--all", "all_images", is_flag=True, help="Score on every image instead of a sample.")
@progress_option
@json_option
@click.pass_context
def tune(ctx, collection, backbone, set_default, folds, seed, concat, variants, sample, all_images, progress, as_json):
    """Find a better search space for a collection without training the network.

    With labels: candidates (PCA-whitening, a supervised projection, alpha query expansion,
    database-side augmentation, concatenated backbones, GeM pooling, flip and multi-scale test-time
    views) are scored by nested cross-validation
    (fitted on the training folds only; held-out images are the queries) and the simplest one
    within one standard error of the best is kept as a derived space. Without labels: a whitening
    chosen by neighbour stability."""
    report = run_tune(context_from(ctx), collection, base=backbone, set_default=set_default, folds=folds, seed=seed,
                      concat=concat, variants=variants, sample="all" if all_images else sample,
                      progress=progress_printer("tune", progress))
    if as_json:
        emit_json(report.to_dict())
        return
    click.echo(f"{collection}: {report.n_images} images, {report.n_labelled} labelled, {report.n_labels} labels "
               f"({report.mode})")
    click.echo(f"protocol: {report.protocol}")
    if report.sample:
        smp = report.sample
        click.echo(f"scored on {smp['size']} of {smp['of']} images ({sample_words(smp, report.n_labels)})"
                   if smp["size"] < smp["of"] else f"scored on all {smp['of']} images")
    if report.mode == "labelled":
        click.echo(f"  {'space':<52} {'P@10 mean±std':>15} {'ARI mean±std':>15} {'kept':>5} {'score':>5} "
                   f"{'CV s':>6} {'embed s':>7}")
        for c in report.candidates:
            mark = "*" if c["space"] == report.chosen else " "
            click.echo(f"{mark} {c['space']:<52} {c['p_at_10_mean']:.3f} ± {c['p_at_10_std']:.3f}  "
                       f"{_f(c['ari_mean'])} ± {_f(c['ari_std'])} {_f(c.get('kept_mean'))} {_f(c.get('served_mean'))} "
                       f"{c['seconds']:>6.1f} {c.get('embed_seconds', 0):>7.1f}")
        click.echo("kept: a held-out image's raw top-10 still in its top-50; score: the mean of P@10, ARI and kept, "
                   "what the choice (*) is made by")
        if report.embedding:
            e = report.embedding
            click.echo(f"embedding pass: {e['images']} images in {len(e['spaces'])} variants, {e['seconds']:.1f} s "
                       "(embed s: the model seconds of the views a variant needs)")
    else:
        click.echo(f"  {'space':<40} {'dims':>5} {'shrink':>6} {'stability':>9}")
        for c in report.candidates:
            mark = "*" if c["chosen"] else " "
            click.echo(f"{mark} {c['space']:<40} {c['dims']:>5} {c['shrinkage']:>6} {c['stability']:>9.3f}")
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.created:
        r = report.created
        click.echo(f"stored derived space {r['name']} ({r['recipe']['transform']}, rerank {r['recipe']['rerank']}, "
                   f"{r['dim'] or '-'} dims)")
    elif report.chosen and "." not in report.chosen and report.mode == "labelled" and \
            report.chosen != (report.candidates[0]["space"] if report.candidates else None):
        click.echo(f"chosen: the backbone space {report.chosen} as it is (kept; no transform)")
    else:
        click.echo(f"nothing beats {report.chosen} by more than its spread: no derived space stored")
    click.echo(f"default space: {report.default_space or '(the settings default backbone)'}  "
               f"[{report.seconds:.1f} s]")


@cli.group()
def spaces():
    """A collection's derived spaces: list them, choose the default, remove one."""


@spaces.command("list")
@click.option("--collection", "-c", required=True)
@json_option
@click.pass_context
def spaces_list(ctx, collection, as_json):
    """The spaces of a collection: what made each one's vectors, the default (*), and the derived
    spaces with how they were made."""
    app = context_from(ctx)
    rows = derived_spaces(app, collection)
    every = overview(app, collection)
    if as_json:
        emit_json(rows)
        return
    for s in every["spaces"]:
        if s["kind"] != "derived":
            made = describe(s["fingerprint"]) if s["fingerprint"] else "an unknown model"
            click.echo(f"{'*' if s['default'] else ' '} {s['name']}: {s['kind']}, {s['vectors']} vectors, made by {made}"
                       + (" (internal: a tuning variant, a derived space's base)" if s["internal"] else ""))
    if not rows:
        click.echo(f"{collection}: no derived spaces (run `simsearch tune -c {collection}`)")
    for r in rows:
        cv = (r["report"] or {}).get("cv") or {}
        extra = f", cross-validated P@10 {cv['p_at_10_mean']:.3f} ± {cv['p_at_10_std']:.3f}" if cv else ""
        click.echo(f"{'*' if r['default'] else ' '} {r['name']}: {' + '.join(r['bases'])} -> {r['recipe']['transform']}"
                   f" ({r['dim'] or '-'} dims), rerank {r['recipe']['rerank']}{extra}")


@spaces.command("default")
@click.option("--collection", "-c", required=True)
@click.argument("space", required=False)
@json_option
@click.pass_context
def spaces_default(ctx, collection, space, as_json):
    """Make SPACE the collection's default search space (none given: back to the settings' default)."""
    out = set_default(context_from(ctx), collection, space)
    emit_json(out) if as_json else click.echo(f"{collection}: default space {space or '(the settings default)'}")


@spaces.command("remove")
@click.option("--collection", "-c", required=True)
@click.argument("space")
@json_option
@click.pass_context
def spaces_remove(ctx, collection, space, as_json):
    """Remove a derived space (its vectors and index; the backbone spaces stay)."""
    out = remove(context_from(ctx), collection, space)
    if as_json:
        emit_json(out)
        return
    click.echo(f"{collection}: removed {space} ({out['vectors_deleted']} vectors)"
               + ("; the default is the settings' default again" if out["was_default"] else ""))
