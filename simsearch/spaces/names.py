"""The grammar of space names: parse, format and check them (no database, no model).

A backbone's space is written ``backbone[@pooling][+flip][+ms][+bf16|+int8]``:

- pooling: ``avg`` (global average pooling, the default: not written), ``max``, or GeM
  (generalised mean, ``(mean x^p)^(1/p)`` over the last feature map) at p = 2, 3 or 4 (``@gem3``);
- views (test-time augmentation): ``+flip`` (the left-right mirrored image too), ``+ms`` (a second,
  zoomed scale), ``+flip+ms`` (the four combinations), in this order;
- numerics: fp32 (not written), ``+bf16`` (computed in bfloat16) or ``+int8`` (an int8 model
  quantized by NNCF for OpenVINO), last.

Any other valid name (:data:`NAME_PATTERN`) is a space of imported vectors
(``simsearch import-vectors``, :func:`imported_name`) or a derived space (``<base>.<candidate>``,
:func:`derived_name`): those hold only what was stored, nothing can embed an image in them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from simsearch.embedding.backbones import get_backbone
from simsearch.embedding.pooling import GEM_P, POOLINGS
from simsearch.embedding.runtimes import FP32, PRECISIONS
from simsearch.errors import Conflict, InvalidInput

VIEWS = ("flip", "ms")  # test-time views, written in this order after the pooling
# A space of imported or derived vectors is named like a collection; a name that is also a
# backbone space is that backbone's space.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
NAME_RULE = "1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
NAME_MAX = 100
# How the suffixes are described when a name is refused (the CLI's and the API's messages)
SUFFIX_HELP = "optionally with @avg, @max or @gem2..@gem4, then +flip and/or +ms"


@dataclass(frozen=True)
class SpaceSpec:
    """A backbone space's parts: ``efficientnet_lite0@gem3+flip`` -> backbone ``efficientnet_lite0``,
    pooling ``gem3``, views ``('flip',)``, precision ``fp32``."""

    backbone: str
    pooling: str = "avg"
    views: tuple[str, ...] = ()
    precision: str = FP32

    @property
    def key(self) -> str:
        """The space's name (:func:`space_key`)."""
        return space_key(self.backbone, self.pooling, self.precision, self.views)

    @property
    def model_pooling(self) -> str:
        """The pooling inside the model: GeM pools the feature map outside it (``none``)."""
        return "none" if self.pooling in GEM_P else self.pooling

    @property
    def view_list(self) -> list[str]:
        """The images each input is embedded as: ``plain``, ``flip``, ``zoom``, ``zoom-flip``."""
        scales = ["plain", "zoom"] if "ms" in self.views else ["plain"]
        out = []
        for sc in scales:
            out.append(sc)
            if "flip" in self.views:
                out.append("flip" if sc == "plain" else "zoom-flip")
        return out


def space_key(backbone: str, pooling: str = "avg", precision: str = FP32, views=()) -> str:
    """Format: ``('resnet50', 'gem3', 'bf16', ('flip',))`` -> ``'resnet50@gem3+flip+bf16'``;
    validates every part (InvalidInput naming ``pooling``, ``precision`` or ``backbone``)."""
    if pooling not in POOLINGS:
        raise InvalidInput(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}", field="pooling")
    if precision not in PRECISIONS:
        raise InvalidInput(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}", field="precision")
    views = tuple(views)
    for v in views:
        if v not in VIEWS:
            raise InvalidInput(f"test-time views are {', '.join(VIEWS)}, not {v!r}", field="backbone")
    get_backbone(backbone)  # validates the name
    key = backbone if pooling == "avg" else f"{backbone}@{pooling}"
    key += "".join(f"+{v}" for v in VIEWS if v in views)
    return key if precision == FP32 else f"{key}+{precision}"


def split(space: str) -> tuple[str, str | None, tuple[str, ...], str | None]:
    """``'resnet50@gem3+flip+bf16'`` -> ``('resnet50', 'gem3', ('flip',), 'bf16')``; None where not
    written. Checks the order of the suffixes (views, then precision), not the names."""
    head, *suffixes = str(space).split("+")
    if any(not x for x in suffixes):
        raise InvalidInput(f"{space!r}: nothing after '+' (write e.g. efficientnet_lite0+flip or "
                           "efficientnet_lite0+bf16)", field="backbone")
    name, at, pooling = head.partition("@")
    if at and not pooling:
        raise InvalidInput(f"{space!r}: nothing after '@' (write e.g. efficientnet_lite0@gem3, or no '@' for the "
                           "average pooling)", field="pooling")
    precision = suffixes.pop() if suffixes and suffixes[-1] in PRECISIONS else None
    views = tuple(suffixes)
    if len(set(views)) != len(views) or any(v not in VIEWS for v in views) or \
            list(views) != [v for v in VIEWS if v in views]:
        raise InvalidInput(f"{space!r}: after the backbone and its pooling come the test-time views "
                           f"({' then '.join('+' + v for v in VIEWS)}, each at most once), then the precision "
                           f"(+{' or +'.join(PRECISIONS)})", field="backbone")
    return name, (pooling if at else None), views, precision


def parse(space: str) -> SpaceSpec:
    """Parse: ``'resnet50@gem3+flip'`` -> its :class:`SpaceSpec`; validates every part
    (InvalidInput naming the field: ``backbone``, ``pooling`` or ``precision``)."""
    name, pooling, views, precision = split(space)
    spec = SpaceSpec(name, pooling or "avg", views, precision or FP32)
    spec.key  # noqa: B018 - validates
    return spec


def is_backbone_space(space: str) -> bool:
    """Whether ``space`` names a backbone's space (its vectors can be computed here); other valid
    names are spaces of imported or derived vectors, which only hold what was stored."""
    try:
        parse(space)
    except InvalidInput:
        return False
    return True


def is_valid_name(space) -> bool:
    """Whether ``space`` may name a space of imported or derived vectors (:data:`NAME_PATTERN`)."""
    return isinstance(space, str) and re.match(NAME_PATTERN, space) is not None


def check_space_name(space: str) -> bool:
    """True for a backbone space, False for a valid name of imported vectors; InvalidInput (the
    backbone's message, naming the choices) for anything else."""
    if is_backbone_space(space):
        return True
    if is_valid_name(space):
        return False
    try:
        parse(space)
    except InvalidInput as exc:
        raise InvalidInput(f"{exc.message}; or name imported vectors with {NAME_RULE}", field=exc.field,
                           details=exc.details) from None
    return True


def to_embed(space: str) -> SpaceSpec:
    """The parts of a space an image can be embedded in (what an embedder is given): Conflict for
    a name of imported vectors (nothing here computes them), InvalidInput for an invalid name."""
    if not check_space_name(space):
        raise Conflict(f"the {space!r} vectors were imported (simsearch import-vectors): simsearch cannot embed an "
                       "image in that space; search by an image's id (similar), or choose a backbone's space",
                       field="backbone")
    return parse(space)


def check(name: str, *, imported: bool = False) -> str:
    """``name`` if it is a backbone's space, else InvalidInput naming ``backbone``. ``imported``: a
    valid name of imported or derived vectors (``clip-vit-b32``) passes too (whether a collection
    has vectors there is the caller's 404)."""
    if imported:
        check_space_name(name)
    else:
        parse(name)
    return name


def derived_name(bases: list[str], candidate: str) -> str:
    """``(['efficientnet_lite0'], 'discriminant+qe')`` -> ``'efficientnet_lite0.discriminant-qe'``."""
    base = ".".join(b.replace("@", "_").replace("+", "_") for b in bases)
    name = f"{base}.{candidate.replace('+', '-')}"
    if len(name) > NAME_MAX:
        raise InvalidInput(f"the derived space's name {name!r} is longer than 100 characters", field="backbones")
    if not is_valid_name(name):  # pragma: no cover - bases are checked names
        raise InvalidInput(f"{name!r} is no valid space name", field="backbones")
    return name


def imported_name(space: str | None, weights_sha256: str | None) -> str:
    """The space for imported vectors of a model this server does not run: named for the model's
    space and its weights, e.g. ``efficientnet_lite0.w-9f1c2a3b`` (a valid name that is no
    backbone's); ``<space>.foreign`` without a weights digest."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", str(space or "imported")).strip("._-") or "imported"
    sha = str(weights_sha256 or "")[:8]
    return f"{base}.w-{sha}"[:NAME_MAX] if sha else f"{base}.foreign"[:NAME_MAX]
