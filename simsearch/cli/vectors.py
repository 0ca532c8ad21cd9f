"""Vectors in and out: ``simsearch import-vectors`` and ``simsearch export`` (see :mod:`simsearch.ops.vectors_io`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from simsearch.cli.app import cli, context_from
from simsearch.cli.core import emit_json, json_option, progress_option, progress_printer
from simsearch.errors import InvalidInput
from simsearch.text import plural, verb
from simsearch.ops.vectors_io import export_stream, import_vectors as run_import


@cli.command("import-vectors")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--collection", "-c", required=True, help="Collection to add them to (created if new).")
@click.option("--space", "-s",
              help="Embedding space: a backbone's (e.g. efficientnet_lite0: the file's fingerprint must name that "
                   "model) or any name for vectors made elsewhere (e.g. clip-vit-b32) [default: the one the file's "
                   "fingerprint names; a model this server does not run gets a space named for it].")
@click.option("--same-model", is_flag=True,
              help="The file has no fingerprint, and you vouch that the backbone of --space made its vectors.")
@click.option("--no-index", is_flag=True, help="Do not bring the index up to date now (the next search does).")
@progress_option
@json_option
@click.pass_context
def import_vectors(ctx, file, collection, space, same_model, no_index, progress, as_json):
    """Import vectors computed elsewhere from an .npz file.

    FILE holds 'vectors' (N x D float32) and 'keys' (N unique strings: an image's source path, or
    any name), optionally 'labels' and 'metadata' (JSON objects as strings). A key that is the
    source path of an image of the collection gives that image the vector; any other key becomes a
    new image without a file or thumbnail. Vectors are L2-normalised. Nothing is stored when any
    row is refused (NaN, infinity, zero vector, wrong dimension, duplicate key), or when the file's
    'fingerprint' (written by `simsearch export`) names another model than the space's."""
    if not file.is_file():
        raise InvalidInput(f"{file}: no such file", field="file")
    out = run_import(context_from(ctx), file, collection, space, name=str(file), update_index=not no_index,
                     progress=progress_printer("import-vectors", progress), same_model=same_model)
    space = out["backbone"]
    if as_json:
        emit_json(out)
        return
    kind = " (imported space: search by id, clusters and maps; no search by image)" if out["imported_space"] else ""
    click.echo(f"collection {collection}: {plural(out['vectors_added'], 'vector')} added to {space}{kind}, "
               f"{out['already_present']} already present; {plural(out['images_created'], 'new image')}, "
               f"{out['images_matched']} matched by source path; {plural(out['rows'], 'row')} x {out['dim']} in {out['seconds']:.1f} s ({out['rate'] or 0:,.0f} vectors/s)")
    if out["normalised"]:
        click.echo(f"note: {plural(out['normalised'], 'vector')} {verb(out['normalised'], 'was')} not of unit length and "
                   f"{verb(out['normalised'], 'was')} L2-normalised")
    if out["ignored_arrays"]:
        click.echo(f"note: ignored arrays: {', '.join(out['ignored_arrays'])}")
    if out["index"]:
        click.echo(f"index: {plural(out['index']['vectors'], 'vector')}, brought up to date in {out['index']['seconds']:.1f} s")


@cli.command("export")
@click.option("--collection", "-c", required=True)
@click.option("--space", "-s", "--backbone", "-b", "space", help="Embedding space [default: the collection's].")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The .npz file to write.")
@json_option
@click.pass_context
def export(ctx, collection, space, out, as_json):
    """Write a collection's vectors to an .npz file.

    Arrays: ids (int64), keys (source paths; the keys of imported images), labels ('' for none),
    metadata (JSON objects as strings), vectors (float32, N x D). Written to a temporary file
    beside OUT and renamed, so OUT is never half written."""
    import time

    t0 = time.perf_counter()
    info, chunks = export_stream(context_from(ctx), collection, space)
    out = out.resolve()
    if not out.parent.is_dir():
        raise InvalidInput(f"{out.parent}: no such folder", field="out")
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    info.update(out=str(out), bytes=out.stat().st_size, seconds=round(time.perf_counter() - t0, 3))
    if as_json:
        emit_json(info)
        return
    click.echo(f"wrote {plural(info['vectors'], 'vector')} ({info['dim']}-d, {info['backbone']}) of {collection} to {out} "
               f"({info['bytes'] / 1e6:.1f} MB) in {info['seconds']:.1f} s")
