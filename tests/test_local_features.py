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


def _bf_ratio_matches(query: np.ndarray, train: np.ndarray, ratio: float) -> np.ndarray:
    """The reference: OpenCV's Hamming brute-force matcher, two nearest, Lowe's ratio test."""
    knn = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(query, train, k=2)
    return np.asarray([(x[0].distance, x[0].queryIdx, x[0].trainIdx) for x in knn
                       if len(x) == 2 and x[0].distance < ratio * x[1].distance], np.float64).reshape(-1, 3)


def test_orb_ratio_matches_are_those_of_opencvs_matcher(photos):
    """The ORB matches (FAISS's Hamming k-NN) are exactly OpenCV's BFMatcher's after the ratio test,
    on real keypoints (a crop, a mirror, another photo) and on descriptors with tied distances."""
    b = photos["building"]
    h, w = b.shape
    sets = {name: L.extract(g, n=500, kind="orb") for name, g in
            (("building", b), ("crop", np.ascontiguousarray(b[h // 10:, w // 8:])),
             ("mirror", np.ascontiguousarray(b[:, ::-1])), ("flower", photos["flower"]))}
    for q, t in (("building", "crop"), ("crop", "building"), ("building", "mirror"), ("flower", "building")):
        for ratio in (0.8, 1.0):
            got = L._hamming_ratio_matches(sets[q].desc, sets[t].desc, ratio)
            assert np.array_equal(got, _bf_ratio_matches(sets[q].desc, sets[t].desc, ratio)), (q, t, ratio)
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (60, 32), dtype=np.uint8)
    train[30:] = train[:30]  # every train row twice: each query's two nearest are tied
    query = np.concatenate([train[:10], rng.integers(0, 256, (10, 32), dtype=np.uint8)])
    unique = np.ascontiguousarray(train[:30])
    assert len(L._hamming_ratio_matches(query, train, 0.8)) == 0 == len(_bf_ratio_matches(query, train, 0.8))
    assert np.array_equal(L._hamming_ratio_matches(query, unique, 0.8), _bf_ratio_matches(query, unique, 0.8))
    assert len(_bf_ratio_matches(query, unique, 0.8)) >= 10  # the exact copies match


def test_orb_matching_leaves_the_callers_faiss_threads_as_they_were(photos):
    faiss = pytest.importorskip("faiss")
    f = L.extract(photos["building"], n=200, kind="orb")
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        L.tentative_matches(f, f)
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)


def test_first_rows_are_those_of_numpys_unique():
    rng = np.random.default_rng(1)
    for rows in (rng.integers(0, 4, (300, 4)), rng.integers(-3, 3, (50, 2)), np.zeros((0, 4), np.int64),
                 np.array([[0, 2 ** 40, 0, 0], [2 ** 40, 0, 1, 1], [0, 2 ** 40, 0, 0]])):  # the last: too wide for one integer
        rows = np.asarray(rows, np.int64)
        want = np.zeros(len(rows), bool)
        if len(rows):
            want[np.unique(rows, axis=0, return_index=True)[1]] = True
        assert np.array_equal(L._first_row(rows), want)
    assert L._first_row(np.array([[1, 1], [1, 1], [2, 1]])).tolist() == [True, False, True]
