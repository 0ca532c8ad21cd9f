"""Geometric verification of a search by upload (simsearch.ops.verify): through the API over the
small real collection of tests/test_region_search.py (flowers102 and oxford-buildings photos)."""

from __future__ import annotations

import io

import pytest
from PIL import Image as PILImage

from simsearch.errors import InvalidInput
from simsearch.ops import verify as V
from tests.conftest import dataset_files
from tests.helpers.api import assert_error
from tests.helpers.regions import OXFORD, _search, artefacts  # noqa: F401  (the fixture)
from tests.helpers.regions import on_a_wall as _on_a_wall

def test_check_verify_takes_booleans_and_names_the_field():
    assert V.check_verify(True) is True and V.check_verify("false") is False and V.check_verify("1") is True
    for bad in ("nonsense", 2, None, 0.5):
        with pytest.raises(InvalidInput) as exc:
            V.check_verify(bad)
        assert exc.value.field == "verify"


def test_a_wall_photo_of_a_collection_image_is_found_first_with_verification(artefacts):  # noqa: F811
    client, ids, paths = artefacts
    ctx = client.application.extensions["simsearch"]
    with ctx.db.session() as s:  # ingest stored every image's features (SIMSEARCH_LOCAL_FEATURES)
        from sqlalchemy import func, select

        from simsearch.store.models import ImageFeatures
        assert s.scalar(select(func.count()).select_from(ImageFeatures)) == len(ids)
    background = dataset_files(OXFORD / "oxford", 1, start=5)[0]
    for art in (paths[1], paths[9]):  # a flower and a building
        data = _on_a_wall(art, background)
        res = _search(client, data, k=5, verify="true")
        assert res.status_code == 200, res.get_json()
        hits = res.get_json()["results"]
        assert hits[0]["image_id"] == ids[art.name], (art.name, hits)
        # the target verifies with many inliers, no other image of the collection does
        q = V.query_features(ctx, data, "wall.jpg")
        feats = V.candidate_features(ctx, list(ids.values()))
        from simsearch.images.local_features import verify
        inliers = {i: verify(q, f).inliers for i, f in feats.items()}
        assert inliers[ids[art.name]] >= V.MIN_INLIERS
        assert max(n for i, n in inliers.items() if i != ids[art.name]) < V.MIN_INLIERS, inliers
        off = _search(client, data, k=5, verify="false", local="false").get_json()["results"]  # the vectors' ranking
        assert sorted(h["score"] for h in off) == [h["score"] for h in off][::-1]


def test_features_missing_are_extracted_from_the_original_and_stored(artefacts):  # noqa: F811
    from sqlalchemy import delete, func, select

    from simsearch.store.models import ImageFeatures

    client, ids, paths = artefacts
    ctx = client.application.extensions["simsearch"]
    with ctx.db.session() as s:
        s.execute(delete(ImageFeatures))  # as for images stored before verification existed
    with PILImage.open(paths[10]) as im:
        buf = io.BytesIO()
        im.convert("RGB").resize((im.width // 2, im.height // 2)).save(buf, "JPEG", quality=75)
    # local=false: no verification (local candidates would verify the images of a stale index)
    hits = _search(client, buf.getvalue(), k=3, local="false").get_json()["results"]
    assert hits[0]["image_id"] == ids[paths[10].name]
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ImageFeatures)) == 0
    hits = _search(client, buf.getvalue(), k=3, verify="true", local="false").get_json()["results"]
    assert hits[0]["image_id"] == ids[paths[10].name]
    with ctx.db.session() as s:
        n = s.scalar(select(func.count()).select_from(ImageFeatures))
    assert n == min(len(ids), V.CANDIDATES)  # every candidate verified has its features now


def test_verify_must_be_a_boolean(artefacts):  # noqa: F811
    client, _, paths = artefacts
    data = paths[0].read_bytes()
    for bad in ("nonsense", "2"):
        assert_error(_search(client, data, verify=bad), 400, field="verify")
    form = {"image": (io.BytesIO(data), "q.jpg"), "verify": "maybe"}
    assert_error(client.post("/api/collections/art/search", data=form, content_type="multipart/form-data"), 400,
                 field="verify")
    for ok in ("false", "true", "0", "1"):
        assert _search(client, data, verify=ok, k=2).status_code == 200
