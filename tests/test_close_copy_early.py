"""A close copy answered at once (issue #18 item 4): the default search with local candidates
(simsearch.ops.search._staged) answers with the whole image's hits when its first hit is a close
copy of the query (simsearch.search.close_copy), without waiting for the local path, which it
tells to stop. Over the small real collection of tests/helpers/regions.py."""

from __future__ import annotations

import io
import threading

import pytest

from simsearch import search as S
from simsearch.analysis.near_duplicates import HASH_MAX
from simsearch.ops import verify as V
from tests.conftest import dataset_files
from tests.helpers.regions import OXFORD, _search, artefacts, on_a_wall  # noqa: F401  (the fixture)


def _copy_of(art, share: float = 0.6) -> bytes:
    """``art`` resized to ``share`` of its size, JPEG q80: a close copy."""
    from PIL import Image

    with Image.open(art) as im:
        small = im.convert("RGB").resize((round(im.width * share), round(im.height * share)), Image.BILINEAR)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=80)
    return out.getvalue()


class _Unanswered:
    """A clear-winner answer that never comes: asking for it fails the test."""

    def done(self) -> bool:
        return False

    def result(self):
        raise AssertionError("the clear-winner answer was awaited")


def _not_awaited():
    raise AssertionError("the verified candidates were awaited")


def test_a_close_copy_is_a_high_first_score_clear_of_the_next_with_agreeing_hashes():
    top, gap = S.CLOSE_COPY_SCORE, S.CLOSE_COPY_GAP
    assert S.close_copy([top + 0.05, top + 0.05 - 2 * gap])
    assert S.close_copy([0.99])  # alone (a collection of one image, or a label filter)
    assert not S.close_copy([top + 0.05, top + 0.05 - gap / 2])  # two images alike: no copy that clear
    assert not S.close_copy([top - 0.05, 0.1])  # a lower first score: a look-alike, not a copy
    assert not S.close_copy([])
    asked = []
    assert S.close_copy([0.99], lambda: asked.append(1) or HASH_MAX)  # the hashes agree
    assert not S.close_copy([0.99], lambda: HASH_MAX + 1)  # another picture, alike in the vectors
    assert not S.close_copy([0.99], lambda: None)  # no hashes stored: no telling
    assert not S.close_copy([top - 0.05], lambda: asked.append(2) or 0) and asked == [1]  # asked only when the scores pass


def test_a_close_copy_is_answered_by_the_whole_image_without_waiting(artefacts):  # noqa: F811
    """The staged search neither waits for the clear-winner answer nor for the verified candidates
    when the whole image's first hit is a close copy: its hits are the plain search's."""
    client, ids, paths = artefacts
    ctx = client.application.extensions["simsearch"]
    art = paths[2]
    data = _copy_of(art)
    told = []
    _, hits = S.search_image_staged(ctx, "art", data, "copy.jpg", _not_awaited, clear=_Unanswered(),
                                    copy=lambda: told.append(True), k=5)
    _, plain = S.search_image(ctx, "art", data, "copy.jpg", regions=0, k=5)
    assert told == [True] and hits[0].image_id == ids[art.name]
    assert [(h.image_id, round(h.score, 5)) for h in hits] == [(h.image_id, round(h.score, 5)) for h in plain]


def test_a_copy_without_agreeing_hashes_waits_for_the_local_path(artefacts, monkeypatch):  # noqa: F811
    """The same copy, its image's stored hashes unknown (or another picture's): the scores alone do not
    answer it; the search takes the answers of the local path."""
    from simsearch.store import hot

    client, ids, paths = artefacts
    ctx = client.application.extensions["simsearch"]
    art = paths[2]
    data = _copy_of(art)
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        assert S._hash_distance(ctx, im, ids[art.name]) <= HASH_MAX  # the stored hashes agree
    monkeypatch.setattr(hot, "stored_hashes", lambda *a: None)
    told = []
    _, hits = S.search_image_staged(ctx, "art", data, "copy.jpg", lambda: [ids[art.name]], clear=_Answered(True),
                                    copy=lambda: told.append(True), k=5)
    assert told == [] and hits[0].image_id == ids[art.name]


class _Answered:
    def __init__(self, value: bool):
        self.value = value

    def done(self) -> bool:
        return True

    def result(self) -> bool:
        return self.value


def test_a_wall_photo_is_no_close_copy(artefacts):  # noqa: F811
    """A picture photographed on a wall shares too little of its whole-image vector to pass for a
    copy: the staged search waits for the local path's answers, which put the picture first."""
    client, ids, paths = artefacts
    ctx = client.application.extensions["simsearch"]
    art = paths[9]  # a landmark's photo: many keypoints
    background = dataset_files(OXFORD / "oxford", 1, start=5)[0]
    data = on_a_wall(art, background)
    told = []

    class Answered:
        asked = False

        def done(self):
            return True

        def result(self):
            Answered.asked = True
            return False

    _, hits = S.search_image_staged(ctx, "art", data, "wall.jpg", lambda: [ids[art.name]], clear=Answered(),
                                    copy=lambda: told.append(True), k=5)
    assert told == [] and Answered.asked
    assert ids[art.name] in [h.image_id for h in hits]
    res = _search(client, data, k=3, local="true", verify="false").get_json()["results"]
    assert res[0]["image_id"] == ids[art.name]


def test_the_default_answers_a_close_copy_with_the_plain_hits_and_stops_the_local_path(artefacts, monkeypatch):  # noqa: F811
    """Through the API: the default (local candidates on where features are stored) gives a close copy
    the plain search's hits and scores; the local path is told to stop (it returns nothing)."""
    client, ids, paths = artefacts
    ran = []
    real = V.local_verified

    def local_verified(*a, stop=None, **kw):
        ran.append(stop)
        return real(*a, stop=stop, **kw)

    monkeypatch.setattr(V, "local_verified", local_verified)
    for art in (paths[1], paths[9]):
        data = _copy_of(art, 0.5)
        default = _search(client, data, k=5).get_json()["results"]
        plain = _search(client, data, k=5, regions=0, local="false").get_json()["results"]
        assert default[0]["image_id"] == ids[art.name]
        assert [(h["image_id"], h["score"]) for h in default] == [(h["image_id"], h["score"]) for h in plain]
    assert len(ran) == 2 and all(isinstance(s, threading.Event) and s.is_set() for s in ran)


@pytest.mark.parametrize("after", ["decode", "extract"])
def test_the_local_path_stops_at_its_next_stage(artefacts, monkeypatch, after):  # noqa: F811
    """local_verified told to stop (after the decode, or during the query's SIFT) searches no
    descriptor and verifies nothing: ``({}, False)``; without the stop it finds the picture."""
    client, ids, paths = artefacts
    ctx = client.application.extensions["simsearch"]
    coll = client.get("/api/collections/art").get_json()["id"]
    art = paths[9]
    data = on_a_wall(art, dataset_files(OXFORD / "oxford", 1, start=5)[0])
    searched = []
    real_votes, real_extract = V._all_votes, V._extract
    monkeypatch.setattr(V, "_all_votes", lambda *a: searched.append(1) or real_votes(*a))
    stop = threading.Event()
    if after == "decode":
        found = V.local_verified(ctx, coll, data, "wall.jpg", decoded=lambda img: stop.set(), stop=stop)
    else:
        monkeypatch.setattr(V, "_extract", lambda *a: stop.set() or real_extract(*a))
        found = V.local_verified(ctx, coll, data, "wall.jpg", stop=stop)
    assert found == ({}, False) and searched == []
    found, _ = V.local_verified(ctx, coll, data, "wall.jpg", stop=threading.Event())
    assert searched == [1] and list(found)[:1] == [ids[art.name]]
