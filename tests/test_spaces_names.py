"""The grammar of space names (simsearch.spaces): every form parses and formats back to itself,
and a bad name is refused with a message that says why and names the field."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from simsearch import limits, spaces
from simsearch.embedding.backbones import list_backbones
from simsearch.errors import Conflict, InvalidInput
from simsearch.spaces import SpaceSpec, parse, space_key

LITE = "efficientnet_lite0"


def test_every_name_a_request_may_give_round_trips():
    """Each backbone, bare or with each pooling, each view combination and each precision; the
    default pooling written out (``@avg``) formats as the bare name."""
    names = spaces.read_spaces()
    assert len(names) == len(set(names)) == len(list_backbones()) * (1 + len(spaces.POOLINGS)) * 4 * 3  # fp32, bf16, int8
    for name in names:
        spec = parse(name)
        canonical = name.replace("@avg", "")
        assert spec.key == canonical
        assert space_key(spec.backbone, spec.pooling, spec.precision, spec.views) == canonical
        assert parse(canonical) == spec
        assert spaces.is_backbone_space(name) and spaces.check(name) == name


@pytest.mark.parametrize("name,spec", [
    (LITE, SpaceSpec(LITE)),
    (f"{LITE}@avg", SpaceSpec(LITE, "avg")),  # written out: the same space as the bare name
    (f"{LITE}@gem4", SpaceSpec(LITE, "gem4")),
    (f"{LITE}+ms", SpaceSpec(LITE, "avg", ("ms",))),
    (f"{LITE}@max+flip+ms", SpaceSpec(LITE, "max", ("flip", "ms"))),
    (f"{LITE}+bf16", SpaceSpec(LITE, "avg", (), "bf16")),
    ("resnet50@gem2+flip+bf16", SpaceSpec("resnet50", "gem2", ("flip",), "bf16")),
])
def test_parse_gives_the_parts(name, spec):
    assert parse(name) == spec
    assert spec.key == (LITE if name == f"{LITE}@avg" else name)  # the default pooling is not written


def test_the_parts_say_how_to_embed():
    assert parse(f"{LITE}@gem3+flip+ms").view_list == ["plain", "flip", "zoom", "zoom-flip"]
    assert parse(f"{LITE}+ms").view_list == ["plain", "zoom"]
    assert parse(LITE).view_list == ["plain"]
    assert parse(f"{LITE}@gem3").model_pooling == "none"  # GeM pools outside the model
    assert parse(f"{LITE}@max").model_pooling == "max"


def test_an_embedder_is_given_the_parts_of_a_backbone_space_never_an_imported_one():
    assert spaces.to_embed(f"{LITE}@gem3+flip") == parse(f"{LITE}@gem3+flip")
    with pytest.raises(Conflict, match="were imported .* cannot embed an image in that space") as exc:
        spaces.to_embed("clip-vit-b32")
    assert exc.value.field == "backbone"
    with pytest.raises(InvalidInput) as bad:
        spaces.to_embed(f"{LITE}@gem5")
    assert bad.value.field == "pooling"


@pytest.mark.parametrize("name,field,says", [
    ("nope", "backbone", "unknown backbone 'nope'; choose one of: "),
    ("nope@max", "backbone", "unknown backbone 'nope'"),
    (f"{LITE}@gem5", "pooling", "pooling must be one of avg, max, gem2, gem3, gem4, not 'gem5'"),
    (f"{LITE}@", "pooling", "nothing after '@'"),
    (f"{LITE}@+flip", "pooling", "nothing after '@'"),
    (f"{LITE}+ms+flip", "backbone", "come the test-time views (+flip then +ms, each at most once)"),
    (f"{LITE}+flip+flip", "backbone", "each at most once"),
    (f"{LITE}+bf16+flip", "backbone", "then the precision (+fp32 or +bf16 or +int8)"),
    (f"{LITE}+fp16", "backbone", "then the precision"),
    (f"{LITE}+", "backbone", "nothing after '+'"),
    (f"{LITE}++flip", "backbone", "nothing after '+'"),
])
def test_bad_names_say_why_and_name_the_field(name, field, says):
    with pytest.raises(InvalidInput) as exc:
        parse(name)
    assert exc.value.field == field and says in exc.value.message, exc.value.message
    assert not spaces.is_backbone_space(name)


@pytest.mark.parametrize("kwargs,field,says", [
    ({"pooling": "min"}, "pooling", "pooling must be one of"),
    ({"precision": "fp16"}, "precision", "precision must be one of fp32, bf16, int8, not 'fp16'"),
    ({"views": ("zoom",)}, "backbone", "test-time views are flip, ms, not 'zoom'"),
])
def test_formatting_checks_every_part(kwargs, field, says):
    with pytest.raises(InvalidInput) as exc:
        space_key(LITE, **kwargs)
    assert exc.value.field == field and says in exc.value.message
    with pytest.raises(InvalidInput) as exc:
        space_key("nope")
    assert exc.value.field == "backbone"


def test_views_are_written_in_one_order_whatever_the_order_given():
    assert space_key(LITE, "gem3", "fp32", ("ms", "flip")) == f"{LITE}@gem3+flip+ms"


def test_imported_and_derived_names():
    assert spaces.check_space_name(LITE) is True
    assert spaces.check_space_name("clip-vit-b32") is False  # a valid name of imported vectors
    assert spaces.check("clip-vit-b32", imported=True) == "clip-vit-b32"
    with pytest.raises(InvalidInput) as exc:
        spaces.check("clip-vit-b32")  # only a backbone's space
    assert exc.value.field == "backbone" and "unknown backbone 'clip-vit-b32'" in exc.value.message
    for bad in ("bad name", "-x", "", "a" * 101, f"{LITE}+flip+flip"):
        with pytest.raises(InvalidInput) as exc:
            spaces.check_space_name(bad)
        assert exc.value.field == "backbone"
        assert exc.value.message.endswith(f"; or name imported vectors with {spaces.NAME_RULE}")
    name = spaces.derived_name([f"{LITE}@gem3+flip", "resnet50"], "discriminant+qe")
    assert name == f"{LITE}_gem3_flip.resnet50.discriminant-qe"
    assert spaces.is_valid_name(name) and not spaces.is_backbone_space(name)
    with pytest.raises(InvalidInput) as exc:
        spaces.derived_name([LITE] * 10, "whiten")
    assert exc.value.field == "backbones" and "longer than 100 characters" in exc.value.message
    assert spaces.imported_name(LITE, "9f1c2a3b" * 8) == f"{LITE}.w-9f1c2a3b"
    assert spaces.imported_name(f"{LITE}@gem3+flip", None) == f"{LITE}_gem3_flip.foreign"
    assert spaces.imported_name(None, None) == "imported.foreign"
    assert spaces.is_valid_name(spaces.imported_name("x" * 120, "ab" * 32))


def test_kinds():
    assert spaces.kind_of(LITE) == "backbone"
    assert spaces.kind_of(f"{LITE}@max+bf16") == "backbone"
    assert spaces.kind_of("clip-vit-b32") == "imported"
    assert spaces.kind_of(f"{LITE}.whiten", {f"{LITE}.whiten"}) == "derived"


def test_new_vectors_go_to_the_space_the_settings_resolve():
    fp32 = SimpleNamespace(device="cpu", runtime="auto", precision="fp32")
    bf16 = SimpleNamespace(device="cpu", runtime="auto", precision="bf16")
    assert spaces.new_space(fp32, LITE) == LITE
    assert spaces.new_space(fp32, LITE, "max") == f"{LITE}@max"
    assert spaces.new_space(fp32, f"{LITE}@gem3+flip", "max") == f"{LITE}@gem3+flip"  # the name's pooling wins
    assert spaces.new_space(bf16, LITE) == f"{LITE}+bf16"
    assert spaces.new_space(fp32, LITE, precision="bf16") == f"{LITE}+bf16"
    assert spaces.new_space(bf16, f"{LITE}+fp32") == LITE  # a precision the name gives wins
    with pytest.raises(InvalidInput) as exc:
        spaces.new_space(fp32, "nope")
    assert exc.value.field == "backbone"


def test_the_api_and_cli_refuse_bad_names_with_the_same_words_as_before():
    names = ", ".join(list_backbones())
    with pytest.raises(InvalidInput) as exc:
        limits.check(limits.Backbone, "nope", "backbone")
    assert exc.value.field == "backbone"
    assert exc.value.message == (f"unknown backbone 'nope'; choose one of: {names} (optionally with @avg, @max or "
                                 "@gem2..@gem4, then +flip and/or +ms)")
    with pytest.raises(InvalidInput) as exc:
        limits.check(limits.Space, "no way", "backbone")
    assert exc.value.message == (f"unknown backbone 'no way'; choose one of: {names} (optionally with @avg, @max or "
                                 "@gem2..@gem4, then +flip and/or +ms), or the name of imported vectors (1-100 "
                                 "letters, digits, '.', '_' or '-', starting with a letter or digit)")
    assert limits.check(limits.Space, f"{LITE}@gem3+flip+bf16", "backbone") == f"{LITE}@gem3+flip+bf16"
    assert limits.check(limits.Space, "clip-vit-b32", "backbone") == "clip-vit-b32"
    with pytest.raises(InvalidInput):
        limits.check(limits.Backbone, f"{LITE}+bf16", "backbone")  # new vectors' precision is a setting


def test_a_backbone_counts_as_embedded_in_any_of_its_spaces():
    """The compare page offers to embed the backbones a collection has no vectors of: a collection
    whose only space is ``efficientnet_lite0+bf16`` (precision auto on a bf16 CPU) has that backbone."""
    from simsearch.config import Settings
    from simsearch.ops.backbones import not_embedded

    settings = Settings.from_env(home="/nonexistent-simsearch-home", database_url="sqlite://")
    missing = {row["backbone"] for row in not_embedded(settings, ["efficientnet_lite0+bf16", "resnet50@max+flip",
                                                                  "clip-vit-b32", "efficientnet_lite0@gem3~pca64"])}
    assert "efficientnet_lite0" not in missing and "resnet50" not in missing
    assert "efficientnet_lite1" in missing and "vgg16" in missing
