"""How the declared contract (:mod:`simsearch.web.schemas`) plugs into APIFlask.

- :class:`ContractAdapter`, registered as APIFlask's pydantic adapter: validates query strings,
  JSON bodies and multipart forms against the models and turns every problem into
  :class:`~simsearch.errors.InvalidInput` (400, the one error shape, ``field`` named, the message
  from :func:`simsearch.limits.describe`, the same words the CLI uses); unknown query parameters
  and fields are refused by name. Responses are sent as the views build them (the tests and
  schemathesis check them against the models).
- :func:`errors`: the documented error responses of an operation, all in the ``Error`` shape.
- :func:`configure`: APIFlask settings, the error processor (APIFlask's own HTTP errors in our
  shape) and the spec processor that finishes the document: nested models as named components,
  path parameter limits, second request-body content types (:func:`bodies`), and the info block.
"""

from __future__ import annotations

import json
from typing import Any

from apiflask.schema_adapters import registry
from apiflask.schema_adapters.pydantic import PydanticAdapter
from flask import request
from pydantic import BaseModel, TypeAdapter, ValidationError

from simsearch import __version__, limits
from simsearch.errors import InvalidInput
from simsearch.web.examples import add_examples
from simsearch.web import schemas
from simsearch.web.errors import error_body

REF = "#/components/schemas/{model}"
# nested models met while the document is generated: their schemas go into components.schemas
_NESTED: dict[str, dict] = {}
_WHERE = {"query": "query parameter", "querystring": "query parameter", "json": "field", "form": "form field",
          "files": "form field", "form_and_files": "form field"}
MAX_JSON_DEPTH = 64


def model_schema(model: type[BaseModel]) -> dict:
    """The model's JSON schema with references to ``components/schemas``; nested models recorded."""
    schema = model.model_json_schema(ref_template=REF)
    _NESTED.update(schema.pop("$defs", {}))
    return schema


# ---- reading requests --------------------------------------------------------------------------

def _is_list(model: type[BaseModel], name: str) -> bool:
    field = model.model_fields.get(name)
    return field is not None and "list[" in str(field.annotation)


def _values(model: type[BaseModel], key: str, values: list[str]):
    """One field's values: the first for a plain field, all for a list (split at commas when the
    model takes ``a,b`` for it; empty items dropped)."""
    if not _is_list(model, key):
        return values[0]
    if key in getattr(model, "comma_separated", ()):
        values = [part.strip() for v in values for part in v.split(",")]
    return [v for v in values if v != ""] or None


def query_data(model: type[BaseModel], args=None) -> dict:
    """Query parameters as a dict for ``model``; ``meta[key]`` / ``meta.key`` go into ``meta``
    when the model has it. Empty values stay empty: the types say whether ``x=`` means "not given"."""
    args = request.args if args is None else args
    data: dict[str, Any] = {}
    for key in args:
        values = args.getlist(key)
        if "meta" in model.model_fields and (key.startswith("meta.") or (key.startswith("meta[") and key.endswith("]"))):
            data.setdefault("meta", {})[key[5:-1] if key.endswith("]") and key.startswith("meta[") else key[5:]] = values[0]
            continue
        data[key] = _values(model, key, values)
    return data


def form_data(model: type[BaseModel]) -> dict:
    """A multipart form (fields and files) as a dict for ``model``."""
    data: dict[str, Any] = {}
    for key in request.form:
        data[key] = _values(model, key, request.form.getlist(key))
    for key in request.files:
        files = [f for f in request.files.getlist(key) if f.filename or f.content_length]
        if files:
            data[key] = files if _is_list(model, key) else files[0]
    return data


def _depth_ok(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return False
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return True


def json_model(model: type[BaseModel]):
    """The request's JSON body validated against ``model`` (strict types: ``"5"`` is no number)."""
    if not request.is_json:
        raise InvalidInput(f"send a JSON object with 'Content-Type: application/json' (got {request.mimetype or 'no content type'})",
                           field="body")
    raw = request.get_data(cache=True)
    if not _depth_ok(raw):
        raise InvalidInput(f"the request body nests deeper than {MAX_JSON_DEPTH} levels", field="body")
    try:
        return model.model_validate_json(raw or b"null", strict=True)
    except ValidationError as exc:
        raise limits.invalid_input(exc, unknown="field") from None


def validate(model: type[BaseModel], data: dict, location: str):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise limits.invalid_input(exc, unknown=_WHERE.get(location, "field")) from None


class ContractAdapter(PydanticAdapter):
    """APIFlask's pydantic adapter with simsearch's reading of requests and its one error shape."""

    def validate_input(self, req, location: str, **kwargs: Any):
        model = self.model_class
        if location in ("query", "querystring"):
            return validate(model, query_data(model), location)
        if location == "json":
            return json_model(model)
        if location in ("form", "files", "form_and_files"):
            return validate(model, form_data(model), location)
        return super().validate_input(req, location, **kwargs)

    def serialize_output(self, data: Any, many: bool = False) -> Any:
        if isinstance(data, BaseModel):
            return data.model_dump(mode="json")
        return data

    def get_openapi_schema(self, **kwargs: Any) -> dict:
        return model_schema(self.model_class)


registry.register("pydantic", ContractAdapter)


# ---- documenting --------------------------------------------------------------------------------

ERROR_DESCRIPTIONS = {
    400: "Bad input: the message says which field and why (`field` names it).",
    401: "API keys are configured and the request has none, or a wrong one (writes; reads too unless "
         "SIMSEARCH_PUBLIC_READS).",
    403: "Refused: missing or wrong CSRF token on a browser request, or not allowed here.",
    404: "No such collection, image, job, or no vectors for that backbone.",
    409: "Conflict with the current state (e.g. the name is taken, or more clusters than images).",
    410: "Gone: it existed, and is no longer there (e.g. an image's original file was deleted).",
    413: "The request body is larger than the server's limit.",
    429: "Too many requests from this address (anonymous searches of a public server), or too many unfinished "
         "jobs for this client or in all: wait the `Retry-After` header's seconds.",
    503: "A dependency is unavailable (the database, the job queue, or model weights).",
}
WRITE_SECURITY = [{"bearerAuth": []}, {"apiKeyHeader": []}, {}]


def errors(*codes: int, **described: str) -> dict:
    """``@bp.doc(responses=errors(400, 404))``: error responses in the ``Error`` shape;
    ``errors(400, e403="why")`` overrides a description."""
    out = {}
    for code in codes:
        text = described.get(f"e{code}") or ERROR_DESCRIPTIONS[code]
        out[code] = {"description": text, "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}}
    return out


class links:  # noqa: N801 (a namespace)
    """OpenAPI links between operations (schemathesis's stateful phase follows them): where an
    operation's response names a resource another operation takes."""

    @staticmethod
    def _to(operation: str, **parameters: str) -> dict:
        return {"operationId": operation, "parameters": parameters}

    CREATED_COLLECTION = {
        "getCollection": _to("get_api_get_collection_view", name="$response.body#/name"),
        "listImages": _to("get_api_list_images", name="$response.body#/name"),
        "deleteCollection": _to("delete_api_delete_collection", name="$response.body#/name"),
    }
    QUEUED_JOB = {"getJob": _to("get_api_job", job_id="$response.body#/job_id")}
    LISTED_JOBS = {"getJob": _to("get_api_job", job_id="$response.body#/jobs/0/id")}
    LISTED_IMAGES = {
        "getImage": _to("get_api_get_image", image_id="$response.body#/images/0/id"),
        "similarImages": _to("get_api_similar", image_id="$response.body#/images/0/id"),
        "thumbnail": _to("get_api_thumbnail", image_id="$response.body#/images/0/id"),
        "deleteImage": _to("delete_api_delete_image", image_id="$response.body#/images/0/id"),
    }


def bodies(**content: Any) -> dict:
    """Request-body content types beyond the one ``@bp.input`` declares, for ``@bp.doc(extensions=...)``:
    ``bodies(**{"application/json": ServerPathIngest, "image/*": BINARY})``."""
    return {"x-bodies": content}


BINARY = {"type": "string", "format": "binary"}


def _clean_parameter_schema(schema: dict) -> dict:
    """Query parameters are absent or a value: drop pydantic's ``anyOf [X, null]`` and ``default: null``."""
    options = schema.get("anyOf")
    if options and any(o.get("type") == "null" for o in options):
        rest = [o for o in options if o.get("type") != "null"]
        merged = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        schema = {**(rest[0] if len(rest) == 1 else {"anyOf": rest}), **merged}
    if schema.get("default", 0) is None:
        schema.pop("default")
    schema.pop("title", None)
    return schema


def finish_spec(spec: dict) -> dict:
    """The spec processor: everything APIFlask does not know about simsearch's contract."""
    spec["info"]["description"] = (
        "Image similarity search over your own collections. Every error has one shape: "
        "`{\"error\": {\"code\", \"message\", \"field\"?, \"details\"?}}`. Unknown query parameters are refused "
        "(400, naming them). When the server has API keys (SIMSEARCH_API_KEYS), every write (POST/PUT/PATCH/DELETE) "
        "needs one, as `Authorization: Bearer KEY` or `X-API-Key: KEY`, and so does every read except /api/health "
        "and the API docs unless SIMSEARCH_PUBLIC_READS is set (SIMSEARCH_PUBLIC_SEARCH opens only search, similar "
        "images and thumbnails); browser sessions use /login and send the page's CSRF token in `X-CSRF-Token`. "
        "Any route may also answer 408 `request_timeout` (the body did not arrive in time), 503 with `Retry-After` "
        "(the database or the job queue is unavailable or frozen, or the data folder is read-only) and 507 "
        "`storage_full` (the disk holding the database or the data folder is full).")
    spec["paths"] = {p: ops for p, ops in spec["paths"].items() if p.startswith("/api/")}
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = model_schema(schemas.Error)
    components["AnalysisAccepted"] = model_schema(schemas.AnalysisAccepted)
    path_limits = {name: _clean_parameter_schema(TypeAdapter(t).json_schema()) for name, t in schemas.PATH_PARAMETERS.items()}
    for path, ops in spec["paths"].items():
        for op in ops.values():
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    param["required"] = True
                    param["schema"] = dict(path_limits.get(param["name"], param["schema"]))
                else:
                    param["schema"] = _clean_parameter_schema(param["schema"])
                    style = param["schema"].pop("x-style", None)
                    if style:
                        param.update(style=style, explode=param["schema"].pop("x-explode", True))
                    if "description" in param["schema"]:
                        param["description"] = param["schema"].pop("description")
            extra = op.pop("x-bodies", None)
            if extra:
                content = op.setdefault("requestBody", {}).setdefault("content", {})
                for ctype, schema in extra.items():
                    if isinstance(schema, type) and issubclass(schema, BaseModel):
                        body = model_schema(schema)
                        if ctype == "multipart/form-data":  # a form field is sent or not: never null
                            body["properties"] = {k: _clean_parameter_schema(v) for k, v in body["properties"].items()}
                        components[schema.__name__] = body
                        schema = {"$ref": REF.format(model=schema.__name__)}
                    content[ctype] = {"schema": schema}
            if "requestBody" in op:
                op["requestBody"]["required"] = True
    for name, schema in list(_NESTED.items()):
        components.setdefault(name, schema)
    spec["components"]["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API key from SIMSEARCH_API_KEYS."},
        "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    return add_examples(json.loads(json.dumps(spec)))  # plain JSON types only; then the examples


def error_processor(error):
    """APIFlask's own HTTP errors (``abort``, its validation errors) in the one error shape."""
    field, message = None, error.message or "error"
    detail = error.detail if isinstance(error.detail, dict) else {}
    for _location, fields in detail.items():
        if isinstance(fields, dict) and fields:
            field, msgs = next(iter(fields.items()))
            message = f"{field}: {msgs[0] if isinstance(msgs, list) and msgs else msgs}"
            break
    code = "invalid_input" if error.status_code == 400 else {401: "unauthorized", 403: "forbidden", 404: "not_found",
                                                              409: "conflict", 413: "payload_too_large"}.get(error.status_code, "error")
    return error_body(code, message, field=field, details=error.detail or None), error.status_code, error.headers


def configure(app) -> None:
    """APIFlask settings for simsearch (call before registering blueprints and error handlers)."""
    app.config.update(
        VALIDATION_ERROR_STATUS_CODE=400,
        VALIDATION_ERROR_DESCRIPTION=ERROR_DESCRIPTIONS[400],
        AUTO_404_RESPONSE=False,  # declared per operation with errors(...)
        AUTO_VALIDATION_ERROR_RESPONSE=False,
        AUTO_AUTH_ERROR_RESPONSE=False,
        AUTO_OPERATION_ID=True,
        AUTO_SERVERS=False,
        SERVERS=[{"url": "/"}],
        TAGS=[{"name": t} for t in ("service", "collections", "images", "search", "ingest", "analysis", "tuning")],
    )
    app.version = __version__
    app.title = "simsearch API"
    app.error_processor(error_processor)
    app.spec_processor(finish_spec)
