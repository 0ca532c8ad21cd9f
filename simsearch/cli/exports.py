"""``simsearch export-selection``: a selection of a collection's images (ids, or one cluster) as CSV, JSON or a
COCO labels file (:mod:`simsearch.ops.exports`, the operation the API's export calls)."""

from __future__ import annotations

from pathlib import Path

import click

from simsearch import limits
from simsearch.cli.app import cli, context_from
from simsearch.errors import InvalidInput
from simsearch.ops import export_formats, exports
from simsearch.text import plural


def parse_ids(text: str | None) -> list[int] | None:
    """``"3,1,2"`` (or spaces between) -> ``[3, 1, 2]``; InvalidInput naming ``ids``."""
    if text is None:
        return None
    parts = [p for p in text.replace(",", " ").split() if p]
    if not parts or not all(p.isdigit() for p in parts):
        raise InvalidInput(f"--ids must be image ids separated by commas, e.g. 12,7,31, not {text!r}", field="ids")
    return [int(p) for p in parts]


@cli.command("export-selection")
@click.option("--collection", "-c", required=True)
@click.option("--ids", help="The images to export, comma-separated ids, in order (e.g. a search's results).")
@click.option("--cluster", type=int, help="Export this cluster's images instead (of the clustering `simsearch cluster` "
                                          "last computed with the same --backbone and -k).")
@click.option("--backbone", "-b", help="With --cluster: the space clustered [default: the collection's].")
@click.option("-k", "k", default="auto", show_default=True, help="With --cluster: the clustering's k.")
@click.option("--format", "-f", "fmt", type=click.Choice(export_formats.FORMATS), default="csv", show_default=True,
              help="csv (a line per file), json, or coco (a COCO labels file: a category per label).")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here [default: standard output].")
@click.pass_context
def export_selection(ctx, collection, ids, cluster, backbone, k, fmt, out):
    """Export a selection of images with every path, its label and its group: CSV, JSON or COCO
    (docs/exports.md)."""
    image_ids = parse_ids(ids)
    ref = None
    if cluster is not None:
        ref = {"backbone": backbone, "k": limits.check(limits.ClusterK, k, "k"), "cluster": cluster}
    elif backbone is not None:
        raise InvalidInput("--backbone goes with --cluster", field="backbone")
    result = exports.export(context_from(ctx), collection, image_ids=image_ids, cluster=ref, fmt=fmt)
    if out is None:
        click.echo(result.text, nl=False)
        return
    out.write_text(result.text, encoding="utf-8")
    click.echo(f"wrote {plural(result.count, 'image')} of {collection} to {out} ({fmt})", err=True)
