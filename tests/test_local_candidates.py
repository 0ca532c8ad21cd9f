"""Candidates by local features (issue #18 item 4): the votes of a query's keypoints
(simsearch.images.local_votes), the collection's descriptor index, a derived cache of the stored
features (simsearch.index.descriptors), and a search by upload with ``local=true`` over the small
real collection of tests/helpers/regions.py."""

from __future__ import annotations

import numpy as np
import pytest

from simsearch.errors import InvalidInput
from simsearch.images import local_votes as LV
from simsearch.images import local_features as LF
from simsearch.index import descriptor_kinds as K
from simsearch.index import descriptors as DI
from simsearch.ops import verify as V
from tests.conftest import dataset_files
from tests.helpers.api import assert_error
from tests.helpers.regions import FLOWERS102 as FLOWERS
from tests.helpers.regions import OXFORD, _search, artefacts  # noqa: F401  (the fixture)
from tests.helpers.regions import on_a_wall as _on_a_wall

S = LV.KEYPOINT_SLOTS


def test_descriptor_ids_name_the_image_and_the_keypoint():
    ids = LV.descriptor_ids(7, 3)
    assert ids.tolist() == [7 * S, 7 * S + 1, 7 * S + 2]
    assert LV.owners(np.array([7 * S + 2, -1, 2**40 * S + 5])).tolist() == [7, -1, 2**40]
    with pytest.raises(InvalidInput):
        LV.descriptor_ids(1, S + 1)


def test_a_keypoint_votes_when_its_nearest_beats_the_nearest_of_another_image():
    I = np.array([[1 * S + 0, 1 * S + 5, 2 * S + 0],   # image 1 twice, then image 2 far: votes for 1
                  [2 * S + 1, 3 * S + 0, 3 * S + 1],   # image 2 not much nearer than image 3: no vote
                  [1 * S + 1, 1 * S + 2, 1 * S + 3],   # all of one image: votes for 1
                  [3 * S + 4, -1, -1]])                # one neighbour only: votes for 3
    D = np.array([[10.0, 11.0, 100.0],
                  [50.0, 60.0, 70.0],
                  [5.0, 6.0, 7.0],
                  [1.0, np.inf, np.inf]])
    ids, counts = LV.votes(D, I)
    assert dict(zip(ids.tolist(), counts.tolist())) == {1: 2, 3: 1}
    assert ids.tolist() == [1, 3]  # most votes first
    # the ratio is on distances (D holds squared ones): 50 < 0.8^2 * 60 = 38.4 fails, 0.95^2 * 60 = 54.2 passes
    assert 2 in LV.votes(D, I, ratio=0.95)[0].tolist()


def test_a_stored_keypoint_counts_once_and_candidates_need_enough_votes():
    I = np.array([[4 * S + 0, 9 * S]] * 5 + [[5 * S + k, 9 * S] for k in range(3)])
    D = np.array([[1.0, 100.0]] * 8)
    ids, counts = LV.votes(D, I)
    assert dict(zip(ids.tolist(), counts.tolist())) == {4: 1, 5: 3}  # five query keypoints on one stored one: 1
    assert LV.candidates(D, I, n=5, min_votes=2) == [5]
    assert LV.candidates(D, I, n=1, min_votes=1) == [5]
    assert LV.votes(np.zeros((0, 2)), np.zeros((0, 2), np.int64))[0].size == 0
    with pytest.raises(InvalidInput):
        LV.votes(np.zeros((2, 3)), np.zeros((2, 2), np.int64))


def test_the_voters_of_an_image_are_the_keypoints_its_votes_came_from():
    I = np.array([[1 * S + 0, 2 * S + 0], [1 * S + 3, 2 * S + 1], [2 * S + 2, 1 * S + 1], [1 * S + 4, 3 * S]])
    D = np.array([[1.0, 100.0], [1.0, 100.0], [1.0, 100.0], [90.0, 100.0]])  # the last fails the ratio
    assert LV.voters(D, I, 1).tolist() == [True, True, False, False]
    assert LV.voters(D, I, 2).tolist() == [False, False, True, False]
    assert LV.voters(np.zeros((0, 2)), np.zeros((0, 2), np.int64), 1).size == 0


def test_the_region_of_the_voters_takes_in_the_picture_around_them():
    # a landscape picture 400 x 200: keypoints normalised by the long side (y in 0..0.5)
    xy = np.array([[0.40, 0.20], [0.50, 0.30]])  # x 40-50%, y 40-60% of the sides
    x0, y0, x1, y1 = LV.region_of(xy, 400, 200, grow=0.5, least=0.0)
    assert (x0, y0, x1, y1) == pytest.approx((0.35, 0.3, 0.55, 0.7))  # each side out by half the box
    x0, y0, x1, y1 = LV.region_of(xy, 400, 200, grow=0.5, least=1 / 3)
    assert (x0, x1) == pytest.approx((0.45 - 1 / 6, 0.45 + 1 / 6)) and (y0, y1) == pytest.approx((0.3, 0.7))
    # near an edge the region slides inside, its size kept; one keypoint still gives a region
    assert LV.region_of(np.array([[0.01, 0.01]]), 400, 200, 0.5, 0.5) == pytest.approx((0.0, 0.0, 0.5, 0.5))
    assert LV.region_of(np.zeros((0, 2)), 400, 200, 0.5, 0.5) is None
    assert LV.region_of(np.array([[0.0, 0.0], [1.0, 0.5]]), 400, 200, 0.5, 0.5) == (0.0, 0.0, 1.0, 1.0)


@pytest.mark.parametrize("ivf_at, pq_at, kind", [(10**9, 10**9, "exhaustive"), (1000, 10**9, "ivf-sq8"), (1000, 2000, "ivf-pq")])
def test_the_index_finds_each_stored_descriptor_first(ivf_at, pq_at, kind):
    rng = np.random.default_rng(1)
    desc = rng.integers(0, 256, (3000, 128)).astype(np.uint8)
    ids = np.concatenate([LV.descriptor_ids(i, 300) for i in range(1, 11)])
    index = DI.build(ids, desc, ivf_at=ivf_at, pq_at=pq_at)
    assert K.kind_of(index) == kind
    assert K.images_held(index).tolist() == list(range(1, 11)) and np.array_equal(K.ids_held(index), ids)
    D, I = DI.search(index, desc[::300])
    assert I[:, 0].tolist() == ids[::300].tolist()
    if kind == "ivf-pq":  # approximate distances (product-quantised), well within the ratio test
        assert (D[:, 0] < LV.RATIO**2 * D[:, 1]).all()
    else:
        assert np.allclose(D[:, 0], 0)
    assert LV.votes(D, I)[0].tolist() == list(range(1, 11))
    empty = DI.build(np.zeros(0, np.int64), np.zeros((0, 128), np.uint8))
    assert DI.search(empty, desc[:2])[1].shape == (2, 0)


def test_the_kind_follows_the_size_and_the_training_stays_bounded():
    assert K.kind_for(K.IVF_AT - 1) == "exhaustive" and K.kind_for(K.IVF_AT) == "ivf-sq8"
    assert K.kind_for(K.PQ_AT - 1) == "ivf-sq8" and K.kind_for(K.PQ_AT) == "ivf-pq"
    assert K.kind_for(10**9) == "ivf-pq" and K.lists_for(10**9) == K.MAX_LISTS
    assert K.train_size(300 * 10**6, "ivf-pq") == K.TRAIN_PER_LIST * K.MAX_LISTS  # 1M images: a bounded sample
    assert K.train_size(K.PQ_AT, "ivf-pq") >= K.PQ_TRAIN and K.train_size(K.IVF_AT - 1, "exhaustive") == 0


def test_an_index_is_built_again_only_when_its_training_no_longer_fits():
    rng = np.random.default_rng(2)
    desc = rng.integers(0, 256, (6000, 128)).astype(np.uint8)
    ids = np.concatenate([LV.descriptor_ids(i, 300) for i in range(1, 21)])
    flat = DI.build(ids[:3000], desc[:3000], ivf_at=5000)
    assert not K.stale(flat, 4000, ivf_at=5000) and K.stale(flat, 5000, ivf_at=5000)  # grown into an inverted file
    ivf = DI.build(ids, desc, ivf_at=5000)
    n = 6000
    assert K.kind_of(ivf) == "ivf-sq8" and ivf.nlist == K.lists_for(n)
    assert not K.stale(ivf, 2 * n, ivf_at=5000)  # twice the size: the same quantizer
    assert K.stale(ivf, 5 * n, ivf_at=5000)  # ~2 sqrt(n) lists: 5x the size wants over twice the lists
    assert not K.stale(ivf, 4000, ivf_at=5000)  # below the threshold but above half of it: kept
    assert K.stale(ivf, 2000, ivf_at=5000)
    pq = DI.build(ids, desc, ivf_at=1000, pq_at=5000)
    assert K.kind_of(pq) == "ivf-pq" and not K.stale(pq, 5500, ivf_at=1000, pq_at=5000)
    assert K.stale(pq, 2400, ivf_at=1000, pq_at=5000)  # under half the PQ threshold: exact again


@pytest.mark.parametrize("ivf_at, pq_at", [(10**9, 10**9), (1000, 10**9), (1000, 2000)])
def test_removing_and_adding_images_gives_the_index_a_rebuild_gives(ivf_at, pq_at):
    rng = np.random.default_rng(3)
    desc = rng.integers(0, 256, (3000, 128)).astype(np.uint8)
    ids = np.concatenate([LV.descriptor_ids(i, 300) for i in range(1, 11)])
    index = DI.build(ids, desc, ivf_at=ivf_at, pq_at=pq_at)
    assert K.remove_images(index, np.array([3, 7, 99])) == 600
    assert K.images_held(index).tolist() == [1, 2, 4, 5, 6, 8, 9, 10]
    K.add(index, ids[600:900], desc[600:900])
    keep = ~np.isin(LV.owners(ids), [7])
    assert np.array_equal(K.ids_held(index), np.sort(ids[keep]))
    D, I = DI.search(index, desc[::150])
    kept = LV.owners(ids[::150]) != 7
    assert np.array_equal(LV.owners(I[kept, 0]), LV.owners(ids[::150])[kept])  # each found its own image
    assert 7 not in LV.owners(I).tolist()


def _collection_of(ctx, image_id: int) -> int:
    from simsearch.store.models import Image

    with ctx.db.session() as s:
        return s.get(Image, image_id).collection_id


def _delete_features(ctx, image_id: int) -> bytes:
    from sqlalchemy import delete

    from simsearch.store import features as stored
    from simsearch.store.models import ImageFeatures

    with ctx.db.session() as s:
        data = stored.of_images(s, [image_id], LF.METHOD)[0][image_id]
        s.execute(delete(ImageFeatures).where(ImageFeatures.image_id == image_id))
    return data


def _restore_features(ctx, image_id: int, data: bytes) -> None:
    from simsearch.store import features as stored

    with ctx.db.session() as s:
        stored.store(s, {image_id: data}, LF.METHOD)


def test_the_descriptor_index_is_a_cache_of_the_database(artefacts, monkeypatch, tmp_path):  # noqa: F811
    client, ids, _ = artefacts
    ctx = client.application.extensions["simsearch"]
    monkeypatch.setattr(DI, "CHECK_INTERVAL", 0.0)  # read the database's signature at every get
    coll = _collection_of(ctx, next(iter(ids.values())))
    folder = tmp_path / "indexes"
    first = DI.DescriptorIndexes(ctx.db, folder)
    index = first.get(coll)
    assert first.builds == 1 and index.ntotal > 100 * len(ids)
    files = list((folder / f"collection-{coll}").glob("local-*.faiss"))
    assert len(files) == 1
    assert first.get(coll) is index and first.builds == 1  # unchanged database: the same index
    other = DI.DescriptorIndexes(ctx.db, folder)  # another process: reads the saved file
    assert other.get(coll).ntotal == index.ntotal and other.builds == 0 and other.updates == 0
    gone = max(ids.values())
    data = _delete_features(ctx, gone)
    try:
        smaller = first.get(coll)
        # the open index brought up to date (the deleted image's descriptors taken out), not built again
        assert (first.builds, first.updates) == (1, 1) and smaller.ntotal < index.ntotal
        assert gone not in K.images_held(smaller) and gone in K.images_held(index)  # the one in use left as it was
        now = list((folder / f"collection-{coll}").glob("local-*.faiss"))
        assert len(now) == 1 and now[0].name != files[0].name  # saved under the new signature, the stale one removed
    finally:
        _restore_features(ctx, gone, data)
    again = first.get(coll)  # the image's features back: its descriptors added to the open index
    assert (first.builds, first.updates) == (1, 2) and again.ntotal == index.ntotal
    fresh = DI.DescriptorIndexes(ctx.db, tmp_path / "fresh")  # what a build from the database gives
    rebuilt = fresh.get(coll)
    assert fresh.builds == 1
    assert np.array_equal(K.ids_held(again), K.ids_held(rebuilt))
    assert K.kind_of(again) == K.kind_of(rebuilt) == "exhaustive"  # exact: the very same neighbours
    q = LF.deserialise(data).desc[:50]
    assert np.array_equal(DI.search(again, q)[1], DI.search(rebuilt, q)[1])
    # a process without the index open brings the newest saved file up to date instead of building
    data = _delete_features(ctx, gone)
    try:
        third = DI.DescriptorIndexes(ctx.db, folder)
        assert third.get(coll).ntotal == smaller.ntotal and (third.builds, third.updates) == (0, 1)
    finally:
        _restore_features(ctx, gone, data)


def test_a_damaged_saved_index_is_built_again(artefacts, monkeypatch, tmp_path):  # noqa: F811
    client, ids, _ = artefacts
    ctx = client.application.extensions["simsearch"]
    monkeypatch.setattr(DI, "CHECK_INTERVAL", 0.0)
    coll = _collection_of(ctx, next(iter(ids.values())))
    first = DI.DescriptorIndexes(ctx.db, tmp_path)
    n = first.get(coll).ntotal
    saved = next((tmp_path / f"collection-{coll}").glob("local-*.faiss"))
    raw = bytearray(saved.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    saved.write_bytes(bytes(raw))
    gone = max(ids.values())
    data = _delete_features(ctx, gone)
    try:
        other = DI.DescriptorIndexes(ctx.db, tmp_path)  # the saved file fails its checksum: not updated, built
        assert other.get(coll).ntotal < n and (other.builds, other.updates) == (1, 0)
    finally:
        _restore_features(ctx, gone, data)


def test_a_large_index_is_product_quantised_and_updated_like_a_rebuild(artefacts, monkeypatch, tmp_path):  # noqa: F811
    """Above the threshold the index is IVF-PQ (thresholds lowered to this collection's ~3,500
    descriptors); an image deleted and added back is taken out and put in without a rebuild, and
    the candidates of wall photos are those of an index built from the database."""
    client, ids, paths = artefacts
    ctx = client.application.extensions["simsearch"]
    monkeypatch.setattr(DI, "CHECK_INTERVAL", 0.0)
    coll = _collection_of(ctx, next(iter(ids.values())))
    small = dict(ivf_at=500, pq_at=1000)
    first = DI.DescriptorIndexes(ctx.db, tmp_path / "a", **small)
    index = first.get(coll)
    assert K.kind_of(index) == "ivf-pq" and index.pq.M == K.PQ_M and first.builds == 1
    assert K.code_bytes(index) == K.PQ_M + 8 < K.code_bytes(DI.build(np.zeros(0, np.int64), np.zeros((0, 128), np.uint8)))
    target = ids[paths[9].name]  # a building: deleted, then its features back
    data = _delete_features(ctx, target)
    try:
        assert target not in K.images_held(first.get(coll)) and (first.builds, first.updates) == (1, 1)
    finally:
        _restore_features(ctx, target, data)
    updated = first.get(coll)
    assert (first.builds, first.updates) == (1, 2) and target in K.images_held(updated)
    rebuilt = DI.DescriptorIndexes(ctx.db, tmp_path / "b", **small).get(coll)
    assert np.array_equal(K.ids_held(updated), K.ids_held(rebuilt))
    background = dataset_files(OXFORD / "oxford", 1, start=5)[0]
    for art in (paths[1], paths[9]):
        q = V.query_features(ctx, _on_a_wall(art, background), "wall.jpg")
        by_update = LV.candidates(*DI.search(updated, q.desc), V.LOCAL_CANDIDATES, V.LOCAL_MIN_VOTES)
        by_build = LV.candidates(*DI.search(rebuilt, q.desc), V.LOCAL_CANDIDATES, V.LOCAL_MIN_VOTES)
        assert by_update == by_build and by_update[0] == ids[art.name], (art.name, by_update, by_build)


def test_a_wall_photo_is_found_first_by_its_local_features(artefacts):  # noqa: F811
    client, ids, paths = artefacts
    ctx = client.application.extensions["simsearch"]
    background = dataset_files(OXFORD / "oxford", 1, start=5)[0]
    for art in (paths[1], paths[9]):  # a flower and a building
        data = _on_a_wall(art, background)
        q = V.query_features(ctx, data, "wall.jpg")
        hits = _search(client, data, k=3, regions=0, local="true", verify="false").get_json()["results"]
        assert hits[0]["image_id"] == ids[art.name], (art.name, hits)
        with ctx.db.session() as s:
            from simsearch.store.models import Image
            coll = s.get(Image, ids[art.name]).collection_id
        assert V.local_candidates(ctx, coll, q)[0] == ids[art.name]


def test_local_must_be_a_boolean(artefacts):  # noqa: F811
    client, _, paths = artefacts
    data = paths[0].read_bytes()
    assert_error(_search(client, data, local="maybe"), 400, field="local")
    hits = _search(client, data, k=2, local="true").get_json()["results"]
    assert hits[0]["path"].endswith(paths[0].name)  # the image itself: verified, first


def test_the_staged_search_finds_what_the_one_pass_search_finds(artefacts, monkeypatch):  # noqa: F811
    """The default with local candidates runs its local path beside the forward and skips the
    proposal when a candidate verified (ops.search._staged); the first hits are those of the one-pass
    search, and a photo that verifies nothing gets the fused ranking (the proposal searched)."""
    from simsearch import search as S
    from simsearch.ops import search as ops_search

    client, ids, paths = artefacts
    coll = client.get("/api/collections/art").get_json()["id"]
    proposals = []
    real = S._proposals
    monkeypatch.setattr(S, "_proposals", lambda im, regions: proposals.append(regions) or real(im, regions))
    background = dataset_files(OXFORD / "oxford", 1, start=5)[0]
    gone = max(ids.values())  # its features may have been deleted by the test above
    for art in [p for p in (paths[1], paths[9], paths[2], paths[10]) if ids[p.name] != gone][:2]:
        data = _on_a_wall(art, background)
        proposals.clear()
        staged = _search(client, data, k=3, local="true", verify="false").get_json()["results"]
        found, clear = V.local_verified(client.application.extensions["simsearch"], coll, data, "wall.jpg")
        assert staged[0]["image_id"] == ids[art.name] and list(found)[0] == ids[art.name]
        assert proposals == ([] if clear else [1])  # a clear winner: no proposal needed
        monkeypatch.setattr(ops_search, "STAGED", False)
        one_pass = _search(client, data, k=3, local="true", verify="false").get_json()["results"]
        monkeypatch.setattr(ops_search, "STAGED", True)
        assert one_pass[0]["image_id"] == staged[0]["image_id"]
    other = dataset_files(FLOWERS / sorted(p.name for p in FLOWERS.iterdir() if p.is_dir())[0], 1, start=3)[0]
    data = other.read_bytes()  # another photo of a species: nothing verifies
    proposals.clear()
    staged = _search(client, data, k=5, local="true", verify="false").get_json()["results"]
    assert proposals == [1]  # not verified: the proposal searched too
    fused = _search(client, data, k=5, local="false", verify="false").get_json()["results"]
    assert [h["image_id"] for h in staged] == [h["image_id"] for h in fused]
    assert [h["score"] for h in staged] == pytest.approx([h["score"] for h in fused], abs=1e-4)


def test_local_candidates_are_verified_in_vote_order_up_to_a_clear_winner(artefacts, monkeypatch):  # noqa: F811
    client, ids, paths = artefacts
    ctx = client.application.extensions["simsearch"]
    coll = client.get("/api/collections/art").get_json()["id"]
    art = next(p for p in (paths[9], paths[10]) if ids[p.name] != max(ids.values()))  # with its features
    q = V.query_features(ctx, art.read_bytes(), "copy.jpg")  # the image itself: a clear winner
    cands, votes = V.local_votes_of(ctx, coll, q)
    assert cands[0] == ids[art.name] and votes == sorted(votes, reverse=True)
    calls = []
    real = V.LF.verify
    monkeypatch.setattr(V.LF, "verify", lambda a, b, **kw: calls.append(1) or real(a, b, **kw))
    found = V.verify_in_vote_order(ctx, q, cands, votes)
    assert list(found) == [cands[0]] and found[cands[0]] >= V.CLEAR_INLIERS and len(calls) == 1
    monkeypatch.setattr(V, "CLEAR_INLIERS", 10**6)  # no clear winner: every candidate verified
    calls.clear()
    assert list(V.verify_in_vote_order(ctx, q, cands, votes))[0] == cands[0] and len(calls) == len(cands)
    assert V.local_verified(ctx, coll, art.read_bytes(), "copy.jpg") == (V.verify_in_vote_order(ctx, q, cands, votes), False)


def test_local_is_on_by_default_where_the_images_features_are_stored(artefacts, monkeypatch):  # noqa: F811
    """Without SIMSEARCH_LOCAL_FEATURES, ``local`` follows the collection's stored features: off
    while most images lack them, on once ``simsearch features`` (ops.local_features) stored them."""
    from click.testing import CliRunner
    from sqlalchemy import delete, func, select

    from simsearch.cli import cli
    from simsearch.index import descriptors
    from simsearch.ops import local_features
    from simsearch.store.models import ImageFeatures

    client, ids, paths = artefacts
    ctx = client.application.extensions["simsearch"]
    coll = client.get("/api/collections/art").get_json()["id"]
    monkeypatch.setattr(ctx, "settings", ctx.settings.model_copy(update={"local_features": False}))
    monkeypatch.setattr(descriptors, "CHECK_INTERVAL", 0.0)
    with ctx.db.session() as s:
        s.execute(delete(ImageFeatures).where(ImageFeatures.image_id != min(ids.values())))
    assert not V.local_default(ctx, coll)  # 1 image of 12
    background = dataset_files(OXFORD / "oxford", 1, start=5)[0]
    art = next(p for p in (paths[9], paths[10]) if ids[p.name] != min(ids.values()))
    data = _on_a_wall(art, background)
    report = local_features.store_missing(ctx, "art")
    assert report["lacking"] == len(ids) - 1 and report["stored"] == len(ids) - 1 and report["unreadable"] == 0
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ImageFeatures)) == len(ids)
    assert V.local_default(ctx, coll)
    hits = _search(client, data, k=3).get_json()["results"]  # the default: local candidates, verified
    assert hits[0]["image_id"] == ids[art.name]
    again = CliRunner().invoke(cli, ["features", "-c", "art", "--json"],
                               env={"SIMSEARCH_HOME": str(ctx.settings.home), "SIMSEARCH_DATABASE_URL": ctx.settings.database_url})
    assert again.exit_code == 0 and '"stored": 0' in again.output, again.output  # nothing left to do
