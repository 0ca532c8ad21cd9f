"""``/api/collections/<name>/vectors``: import vectors computed elsewhere (an .npz upload), export them (streamed).

Both call :mod:`simsearch.ops.vectors_io`, as the CLI does. The upload is spooled to a temporary
file (never held in memory) and is subject to ``SIMSEARCH_MAX_UPLOAD_MB`` like every request
body; larger files go through ``simsearch import-vectors``.
"""

from __future__ import annotations

import shutil
import tempfile

from flask import Response, request, stream_with_context

from simsearch.errors import InvalidInput
from simsearch.ops import vectors_io
from simsearch.web import schemas as S
from simsearch.web.api.blueprint import bp
from simsearch.web.api.common import ctx
from simsearch.web.contract import BINARY, WRITE_SECURITY, bodies, errors, form_data, validate
from simsearch.web.paths import shown_path

RAW_TYPES = ("application/octet-stream", "application/x-npz", "application/zip")
NO_FILE = ("send the .npz as the request body (Content-Type: application/octet-stream) or as a multipart/form-data "
           "file field named 'file'")


@bp.post("/collections/<name>/vectors")
@bp.input(S.VectorsImportQuery, location="query", arg_name="q")
@bp.output(S.VectorsImported, description="Stored (all rows, or none when any is refused); the index is up to date.")
@bp.doc(summary="Import vectors", tags=["collections"], security=WRITE_SECURITY,
        description="Vectors computed elsewhere, as an .npz: `vectors` (N x D float32), `keys` (N unique strings), "
                    "optional `labels` and `metadata` (JSON objects as strings). A key equal to the source path of an "
                    "image of the collection gives that image the vector; other keys become new images without a file "
                    "or thumbnail. Vectors are L2-normalised. The collection is created if new. Send the file as the "
                    "request body (`Content-Type: application/octet-stream`) or as the form field `file`.",
        responses=errors(400, 401, 403, 409, 413, 503,
                         e400="Bad input: not an .npz, an array missing or of the wrong shape or type, a row with NaN, "
                              "infinity or a zero vector, duplicate keys, or a dimension other than the space's "
                              "(the message names the array and row).",
                         e409="A key's image already has a different vector in that space."),
        extensions=bodies(**{"application/octet-stream": BINARY, "multipart/form-data": S.VectorsUpload}))
def import_vectors(name: str, q: S.VectorsImportQuery):
    if request.mimetype in RAW_TYPES:
        with tempfile.TemporaryFile(dir=ctx().settings.home) as spool:
            shutil.copyfileobj(request.stream, spool, 1 << 20)
            if not spool.tell():
                raise InvalidInput("the request body is empty: send the .npz file's bytes", field="file")
            spool.seek(0)
            return vectors_io.import_vectors(ctx(), spool, name, q.backbone, name="the upload",
                                             same_model=q.same_model)
    if request.mimetype != "multipart/form-data" or "file" not in request.files:
        raise InvalidInput(NO_FILE, field="file")
    form = validate(S.VectorsUpload, form_data(S.VectorsUpload), "form")
    return vectors_io.import_vectors(ctx(), form.file.stream, name, q.backbone, name=form.file.filename or "the upload",
                                     same_model=q.same_model)


@bp.get("/collections/<name>/vectors")
@bp.input(S.VectorsExportQuery, location="query", arg_name="q")
@bp.doc(summary="Export vectors", tags=["collections"],
        description="The collection's vectors in one space as an .npz, streamed: `ids` (int64), `keys` (source paths as "
                    "the API shows them; the keys of imported images), `labels` (`\"\"` for none), `metadata` (JSON "
                    "objects as strings), `vectors` (float32, N x D, L2-normalised).",
        responses={200: {"description": "The .npz file (a zip of .npy arrays).",
                         "content": {"application/octet-stream": {"schema": BINARY}},
                         "headers": {"Content-Disposition": {"schema": {"type": "string"},
                                                             "description": "attachment; filename=<collection>-<space>.npz"}}},
                   **errors(400, 404)})
def export_vectors(name: str, q: S.VectorsExportQuery):
    info, chunks = vectors_io.export_stream(ctx(), name, q.backbone, key_view=shown_path)
    resp = Response(stream_with_context(chunks), mimetype="application/octet-stream")
    resp.headers["Content-Disposition"] = f'attachment; filename="{info["filename"]}"'
    resp.headers["X-Vectors"] = str(info["vectors"])
    return resp
