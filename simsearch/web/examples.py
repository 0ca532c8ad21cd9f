"""Examples in the OpenAPI document: every operation's parameters, request body and success
responses carry one (Swagger UI shows them and fills "Try it out" with them).

They come from the contract itself (:mod:`simsearch.web.schemas`): a model's own example
(``model_config = ConfigDict(json_schema_extra={"examples": [...]})``) where it has one, else one
composed from its fields' examples (``Field(examples=[...])``), defaults and enumerations;
parameters take their schema's example. A required text field with nothing to compose from
gives no example, and ``tests/test_openapi_examples.py`` names the operation: an example is
declared, never made up here. Bodies that are files (images, ``.npz``, the binary map) have no
literal example: :data:`FILE_EXAMPLES` points to one this server serves (``externalValue``).
"""

from __future__ import annotations

from typing import Any

REF_PREFIX = "#/components/schemas/"
NOT_COMPOSED = object()  # a schema with nothing declared to compose an example from
# Text fields named alike in many responses (``collection: str``), where the field declares no
# example of its own: one example per name, the same in every operation.
FIELD_EXAMPLES = {
    "collection": "pets", "backbone": "efficientnet_lite0", "space": "efficientnet_lite0", "version": "3f9c2a71d0b4e85a6c12",
    "name": "pets", "label": "cats", "path": "cats/cat.17.jpg", "deleted": "pets",
    "thumbnail_url": "/api/images/17/thumbnail", "similar_url": "/api/images/17/similar", "file_url": "/api/images/17/file",
    "status_url": "/api/jobs/42",
}

FILE_EXAMPLES = {  # media type -> an Example Object for a body or response that is a file
    "image/*": {"summary": "A photo's bytes", "description": "`curl --data-binary @cat.jpg -H 'Content-Type: image/jpeg'`",
                "externalValue": "/api/images/1/file"},
    "image/jpeg": {"summary": "A JPEG image", "externalValue": "/api/images/1/thumbnail"},
    "image/png": {"summary": "A PNG image", "externalValue": "/api/docs/assets/favicon-32x32.png"},
    "image/gif": {"summary": "The original file, as it was uploaded", "externalValue": "/api/images/1/file"},
    "image/bmp": {"summary": "The original file, as it was uploaded", "externalValue": "/api/images/1/file"},
    "image/tiff": {"summary": "The original file, as it was uploaded", "externalValue": "/api/images/1/file"},
    "image/webp": {"summary": "The original file, as it was uploaded", "externalValue": "/api/images/1/file"},
    "text/html": {"summary": "The interactive documentation page", "externalValue": "/api/docs"},
    "text/javascript": {"summary": "Swagger UI's start-up script", "externalValue": "/api/docs/assets/swagger-init.js"},
    "text/css": {"summary": "The documentation page's style sheet", "externalValue": "/api/docs/assets/docs.css"},
}
# A binary body whose meaning depends on the operation: (method, path) -> media type -> Example Object
OPERATION_FILE_EXAMPLES = {
    ("get", "/api/collections/{name}/vectors"): {"application/octet-stream": {
        "summary": "An .npz of the collection's vectors (members ids, keys, paths, labels, metadata, vectors, fingerprint)",
        "externalValue": "/api/collections/pets/vectors?backbone=efficientnet_lite0"}},
    ("post", "/api/collections/{name}/vectors"): {"application/octet-stream": {
        "summary": "An .npz with `vectors` (n x dim float32) and `keys` (n file names), as `simsearch export` writes",
        "externalValue": "/api/collections/pets/vectors?backbone=efficientnet_lite0"}},
    ("get", "/api/collections/{name}/map.bin"): {"application/octet-stream": {
        "summary": "The binary map: a header, then per image its id, quantised x and y and cluster",
        "externalValue": "/api/collections/pets/map.bin?backbone=efficientnet_lite0"}},
    ("get", "/api/images/{image_id}/file"): {"application/octet-stream": {
        "summary": "An original in a format without its own media type", "externalValue": "/api/images/1/file"}},
    ("post", "/api/collections/{name}/search"): {"application/octet-stream": {
        "summary": "A photo's bytes", "description": "`curl --data-binary @cat.jpg -H 'Content-Type: application/octet-stream'`",
        "externalValue": "/api/images/1/file"}},
}


def resolve(schema: dict, components: dict) -> dict:
    while isinstance(schema, dict) and "$ref" in schema:
        schema = components[schema["$ref"][len(REF_PREFIX):]]
    return schema


def declared(schema: dict) -> Any:
    """The example a schema declares itself (``examples``, ``example``, ``const``), or NOT_COMPOSED."""
    if schema.get("examples"):
        ex = schema["examples"]
        return ex[0] if isinstance(ex, list) else next(iter(ex.values()))
    if "example" in schema:
        return schema["example"]
    if "const" in schema:
        return schema["const"]
    return NOT_COMPOSED


def compose(schema: dict, components: dict, depth: int = 0) -> Any:
    """An example of ``schema`` from what it and its parts declare; NOT_COMPOSED when a required
    part declares nothing (a text field without an example, a pattern, an empty schema)."""
    schema = resolve(schema, components)
    if depth > 12 or not isinstance(schema, dict):
        return NOT_COMPOSED
    got = declared(schema)
    if got is not NOT_COMPOSED:
        return got
    if schema.get("default") is not None:
        return schema["default"]
    if schema.get("enum"):
        return next((v for v in schema["enum"] if v not in ("", None)), schema["enum"][0])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if resolve(o, components).get("type") != "null"]
            for option in options:
                got = compose(option, components, depth + 1)
                if got is not NOT_COMPOSED:
                    return got
            return None if len(options) < len(schema[key]) else NOT_COMPOSED
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        out = {}
        required = set(schema.get("required", ()))
        for name, part in schema.get("properties", {}).items():
            got = compose(part, components, depth + 1)
            if got is NOT_COMPOSED and name in FIELD_EXAMPLES and _text(part, components):
                got = FIELD_EXAMPLES[name]
            if got is NOT_COMPOSED:
                if name in required:
                    return NOT_COMPOSED
                continue
            out[name] = got
        return out
    if kind == "array":
        item = compose(schema.get("items", {}), components, depth + 1)
        return [] if item is NOT_COMPOSED else [item]
    if kind == "boolean":
        return False
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = max(low, min(1, schema.get("maximum", 1)))
        return int(value) if kind == "integer" else float(value)
    if kind == "string" and schema.get("format") == "date-time":
        return "2026-12-06T18:44:15Z"
    if kind == "null":
        return None
    return NOT_COMPOSED


def _text(schema: dict, components: dict) -> bool:
    """Whether ``schema`` takes a string (maybe also null)."""
    schema = resolve(schema, components)
    options = schema.get("anyOf") or [schema]
    return any(resolve(o, components).get("type") == "string" for o in options)


def add_examples(spec: dict) -> dict:
    """Give every parameter, request body and success response of ``spec`` its example (in place)."""
    components = spec.get("components", {}).get("schemas", {})
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            files = OPERATION_FILE_EXAMPLES.get((method, path), {})
            for param in op.get("parameters", []):
                if "example" not in param and "examples" not in param:
                    got = compose(param.get("schema", {}), components)
                    if got is not NOT_COMPOSED and got is not None:
                        param["example"] = got
            media = list((op.get("requestBody") or {}).get("content", {}).items())
            for code, resp in op.get("responses", {}).items():
                if code.startswith("2"):
                    media += list((resp.get("content") or {}).items())
            for ctype, body in media:
                if "example" in body or "examples" in body:
                    continue
                if ctype in files or ctype in FILE_EXAMPLES:
                    body["examples"] = {"file": files.get(ctype) or FILE_EXAMPLES[ctype]}
                    continue
                got = compose(body.get("schema", {}), components)
                if got not in (NOT_COMPOSED, {}, [], [{}], None):  # an empty object or list says nothing
                    body["example"] = got
    return spec
