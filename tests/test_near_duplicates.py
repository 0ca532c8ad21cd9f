"""Near-duplicates that do not chain: perceptual hashes, verification, grouping around
representatives, the backbone space whatever the default, and hashes for images stored before.

The figures on the realistic sets (recall per transform, distinct photos grouped) come from
benchmarks/near_duplicates.py (docs/near-duplicates.md); here: the rules, on a few real photos.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from simsearch.analysis.near_duplicates import (contains, hamming, hash_candidates, hash_distance,
                                                pair_hash_distance, representative_groups, verify)
from simsearch.errors import InvalidInput
from simsearch.images import phash
from simsearch.ops import near_duplicates as near
from simsearch.ops.duplicate_results import Duplicates
from tests.conftest import DATASETS, dataset_files, upgraded
from tests.helpers import benchmarks

FLOWERS102 = DATASETS / "flowers102"


def _hashes(data: bytes) -> np.ndarray:
    return phash.image_hashes(Image.open(io.BytesIO(data)).convert("RGB"))


def _photos(n: int):
    species = sorted(p for p in FLOWERS102.iterdir() if p.is_dir())
    return [dataset_files(sp, 1)[0] for sp in species[:n]]


# ---- hashes and the pure rules ------------------------------------------------------------------


def test_hashes_match_transformed_copies_and_not_other_photos():
    copies = benchmarks.load("near_copies")
    photos = _photos(6)
    data = photos[0].read_bytes()
    h0 = _hashes(data)
    assert h0.dtype == np.uint64 and h0.shape == (phash.N_HASHES,)
    for t in ("resize25", "jpeg30", "crop10", "hflip", "gray", "watermark", "webp", "png"):
        d = int(hash_distance(h0, _hashes(copies.make_copy(data, t)))[0])
        assert d <= near.HASH_MAX, (t, d)
    # the same species' other photos (and other species) are other pictures
    others = np.stack([_hashes(p.read_bytes()) for p in photos[1:]] + [_hashes(dataset_files(photos[0].parent, 2)[1].read_bytes())])
    far = hash_distance(np.repeat(h0[None], len(others), 0), others)
    assert (far > near.HASH_MAX).all(), far
    # the thumbnail's hashes agree with the decoded image's (images stored before hashes were kept)
    from simsearch.images import make_thumbnail

    thumb = make_thumbnail(Image.open(io.BytesIO(data)).convert("RGB"))
    assert int(hash_distance(h0, phash.thumbnail_hashes(thumb))[0]) <= 2
    assert np.array_equal(phash.from_bytes(phash.to_bytes(h0)), h0) and phash.from_bytes(b"short") is None


def test_verify_needs_agreeing_hashes_or_a_strict_cosine():
    s = np.array([0.65, 0.65, 0.95, 0.8, 0.5], np.float32)
    d = np.array([4, 20, 30, -1, 0], np.int16)
    assert verify(s, d, floor=0.6, hash_max=10, strict=0.93).tolist() == [True, False, True, False, False]
    hashes = np.zeros((3, 5), np.uint64)
    hashes[1] = np.uint64(0b111)  # every picture of image 1 differs from image 0 in 3 bits
    assert pair_hash_distance(hashes, np.array([True, True, False]), [0, 0], [1, 2]).tolist() == [3, -1]
    assert verify(s, d, floor=0.6, hash_max=10, strict=0.93, hash_sure=2).tolist() == [True, False, True, False, True]
    assert contains(np.array([1, 5, 9]), [5, 6, 9, 0]).tolist() == [True, False, True, False]
    with pytest.raises(InvalidInput):
        verify(s, d[:2], floor=0.6, hash_max=10, strict=0.93)
    with pytest.raises(InvalidInput):
        hash_distance(np.zeros((2, 5), np.uint64), np.zeros((2, 4), np.uint64))


def test_hash_candidates_find_every_pair_within_the_distance_and_no_other():
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**63, 5000, dtype=np.int64).astype(np.uint64)
    h[4000:4100] = h[:100] ^ (np.uint64(1) << np.uint64(7)) ^ (np.uint64(1) << np.uint64(40))  # 2 bits apart
    h[4100:4200] = h[100:200] ^ np.uint64(0b111)  # 3 bits apart: not within 2
    i, j, d = hash_candidates(h, max_distance=2)
    brute = {(a, int(b)) for a in range(5000) for b in np.flatnonzero(hamming(h[a], h[a + 1:]) <= 2) + a + 1}
    assert set(zip(i.tolist(), j.tolist())) == brute and {(k, 4000 + k) for k in range(100)} <= brute
    assert (d <= 2).all() and len(i) >= 100
    with pytest.raises(InvalidInput):
        hash_candidates(h, max_distance=4)


def test_groups_form_around_representatives_never_through_chains():
    # a chain 0-1-2-3-4-5-6 (look-alikes each like the next) and a star 10 with 11, 12, 13
    i = np.array([0, 1, 2, 3, 4, 5, 10, 10, 10])
    j = np.array([1, 2, 3, 4, 5, 6, 11, 12, 13])
    s = np.array([0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.99, 0.98, 0.97], np.float32)
    groups = representative_groups(14, i, j, s)
    links = {(int(a), int(b)) for a, b in zip(i, j)} | {(int(b), int(a)) for a, b in zip(i, j)}
    assert groups[0].representative == 10 and groups[0].members.tolist() == [10, 11, 12, 13]
    for g in groups:  # every member is linked to its representative
        assert all(m == g.representative or (g.representative, int(m)) in links for m in g.members)
    chain_groups = [g for g in groups if g.members[0] < 10]
    assert max(g.size for g in chain_groups) == 3 and len(chain_groups) >= 2  # never all 7 in one group
    assert sum(g.size for g in groups) == len({int(m) for g in groups for m in g.members})  # disjoint
    assert groups[0].pair_scores.tolist() == sorted(groups[0].pair_scores.tolist(), reverse=True)
    # masked links are no links
    assert representative_groups(14, i, j, s, mask=np.zeros(len(i), bool)) == []
    with pytest.raises(InvalidInput):
        representative_groups(3, i, j, s)


# ---- the op on an ingested collection -------------------------------------------------------------


@pytest.fixture(scope="module")
def app_with_copies(tmp_path_factory, weights_dir):
    """6 flowers102 photos (other species) and 4 transformed copies of the first two."""
    from simsearch.config import Settings
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.web import create_app, shutdown

    copies = benchmarks.load("near_copies")
    base = tmp_path_factory.mktemp("neardup")
    folder = base / "photos" / "flowers"
    folder.mkdir(parents=True)
    photos = _photos(6)
    for n, p in enumerate(photos):
        data = p.read_bytes()
        (folder / f"s{n}.jpg").write_bytes(data)
        if n < 2:
            for t in ("resize50", "hflip", "crop10", "watermark"):
                (folder / f"s{n}__{t}.jpg").write_bytes(copies.make_copy(data, t))
    home = base / "home"
    settings = upgraded(Settings.from_env(home=home, database_url=f"sqlite:///{home / 'simsearch.db'}",
                                          weights_path=weights_dir))
    app = create_app({"SETTINGS": settings, "TESTING": True})
    ctx = app.extensions["simsearch"]
    files, _ = files_from_folder(base / "photos", labels="folders")
    report = Ingester(ctx, spaces=["efficientnet_lite0"], batch_size=8).run("nd", files, source=str(folder))
    assert report.added == 14
    yield app
    shutdown(app)


def _near_groups(ctx, space=None) -> tuple[Duplicates, list[tuple[str, ...]]]:
    """The near tier's result and its groups as the sorted source photos of their images
    (``s0__hflip.jpg`` is of ``s0``): ('s0',) * 5 is s0 with its 4 copies."""
    from simsearch.ops import duplicates as dup

    res = dup.find(ctx, "nd", space, tier="near", per_page=None)
    return res, sorted(tuple(sorted(img.path.rsplit("/", 1)[-1].split("__")[0].split(".")[0] for img in g.images))
                       for g in res.groups)


def test_ingest_stores_hashes_and_the_near_tier_groups_each_photo_with_its_copies(app_with_copies):
    from simsearch.store import hashes as stored_hashes
    from simsearch.store import repo

    ctx = app_with_copies.extensions["simsearch"]
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, "nd").id
        ids, hashes = stored_hashes.of_collection(s, coll_id, phash.METHOD, phash.N_HASHES)
    assert len(ids) == 14 and hashes.shape == (14, phash.N_HASHES)
    _, groups = _near_groups(ctx)
    assert groups == [("s0",) * 5, ("s1",) * 5], groups


def test_images_stored_before_hashes_were_kept_are_hashed_from_thumbnails(app_with_copies):
    from sqlalchemy import delete, select

    from simsearch.store.models import AnalysisResult, ImageHashes

    ctx = app_with_copies.extensions["simsearch"]
    with ctx.db.session() as s:
        before = dict(s.execute(select(ImageHashes.image_id, ImageHashes.hashes)).all())
        s.execute(delete(ImageHashes))
        s.execute(delete(AnalysisResult))  # (the cached pairs too: computed again)
        s.commit()
    seen = []
    from simsearch.ops import duplicates as dup

    dup.pairs(ctx, "nd", None, progress=lambda message, done, total: seen.append(message))
    assert any("hashing images stored before" in m for m in seen), seen
    with ctx.db.session() as s:
        after = dict(s.execute(select(ImageHashes.image_id, ImageHashes.hashes)).all())
    assert set(after) <= set(before) and len(after) >= 10  # (the images in some candidate pair)
    d = [int(hash_distance(phash.from_bytes(before[i]), phash.from_bytes(after[i]))[0]) for i in after]
    assert max(d) <= 4, d
    _, groups = _near_groups(ctx)
    assert groups == [("s0",) * 5, ("s1",) * 5], groups


def test_near_duplicates_run_in_the_backbone_space_when_the_default_is_derived(app_with_copies):
    from simsearch.analysis import tuning
    from simsearch import derived, space_defaults
    from simsearch.store import repo

    ctx = app_with_copies.extensions["simsearch"]
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, "nd").id
    _, parts = derived.base_vectors(ctx, coll_id, ["efficientnet_lite0"])
    setting = tuning.Setting(tuning.Family("whiten"), 4, 0.5)
    name = derived.derived_name(["efficientnet_lite0"], "nd-test")
    derived.save(ctx, coll_id, name, ["efficientnet_lite0"], setting.to_dict(), tuning.fit(parts[0], None, setting), None)
    space_defaults.set_default(ctx, "nd", name)
    try:
        for space in (None, name):  # the default, or the derived space by name: its backbone
            res, groups = _near_groups(ctx, space)
            assert res.backbone == "efficientnet_lite0"
            assert groups == [("s0",) * 5, ("s1",) * 5], groups
    finally:
        space_defaults.set_default(ctx, "nd", None)
