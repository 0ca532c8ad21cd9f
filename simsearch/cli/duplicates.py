"""``simsearch duplicates``: groups of exact, near and similar images in a collection; export them;
keep one of each group and remove the rest (preview, then ``--apply``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from simsearch.cli.app import cli, context_from
from simsearch.cli.core import emit_json, json_option, progress_printer
from simsearch.errors import InvalidInput
from simsearch.ops import duplicate_actions as actions, duplicate_results as results, duplicates as dup

if TYPE_CHECKING:  # (the operations load when the command runs: `simsearch --help` stays light)
    from simsearch.ops.duplicate_results import Duplicates, DuplicatesPlan


def _threshold_text(result: Duplicates) -> str:
    if result.tier == "exact":
        return "identical pixels"
    return f"cosine >= {result.threshold:.3f}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _print(result: Duplicates, verbose_meaning: bool = True) -> None:
    tier = result.tier
    counted = result.tiers.get(tier)
    files = counted.files if tier == "exact" and counted is not None else None
    click.echo(f"{tier} ({_threshold_text(result)}): {_plural(result.total_groups, 'group')}, "
               f"{result.grouped_images} images"
               + (f", {_plural(files, 'file')}" if files is not None and files != result.grouped_images else ""))
    if verbose_meaning:
        click.echo(click.wrap_text(result.meaning, width=100, initial_indent="  ", subsequent_indent="  "))
    for g in result.groups:
        span = (f"{g.max_similarity:.4f}" if g.max_similarity == g.min_similarity
                else f"{g.min_similarity:.4f}..{g.max_similarity:.4f}")
        if tier == "exact":
            what = ("identical bytes" if g.size == 1 else
                    "identical pixels" + (", some with identical bytes" if g.identical_files else ""))
            click.echo(f"  group {g.group}: {_plural(g.size, 'image')}, {_plural(g.files, 'file')} ({what})")
        else:
            click.echo(f"  group {g.group}: {g.size} images, similarity {span}")
        for img in g.images:
            click.echo(f"      #{img.id}  {img.path}" + (f"  [{img.label}]" if img.label else ""))
            for f in img.files[1:]:
                click.echo(f"           = {f.path}")
    if result.pages > 1:
        click.echo(f"  page {result.page} of {result.pages} (--page N for more, --all for every group)")


def _print_plan(plan: DuplicatesPlan) -> None:
    s = plan.summary
    rule = plan.keep + (f" matching {plan.pattern!r}" if plan.pattern else "")
    head = "applied" if plan.applied else "preview (nothing changed; --apply to do it)"
    click.echo(f"{plan.tier} groups, keep {rule}: {head}")
    for g in plan.groups:
        if g.skipped:
            click.echo(f"  group {g.group}: left alone: {g.skipped}")
            continue
        click.echo(f"  group {g.group}: keep #{g.keep.image_id} {g.keep.path}")
        for f in g.drop_files:
            click.echo(f"      drop file record  #{f.image_id} {f.path}")
        for img in g.delete_images:
            click.echo(f"      delete image      #{img.image_id} {', '.join(img.paths)}")
    click.echo(f"{_plural(s.groups_acted, 'group')} acted on, {s.groups_skipped} left alone: "
               f"{_plural(s.files_dropped, 'file record')} dropped, {_plural(s.images_deleted, 'image')} deleted"
               + (f", {_plural(s.files_deleted_on_disk, 'file')} deleted on disk" if plan.disk else "")
               + f" (plan {plan.digest})")
    for d in plan.disk:
        if not d.deleted:
            click.echo(f"  kept on disk: {d.path}: {d.reason}")


@cli.command()
@click.option("--collection", "-c", required=True)
@click.option("--backbone", "-b", help="Backbone (space) whose vectors to compare [default: the collection's; "
                                       "the thresholds are calibrated for efficientnet_lite0].")
@click.option("--tier", type=click.Choice(["exact", "near", "similar", "all"]), default=None,
              help="exact: identical bytes (one image, several files) or identical pixels; near: the same photo "
                   "resized, re-compressed, cropped or flipped; similar: look-alikes above --threshold "
                   "[default: all; with --keep or --export: exact].")
@click.option("--threshold", type=float, help="Cosine similarity to group at (near and similar; with --tier all: "
                                              "similar; exact ignores it) [default: the calibrated ones].")
@click.option("--page", type=int, help="Page of groups (largest first) [default: 1; with --json: every group].")
@click.option("--per-page", type=int, help="Groups per page [default: 20].")
@click.option("--all", "all_groups", is_flag=True, help="Every group (no pages).")
@click.option("--export", "export_to", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every group of the tier with every path to this file (.csv: a row per file; .json).")
@click.option("--keep", type=click.Choice(["oldest", "most-pixels"]),
              help="Keep one file of each group, remove the rest from the collection: the oldest file (modification "
                   "time) or a file of the largest image. Extra files of one image are dropped as records; other "
                   "images are deleted. A preview unless --apply [default with --pattern: oldest].")
@click.option("--pattern", help="Keep only a file whose path matches this glob (e.g. '*/originals/*'; --keep chooses "
                                "among them); a group where none does is left alone.")
@click.option("--group", "group_numbers", type=int, multiple=True, help="With --keep: act on this group only "
                                                                         "(repeat for more) [default: every group].")
@click.option("--apply", is_flag=True, help="With --keep: do it (without: only show what would be done).")
@click.option("--plan", "digest", help="With --apply: the preview's plan id; refused if the groups changed since.")
@click.option("--delete-files", is_flag=True, help="With --apply: also delete the removed files from disk (only "
                                                   "where the kept file is on disk and the removed file's bytes are "
                                                   "still the ones ingested). Never done otherwise.")
@click.option("--progress/--no-progress", default=None, help="Steps on stderr as they start [default: when stderr "
                                                              "is a terminal].")
@json_option
@click.pass_context
def duplicates(ctx, collection, backbone, tier, threshold, page, per_page, all_groups, export_to, keep, pattern,
               group_numbers, apply, digest, delete_files, progress, as_json):
    """Groups of duplicate images: identical files and pixels, near-duplicates (transformed copies) and
    similar images; export them, or keep one of each and remove the rest (--keep)."""
    acting = keep is not None or pattern is not None
    keep = keep or "oldest"
    for flag, given in (("--apply", apply), ("--plan", digest), ("--delete-files", delete_files),
                        ("--group", group_numbers)):
        if given and not acting:
            raise InvalidInput(f"{flag} goes with --keep or --pattern", field=flag.lstrip("-").replace("-", "_"))
    if (acting or export_to) and tier == "all":
        raise InvalidInput("--keep, --pattern and --export act on one tier: give --tier exact, near or similar", field="tier")
    if acting and export_to:
        raise InvalidInput("give --keep/--pattern or --export, not both", field="export")
    if tier is None:
        tier = "exact" if (acting or export_to) else "all"
    if all_groups and (page is not None or per_page is not None):
        raise InvalidInput("--all lists every group: leave out --page and --per-page", field="all")
    if as_json and page is None and per_page is None:
        all_groups = True  # JSON is for programs: every group, never a silent first page
    page = 1 if page is None else page
    per_page = None if all_groups else (20 if per_page is None else per_page)
    tiers = list(dup.TIERS) if tier == "all" else [tier]
    per_tier = {t: (threshold if (t == tier or (tier == "all" and t == "similar")) else None) for t in tiers}
    for t in tiers:  # bad input is refused before anything is computed
        dup.tier_threshold(t, per_tier[t])
    dup.check_page(page, per_page)
    if acting:
        actions.check_keep(keep, pattern)
    fmt = None
    if export_to is not None:
        fmt = export_to.suffix.lower().lstrip(".")
        if fmt not in actions.EXPORT_FORMATS:
            raise InvalidInput(f"{export_to}: the export's name must end in .csv or .json", field="export")
    app = context_from(ctx)
    pairs = dup.pairs(app, collection, backbone, progress=progress_printer("duplicates", progress))
    if acting:
        plan = actions.resolve(app, pairs, tier=tier, threshold=per_tier[tier], keep=keep, pattern=pattern,
                           groups=list(group_numbers) or None, apply=apply, digest=digest, delete_files=delete_files)
        emit_json(plan.to_dict()) if as_json else _print_plan(plan)
        return
    if export_to is not None:
        text = actions.export(app, pairs, tier=tier, threshold=per_tier[tier], fmt=fmt)
        try:
            export_to.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"{export_to}: cannot write ({exc.strerror or exc})", field="export") from None
        result = dup.groups(app, pairs, tier=tier, threshold=per_tier[tier], page=1, per_page=1)
        message = (f"wrote {_plural(result.total_groups, tier + ' group')} "
                   f"({result.grouped_images} images) to {export_to}")
        emit_json(results.DuplicatesExport(export=str(export_to), format=fmt, groups=result.total_groups).to_dict()) \
            if as_json else click.echo(message)
        return
    pages = {t: dup.groups(app, pairs, tier=t, threshold=per_tier[t], page=page, per_page=per_page) for t in tiers}
    if as_json:
        emit_json((pages[tier] if tier != "all" else
                   results.DuplicatesAllTiers(collection=collection, backbone=pairs.space,
                                              n_images=int(pairs.info.get("n_images", 0)), results=pages)).to_dict())
        return
    first = next(iter(pages.values()))
    click.echo(f"{collection} / {first.backbone}: {first.n_images} images"
               + ("" if first.cached else f" (pairs found in {first.seconds} s)"))
    for t in tiers:
        _print(pages[t])
