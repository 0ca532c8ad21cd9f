"""The near tier's geometric check: local features under one similarity transform, covering most of
both pictures, whose aligned pixels agree (simsearch/analysis/geometry.py), and its use by the near
tier for the copies perceptual hashes miss (off-centre crops, flipped crops, rotations).

The figures on the realistic sets come from benchmarks/near_duplicates.py (docs/near-duplicates.md);
here: the rule on a few real photos, and the op end to end.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import delete, event

from simsearch.analysis import geometry
from simsearch.analysis.near_duplicates import GEOMETRY_RESHOT, GEOMETRY_UNCHECKED, hash_distance, verify
from simsearch.errors import InvalidInput
from simsearch.images import phash
from simsearch.ops import near_duplicates as near
from simsearch.store.models import AnalysisResult
from tests.conftest import DATASETS, upgraded
from tests.helpers import benchmarks

OXFORD = DATASETS / "oxford-buildings"
FLOWER = DATASETS / "flowers102" / "buttercup" / "image_04648.jpg"
LANDMARK = OXFORD / "magdalen" / "magdalen_000022.jpg"
# two photos of the Radcliffe Camera from about the same spot (cosine 0.93 in efficientnet_lite0:
# a hard negative), and another view of it
CAMERA_A = OXFORD / "radcliffe_camera" / "radcliffe_camera_000209.jpg"
CAMERA_B = OXFORD / "radcliffe_camera" / "radcliffe_camera_000270.jpg"
CAMERA_C = OXFORD / "radcliffe_camera" / "radcliffe_camera_000050.jpg"


def _picture(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def _features(data: bytes) -> geometry.Features:
    return geometry.features(_picture(data))


# ---- the rule, on real photos -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [FLOWER, LANDMARK], ids=["flower", "landmark"])
def test_crops_flips_and_rotations_of_a_photo_are_accepted(path):
    copies = benchmarks.load("near_copies")
    data = path.read_bytes()
    original = _features(data)
    for t in ("cropoff12", "hflip+cropoff10", "rotate6", "crop15", "resize25+jpeg30"):
        v = geometry.verify(original, _features(copies.make_copy(data, t)))
        assert v.accepted, (t, v)
        assert v.mirrored == t.startswith("hflip"), (t, v)
    # the check is symmetric in what it accepts: the copy against the original too
    assert geometry.verify(_features(copies.make_copy(data, "cropoff12")), original).accepted
    # the off-centre crop is one the hashes miss (the reason for the check)
    h = phash.image_hashes(_picture(data))
    assert int(hash_distance(h, phash.image_hashes(_picture(copies.make_copy(data, "cropoff12"))))[0]) > near.HASH_MAX


def test_other_photos_of_the_same_landmark_and_a_shared_detail_are_rejected():
    a, b, c = (_features(p.read_bytes()) for p in (CAMERA_A, CAMERA_B, CAMERA_C))
    for x, y in ((a, b), (b, a), (a, c), (b, c)):
        v = geometry.verify(x, y)
        assert not v.accepted, v
    # the same building from the same spot: many keypoints agree on one transform, but the aligned
    # pictures do not (other light, other people): the pixel check rejects it
    v = geometry.verify(a, b)
    assert v.inliers >= geometry.MIN_INLIERS and v.ncc < geometry.MIN_NCC, v
    # a detail of a photo (a fifth of each side: the same window of the same building) is no crop of it
    pic = _picture(LANDMARK.read_bytes())
    w, h = pic.size
    detail = pic.crop((int(w * 0.4), int(h * 0.3), int(w * 0.6), int(h * 0.5)))
    v = geometry.verify(_features(LANDMARK.read_bytes()), geometry.features(detail))
    assert not v.accepted and v.cover < geometry.MIN_COVER, v


def test_features_check_their_input():
    with pytest.raises(InvalidInput):
        geometry.features(np.zeros((8, 8), np.uint8))
    with pytest.raises(InvalidInput):
        geometry.verify("a", "b")
    flat = geometry.features(np.full((64, 64), 128, np.uint8))  # no keypoints: nothing to accept
    assert not geometry.verify(flat, flat).accepted


def test_verify_takes_the_geometric_verdict():
    # cosine, hash distance, geometry: hashes agree / agree weakly / disagree, checked or not
    # the last: hashes agree weakly, the check found a re-shot (keypoints agree, pixels do not)
    s = np.array([0.85, 0.85, 0.85, 0.95, 0.95, 0.75, 0.65, 0.85], np.float32)
    d = np.array([5, 20, 20, 20, 20, 20, 1, 5], np.int16)
    g = np.array([0, 1, 0, 0, GEOMETRY_UNCHECKED, 1, 0, GEOMETRY_RESHOT], np.int8)
    rule = dict(floor=0.70, hash_max=8, strict=0.93, hash_sure=2)
    assert verify(s, d, geometry=g, **rule).tolist() == [True, True, False, False, True, True, True, True]
    # confirm_weak refuses the weak hash match of a re-shot only: a rejection for too few keypoints
    # (a caption over a third of the picture) keeps the hashes' word
    assert verify(s, d, geometry=g, confirm_weak=True, **rule).tolist() == [True, True, False, False, True, True, True,
                                                                           False]
    # without verdicts (pairs cached before the check): the strict cosine as before
    assert verify(s, d, **rule).tolist() == [True, False, False, True, True, False, True, True]
    with pytest.raises(InvalidInput):
        verify(s, d, geometry=g[:3], **rule)


# ---- the op end to end ------------------------------------------------------------------------------


def test_the_near_tier_groups_off_centre_and_flipped_crops_not_other_photos_of_a_landmark(tmp_path, weights_dir):
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.ops import duplicates as dup

    copies = benchmarks.load("near_copies")
    folder = tmp_path / "photos" / "mixed"
    folder.mkdir(parents=True)
    for name, path in (("flower", FLOWER), ("landmark", LANDMARK), ("camera_a", CAMERA_A), ("camera_b", CAMERA_B)):
        data = path.read_bytes()
        (folder / f"{name}.jpg").write_bytes(data)
        if name in ("flower", "landmark"):
            for t in ("cropoff12", "hflip+cropoff12"):
                (folder / f"{name}__{t.replace('+', '_')}.jpg").write_bytes(copies.make_copy(data, t))
    home = tmp_path / "home"
    settings = upgraded(Settings.from_env(home=home, database_url=f"sqlite:///{home / 'simsearch.db'}",
                                          weights_path=weights_dir))
    ctx = AppContext.open(settings)
    try:
        files, _ = files_from_folder(tmp_path / "photos", labels="folders")
        assert Ingester(ctx, spaces=["efficientnet_lite0"], batch_size=8).run("geo", files, source=str(folder)).added == 8
        res = dup.find(ctx, "geo", None, tier="near", per_page=None)
        groups = sorted(tuple(sorted(img.path.rsplit("/", 1)[-1].split("__")[0].split(".")[0] for img in g.images))
                        for g in res.groups)
        assert groups == [("flower",) * 3, ("landmark",) * 3], groups
        ps = dup.pairs(ctx, "geo", None)
        assert ps.cached and (ps.geometry == 1).sum() >= 4  # the crops were found by the check
        # the originals gone (or in a bucket): the check reads the stored thumbnails, all in one query
        (tmp_path / "photos").rename(tmp_path / "moved")
        with ctx.db.session() as s:
            s.execute(delete(AnalysisResult))
        statements = []
        event.listen(ctx.db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        again = dup.pairs(ctx, "geo", None)
        assert not again.cached and (again.geometry == 1).sum() >= 4, again.geometry
        assert sum("thumbnails" in q for q in statements) == 1, statements
    finally:
        ctx.close()


def test_tile_correlation_ignores_an_overlay_but_not_a_change_everywhere():
    rng = np.random.default_rng(0)
    x = cv2.GaussianBlur(rng.uniform(0, 255, (96, 128)).astype(np.float32), (7, 7), 0)
    mask = np.ones(x.shape, bool)
    assert geometry.tile_correlation(x, x, mask) == pytest.approx(1.0)
    captioned = x.copy()
    captioned[72:, 8:120] = np.where(rng.random((24, 112)) < 0.5, 255.0, 0.0)  # a caption band across the bottom
    whole = np.corrcoef(x[mask], captioned[mask])[0, 1]
    assert whole < geometry.MIN_NCC <= geometry.tile_correlation(x, captioned, mask)
    relit = x + cv2.GaussianBlur(rng.uniform(-60, 60, x.shape).astype(np.float32), (9, 9), 0)  # changed all over
    assert geometry.tile_correlation(x, relit, mask) < geometry.MIN_NCC
    # flat tiles (sky) do not count; no pixels: 0
    flat = np.full(x.shape, 128.0, np.float32)
    assert geometry.tile_correlation(flat, flat, mask) == 0.0
    assert geometry.tile_correlation(x, x, np.zeros(x.shape, bool)) == 0.0
    with pytest.raises(InvalidInput):
        geometry.tile_correlation(x, x[:10], mask)


def _tile_by_tile(x, y, mask, tiles=geometry.TILES):
    """The definition, one tile after another (what tile_correlation computed before it summed
    every tile at once)."""
    def corr(u, v):
        u, v = u - u.mean(), v - v.mean()
        den = float(np.sqrt((u * u).sum() * (v * v).sum()))
        return float((u * v).sum() / den) if den > 0 else 0.0

    h, w = x.shape
    values = []
    for i in range(tiles):
        for j in range(tiles):
            part = (slice(i * h // tiles, (i + 1) * h // tiles), slice(j * w // tiles, (j + 1) * w // tiles))
            m = mask[part]
            if m.sum() >= geometry.TILE_PIXELS and x[part][m].std() >= geometry.TILE_FLAT:
                values.append(corr(x[part][m], y[part][m]))
    if values:
        return float(np.median(values))
    return corr(x[mask], y[mask]) if mask.any() else 0.0


def test_tile_correlation_is_the_tile_by_tile_definition():
    # odd sizes (uneven tiles), partial masks, flat halves in either picture, from copies to noise
    rng = np.random.default_rng(1)
    for t in range(300):
        h, w = (int(v) for v in rng.integers(20, 140, 2))
        x = cv2.GaussianBlur(rng.uniform(0, 255, (h, w)).astype(np.float32), (5, 5), 0)
        y = x + rng.normal(0, [0.5, 5, 30, 80, 1][t % 5], x.shape).astype(np.float32)
        if t % 5 == 4:
            y[: h // 2] = 77.0
        if t % 7 == 0:
            x[:, : w // 3] = 12.0
        mask = np.ones((h, w), bool)
        if t % 3:
            mask[: rng.integers(0, h), : rng.integers(0, w)] = False
        assert geometry.tile_correlation(x, y, mask) == pytest.approx(_tile_by_tile(x, y, mask), abs=1e-5), t
