"""The scoring of a search with several examples (simsearch.analysis.examples): pure numpy, no model.
Its effect on real vectors (negatives push the unwanted class down) is in tests/test_search_examples.py."""

from __future__ import annotations

import numpy as np
import pytest

from simsearch.analysis import examples as E
from simsearch.analysis.calibration import neighbour_quantiles, percentile, score_at
from simsearch.errors import InvalidInput


def unit(*rows) -> np.ndarray:
    x = np.asarray(rows, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_one_positive_scores_the_plain_cosine():
    rng = np.random.default_rng(0)
    X = unit(*rng.standard_normal((50, 16)))
    p = X[3] * 2.5  # examples are normalised first
    sc = E.scores(X, p[None])
    np.testing.assert_allclose(sc.score, X @ X[3], atol=1e-6)
    np.testing.assert_allclose(sc.like, sc.score)
    assert sc.unlike is None and sc.penalty is None and sc.nearest_unlike is None
    assert list(E.top(sc.score, 3)) == list(np.argsort(-(X @ X[3]))[:3])


def test_several_positives_rank_by_the_cosine_to_their_mean():
    rng = np.random.default_rng(1)
    X = unit(*rng.standard_normal((40, 8)))
    P = X[:3]
    m = P.mean(axis=0)
    np.testing.assert_allclose(E.scores(X, P).like, X @ (m / np.linalg.norm(m)), atol=1e-6)
    np.testing.assert_allclose(E.direction(P), m / np.linalg.norm(m), atol=1e-6)


def test_a_negative_pushes_down_only_what_is_more_like_it():
    # positives around axis 0, a negative between axes 0 and 1; "a" leans to the negative, "b" away
    P = unit([1, 0.1, 0, 0], [1, -0.05, 0.1, 0])
    N = unit([0.6, 0.8, 0, 0])
    a, b, c = unit([0.85, 0.53, 0, 0], [0.8, -0.3, 0.5, 0], [0.3, 0, 0, 1])
    sc = E.scores(np.stack([a, b, c]), P, N)
    mean = np.stack([a, b, c]) @ P.mean(axis=0)
    assert sc.penalty[0] == pytest.approx(float(a @ N[0] - mean[0]), abs=1e-6) and sc.penalty[0] > 0
    assert sc.penalty[1] == 0 and sc.penalty[2] == 0
    np.testing.assert_allclose(sc.score, sc.like - sc.penalty, atol=1e-6)
    assert (sc.score <= sc.like + 1e-7).all()
    plain = E.scores(np.stack([a, b]), P)
    assert plain.score[0] > plain.score[1]  # without the negative, "a" came first
    assert sc.score[0] < sc.score[1]  # with it, "b" does
    assert list(sc.nearest_unlike) == [0, 0, 0]


def test_the_weight_scales_the_push_and_zero_turns_it_off():
    rng = np.random.default_rng(2)
    X = unit(*rng.standard_normal((60, 12)))
    P, N = X[:2], X[2:4]
    one, two, off = (E.scores(X, P, N, weight=w) for w in (1.0, 2.0, 0))
    np.testing.assert_allclose(two.penalty, 2 * one.penalty, atol=1e-6)
    np.testing.assert_allclose(off.score, off.like)
    assert one.nearest_unlike.tolist() == (X @ N.T).argmax(axis=1).tolist()
    for bad in (-1, float("nan"), "1", True):
        with pytest.raises(InvalidInput) as err:
            E.scores(X, P, N, weight=bad)
        assert err.value.field == "unlike_weight"


def test_bad_examples_name_their_field():
    X = unit([1, 0, 0], [0, 1, 0])
    with pytest.raises(InvalidInput) as err:
        E.direction(np.asarray([[1, 0, 0], [-1, 0, 0]], np.float32))  # they cancel out
    assert err.value.field == "like"
    with pytest.raises(InvalidInput) as err:
        E.scores(X, np.zeros((1, 3)))
    assert err.value.field == "like"
    with pytest.raises(InvalidInput) as err:
        E.scores(X, X[:1], np.ones((1, 4)))
    assert err.value.field == "unlike"
    with pytest.raises(InvalidInput) as err:
        E.scores(np.ones((2, 5)), X[:1])
    assert err.value.field == "candidates"
    with pytest.raises(InvalidInput) as err:
        E.scores(X, np.zeros((0, 3)))
    assert err.value.field == "like"
    assert len(E.scores(np.zeros((0, 3), np.float32), X[:1], X[1:]).score) == 0


def test_top_keeps_the_best_at_or_above_the_threshold():
    s = np.asarray([0.2, 0.9, 0.5, 0.9, 0.1], np.float32)
    assert E.top(s, 3).tolist() == [1, 3, 2]
    assert E.top(s, 10, threshold=0.5).tolist() == [1, 3, 2]
    assert E.top(s, 10, threshold=0.95).tolist() == []


def test_settled_when_nothing_unscored_can_enter():
    best = np.asarray([0.9, 0.8, 0.7])
    assert E.settled(best, 3, None)  # everything was scored
    assert E.settled(best, 3, 0.7) and not E.settled(best, 3, 0.71)
    assert not E.settled(best[:2], 3, 0.1)  # fewer than k found: look further
    assert E.settled(best[:2], 3, 0.4, threshold=0.5)  # nothing further down reaches the threshold


def test_widening_until_settled_finds_the_true_top_k():
    """The op's loop on a brute-force "index": candidates by like, widened until settled, give the
    top k of the whole set (the bound argument of the module)."""
    rng = np.random.default_rng(3)
    X = unit(*rng.standard_normal((2000, 24)))
    P, N = X[:3], X[3:6]
    truth = E.scores(X, P, N)
    order = np.argsort(-(X @ E.direction(P)), kind="stable")
    k, n = 10, 20
    while True:
        part = order[:n]
        sc = E.scores(X[part], P, N)
        best = E.top(sc.score, k)
        if E.settled(sc.score[best], k, None if n >= len(X) else float(sc.like.min())):
            break
        n *= 4
    np.testing.assert_allclose(np.sort(sc.score[best])[::-1], np.sort(truth.score)[::-1][:k], atol=1e-6)


def test_score_at_inverts_percentile():
    q = neighbour_quantiles(np.random.default_rng(4).uniform(0.3, 0.9, 500))
    for p in (0, 12.5, 50, 90, 100):
        assert percentile(q, [score_at(q, p)])[0] == pytest.approx(p, abs=1e-6)
