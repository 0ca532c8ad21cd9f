"""The closer look of a search with local candidates (issue #18 item 4, simsearch.ops.verify.closer_look):
a small picture in a large photo of a wall keeps too few keypoints in the copy a search decodes
(a JPEG's draft scale, about the model's input) to verify, but its votes say where it is; that
region, decoded again at the file's own resolution, verifies it. Over the small real collection
of tests/helpers/regions.py."""

from __future__ import annotations

import io

import numpy as np
import pytest

from simsearch.ops import verify as V
from tests.conftest import dataset_files
from tests.helpers.regions import OXFORD, _search, artefacts  # noqa: F401  (the fixture)

# The wall photo: a large photo (this wide), the picture pasted at this share of its width: a
# JPEG's draft decode keeps ~1/4 of it (a picture of ~80 px), the file itself ~320 px.
WIDE = 1600
SHARE = 0.2
BACKGROUND = 3  # an oxford-buildings/oxford/ photo (none of the collection's landmarks in it), 720 x 540


def _small_on_a_wall(art, background, share: float = SHARE, at=(0.55, 0.3)) -> bytes:
    """``art`` with a dark frame, pasted at ``share`` of the width of ``background`` enlarged to
    :data:`WIDE` px, its top left corner at ``at`` (fractions); JPEG q90."""
    from PIL import Image, ImageOps

    with Image.open(background) as bg, Image.open(art) as a:
        bg = bg.convert("RGB")
        bg = bg.resize((WIDE, round(WIDE * bg.height / bg.width)), Image.BICUBIC)
        w = round(share * WIDE)
        pic = ImageOps.expand(a.convert("RGB").resize((w, round(w * a.height / a.width)), Image.LANCZOS),
                              border=max(3, w // 25), fill=(60, 40, 20))
        bg.paste(pic, (round(at[0] * bg.width), round(at[1] * bg.height)))
    out = io.BytesIO()
    bg.save(out, "JPEG", quality=90)
    return out.getvalue()


def _coll(client) -> int:
    return client.get("/api/collections/art").get_json()["id"]


def _with_features(ids, paths):
    gone = max(ids.values())  # another test's use of the fixture may have deleted its features
    return [p for p in (paths[2], paths[1]) if ids[p.name] != gone]


def test_a_small_picture_is_verified_by_a_closer_look_at_the_full_resolution(artefacts, monkeypatch):  # noqa: F811
    client, ids, paths = artefacts
    ctx = client.application.extensions["simsearch"]
    coll = _coll(client)
    background = dataset_files(OXFORD / "oxford", 1, start=BACKGROUND)[0]
    art = _with_features(ids, paths)[0]  # a flower (an artichoke)
    data = _small_on_a_wall(art, background)
    looks = []
    real = V.closer_look
    monkeypatch.setattr(V, "closer_look", lambda *a, **kw: looks.append(a[-1]) or real(*a, **kw))
    monkeypatch.setattr(V, "CLOSE_MIN_VOTES", 10**9)  # without the closer look: too few inliers in the decoded copy
    found, clear = V.local_verified(ctx, coll, data, "wall.jpg")
    assert ids[art.name] not in found and not clear and looks == []
    monkeypatch.setattr(V, "CLOSE_MIN_VOTES", 3)
    found, clear = V.local_verified(ctx, coll, data, "wall.jpg")
    assert looks == [ids[art.name]]  # the first by votes, looked at closer
    assert list(found)[0] == ids[art.name] and found[ids[art.name]] >= V.MIN_INLIERS and not clear
    hits = _search(client, data, k=3, local="true", verify="false").get_json()["results"]
    assert hits[0]["image_id"] == ids[art.name]


def test_the_closer_look_needs_the_first_by_votes_unverified(artefacts, monkeypatch):  # noqa: F811
    """A copy of a stored image verifies in the first pass (a clear winner): no closer look; a photo
    of another species (no stored picture in it) may get one, which does not verify."""
    client, ids, paths = artefacts
    ctx = client.application.extensions["simsearch"]
    coll = _coll(client)
    looks = []
    real = V.closer_look
    monkeypatch.setattr(V, "closer_look", lambda *a, **kw: looks.append(a[-1]) or real(*a, **kw) or 0)
    art = _with_features(ids, paths)[0]
    found, clear = V.local_verified(ctx, coll, art.read_bytes(), "copy.jpg")
    assert clear and list(found)[0] == ids[art.name] and looks == []
    flowers = sorted(p for p in (OXFORD.parent / "flowers102").iterdir() if p.is_dir())
    other = dataset_files(flowers[0], 1, start=3)[0]  # a photo of a species the collection holds another of
    found, clear = V.local_verified(ctx, coll, other.read_bytes(), "flower.jpg")
    assert found == {} and not clear


def test_a_closer_look_without_features_or_pixels_verifies_nothing(artefacts, monkeypatch):  # noqa: F811
    """An image whose features are not stored and whose original cannot be read, or an upload that
    cannot be decoded again, gives 0 inliers (the search keeps the first pass's answer)."""
    from sqlalchemy import delete

    from simsearch.store import features as stored
    from simsearch.store.models import ImageFeatures
    from simsearch.images import local_features as LF

    client, ids, paths = artefacts
    ctx = client.application.extensions["simsearch"]
    background = dataset_files(OXFORD / "oxford", 1, start=BACKGROUND)[0]
    art = _with_features(ids, paths)[0]
    data = _small_on_a_wall(art, background)
    xy = np.array([[0.6, 0.25], [0.7, 0.35], [0.65, 0.3]], np.float32)  # where the picture is (normalised by the width)
    args = (ctx, data, "wall.jpg", None, (WIDE, 1200), (300, 400), xy, ids[art.name])
    assert V.closer_look(*args) >= V.MIN_INLIERS
    assert V.closer_look(ctx, data[: len(data) // 3], *args[2:]) == 0  # truncated: not decoded again
    with ctx.db.session() as s:
        kept = stored.of_images(s, [ids[art.name]], LF.METHOD)[0][ids[art.name]]
        s.execute(delete(ImageFeatures).where(ImageFeatures.image_id == ids[art.name]))
    try:
        monkeypatch.setattr(V, "original_picture", lambda *a, **kw: None)  # the original file unreadable
        assert V.closer_look(*args) == 0
    finally:
        with ctx.db.session() as s:
            stored.store(s, {ids[art.name]: kept}, LF.METHOD)


def test_the_closer_look_is_asked_only_after_the_clear_winner_answer(artefacts, monkeypatch):  # noqa: F811
    """The staged search learns whether to skip the proposal before the closer look runs (it runs
    beside the proposal's forward): ``on_clear`` is called first, and the upload's decode is shared."""
    client, ids, paths = artefacts
    ctx = client.application.extensions["simsearch"]
    background = dataset_files(OXFORD / "oxford", 1, start=BACKGROUND)[0]
    art = _with_features(ids, paths)[0]
    data = _small_on_a_wall(art, background)
    events = []
    real = V.closer_look
    monkeypatch.setattr(V, "closer_look", lambda *a, **kw: events.append("look") or real(*a, **kw))
    found, clear = V.local_verified(ctx, _coll(client), data, "wall.jpg", decoded=lambda img: events.append(img.width),
                                    on_clear=lambda c: events.append(("clear", c)))
    assert events == [WIDE, ("clear", False), "look"] and ids[art.name] in found


@pytest.mark.parametrize("at", [(0.02, 0.05), (0.78, 0.6)])
def test_a_small_picture_near_an_edge_is_found_first(artefacts, at):  # noqa: F811
    client, ids, paths = artefacts
    background = dataset_files(OXFORD / "oxford", 1, start=BACKGROUND)[0]
    art = _with_features(ids, paths)[0]
    hits = _search(client, _small_on_a_wall(art, background, at=at), k=3, local="true", verify="false").get_json()
    assert hits["results"][0]["image_id"] == ids[art.name], hits


def test_the_densest_window_leaves_out_scattered_votes():
    from simsearch.images import local_votes as LV

    # a picture's votes gather at x 60-70%, y 50-60% of a 400 x 200 photo; three chance votes elsewhere
    picture = [[0.6, 0.25], [0.65, 0.27], [0.7, 0.3], [0.62, 0.29], [0.68, 0.26]]
    chance = [[0.02, 0.02], [0.98, 0.48], [0.1, 0.45]]
    xy = np.array(picture + chance, np.float32)
    assert LV.densest(xy, 400, 200, 0.5).tolist() == [True] * 5 + [False] * 3
    x0, y0, x1, y1 = LV.region_of(xy[LV.densest(xy, 400, 200, 0.5)], 400, 200, 0.5, 0.0)
    assert 0.5 < x0 < 0.6 and 0.7 < x1 < 0.8 and 0.4 < y0 < 0.5 and 0.6 < y1 < 0.7
    assert LV.region_of(xy, 400, 200, 0.5, 0.0) == pytest.approx((0.0, 0.0, 1.0, 1.0))  # all of them: the whole photo
    assert LV.densest(np.zeros((0, 2)), 400, 200, 0.5).size == 0


def test_the_staged_search_decodes_the_upload_once(artefacts, monkeypatch):  # noqa: F811
    """The model's input takes the helper's decode of the upload (the same draft scale) rather than
    decoding it again; with a box (another draft scale) it decodes its own."""
    from simsearch import search as S

    client, ids, paths = artefacts
    background = dataset_files(OXFORD / "oxford", 1, start=BACKGROUND)[0]
    data = _small_on_a_wall(_with_features(ids, paths)[0], background)
    calls = []
    real = S.decode_image
    monkeypatch.setattr(S, "decode_image", lambda *a, **kw: calls.append(kw.get("draft_size")) or real(*a, **kw))
    assert _search(client, data, k=3, local="true", verify="false").status_code == 200
    assert calls == []
    assert _search(client, data, k=3, local="true", verify="false", box="0.5,0.2,0.9,0.7").status_code == 200
    assert len(calls) == 1


class _Answer:
    """A Future-like answer of the clear-winner question, ``done()`` or not yet when first asked."""

    def __init__(self, value: bool, done: bool):
        self.value, self.ready = value, done

    def done(self) -> bool:
        return self.ready

    def result(self) -> bool:
        return self.value


@pytest.mark.parametrize("value", [True, False])
def test_the_proposals_wait_for_the_clear_winner_answer(artefacts, monkeypatch, value):  # noqa: F811
    """search_image_staged awaits the clear-winner answer before it finds the proposals: with a clear
    winner none is found (the whole image's hits), without one the proposal is embedded and fused;
    the hits are the same whether the answer was in from the start or not."""
    from simsearch import search as S

    client, ids, paths = artefacts
    ctx = client.application.extensions["simsearch"]
    background = dataset_files(OXFORD / "oxford", 1, start=BACKGROUND)[0]
    data = _small_on_a_wall(_with_features(ids, paths)[0], background)
    proposals = []
    real = S._proposals
    monkeypatch.setattr(S, "_proposals", lambda im, regions: proposals.append(regions) or real(im, regions))

    def hits(answer):
        _, found = S.search_image_staged(ctx, "art", data, "wall.jpg", lambda: [], clear=answer, k=5)
        return [(h.image_id, round(h.score, 5)) for h in found]

    known = hits(_Answer(value, done=True))
    assert proposals == ([] if value else [1])
    proposals.clear()
    assert hits(_Answer(value, done=False)) == known and proposals == ([] if value else [1])


def test_a_cheaper_first_pass_still_finds_the_picture_and_the_copy(artefacts, monkeypatch):  # noqa: F811
    """The query's first SIFT pass on a copy :data:`QUERY_SCALE` times the decoded upload, keeping
    :data:`QUERY_KEYPOINTS` (1.0 and 1,000 by default; 0.75 was tried, docs/region-search.md "A cheaper
    first pass"): a smaller copy only has to vote the small picture's image first, and the closer look
    (the file's resolution, :data:`CLOSE_SIDE`) verifies it; a close copy still verifies from the cheap
    pass as a clear winner (the proposal skipped, no closer look)."""
    from simsearch.images import local_features as LF

    client, ids, paths = artefacts
    ctx = client.application.extensions["simsearch"]
    coll = _coll(client)
    background = dataset_files(OXFORD / "oxford", 1, start=BACKGROUND)[0]
    art = _with_features(ids, paths)[0]
    wall = _small_on_a_wall(art, background)
    sides = []  # (the grey copy's long side, the side SIFT works at, keypoints) of each query extraction
    real = LF.extract

    def extract(g, side, n=LF.N_FEATURES, *a):
        if n != LF.N_FEATURES:  # a query's, not a stored image's
            sides.append((max(g.shape), side, n))
        return real(g, side, n, *a)

    monkeypatch.setattr(LF, "extract", extract)
    V.local_verified(ctx, coll, wall, "wall.jpg")
    decoded, first, n = sides[0]
    assert first == decoded and n == LF.N_QUERY  # the defaults: the decoded size, 1,000 keypoints
    monkeypatch.setattr(V, "QUERY_SCALE", 0.75)
    monkeypatch.setattr(V, "QUERY_KEYPOINTS", 800)
    sides.clear()
    found, clear = V.local_verified(ctx, coll, wall, "wall.jpg")
    (decoded, first, n), (_, closer, _) = sides
    assert first == round(decoded * 0.75) < decoded and n == 800 and closer == V.CLOSE_SIDE
    assert list(found)[0] == ids[art.name] and found[ids[art.name]] >= V.MIN_INLIERS and not clear
    sides.clear()
    found, clear = V.local_verified(ctx, coll, art.read_bytes(), "copy.jpg")
    (decoded, first, _), = sides  # the first pass only
    assert first < decoded and clear and list(found)[0] == ids[art.name]
