"""``simsearch duplicates``: groups of exact, near and similar images in a collection."""

from __future__ import annotations

import click

from simsearch.cli import cli, context_from
from simsearch.cli.core import emit_json, json_option


def _threshold_text(result: dict) -> str:
    if result["tier"] == "exact":
        return "identical pixels"
    return f"cosine >= {result['threshold']:.3f}"


def _print(result: dict, verbose_meaning: bool = True) -> None:
    tier = result["tier"]
    click.echo(f"{tier} ({_threshold_text(result)}): {result['total_groups']} group"
               f"{'' if result['total_groups'] == 1 else 's'}, {result['grouped_images']} images")
    if verbose_meaning:
        click.echo(click.wrap_text(result["meaning"], width=100, initial_indent="  ", subsequent_indent="  "))
    for g in result["groups"]:
        span = (f"{g['max_similarity']:.4f}" if g["max_similarity"] == g["min_similarity"]
                else f"{g['min_similarity']:.4f}..{g['max_similarity']:.4f}")
        identical = " (identical pixels)" if tier == "exact" else ""
        click.echo(f"  group {g['group']}: {g['size']} images, similarity {span}{identical}")
        for img in g["images"]:
            click.echo(f"      #{img['id']}  {img['path']}" + (f"  [{img['label']}]" if img["label"] else ""))
    if result["pages"] > 1:
        click.echo(f"  page {result['page']} of {result['pages']} (--page N for more)")


@cli.command()
@click.option("--collection", "-c", required=True)
@click.option("--backbone", "-b", help="Backbone (space) whose vectors to compare [default: the collection's; "
                                       "the thresholds are calibrated for efficientnet_lite0].")
@click.option("--tier", type=click.Choice(["exact", "near", "similar", "all"]), default="all", show_default=True,
              help="exact: identical pixels in different files; near: the same photo resized, re-compressed, "
                   "cropped or flipped; similar: look-alikes above --threshold.")
@click.option("--threshold", type=float, help="Cosine similarity to group at (near and similar; with --tier all: "
                                              "similar; exact ignores it) [default: the calibrated ones].")
@click.option("--page", default=1, show_default=True, help="Page of groups (largest first).")
@click.option("--per-page", default=20, show_default=True, help="Groups per page.")
@click.option("--progress/--no-progress", default=None, help="Steps on stderr as they start [default: when stderr "
                                                              "is a terminal].")
@json_option
@click.pass_context
def duplicates(ctx, collection, backbone, tier, threshold, page, per_page, progress, as_json):
    """Groups of duplicate images: exact copies, near-duplicates (transformed copies) and similar images."""
    from simsearch.cli.analysis import progress_printer
    from simsearch.ops import duplicates as dup

    tiers = list(dup.TIERS) if tier == "all" else [tier]
    per_tier = {t: (threshold if (t == tier or (tier == "all" and t == "similar")) else None) for t in tiers}
    for t in tiers:  # bad input is refused before anything is computed
        dup.tier_threshold(t, per_tier[t])
    dup.check_page(page, per_page)
    app = context_from(ctx)
    pairs = dup.pairs(app, collection, backbone, progress=progress_printer("duplicates", progress))
    results = {t: dup.groups(app, pairs, tier=t, threshold=per_tier[t], page=page, per_page=per_page) for t in tiers}
    if as_json:
        emit_json(results[tier] if tier != "all" else
                  {"collection": collection, "backbone": pairs.space, "n_images": int(pairs.info.get("n_images", 0)),
                   "results": results})
        return
    first = next(iter(results.values()))
    click.echo(f"{collection} / {first['backbone']}: {first['n_images']} images"
               + ("" if first["cached"] else f" (pairs found in {first['seconds']} s)"))
    for t in tiers:
        _print(results[t])
