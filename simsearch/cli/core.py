"""Core commands: ingest, search, similar, collections, reindex, backbones."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click

from simsearch.cli.app import cli, context_from, settings_from
from simsearch.errors import InvalidInput
from simsearch.text import plural
from simsearch import limits
from simsearch.ops import collections as ops_collections, command_ingest, examples as ops_examples, search as ops_search
from simsearch.ops.backbones import backbone_rows

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def finite(data):
    """NaN and infinities become null: strict JSON readers reject them."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(v) for v in data]
    return data


def emit_json(data) -> None:
    click.echo(json.dumps(finite(data), indent=2, default=str, allow_nan=False))


def progress_printer(what: str, enabled: bool | None = None):
    """A ``progress`` callback for the long operations (analyses, reindex): one line per step on stderr
    (``enabled`` None: when stderr is a terminal)."""
    if not (sys.stderr.isatty() if enabled is None else enabled):
        return None

    def report(message: str, done: int, total: int) -> None:
        if done < total:
            click.echo(f"{what}: [{done + 1}/{total}] {message}", err=True)

    return report


progress_option = click.option("--progress/--no-progress", default=None,
                               help="Steps on stderr as they start [default: when stderr is a terminal].")


def backbone_options(f):
    f = click.option("--pooling", type=click.Choice(["avg", "max"]), default="avg", show_default=True,
                     help="Global pooling of the backbone's last feature map.")(f)
    return f


def runtime_options(f):
    """--runtime / --device (and --precision where new vectors are made): what computes the vectors."""
    f = click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default=None,
                     help="Where the model runs [env SIMSEARCH_DEVICE; default auto: a GPU if the Keras backend sees one].")(f)
    f = click.option("--runtime", type=click.Choice(["auto", "openvino", "onnxruntime", "keras"]), default=None,
                     help="What runs the model [env SIMSEARCH_RUNTIME; default auto: the fastest installed and validated].")(f)
    return f


def parse_weights(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise InvalidInput(f"--weights takes BACKBONE=FILE, not {v!r}", field="weights")
        out[name] = path
    return out


@cli.command()
@click.argument("path", required=False)
@click.option("--collection", "-c", required=True, help="Collection to add the images to (created if new).")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV listing the files instead of PATH: a 'uri' column (s3://, http(s):// or a local path), "
                   "optional 'label' and metadata columns (docs/sources.md).")
@click.option("--backbone", "-b", "backbones", multiple=True, help="Backbone(s) to embed with (repeatable) [default: efficientnet_lite0].")
@backbone_options
@click.option("--labels", type=click.Choice(["folders"]), help="Label each image by the folder it is in.")
@click.option("--metadata", type=click.Path(dir_okay=False, path_type=Path), help="CSV with a 'path' column, optional 'label' and other columns.")
@click.option("--batch-size", default=32, show_default=True, help="Images per model forward.")
@click.option("--workers", type=int, help="Decoding threads [default: 2-4 by cores].")
@click.option("--weights", multiple=True, metavar="BACKBONE=FILE", help="Local weights file for a Keras backbone (air-gapped installs).")
@click.option("--progress/--no-progress", default=None, help="Progress bar [default: when stderr is a terminal].")
@click.option("--queue", "queued", is_flag=True,
              help="Queue it for `simsearch worker` processes instead of running here (needs SIMSEARCH_REDIS_URL; "
                   "the workers must see a folder at the same place; they read a bucket or URLs with their own "
                   "AWS environment). Large jobs are split into shards that run in parallel; follow with `simsearch jobs ID --follow`.")
@runtime_options
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "int8"]), default=None,
              help="Numerics of the new vectors [env SIMSEARCH_PRECISION; default auto: bf16 where the CPU has "
                   "AMX/AVX512-BF16, else fp32]. bf16 and int8 vectors go to their own spaces (BACKBONE+bf16, BACKBONE+int8; int8 needs SIMSEARCH_INT8_CALIBRATION).")
@json_option
@click.pass_context
def ingest(ctx, path, collection, manifest, backbones, pooling, labels, metadata, batch_size, workers, weights, progress,
           queued, runtime, device, precision, as_json):
    """Embed every image under PATH (a folder, or s3://BUCKET/PREFIX) or listed in --manifest and
    add it to a collection. Buckets are read with the endpoint and credentials of the AWS
    environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE); they
    are never stored.

    Idempotent: files already in the collection (same content) are skipped, so an interrupted
    ingest continues where it stopped when run again. Bad files are reported, never fatal.
    """
    batch_size = limits.check(limits.BatchSize, batch_size, "batch_size")  # the API's limit, the API's message
    weights_files = parse_weights(weights)  # a usage error before anything is read
    app = context_from(ctx, runtime=runtime, device=device, precision=precision)
    if queued:
        return _enqueue_ingest(app, path, collection, backbones, pooling, labels, metadata, batch_size, weights, as_json,
                               manifest)
    names = backbones or (app.settings.default_backbone,)
    spaces = [app.new_space(b, pooling) for b in names]
    files, ignored = command_ingest.folder_files(path, labels=labels, metadata=metadata, manifest=manifest)
    for run_id in command_ingest.interrupted_commands(app):  # earlier commands killed mid-way
        click.echo(f"note: ingest run {run_id} had stopped mid-way (killed?); marked interrupted", err=True)
    show = (sys.stderr.isatty() and not as_json) if progress is None else progress
    try:
        report = command_ingest.ingest_folder(app, collection, path, files, ignored, spaces, batch_size=batch_size,
                                              workers=workers, weights=weights_files, show_bar=show, manifest=manifest)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: everything committed so far is kept; run the same command again to continue.", err=True)
        ctx.exit(130)
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_report(report)
    if report.total and report.failed == report.total:
        click.echo(f"error: every file failed ({plural(report.total, 'file')}; the reasons are listed)", err=True)
        ctx.exit(1)


def _print_report(report) -> None:
    click.echo(f"collection {report.collection}: {plural(report.added, 'new image')}, "
               f"{plural(report.embedded, 'new vector')} ({', '.join(report.spaces)}), {report.skipped} already present, "
               + (f"{plural(report.duplicates, 'duplicate file')} (copies of an image's bytes, kept as its paths), "
                  if report.duplicates else "")
               + f"{report.failed} failed; {plural(report.total, 'file')} in {report.seconds:.1f} s "
               f"({report.rate:.1f} images/s)")
    if report.ignored:
        click.echo(f"ignored {plural(len(report.ignored), 'file')} without an image extension, e.g. {report.ignored[0]}")
    for err in report.errors:
        click.echo(f"  failed: {err['file']}: {err['reason']}")


def _enqueue_ingest(app, path, collection, backbones, pooling, labels, metadata, batch_size, weights, as_json,
                    manifest=None):
    """``ingest --queue``: the server-path ingest of the API, with PATH itself as the allowed folder."""
    accepted = command_ingest.queue_folder(
        app, collection, path, {"backbones": backbones, "pooling": pooling, "labels": labels, "batch_size": batch_size},
        metadata=metadata, weights=weights, manifest=manifest)
    if as_json:
        emit_json(accepted)
        return
    click.echo(f"queued ingest job {accepted['job_id']}: {plural(accepted['total'], 'file')} into {collection}; "
               f"follow it with `simsearch jobs {accepted['job_id']} --follow`")


def _print_hits(hits: list[dict], header: str) -> None:
    click.echo(header)
    if not hits:
        click.echo("  (no results)")
    for rank, h in enumerate(hits, 1):
        label = f"  [{h['label']}]" if h["label"] else ""
        pct = f" p{h['percentile']:>5.1f}" if h.get("percentile") is not None else ""  # comparable across spaces
        pushed = f"  (pushed down {h['penalty']:.3f}: like {_refs([h['unlike_example']])})" if h.get("penalty") else ""
        click.echo(f"  {rank:>3}. {h['score']:.4f}{pct}  #{h['image_id']}  {h['path']}{label}{pushed}")


def _examples(values: tuple[str, ...], option: str) -> tuple[list[int], list[tuple[bytes, str]]]:
    """``--like``/``--unlike`` values: image ids (digits), and image files as (bytes, name)."""
    ids, files = [], []
    for v in values:
        if v.isdigit():
            ids.append(int(v))
            continue
        try:
            files.append((Path(v).read_bytes(), v))
        except OSError as exc:
            raise InvalidInput(f"{option}: {v} is no image id, and cannot be read as a file ({exc.strerror or exc})",
                               field=option.lstrip("-"))
    return ids, files


@cli.command()
@click.argument("image", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--collection", "-c", required=True)
@click.option("--backbone", "-b", help="Backbone (space) to search in [default: the collection's].")
@click.option("-k", default=10, show_default=True, help="Number of results.")
@click.option("--label", help="Only return images with this label.")
@click.option("--box", help="Search by a region of the image: x0,y0,x1,y1 as fractions of its width and height.")
@click.option("--regions", type=int, default=None,
              help="Object proposals searched besides the whole image (0: the whole image only) [default: 1].")
@click.option("--verify/--no-verify", default=False, show_default=True,
              help="Re-rank the top results by geometric verification (local features under one homography).")
@click.option("--local/--no-local", default=None,
              help="Also take candidates by the query's local features and verify them [default: the search's default].")
@click.option("--like", multiple=True, metavar="ID|FILE",
              help="More like this: an image id of the collection or an image file (repeatable; IMAGE, when given, is "
                   "one more). See docs/search-examples.md.")
@click.option("--unlike", multiple=True, metavar="ID|FILE", help="Less like this: an image id or an image file (repeatable).")
@click.option("--threshold", type=float, help="Leave out results scoring below this (a cosine similarity, -1..1).")
@click.option("--min-percentile", type=float,
              help="Leave out results below this percentile (0-100, the readable score: 50 = a typical top-10 neighbour).")
@click.option("--unlike-weight", type=float, help="How hard the --unlike examples push (0: not at all) [default: 1].")
@runtime_options
@json_option
@click.pass_context
def search(ctx, image, collection, backbone, k, label, box, regions, verify, local, like, unlike, threshold, min_percentile,
           unlike_weight, runtime, device, as_json):
    """Find the images most similar to an image file, or to several examples (--like, --unlike)."""
    k = limits.check(limits.SearchK, k, "k")
    data = None
    if image is not None:
        try:
            data = image.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"{image}: cannot read ({exc.strerror or exc})", field="image")
    app = context_from(ctx, runtime=runtime, device=device)
    if like or unlike or threshold is not None or min_percentile is not None or unlike_weight is not None:
        if box is not None or regions is not None or verify or local:
            raise InvalidInput("--box, --regions, --verify and --local search by one image; not with --like, --unlike or a "
                               "threshold", field="box" if box is not None else "regions" if regions is not None else "verify")
        (like_ids, like_files), (unlike_ids, unlike_files) = _examples(like, "--like"), _examples(unlike, "--unlike")
        like_files = [ops_examples.Upload(d, n) for d, n in ([(data, str(image))] if data is not None else []) + like_files]
        unlike_files = [ops_examples.Upload(d, n) for d, n in unlike_files]
        out = ops_examples.search(app, collection, like=like_ids, unlike=unlike_ids, like_files=like_files,
                                  unlike_files=unlike_files, backbone=backbone, k=k, label=label, threshold=threshold,
                                  min_percentile=min_percentile,
                                  **({} if unlike_weight is None else {"unlike_weight": unlike_weight}))
        if as_json:
            emit_json(out)
        else:
            _print_hits(out["results"], f"{len(out['results'])} most like {_refs(out['like'])}"
                        + (f" and least like {_refs(out['unlike'])}" if out["unlike"] else "")
                        + f" in {collection} ({out['backbone']}):")
        return
    if data is None:
        raise InvalidInput("give an IMAGE file to search by, or examples with --like (and --unlike)", field="image")
    out = ops_search.by_upload(app, collection, data, str(image),
                               backbone=backbone, k=k, label=label, box=box, verify=verify,
                               **({} if regions is None else {"regions": regions}),
                               **({} if local is None else {"local": local}))
    hits = out["results"]
    if as_json:
        emit_json({"query": str(image), "collection": collection, "backbone": out["backbone"], "results": hits})
    else:
        _print_hits(hits, f"{len(hits)} most similar to {image} in {collection} ({out['backbone']}):")


def _refs(refs: list[dict]) -> str:
    """``#12, #40, photo.jpg``"""
    return ", ".join(f"#{r['image_id']}" if r.get("image_id") is not None else str(r.get("filename")) for r in refs)


@cli.command()
@click.argument("image_id", type=int)
@click.option("--collection", "-c", help="Collection the image must be in.")
@click.option("--backbone", "-b")
@click.option("-k", default=10, show_default=True)
@click.option("--label", help="Only return images with this label.")
@json_option
@click.pass_context
def similar(ctx, image_id, collection, backbone, k, label, as_json):
    """Find the images most similar to an ingested image (by its id)."""
    k = limits.check(limits.SearchK, k, "k")
    out = ops_search.by_image(context_from(ctx), image_id, collection=collection, backbone=backbone, k=k, label=label)
    query, hits = out["query"], out["results"]
    if as_json:
        emit_json({"query": query, "backbone": out["backbone"], "results": hits})
    else:
        _print_hits(hits, f"{len(hits)} most similar to #{query['image_id']} {query['path']} ({out['backbone']}):")


@cli.command()
@json_option
@click.pass_context
def collections(ctx, as_json):
    """List collections: image counts, backbones, vectors in the database and in the index."""
    rows = ops_collections.list_collections(context_from(ctx), check_indexes=True)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no collections yet: run `simsearch ingest PATH --collection NAME`")
    for r in rows:
        click.echo(f"{r['name']}: {plural(r['images_ok'], 'image')} ok, {r['images_failed']} failed")
        for space, info in r["backbones"].items():
            in_index = "index not loaded" if info["vectors_in_index"] is None else f"{info['vectors_in_index']} in the index"
            click.echo(f"  {space}: {plural(info['vectors_in_db'], 'vector')} in the database, {in_index}")
            if info.get("index"):
                click.echo(f"    index: {index_line(info['index'])}")


def index_line(ix: dict) -> str:
    """``ivf_pq_refine, recall@10 0.962 (target 0.95) at nprobe=48 k_factor=16 nlist=4096, 1.42 GB, built in 312 s``"""
    knobs = " ".join(f"{k}={v}" for k, v in ix["params"].items())
    out = f"{ix['kind']}, recall@10 {ix['recall']:.3f} (target {ix['target_recall']})" if ix["recall"] is not None else ix["kind"]
    if knobs:
        out += f" at {knobs}"
    if ix["memory_bytes"] is not None:
        out += f", {ix['memory_bytes'] / 1e9:.2f} GB" if ix["memory_bytes"] >= 1e8 else f", {ix['memory_bytes'] / 1e6:.1f} MB"
    if ix["build_seconds"] is not None:
        out += f", built in {ix['build_seconds']:.1f} s"
    if ix["masked"]:
        out += f", {ix['masked']} deleted vectors masked until compaction"
    if ix.get("building"):
        out += f"; rebuilding in the background: {ix['building']}"
    return out


@cli.command()
@click.option("--collection", "-c", help="Only this collection [default: all].")
@click.option("--backbone", "-b", help="Only this backbone (space).")
@click.option("--check-recall", is_flag=True,
              help="Measure each index's recall@10 instead; re-tune (or rebuild) those below the target.")
@click.option("--progress/--no-progress", default=None, help="Each index on stderr as it starts [default: when stderr is a terminal].")
@json_option
@click.pass_context
def reindex(ctx, collection, backbone, check_recall, progress, as_json):
    """Rebuild FAISS indexes from the vectors in the database (kind and tuning by the index policy)."""
    out = ops_collections.reindex(context_from(ctx), collection=collection, backbone=backbone, check=check_recall,
                                  progress=progress_printer("reindex", progress))
    if as_json:
        emit_json(out)
        return
    if not out:
        click.echo("nothing to reindex")
    for o in out:
        if check_recall:
            click.echo(f"{o['collection']} / {o['backbone']}: {o['kind']}, recall@10 {o['recall_before']:.3f} -> "
                       f"{o['recall']:.3f} ({o['action']}) in {o['seconds']} s")
        else:
            click.echo(f"{o['collection']} / {o['backbone']}: {plural(o['vectors'], 'vector')} indexed ({o['kind']}) in {o['seconds']} s "
                       f"(generation {o['generation']})")


@cli.command()
@json_option
@click.pass_context
def backbones(ctx, as_json):
    """List the available backbones, their input sizes, dimensions and weights status."""
    rows = backbone_rows(settings_from(ctx))
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        state = "ready" if r["weights_available"] else r["weights_note"]
        click.echo(f"{r['name']:<20} {r['input_size']:>3}px  dim {r['dim']:>4}  {state}")
