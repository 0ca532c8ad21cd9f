"""Changing what is stored: ``simsearch delete`` and ``simsearch rename`` (collections and images).

Deleting asks first (``--yes`` skips the question, for scripts); renaming changes nothing that
cannot be changed back, so it does not ask."""

from __future__ import annotations

from pathlib import Path

import click

from simsearch.cli.app import cli, context_from
from simsearch.cli.core import emit_json, json_option
from simsearch.errors import InvalidInput
from simsearch.text import plural
from simsearch.ops import collections as ops_collections, images as ops_images

yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


def _confirm(question: str, yes: bool) -> None:
    """Ask ``question`` unless ``yes``; anything but yes stops the command (exit status 1)."""
    if yes:
        return
    if not click.confirm(question, default=False, err=True):
        click.echo("nothing deleted", err=True)
        raise click.exceptions.Exit(1)


@cli.group()
def delete():
    """Delete a collection or images (asks first; --yes does not)."""


@delete.command("collection")
@click.argument("name")
@click.option("--force", is_flag=True, help="Delete even while one of its jobs is queued or running (cancels them first).")
@yes_option
@json_option
@click.pass_context
def delete_collection(ctx, name, force, yes, as_json):
    """Delete collection NAME: its images, vectors, jobs, index files and staged uploads.
    The image files themselves are not touched. Refused while one of its jobs is queued or
    running, unless --force."""
    app = context_from(ctx)
    summary = ops_collections.summary(app, name)  # 404 before asking
    images = summary["images_ok"] + summary["images_failed"]
    vectors = sum(info["vectors_in_db"] for info in summary["backbones"].values())
    _confirm(f"Delete collection {name!r} ({plural(images, 'image')}, {plural(vectors, 'vector')})? "
             "Your image files are not touched.", yes)
    out = ops_collections.delete(app, name, force=force)
    if as_json:
        emit_json(out)
        return
    click.echo(f"deleted collection {out['deleted']} ({plural(out['images'], 'image')})")


@delete.command("image")
@click.argument("image_ids", nargs=-1, required=True, type=int, metavar="ID...")
@yes_option
@json_option
@click.pass_context
def delete_image(ctx, image_ids, yes, as_json):
    """Delete images by id (as `search`, `similar` and `collections` show them), with their vectors.
    The image files themselves are not touched."""
    app = context_from(ctx)
    ids = list(dict.fromkeys(image_ids))
    found = [ops_images.get(app, i) for i in ids]  # every id checked (404) before anything is deleted
    shown = ", ".join(f"#{img['id']} {img['path']} in {img['collection']}" for img in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    _confirm(f"Delete {plural(len(found), 'image')} ({shown}{more})? Your image files are not touched.", yes)
    deleted = [ops_images.delete(app, i)["deleted"] for i in ids]
    if as_json:
        emit_json({"deleted": deleted})
        return
    click.echo(f"deleted {plural(len(deleted), 'image')}: {', '.join(f'#{i}' for i in deleted)}")


@cli.group()
def rename():
    """Rename a collection or an image."""


@rename.command("collection")
@click.argument("name")
@click.argument("new_name")
@json_option
@click.pass_context
def rename_collection(ctx, name, new_name, as_json):
    """Rename collection NAME to NEW_NAME (its images, vectors and indexes are kept; cached clusters,
    maps and evaluations are recomputed when next asked for)."""
    out = ops_collections.rename(context_from(ctx), name, new_name)
    if as_json:
        emit_json(out)
        return
    click.echo(f"renamed collection {name} to {out['name']} ({plural(out['images_ok'], 'image')})")


@rename.command("image")
@click.argument("image_id", type=int, metavar="ID")
@click.argument("new_name")
@json_option
@click.pass_context
def rename_image(ctx, image_id, new_name, as_json):
    """Give image ID the file name NEW_NAME in the same folder: after renaming the file itself, so that
    results show the new name and `compare` finds the file when it embeds with another backbone."""
    app = context_from(ctx)
    before = ops_images.get(app, image_id)["path"]
    if "/" in new_name or "\\" in new_name:
        raise InvalidInput(f"NEW_NAME is a file name, not a path ({new_name!r}): an image keeps its folder",
                           field="name")
    out = ops_images.rename(app, image_id, new_name)
    if as_json:
        emit_json(out)
        return
    click.echo(f"renamed image #{image_id}: {before} -> {out['path']}")
    old, new = Path(before), Path(out["path"])
    if old.is_absolute() and not new.exists():
        click.echo(f"note: there is no file at {new} (search is unaffected; `compare` reads the file from there "
                   "to embed it with another backbone)", err=True)
