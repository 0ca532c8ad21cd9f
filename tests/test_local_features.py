"""Local features and their geometric verification (simsearch.images.local_features), on real
photos of the shared data sets changed by known transforms."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from simsearch.errors import InvalidInput
from simsearch.images import local_features as L
from tests.conftest import DATASETS, dataset_files

cv2 = pytest.importorskip("cv2")


def _grey(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


@pytest.fixture(scope="module")
def photos():
    oxford = DATASETS / "oxford-buildings"
    landmark = sorted(p for p in oxford.iterdir() if p.is_dir() and p.name != "oxford")[0]
    flower = sorted(p for p in (DATASETS / "flowers102").iterdir() if p.is_dir())[0]
    return {"building": _grey(dataset_files(landmark, 1)[0]), "flower": _grey(dataset_files(flower, 1)[0]),
            "other": _grey(dataset_files(oxford / "oxford", 1)[0])}


def _perspective(g: np.ndarray, share: float) -> np.ndarray:
    h, w = g.shape
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + np.float32([[1, 0.5], [-1, 0.25], [-0.5, -1], [0.75, -0.5]]) * share * np.float32([w, h])
    return cv2.warpPerspective(g, cv2.getPerspectiveTransform(src, dst), (w, h))


def _on_background(g: np.ndarray, background: np.ndarray, scale: float) -> np.ndarray:
    """``g`` shrunk to ``scale`` of ``background``'s height and pasted into it (a picture on a wall)."""
    bg = background.copy()
    h = int(bg.shape[0] * scale)
    w = min(bg.shape[1] - 2, int(g.shape[1] * h / g.shape[0]))
    small = cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA)
    bg[5:5 + h, 1:1 + w] = small
    return bg


@pytest.mark.parametrize("kind", list(L.KINDS))
def test_the_same_picture_verifies_under_crop_scale_perspective_and_on_a_wall(photos, kind):
    ref = L.extract(photos["building"], kind=kind)
    assert 0 < len(ref) <= L.N_FEATURES and len(L.extract(photos["building"], n=L.N_QUERY, kind=kind)) > len(ref)
    assert ref.desc.shape == (len(ref), L.DESC_BYTES[kind])
    assert ref.xy.dtype == np.float32 and ref.desc.dtype == np.uint8
    assert ref.xy.min() >= 0 and ref.xy.max() <= 1  # normalised by the long side
    g = photos["building"]
    h, w = g.shape
    changed = {
        "crop": g[h // 8: h * 7 // 8, w // 8: w * 7 // 8],
        "scale": cv2.resize(g, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
        "perspective": _perspective(g, 0.06),
        "wall": _on_background(g, photos["other"], 0.6),
    }
    unrelated = L.verify(L.extract(photos["flower"], kind=kind), ref)
    for name, img in changed.items():
        m = L.verify(L.extract(img, n=L.N_QUERY, kind=kind), ref)
        assert m.homography is not None and m.inliers >= max(20, 3 * unrelated.inliers), (kind, name, m, unrelated)
        assert 0 < m.inlier_ratio <= 1 and m.inliers <= m.matches
    # the homography maps the query's points onto the reference's: the half-size copy's centre is the centre
    m = L.verify(L.extract(changed["scale"], kind=kind), ref)
    centre = np.array([[[0.5, 0.5 * h / w]]], np.float32) if w >= h else np.array([[[0.5 * w / h, 0.5]]], np.float32)
    assert cv2.perspectiveTransform(centre, m.homography)[0, 0] == pytest.approx(centre[0, 0], abs=0.02)


@pytest.mark.parametrize("kind", list(L.KINDS))
def test_unrelated_photos_do_not_verify_and_a_mirror_is_left_to_the_caller(photos, kind):
    a = L.extract(photos["building"], kind=kind)
    for other in (photos["flower"], photos["other"]):
        m = L.verify(L.extract(other, n=L.N_QUERY, kind=kind), a)
        assert m.inliers < 15, (kind, m)
    # a mirror is no homography that keeps orientation: it verifies far less than the picture itself
    # (a symmetric façade keeps a few), so a caller that wants mirrors extracts the flipped image too
    g = photos["other"]
    ref = L.extract(g, kind=kind)
    same = L.verify(L.extract(cv2.resize(g, None, fx=0.5, fy=0.5), n=L.N_QUERY, kind=kind), ref)
    flipped = L.verify(L.extract(cv2.flip(g, 1), n=L.N_QUERY, kind=kind), ref)
    assert flipped.inliers < 15 and same.inliers > 5 * max(flipped.inliers, 10), (kind, same, flipped)


def test_serialise_round_trips_compactly_and_refuses_foreign_bytes(photos):
    f = L.extract(photos["flower"], kind="orb")
    data = L.serialise(f)
    assert len(data) == 8 + len(f) * (4 + 32)
    back = L.deserialise(data)
    assert back.kind == "orb" and np.array_equal(back.desc, f.desc)
    assert np.allclose(back.xy, f.xy, atol=1e-3)  # float16: well under a pixel of the copy
    assert L.verify(back, f).inliers >= 0.8 * len(f)  # (keypoints at one place count once)
    for bad in (b"", b"XXXX" + data[4:], data[:-1]):
        with pytest.raises(InvalidInput) as exc:
            L.deserialise(bad)
        assert exc.value.field == "features"
    empty = L.extract(np.zeros((8, 8), np.uint8), kind="orb")
    assert len(empty) == 0 and len(L.deserialise(L.serialise(empty))) == 0
    assert L.verify(empty, f).inliers == 0


def test_bad_input_names_the_field(photos):
    with pytest.raises(InvalidInput) as exc:
        L.extract(np.zeros((10, 10, 3), np.uint8))
    assert exc.value.field == "gray"
    with pytest.raises(InvalidInput) as exc:
        L.extract(photos["flower"], kind="surf")
    assert exc.value.field == "kind"
    with pytest.raises(InvalidInput) as exc:
        L.verify(L.extract(photos["flower"], kind="orb"), L.extract(photos["flower"], kind="sift"))
    assert exc.value.field == "kind"
