"""Listing spaces: every backbone space a request may name, and what kind a stored space is."""

from __future__ import annotations

import re

from simsearch.embedding.backbones import list_backbones
from simsearch.embedding.runtimes import FP32, PRECISIONS

from .names import POOLINGS, VIEWS, is_backbone_space


def backbone_spaces() -> list[str]:
    """Every backbone space new vectors may be embedded in: each registered backbone, bare or with
    a pooling (``@avg``, ``@max``, ``@gem2``..``@gem4``), then optionally test-time views
    (``+flip``, ``+ms``, ``+flip+ms``); the bare names first."""
    names = list_backbones()
    heads = names + [f"{n}@{p}" for n in names for p in POOLINGS]
    suffixes = [""] + [f"+{v}" for v in VIEWS] + ["+" + "+".join(VIEWS)]
    return heads + [h + sfx for sfx in suffixes[1:] for h in heads]


def space_pattern(*, precision: bool = True) -> str:
    """The grammar as one regular expression: a registered backbone, then optionally ``@pooling``,
    ``+flip``, ``+ms`` (in this order) and, with ``precision``, ``+bf16`` or ``+int8``: exactly the names of
    :func:`read_spaces` (``precision``) or :func:`backbone_spaces` (without). The API documents a
    space with it rather than with the hundreds of names it stands for."""
    names = "|".join(re.escape(n) for n in list_backbones())
    views = "".join(rf"(\+{re.escape(v)})?" for v in VIEWS)
    tail = rf"(\+({'|'.join(p for p in PRECISIONS if p != FP32)}))?" if precision else ""
    return rf"^({names})(@({'|'.join(POOLINGS)}))?{views}{tail}$"


def read_spaces() -> list[str]:
    """The backbone spaces a request may read: :func:`backbone_spaces`, and each with ``+bf16``
    (where the vectors were embedded in bfloat16: ``SIMSEARCH_PRECISION`` auto on a CPU with AMX
    or AVX512-BF16) and ``+int8`` (``SIMSEARCH_PRECISION=int8``). Which precision new vectors get
    is a setting, not a name a request gives."""
    names = backbone_spaces()
    return names + [f"{n}+{p}" for p in PRECISIONS if p != FP32 for n in names]


def kind_of(space: str, derived: set[str] | frozenset[str] = frozenset()) -> str:
    """``derived`` (one of the collection's ``derived`` names), ``backbone`` or ``imported``."""
    if space in derived:
        return "derived"
    return "backbone" if is_backbone_space(space) else "imported"
