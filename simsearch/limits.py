"""Every limit on user input, declared once, for the CLI and the JSON API alike.

Each limit is a pydantic annotated type: the API's request schemas (:mod:`simsearch.web.schemas`)
are built from them, so the OpenAPI document, the request validation and the 400s come from the
same declaration, and the CLI checks its options with :func:`check` against the same types, so
``simsearch cluster --k 500`` and ``GET .../clusters?k=500`` are refused with the same message.

No Flask here (the CLI imports this module); only pydantic and :mod:`simsearch.errors`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, TypeAdapter
from pydantic import ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError, core_schema

from simsearch import spaces
from simsearch.embedding.backbones import list_backbones
from simsearch.errors import InvalidInput
from simsearch.spaces import backbone_spaces, read_spaces

# ---- numbers ----------------------------------------------------------------------------------

SEARCH_K_MAX = 1000
CLUSTER_K_MIN, CLUSTER_K_MAX = 2, 200
BATCH_SIZE_MAX = 256
PER_PAGE_MAX, PER_PAGE_DEFAULT = 500, 50
PAGE_MAX = 10_000_000
JOBS_LIMIT_MAX, JOBS_LIMIT_DEFAULT = 200, 20
# The lowest cosine similarity the duplicate finder groups at (its pairs are kept from there up)
DUPLICATES_THRESHOLD_MIN = 0.70
LABEL_IDS_MAX = 100_000
# Row ids are 64-bit on SQLite and PostgreSQL (BIGINT/INTEGER PRIMARY KEY); larger ones cannot exist.
ID_MAX = 2**63 - 1

NO_NUL = r"^[^\x00]*$"


def _whole(value: Any) -> Any:
    """JSON's 802.0 is the whole number 802 (JSON Schema agrees); 802.5 stays a float and is refused."""
    return int(value) if isinstance(value, float) and value.is_integer() and abs(value) < 2**64 else value


Whole = BeforeValidator(_whole)
SearchK = Annotated[int, Field(ge=1, le=SEARCH_K_MAX, description="Number of results."), Whole]
BatchSize = Annotated[int, Field(ge=1, le=BATCH_SIZE_MAX, description="Images per model forward pass."), Whole]
Page = Annotated[int, Field(ge=1, le=PAGE_MAX, description="Page number (from 1)."), Whole]
PerPage = Annotated[int, Field(ge=1, le=PER_PAGE_MAX, description="Items per page."), Whole]
JobsLimit = Annotated[int, Field(ge=1, le=JOBS_LIMIT_MAX, description="How many jobs."), Whole]
Id = Annotated[int, Field(ge=1, le=ID_MAX), Whole]
# Queries with several examples (docs/search-examples.md): ids and uploaded files per side
EXAMPLES_MAX, EXAMPLE_FILES_MAX = 100, 8
ExampleIds = Annotated[list[Id], Field(max_length=EXAMPLES_MAX, description="Image ids of the collection.")]
ScoreThreshold = Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False,
                                        description="Leave out results scoring below this (the `score` field: a "
                                                    "cosine similarity, -1..1).")]
MinPercentile = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False,
                                       description="Leave out results whose `percentile` is below this (0..100: the "
                                                   "readable score, the same in every space).")]
UnlikeWeight = Annotated[float, Field(ge=0.0, le=10.0, allow_inf_nan=False,
                                      description="How hard the negative examples push (0: not at all; default 1).")]
DuplicatesThreshold = Annotated[float, Field(ge=DUPLICATES_THRESHOLD_MIN, le=1.0, allow_inf_nan=False,
                                             description="Cosine similarity at or above which two images are grouped.")]


def _blank_to_none(value: Any) -> Any:
    return None if value == "" else value


class AllowBlank:
    """For query strings and forms: an empty value (``backbone=``, as browsers send an empty
    field) means "not given"; documented as the value or an empty string."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler):
        return core_schema.no_info_before_validator_function(_blank_to_none, handler(source))

    def __get_pydantic_json_schema__(self, cs, handler: GetJsonSchemaHandler):
        schema = handler(cs)
        options = [o for o in schema.pop("anyOf", [schema]) if o.get("type") != "null"]
        inner = options[0] if len(options) == 1 else {"anyOf": options}
        return {"anyOf": [inner, {"type": "string", "maxLength": 0}], **{k: v for k, v in schema.items() if k != "default"}}


class _BackboneName:
    """A registered backbone (embedding space): documented as the list of names, checked against it."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler):
        return core_schema.no_info_after_validator_function(cls._check, core_schema.str_schema())

    @classmethod
    def __get_pydantic_json_schema__(cls, cs, handler: GetJsonSchemaHandler):
        return {"type": "string", "pattern": spaces.space_pattern(precision=False),
                "examples": ["efficientnet_lite0", "efficientnet_lite0@gem3+flip"],
                "description": "Backbone (embedding space): `backbone[@pooling][+flip][+ms]`, where `backbone` is one of "
                               + ", ".join(f"`{n}`" for n in list_backbones()) + SPACE_GRAMMAR_WORDS}

    @staticmethod
    def _check(value: str) -> str:
        if value not in backbone_spaces():
            raise PydanticCustomError("backbone", "unknown backbone {given}; choose one of: {names} ({suffixes})",
                                      {"given": repr(value[:70]), "names": ", ".join(list_backbones()),
                                       "suffixes": spaces.SUFFIX_HELP})
        return value


def _cluster_k(value: Any) -> int | str:
    message = f"k must be 'auto' or a whole number >= {CLUSTER_K_MIN} and <= {CLUSTER_K_MAX}, not {{given}}"
    value = _whole(value)
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return "auto"
    if isinstance(value, bool):
        raise PydanticCustomError("cluster_k", message, {"given": repr(value)})
    try:
        k = int(value.strip()) if isinstance(value, str) else value
    except ValueError:
        raise PydanticCustomError("cluster_k", message, {"given": repr(value)}) from None
    if not isinstance(k, int) or not CLUSTER_K_MIN <= k <= CLUSTER_K_MAX:
        raise PydanticCustomError("cluster_k", message, {"given": repr(value) if not isinstance(k, int) else str(k)})
    return k


ClusterK = Annotated[
    int | Literal["auto"],
    BeforeValidator(_cluster_k),
    WithJsonSchema({"oneOf": [{"type": "string", "enum": ["auto", ""]},
                              {"type": "integer", "minimum": CLUSTER_K_MIN, "maximum": CLUSTER_K_MAX}],
                    "description": "Number of clusters, or `auto` (chosen by silhouette over a range of k that grows with the collection: see `silhouette.ks`)."}),
]

# ---- names and text ---------------------------------------------------------------------------

COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
COLLECTION_NAME_RULE = "use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
CollectionName = Annotated[str, Field(pattern=COLLECTION_NAME_PATTERN, description=f"Collection name: {COLLECTION_NAME_RULE}.",
                                      examples=["pets"])]

LABEL_MAX = 200
# at least one character that is not white space; no NUL anywhere (PostgreSQL text cannot hold it)
LABEL_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"
Label = Annotated[str, Field(min_length=1, max_length=LABEL_MAX, pattern=LABEL_PATTERN,
                             description="A label: 1-200 characters, not only white space (trimmed).")]
DESCRIPTION_MAX = 10_000
Description = Annotated[str, Field(max_length=DESCRIPTION_MAX, pattern=NO_NUL)]
Backbone = Annotated[str, _BackboneName]
SPACE_GRAMMAR_WORDS = ("; `@pooling` is `@avg` (the default), `@max` or `@gem2`..`@gem4` (GeM: a generalised mean "
                       "between average and maximum); `+flip` adds the mirrored image, `+ms` a zoomed copy.")
# A space of imported or derived vectors: the grammar is :mod:`simsearch.spaces`'s
SPACE_NAME_PATTERN = spaces.NAME_PATTERN
SPACE_NAME_RULE = spaces.NAME_RULE


class _SpaceName(_BackboneName):
    """An embedding space to read: a backbone space, or the name of imported vectors."""

    @classmethod
    def __get_pydantic_json_schema__(cls, cs, handler: GetJsonSchemaHandler):
        return {"anyOf": [{"type": "string", "pattern": spaces.space_pattern()},
                          {"type": "string", "pattern": SPACE_NAME_PATTERN}],
                "examples": ["efficientnet_lite0", "efficientnet_lite0@gem4+flip+ms+bf16", "efficientnet_lite0.discriminant"],
                "description": "Embedding space: a backbone's, `backbone[@pooling][+flip][+ms][+bf16|+int8]`, where `backbone` "
                               "is one of " + ", ".join(f"`{n}`" for n in list_backbones()) + SPACE_GRAMMAR_WORDS
                               + " `+bf16`: vectors computed in bfloat16; `+int8`: by an int8 model (OpenVINO, NNCF). Or the name of a space of derived or imported "
                               f"vectors ({SPACE_NAME_RULE}), e.g. `efficientnet_lite0.discriminant` (made by `tune`). "
                               "`GET /api/collections/{name}/spaces` lists a collection's spaces, each in plain words."}

    @staticmethod
    def _check(value: str) -> str:
        if value in read_spaces() or spaces.is_valid_name(value):
            return value
        raise PydanticCustomError("backbone", "unknown backbone {given}; choose one of: {names} ({suffixes}), or the "
                                  "name of imported vectors ({rule})",
                                  {"given": repr(value[:70]), "names": ", ".join(list_backbones()),
                                   "suffixes": spaces.SUFFIX_HELP, "rule": SPACE_NAME_RULE})


Space = Annotated[str, _SpaceName]
Pooling = Literal["avg", "max"]
FILENAME_MAX = 255
Filename = Annotated[str, Field(max_length=FILENAME_MAX, pattern=NO_NUL, examples=["cat.jpg"])]
META_KEY_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_ .-]{0,99}$"
# An image's new file name (rename): one path component, not '.' or '..', not only white space
IMAGE_NAME_PATTERN = r"^(?!\.\.?$)[^/\\\x00]*[^/\\\x00\s][^/\\\x00]*$"
IMAGE_NAME_RULE = "a file name without '/' or '\\', not '.' or '..' and not only white space"
ImageName = Annotated[str, Field(min_length=1, max_length=FILENAME_MAX, pattern=IMAGE_NAME_PATTERN,
                                 description=f"The image's new file name (1-{FILENAME_MAX} characters: {IMAGE_NAME_RULE}).")]

_PATTERN_RULES = {
    COLLECTION_NAME_PATTERN: COLLECTION_NAME_RULE,
    LABEL_PATTERN: "it needs a character that is not white space, and no NUL characters",
    NO_NUL: "NUL characters are not allowed",
    META_KEY_PATTERN: "use letters, digits, '_', '-', '.', ' '",
    IMAGE_NAME_PATTERN: f"use {IMAGE_NAME_RULE}",
}


# ---- checking and messages --------------------------------------------------------------------

def where(loc: tuple) -> str:
    """``('image_ids', 3)`` -> ``image_ids[3]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def describe(error: dict, name: str | None = None, *, unknown: str = "field") -> str:
    """One sentence for one pydantic error, naming the field: the CLI and the API say the same."""
    name = name or where(tuple(p for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))))
    kind, ctx, given = error["type"], error.get("ctx") or {}, error.get("input")
    shown = repr(given[:60] + ("..." if len(given) > 60 else "")) if isinstance(given, str) else repr(given)
    if kind == "missing":
        return f"{name} is required"
    if kind == "extra_forbidden":
        return f"unknown {unknown} {name!r}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{name} must be a whole number, not {shown}"
    if kind in ("float_parsing", "float_type"):
        return f"{name} must be a number, not {shown}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        op = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}[kind]
        bound = ctx.get({"greater_than_equal": "ge", "less_than_equal": "le", "greater_than": "gt", "less_than": "lt"}[kind])
        return f"{name} must be {op} {bound}, not {given}"
    if kind == "string_too_long":
        return f"{name} is too long (at most {ctx.get('max_length')} characters)"
    if kind == "string_too_short":
        return f"{name} must not be empty" if ctx.get("min_length") == 1 else f"{name} is too short (at least {ctx.get('min_length')} characters)"
    if kind == "string_pattern_mismatch":
        rule = _PATTERN_RULES.get(ctx.get("pattern"), f"it must match {ctx.get('pattern')}")
        return f"{name} {shown} is not valid: {rule}"
    if kind == "string_type":
        return f"{name} must be a string"
    if kind in ("literal_error", "enum"):
        return f"{name} must be {ctx.get('expected')}, not {shown}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{name} must be true or false"
    if kind in ("list_type", "tuple_type"):
        return f"{name} must be a list"
    if kind == "too_short":
        return f"{name} must have at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"{name} has too many items (at most {ctx.get('max_length')})"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"{name} must be a JSON object" if name != "body" else "the request body must be a JSON object"
    if kind == "json_invalid":
        return f"the request body is not valid JSON: {ctx.get('error', error.get('msg'))}"
    if kind == "json_type":
        return f"{name} must be JSON"
    if kind == "none_required":
        return f"{name} must be null"
    msg = error.get("msg") or "is not valid"
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if kind in ("cluster_k", "backbone") or msg.startswith(name):
        return msg
    return f"{name}: {msg}"


def invalid_input(exc: ValidationError, *, name: str | None = None, unknown: str = "field") -> InvalidInput:
    """The :class:`InvalidInput` for a pydantic error: the first problem in the message and
    ``field``, every problem in ``details.errors`` when there are several."""
    items = []
    for err in exc.errors(include_url=False, include_context=True):
        loc = tuple(err["loc"])
        items.append({"field": name or (str(loc[0]) if loc else "body"),
                      "message": describe(err, name, unknown=unknown)})
    first = items[0] if items else {"field": name or "body", "message": "invalid input"}
    return InvalidInput(first["message"], field=first["field"], details={"errors": items} if len(items) > 1 else None)


# Python's re (not pydantic's default Rust engine) so that "white space" means what str.strip() strips
CONFIG = ConfigDict(regex_engine="python-re")
_ADAPTERS: dict[Any, TypeAdapter] = {}


def check(limit: Any, value: Any, name: str, *, strict: bool = False) -> Any:
    """``value`` validated against one limit (a type from this module), or :class:`InvalidInput`
    naming ``name``: the CLI's options go through here."""
    adapter = _ADAPTERS.get(limit)
    if adapter is None:
        adapter = _ADAPTERS[limit] = TypeAdapter(limit, config=CONFIG)
    try:
        return adapter.validate_python(value, strict=strict)
    except ValidationError as exc:
        raise invalid_input(exc, name=name) from None
