"""Spaces and scores in plain words (simsearch.spaces.words): every name a request may give, every
derived and imported name, has a readable title and a one-line explanation without the grammar's
symbols."""

from __future__ import annotations

import pytest

from simsearch.spaces import SCORES, backbone_spaces, derived_name, describe, imported_name, read_spaces


def test_the_issue_example_reads_as_words():
    title, explanation = describe("efficientnet_lite0@gem4+flip+ms+bf16")
    assert title == "EfficientNet-Lite0, GeM pooling (p = 4), flip + multi-scale views, bfloat16"
    assert "generalised mean" in explanation and "mirrored" in explanation and "zoomed" in explanation
    assert "bfloat16" in explanation


@pytest.mark.parametrize("name, title", [
    ("efficientnet_lite0", "EfficientNet-Lite0"),
    ("efficientnet_lite0@avg", "EfficientNet-Lite0"),
    ("resnet50@max", "ResNet-50, max pooling"),
    ("mobilenet_v2+flip", "MobileNet v2, flip view"),
    ("inception_v3@gem3+ms", "Inception v3, GeM pooling (p = 3), multi-scale view"),
    ("vgg16+bf16", "VGG-16, bfloat16"),
])
def test_backbone_spaces(name, title):
    assert describe(name).title == title
    assert describe(name, "backbone").title == title


def test_every_space_a_request_may_name_has_words():
    seen = set()
    for name in read_spaces():
        title, explanation = describe(name)
        assert title and explanation.endswith(".") and "\n" not in explanation
        for symbol in ("@", "+bf16", "_"):
            assert symbol not in title, (name, title)
        seen.add(title)
    assert len(seen) == len(set(read_spaces()) - {n for n in read_spaces() if "@avg" in n})  # @avg is the default


def test_derived_spaces_name_their_base_and_recipe():
    name = derived_name(["efficientnet_lite0@gem3+flip"], "discriminant+qe")
    title, explanation = describe(name, "derived")
    assert title == "EfficientNet-Lite0, GeM pooling (p = 3), flip view, tuned to the labels, query expansion"
    assert explanation.startswith("Made for this collection by tuning")
    assert describe("efficientnet_lite0.whiten-dba-qe").title == "EfficientNet-Lite0, whitened, neighbour averaging + query expansion"
    assert describe("efficientnet_lite0.raw").title == "EfficientNet-Lite0"
    two = derived_name(["efficientnet_lite0", "resnet50"], "whiten")
    assert describe(two).title == "EfficientNet-Lite0 + ResNet-50, whitened"
    assert describe("mystery.space", "derived").title == "mystery.space"


def test_imported_spaces():
    assert describe(imported_name("efficientnet_lite0", "abababab" * 8)).title == \
        "Imported: EfficientNet-Lite0 (other weights abababab)"
    assert describe(imported_name("resnet50@max", None)).title == "Imported: ResNet-50, max pooling (unknown weights)"
    title, explanation = describe("clip-vit-b32")
    assert title == "Imported: clip-vit-b32" and "never by an uploaded image" in explanation
    assert describe("efficientnet_lite0", "imported").title == "Imported: efficientnet_lite0"


def test_a_backbone_kind_with_no_backbone_name_is_refused():
    from simsearch.errors import InvalidInput

    with pytest.raises(InvalidInput):
        describe("clip-vit-b32", "backbone")


def test_scores_have_words():
    for key in ("percentile", "score", "p_at_10", "ari", "nmi", "kept", "silhouette", "nested_cv"):
        title, explanation = SCORES[key]
        assert title and explanation and "\n" not in explanation


def test_the_listing_covers_all_backbone_spaces():
    assert set(backbone_spaces()) <= set(read_spaces())


def test_the_pattern_the_api_documents_is_the_grammar():
    import re

    from simsearch.spaces import space_pattern

    full, plain = re.compile(space_pattern()), re.compile(space_pattern(precision=False))
    assert all(full.match(n) for n in read_spaces()) and all(plain.match(n) for n in backbone_spaces())
    assert not any(plain.match(n) for n in set(read_spaces()) - set(backbone_spaces()))
    for wrong in ("efficientnet_lite0+ms+flip", "efficientnet_lite0@gem9", "resnet50+bf16+flip", "clip-vit-b32",
                  "efficientnet_lite0.discriminant", "efficientnet_lite0+flip+flip"):
        assert not full.match(wrong), wrong
