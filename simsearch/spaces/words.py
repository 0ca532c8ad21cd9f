"""Spaces and scores in plain words: what a page or the API shows beside a space's internal name.

:func:`describe` turns a space's name (``efficientnet_lite0@gem4+flip+ms+bf16``) into a readable
title ("EfficientNet-Lite0, GeM pooling (p = 4), flip + multi-scale views, bfloat16") and a
one-line explanation; :data:`SCORES` names and explains every score the pages show (P@10, ARI,
kept, the percentile...). Pure: no database, no model; the names' grammar is :mod:`.names`'s.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from simsearch.errors import InvalidInput

from .names import GEM_P, parse

BACKBONE_TITLES = {
    "resnet50": "ResNet-50", "vgg16": "VGG-16", "vgg19": "VGG-19", "inception_v3": "Inception v3",
    "mobilenet_v2": "MobileNet v2", "efficientnet_b0": "EfficientNet-B0", "efficientnet_lite0": "EfficientNet-Lite0",
    "efficientnet_lite1": "EfficientNet-Lite1", "efficientnet_lite2": "EfficientNet-Lite2",
}
POOLING_WORDS = {  # pooling -> (in the title, in the explanation)
    "avg": ("", "averaged over the image"),
    "max": ("max pooling", "keeping each feature's strongest response in the image"),
    **{g: (f"GeM pooling (p = {p:g})", f"pooled by a generalised mean (p = {p:g}) that stresses each feature's "
                                        "strongest responses")
       for g, p in GEM_P.items()},
}
TRANSFORM_WORDS = {  # a derived space's transform -> (title, explanation)
    "raw": ("", "the vectors as they are"),
    "whiten": ("whitened", "whitened (directions most images share count less)"),
    "discriminant": ("tuned to the labels", "projected onto the directions that separate this collection's labels"),
}
RERANK_WORDS = {
    "qe": ("query expansion", "each query averaged with its nearest images before searching"),
    "dba-qe": ("neighbour averaging + query expansion",
               "every stored vector averaged with its nearest neighbours, and each query with its nearest images"),
}
SCORES = {  # a score's key in the API -> (readable name, one line)
    "percentile": ("Match strength (percentile)",
                   "0-100: how this result's similarity compares with typical nearest neighbours in this "
                   "collection and space; 50 is a typical close match, 95 closer than nearly all, 5 weak"),
    "score": ("Similarity (cosine)", "the cosine of the two images' vectors: 1 is the same direction; only comparable "
                                     "within one space"),
    "p_at_10": ("Label precision (P@10)", "the share of an image's 10 nearest images that carry its label"),
    "ari": ("Cluster agreement (ARI)", "how well k-means clusters match the labels: 1 exactly, 0 no better than chance"),
    "nmi": ("Cluster information (NMI)", "how much knowing an image's cluster tells about its label: 1 all, 0 nothing"),
    "kept": ("Neighbours kept", "the share of an image's 10 nearest in the raw space still among its 50 nearest here "
                                "(how much of the map and of \u201csimilar\u201d a tuned space keeps)"),
    "silhouette": ("Cluster separation (silhouette)", "how much closer images are to their own cluster than to the "
                                                      "next one: 1 well apart, 0 overlapping"),
    "seconds": ("Time (s)", "seconds the cross-validation took, plus the embedding pass a variant needs"),
    "ms_per_image": ("Model time (ms / image)", "milliseconds of model time per image when the collection was embedded"),
    "gem": ("GeM pooling", "generalised mean: each feature's values over the image raised to the power p, averaged, "
                           "then the p-th root; between the average (p = 1) and the maximum"),
    "nested_cv": ("Nested cross-validation", "every score is measured on labelled images held out of the fitting, "
                                             "so a candidate is not judged on the images it was fitted to"),
}
NOT_MEASURED = "not measured: this space was not a candidate of the last tuning (press Tune to score it)"


class Description(NamedTuple):
    """A space in plain words: ``title`` (a readable name) and ``explanation`` (one line)."""

    title: str
    explanation: str


def backbone_title(backbone: str) -> str:
    """``efficientnet_lite0`` -> ``EfficientNet-Lite0`` (an unknown name: its words, capitalised)."""
    return BACKBONE_TITLES.get(backbone) or " ".join(w.capitalize() for w in backbone.split("_"))


def _views_words(views: tuple[str, ...]) -> tuple[str, str]:
    parts = [("flip", "the mirrored image"), ("ms", "a zoomed copy")]
    got = [p for p in parts if p[0] in views]
    if not got:
        return "", ""
    title = " + ".join("multi-scale" if v == "ms" else v for v, _ in got) + (" views" if len(got) > 1 else " view")
    return title, "averaged with " + " and ".join(w for _, w in got)


def _backbone_words(space: str) -> Description:
    spec = parse(space)
    pool_title, pool_expl = POOLING_WORDS[spec.pooling]
    views_title, views_expl = _views_words(spec.views)
    numerics = {"bf16": "bfloat16", "int8": "int8"}.get(spec.precision, "")
    title = ", ".join(x for x in (backbone_title(spec.backbone), pool_title, views_title, numerics) if x)
    expl = f"Features of the {backbone_title(spec.backbone)} ImageNet network, {pool_expl}"
    if views_expl:
        expl += f", {views_expl}"
    if spec.precision == "bf16":
        expl += ", computed in bfloat16 (faster on CPUs that have it; scores within about 0.01 of fp32)"
    elif spec.precision == "int8":
        expl += (", computed by an int8 model (quantized after training, calibrated on a sample of your photos; "
                 "precision@10 within about 0.01 of fp32)")
    return Description(title, expl + ".")


_SUFFIX_TOKENS = ("avg", "max", *GEM_P, "flip", "ms", "bf16", "int8")


def _base_words(encoded: str) -> str:
    """A derived space's base as :func:`~.names.derived_name` encodes it (``efficientnet_lite0_gem3_flip``)
    -> its title; the encoded name itself when it is no backbone space."""
    parts = encoded.split("_")
    for cut in range(len(parts), 0, -1):  # the longest backbone name, then suffix tokens
        head, rest = "_".join(parts[:cut]), parts[cut:]
        if head in BACKBONE_TITLES and all(t in _SUFFIX_TOKENS for t in rest):
            pooling = next((t for t in rest if t in ("avg", "max", *GEM_P)), None)
            name = head + (f"@{pooling}" if pooling else "") + "".join(f"+{t}" for t in rest if t in ("flip", "ms", "bf16", "int8"))
            try:
                return _backbone_words(name).title
            except InvalidInput:
                break
    return encoded


def _derived_words(space: str) -> Description | None:
    """``<bases>.<transform>[-qe|-dba-qe]`` (what ``simsearch tune`` stores) in words; None otherwise."""
    m = re.match(r"^(?P<bases>.+)\.(?P<t>raw|whiten|discriminant)(?:-(?P<r>qe|dba-qe))?$", space)
    if not m:
        return None
    bases = [_base_words(b) for b in m["bases"].split(".")]
    t_title, t_expl = TRANSFORM_WORDS[m["t"]]
    r_title, r_expl = RERANK_WORDS.get(m["r"] or "", ("", ""))
    on = " + ".join(bases)
    title = ", ".join(x for x in (on, t_title, r_title) if x)
    expl = f"Made for this collection by tuning from {on}: {t_expl}"
    if r_expl:
        expl += f"; {r_expl}"
    return Description(title, expl + ".")


def _imported_words(space: str) -> Description:
    m = re.match(r"^(?P<base>.+)\.(?:w-(?P<sha>[0-9a-f]{1,8})|foreign)$", space)
    expl = ("Vectors imported from a file: searchable by an image's id, in clusters and maps, never by an uploaded "
            "image (this server cannot compute them).")
    if m:
        base = m["base"]
        try:
            made_by = _backbone_words(base).title
        except InvalidInput:
            made_by = _base_words(base)  # imported_name writes '@' and '+' as '_'
        weights = f"other weights {m['sha']}" if m["sha"] else "unknown weights"
        return Description(f"Imported: {made_by} ({weights})", expl)
    return Description(f"Imported: {space}", expl)


def describe(space: str, kind: str | None = None) -> Description:
    """A space's readable title and one-line explanation. ``kind`` (``backbone``, ``derived`` or
    ``imported``, as :func:`~.listing.kind_of` says) when known; else read from the name.

    >>> describe("efficientnet_lite0@gem4+flip+ms+bf16").title
    'EfficientNet-Lite0, GeM pooling (p = 4), flip + multi-scale views, bfloat16'
    """
    space = str(space)
    if kind in (None, "backbone"):
        try:
            return _backbone_words(space)
        except InvalidInput:
            if kind == "backbone":
                raise
    if kind in (None, "derived"):
        words = _derived_words(space)
        if words is not None:
            return words
        if kind == "derived":
            return Description(space, "Made for this collection by tuning from its other spaces.")
    return _imported_words(space)


def score_words() -> dict[str, dict[str, str]]:
    """:data:`SCORES` as the API lists them: ``{key: {"title", "explanation"}}``."""
    return {k: {"title": t, "explanation": e} for k, (t, e) in SCORES.items()}
