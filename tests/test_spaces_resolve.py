"""Which space a collection uses (simsearch.space_defaults), and the one model cache the
embedders share (simsearch.embedding), without loading a model."""

from __future__ import annotations

import threading

import pytest

from simsearch.errors import InvalidInput, NotFound
from simsearch import space_defaults
from tests.helpers.db import add_images

LITE = "efficientnet_lite0"


def test_the_default_space_follows_the_rules(ctx):
    """Named -> that one (404 without vectors); else the collection's own default, else the
    settings' default backbone when it has vectors, else its only space; several: choose one."""
    coll_id, _, _ = add_images(ctx.db, name="r", n=3, dim=8, space="clip-a")
    assert ctx.settings.default_backbone == LITE
    assert space_defaults.resolve_space(ctx, coll_id, None) == "clip-a"  # its only space
    assert space_defaults.resolve_space(ctx, coll_id, "clip-a") == "clip-a"
    with pytest.raises(NotFound) as exc:
        space_defaults.resolve_space(ctx, coll_id, LITE)
    assert exc.value.field == "backbone" and "(it has: clip-a)" in exc.value.message
    add_images(ctx.db, name="r", n=3, dim=8, space="clip-b", seed=1)
    with pytest.raises(InvalidInput) as exc:
        space_defaults.resolve_space(ctx, coll_id, None)
    assert exc.value.field == "backbone" and "several backbones (clip-a, clip-b): choose one" in exc.value.message
    assert space_defaults.default_of(ctx, coll_id) is None
    add_images(ctx.db, name="r", n=3, dim=8, space=LITE, seed=2)
    assert space_defaults.resolve_space(ctx, coll_id, None) == LITE  # the settings' default backbone
    assert space_defaults.set_default(ctx, "r", "clip-b") == {"collection": "r", "default_space": "clip-b"}
    assert space_defaults.resolve_space(ctx, coll_id, None) == space_defaults.default_of(ctx, coll_id) == "clip-b"
    assert space_defaults.default_space(ctx, coll_id) == "clip-b"
    assert space_defaults.resolve_space(ctx, coll_id, "clip-a") == "clip-a"  # a named space wins
    with pytest.raises(NotFound) as exc:
        space_defaults.set_default(ctx, "r", "clip-c")
    assert exc.value.field == "space" and "no vectors for space 'clip-c'" in exc.value.message
    space_defaults.set_default(ctx, "r", None)
    assert space_defaults.default_space(ctx, coll_id) is None and space_defaults.default_of(ctx, coll_id) == LITE


def test_a_collection_without_vectors_has_no_space_to_use(ctx):
    from simsearch.store import repo

    with ctx.db.session() as s:
        coll_id = repo.get_or_create_collection(s, "empty").id
        s.commit()
    for named in (None, "clip-a"):  # the settings' default backbone, or the one named: neither has vectors
        with pytest.raises(NotFound) as exc:
            space_defaults.resolve_space(ctx, coll_id, named)
        assert exc.value.field == "backbone"
        assert exc.value.message == f"no vectors for backbone {named or LITE!r} in this collection (it has: none yet)"
    assert space_defaults.default_of(ctx, coll_id) is None


def test_new_images_are_embedded_in_the_backbone_space_the_default_needs(ctx):
    assert space_defaults.required_spaces(ctx, "nothing-yet") == []
    add_images(ctx.db, name="q", n=3, dim=8, space=f"{LITE}@gem3+flip")
    add_images(ctx.db, name="q", n=3, dim=8, space="clip-a", seed=1)
    assert space_defaults.required_spaces(ctx, "q") == []  # no default of its own
    space_defaults.set_default(ctx, "q", f"{LITE}@gem3+flip")
    assert space_defaults.required_spaces(ctx, "q") == [f"{LITE}@gem3+flip"]
    space_defaults.set_default(ctx, "q", "clip-a")
    assert space_defaults.required_spaces(ctx, "q") == []  # imported vectors: nothing to embed


# ---- the model cache ------------------------------------------------------------------------------


class _Session:
    runtime, device, describe = "fake", "cpu", "fake fp32 cpu"


@pytest.fixture
def models(monkeypatch):
    """A fresh process model cache for the test (the real one may hold the suite's models)."""
    from simsearch.embedding import ModelCache

    cache = ModelCache()
    monkeypatch.setattr("simsearch.embedding.embedder.MODELS", cache)
    return cache


def test_embedders_of_one_model_share_its_session(models, weights_dir):
    from simsearch.embedding.embedder import Embedder
    from simsearch.spaces import parse

    a = Embedder(parse(LITE), weights_dir, runtime="keras", device="cpu")
    assert a.session is None and len(models) == 0  # making an embedder opens nothing
    key = a._model()[1]
    assert (key.backbone, key.runtime, key.precision) == (LITE, "keras", "fp32")
    opened = []
    session, _ = models.get(key, lambda: opened.append(1) or _Session())
    assert models.get(key, lambda: opened.append(1) or _Session()) == (session, 0.0) and opened == [1]
    b = Embedder(parse(LITE), weights_dir, runtime="keras", device="cpu")
    assert b.session is session and a.session is session and b.numerics == "fake fp32 cpu"
    b.load()  # open already: nothing opened again
    assert opened == [1] and b.load_seconds == 0.0
    # another pooling inside the model, precision, runtime or weights file is another model
    others = [Embedder(parse(f"{LITE}@max"), weights_dir, runtime="keras", device="cpu"),
              Embedder(parse(f"{LITE}+bf16"), weights_dir, runtime="keras", device="cpu"),
              Embedder(parse(LITE), weights_dir, runtime="auto", device="cpu"),
              Embedder(parse(LITE), weights_dir, weights="/elsewhere/w.h5", runtime="keras", device="cpu")]
    assert len({e._model()[1] for e in others} | {key}) == 5 and all(e.session is None for e in others)
    # test-time views and GeM are computed outside the model: the same model as the plain space
    assert Embedder(parse(f"{LITE}+flip"), weights_dir, runtime="keras", device="cpu").session is session
    assert models.loaded_backbones() == {LITE}
    models.clear()
    assert len(models) == 0 and Embedder(parse(LITE), weights_dir, runtime="keras", device="cpu").session is None


def test_a_model_asked_for_at_once_by_two_threads_is_opened_once(models):
    from simsearch.embedding import ModelKey

    key = ModelKey(LITE, "auto", "fp32", ("avg", "/w", None, "cpu"))
    opened, gate = [], threading.Barrier(2)

    def open_it():
        opened.append(1)
        return _Session()

    def ask(out):
        gate.wait()
        out.append(models.get(key, open_it)[0])

    got: list = []
    threads = [threading.Thread(target=ask, args=(got,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert opened == [1] and got[0] is got[1]


def test_the_context_makes_embedders_from_the_one_cache(ctx, models):
    """No second cache: ``ctx.embedder`` makes cheap embedders whose sessions are the cache's; a
    weights file chosen for a space stays its model (a later search or fingerprint uses it)."""
    a = ctx.embedder(LITE)
    key = a._model()[1]
    session, _ = models.get(key, _Session)
    assert ctx.embedder(LITE).session is session
    assert (key.runtime, key.options[1]) == (ctx.settings.runtime, str(ctx.settings.weights_dir))
    b = ctx.embedder(f"{LITE}@max", weights="/elsewhere/w.h5")
    assert b.weights == "/elsewhere/w.h5" and ctx.embedder(f"{LITE}@max").weights == "/elsewhere/w.h5"
    assert ctx.embedder(LITE).weights is None
