"""GeM pooling and test-time views (``@gem3``, ``+flip``, ``+ms``): the pooling maths, the views,
the space names; a variant space embedded at ingest, by :func:`~simsearch.ops.reembed.embed_collection`
and for a query image gives the same vectors; and a queued, sharded ingest run by an RQ worker
process embeds the new images in the spaces the collection's derived space needs and refreshes
that derived space at the end of the job."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from conftest import FLOWERS, copy_subset

# ---- pure functions -------------------------------------------------------------------------------


def test_gem_lies_between_the_average_and_the_maximum_and_grows_with_p():
    from simsearch.embedding.embedder import pool_map

    rng = np.random.default_rng(0)
    fmap = rng.uniform(0, 6, size=(3, 7, 7, 16)).astype(np.float32)
    avg, mx = pool_map(fmap, "avg"), pool_map(fmap, "max")
    g2, g3, g4 = (pool_map(fmap, p) for p in ("gem2", "gem3", "gem4"))
    assert np.all(avg <= g2 + 1e-5) and np.all(g2 <= g3 + 1e-5) and np.all(g3 <= g4 + 1e-5) and np.all(g4 <= mx + 1e-5)
    assert np.allclose(g3[0, 0], np.mean(fmap[0, :, :, 0].astype(np.float64) ** 3) ** (1 / 3), rtol=1e-5)
    const = np.full((1, 7, 7, 4), 2.5, np.float32)
    assert np.allclose(pool_map(const, "gem3"), 2.5)  # a flat map pools to its value whatever p


def test_views_flip_and_zoom_keep_the_shape():
    from simsearch.embedding.embedder import MS_ZOOM, view_pixels
    from simsearch.spaces import parse as parse_space_spec

    rng = np.random.default_rng(1)
    px = rng.integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    assert np.array_equal(view_pixels(view_pixels(px, "flip"), "flip"), px)
    assert np.array_equal(view_pixels(px, "flip")[:, :, 0], px[:, :, -1])
    zoom = view_pixels(px, "zoom")
    assert zoom.shape == px.shape and zoom.dtype == np.uint8 and not np.array_equal(zoom, px)
    flat = np.full((1, 32, 32, 3), 77, np.uint8)
    assert np.abs(view_pixels(flat, "zoom-flip").astype(int) - 77).max() <= 1
    assert MS_ZOOM > 1
    assert parse_space_spec("efficientnet_lite0@gem3+flip+ms").view_list == ["plain", "flip", "zoom", "zoom-flip"]
    assert parse_space_spec("efficientnet_lite0+ms").view_list == ["plain", "zoom"]
    assert parse_space_spec("efficientnet_lite0@gem3").model_pooling == "none"
    assert parse_space_spec("efficientnet_lite0@max+flip").model_pooling == "max"


@pytest.mark.parametrize("space,parts", [
    ("efficientnet_lite0", ("efficientnet_lite0", "avg", (), "fp32")),
    ("efficientnet_lite0@gem3+flip", ("efficientnet_lite0", "gem3", ("flip",), "fp32")),
    ("resnet50@max+flip+ms+bf16", ("resnet50", "max", ("flip", "ms"), "bf16")),
])
def test_space_names_round_trip(space, parts):
    from simsearch.spaces import parse as parse_space_spec, space_key

    spec = parse_space_spec(space)
    assert (spec.backbone, spec.pooling, spec.views, spec.precision) == parts
    assert spec.key == space == space_key(parts[0], parts[1], parts[3], parts[2])


@pytest.mark.parametrize("space,says", [
    ("efficientnet_lite0+ms+flip", "+flip then +ms"),
    ("efficientnet_lite0+flip+flip", "at most once"),
    ("efficientnet_lite0+bf16+flip", "then the precision"),
    ("efficientnet_lite0@gem5", "pooling must be one of"),
    ("efficientnet_lite0+", "nothing after '+'"),
])
def test_bad_space_names_say_why(space, says):
    from simsearch.spaces import is_backbone_space, parse as parse_space_spec
    from simsearch.errors import InvalidInput

    with pytest.raises(InvalidInput) as exc:
        parse_space_spec(space)
    assert says in exc.value.message and exc.value.field in ("backbone", "pooling")
    assert not is_backbone_space(space)


def test_the_api_accepts_the_variant_names():
    from simsearch import limits, spaces

    names = spaces.backbone_spaces()
    assert limits.backbone_spaces is spaces.backbone_spaces  # the API's schemas list the same names
    assert "efficientnet_lite0@gem3+flip+ms" in names and "efficientnet_lite0+flip" in names
    assert names[0] == "resnet50" and len(names) == len(set(names))


def test_variant_spaces_of_a_base():
    from simsearch.ops.tune import _base_cost, variant_spaces

    got = variant_spaces("efficientnet_lite0")
    assert "efficientnet_lite0" not in got and len(got) == 11
    assert {"efficientnet_lite0@gem3", "efficientnet_lite0+flip", "efficientnet_lite0@gem3+flip+ms"} <= set(got)
    assert all(s.endswith("+bf16") for s in variant_spaces("efficientnet_lite0+bf16"))
    # complexity: GeM adds one, each extra forward per query one
    assert [_base_cost([s]) for s in ("efficientnet_lite0", "efficientnet_lite0@gem3", "efficientnet_lite0+flip",
                                      "efficientnet_lite0@gem3+flip+ms")] == [0, 1, 1, 4]


# ---- with the model -----------------------------------------------------------------------------------


@pytest.mark.model
def test_variant_vectors_agree_at_ingest_reembedding_and_query(sqlite_settings, tmp_path):
    from simsearch.context import AppContext
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.ops.reembed import embed_collection
    from simsearch.search import embed_bytes
    from simsearch.store import repo
    from simsearch.store.models import Image

    ctx = AppContext.open(sqlite_settings, schema="upgrade")
    try:
        folder = copy_subset(tmp_path / "fl", 2, dataset=FLOWERS)  # 10 images
        files, _ = files_from_folder(folder, labels="folders")
        variant = "efficientnet_lite0@gem3+flip+ms"
        Ingester(ctx, spaces=["efficientnet_lite0", variant], batch_size=4).run("fl", files, source=str(folder))
        with ctx.db.session() as s:
            coll_id = repo.get_collection(s, "fl").id
            ids, at_ingest = repo.load_vectors(s, coll_id, variant)
        done = embed_collection(ctx, coll_id, [variant, "efficientnet_lite0+flip"])
        assert done.unavailable is None and done.images == 10 and set(done.view_seconds) == {"plain", "flip", "zoom",
                                                                                              "zoom-flip"}
        with ctx.db.session() as s:
            ids2, again = repo.load_vectors(s, coll_id, variant)
            _, flip = repo.load_vectors(s, coll_id, "efficientnet_lite0+flip")
        assert np.array_equal(ids, ids2) and float((at_ingest * again).sum(1).min()) > 0.9999
        assert flip.shape == (10, 1280) and float((flip * again).sum(1).max()) < 0.9999  # another space
        with ctx.db.session() as s:
            path = s.get(Image, int(ids[0])).source_path
        query, _ = embed_bytes(ctx, variant, open(path, "rb").read(), "q.jpg")
        assert float(query @ at_ingest[0]) > 0.9999  # a query image is embedded as at ingest
    finally:
        ctx.close()


@pytest.mark.model
@pytest.mark.redis
def test_a_sharded_queued_ingest_refreshes_derived_spaces_at_its_end(settings, tmp_path):
    from rq import Queue

    from simsearch import derived, space_defaults
    from simsearch.analysis import tuning
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.jobs.runners import RQRunner
    from simsearch.ops import jobs as jobs_ops
    from simsearch.ops.reembed import embed_collection
    from simsearch.store import repo
    from tests.helpers.jobs import REDIS_URL, queue_folder, rq_ctx
    from tests.helpers.jobs import run_worker_process

    queue = f"simsearch-tune-{uuid.uuid4().hex[:10]}"
    ctx = rq_ctx(settings.replace(shard_size=3), queue)
    try:
        first = copy_subset(tmp_path / "first", 2, dataset=FLOWERS)  # 10 images
        files, _ = files_from_folder(first, labels="folders")
        Ingester(ctx, spaces=["efficientnet_lite0"], batch_size=5).run("fl", files, source=str(first))
        variant = "efficientnet_lite0@gem3+flip"
        with ctx.db.session() as s:
            coll_id = repo.get_collection(s, "fl").id
        assert embed_collection(ctx, coll_id, [variant]).unavailable is None
        ids, parts = derived.base_vectors(ctx, coll_id, [variant])
        setting = tuning.Setting(tuning.Family("whiten"), 8, 0.5)
        d = derived.save(ctx, coll_id, derived.derived_name([variant], "whiten"), [variant], setting.to_dict(),
                         tuning.fit(parts[0], None, setting), None)
        space_defaults.set_default(ctx, "fl", d.name)
        assert space_defaults.required_spaces(ctx, "fl") == [variant]

        more = copy_subset(tmp_path / "more", 1, start=2, dataset=FLOWERS)  # 5 new images: 2 shards of 3 + 2
        job_id = queue_folder(ctx, more, "fl")  # asks for efficientnet_lite0 only
        RQRunner(ctx, REDIS_URL, queue).submit(job_id, {})
        assert jobs_ops.get(ctx, job_id)["shards"]["total"] == 2
        proc = run_worker_process(ctx.settings, queue)
        assert proc.returncode == 0, proc.stderr[-3000:]
        job = jobs_ops.get(ctx, job_id)
        assert job["status"] == "done" and job["added"] == 5, job
        with ctx.db.session() as s:
            base_ids = repo.vector_ids(s, coll_id, variant)
            got_ids, got = repo.load_vectors(s, coll_id, d.name)
        assert len(base_ids) == 15  # the new images got the variant the derived space is made from
        ids, parts = derived.base_vectors(ctx, coll_id, [variant])
        assert np.array_equal(got_ids, ids) and len(ids) == 15
        assert np.allclose(got, derived.get(ctx, coll_id, d.name).transform(parts), atol=1e-5)
        assert ctx.index(coll_id, d.name).ntotal == 15
    finally:
        Queue(queue, connection=__import__("redis").Redis.from_url(REDIS_URL)).delete(delete_jobs=True)
        ctx.close()
