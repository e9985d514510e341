"""Random-head controls: seeded draws and the target-vs-control summary, with hand-worked numbers."""
from __future__ import annotations

import math

import pytest

from icltest.errors import InputError
from icltest.scores.control import control_summary, draw_random_heads, effect_ratio

# ---------------------------------------------------------------------------- draw_random_heads


def test_draws_exclude_targets_and_are_distinct_sorted_heads():
    exclude = [(0, 0), (2, 3), (1, 1)]
    draws = draw_random_heads(3, 4, count=5, exclude=exclude, draws=50, seed=7)
    assert len(draws) == 50
    for draw in draws:
        assert len(draw) == 5
        assert len(set(draw)) == 5
        assert draw == sorted(draw)
        for layer, head in draw:
            assert 0 <= layer < 3 and 0 <= head < 4
            assert (layer, head) not in exclude


def test_draws_cover_every_allowed_head_and_no_excluded_one():
    exclude = {(0, 1), (1, 0)}
    draws = draw_random_heads(2, 3, count=2, exclude=exclude, draws=200, seed=0)
    seen = {h for draw in draws for h in draw}
    # 6 heads minus 2 excluded; each allowed head has chance 1/2 per draw, so 200 draws see all.
    assert seen == {(0, 0), (0, 2), (1, 1), (1, 2)}


def test_count_equal_to_pool_returns_every_remaining_head():
    draws = draw_random_heads(2, 2, count=3, exclude=[[1, 1]], draws=3, seed=5)
    assert draws == [[(0, 0), (0, 1), (1, 0)]] * 3


def test_same_seed_same_draws_and_different_seeds_differ():
    a = draw_random_heads(4, 8, count=4, exclude=[(3, 7)], draws=10, seed=123)
    b = draw_random_heads(4, 8, count=4, exclude=[(3, 7)], draws=10, seed=123)
    c = draw_random_heads(4, 8, count=4, exclude=[(3, 7)], draws=10, seed=124)
    assert a == b
    assert a != c
    # Draws within one call are independent, not copies of the first.
    assert len({tuple(d) for d in a}) > 1


def test_zero_draws_and_zero_count():
    assert draw_random_heads(2, 2, count=1, draws=0) == []
    assert draw_random_heads(2, 2, count=0, draws=2) == [[], []]


def test_count_too_large_is_an_actionable_error():
    with pytest.raises(InputError, match=r"cannot draw 4 random heads: only 3 of 4 heads remain"):
        draw_random_heads(2, 2, count=4, exclude=[(0, 0)])


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((0, 4), dict(count=1), "n_layers >= 1"),
        ((2, 0), dict(count=1), "n_heads >= 1"),
        ((2, 2), dict(count=-1), "count and draws must be >= 0"),
        ((2, 2), dict(count=1, draws=-1), "count and draws must be >= 0"),
    ],
)
def test_bad_geometry_or_counts(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        draw_random_heads(*args, **kwargs)


# --------------------------------------------------------------------------------- effect_ratio

@pytest.mark.parametrize(
    "target, mean, expected",
    [
        (3.0, 1.5, 2.0),
        (3.0, -1.5, 2.0),   # |mean|: a control that helps a little must not flip the sign
        (-3.0, 1.5, -2.0),
        (-3.0, -1.5, -2.0),
        (0.0, 2.0, 0.0),
        (2.0, 0.0, math.inf),
        (-2.0, 0.0, -math.inf),
    ],
)
def test_effect_ratio_values(target, mean, expected):
    assert effect_ratio(target, mean) == expected


@pytest.mark.parametrize("target, mean", [(0.0, 0.0), (math.nan, 1.0), (1.0, math.nan), (0.0, math.nan)])
def test_effect_ratio_nan_cases(target, mean):
    assert math.isnan(effect_ratio(target, mean))


# ------------------------------------------------------------------------------ control_summary

def test_control_summary_one_two_three():
    s = control_summary(5.0, [1, 2, 3])
    assert s["draws"] == [1.0, 2.0, 3.0]
    assert all(isinstance(x, float) for x in s["draws"])
    assert s["mean"] == pytest.approx(2.0)
    assert s["std"] == pytest.approx(1.0)  # sample std: sqrt(((1)^2 + 0 + 1^2) / (3 - 1))
    assert s["min"] == 1.0 and s["max"] == 3.0
    assert s["ratio"] == pytest.approx(2.5)


def test_control_summary_sample_not_population_std():
    # Deviations from mean 5: -3 -1 -1 -1 0 0 2 4 -> squares sum 32; sample var 32/7 (population 4).
    s = control_summary(10.0, [2, 4, 4, 4, 5, 5, 7, 9])
    assert s["mean"] == pytest.approx(5.0)
    assert s["std"] == pytest.approx(math.sqrt(32 / 7))
    assert s["ratio"] == pytest.approx(2.0)


def test_control_summary_negative_mean_and_single_draw():
    s = control_summary(1.0, [-1.0, -3.0])
    assert s["mean"] == pytest.approx(-2.0)
    assert s["std"] == pytest.approx(math.sqrt(2.0))
    assert s["min"] == -3.0 and s["max"] == -1.0
    assert s["ratio"] == pytest.approx(0.5)

    one = control_summary(-4.0, [2.0])
    assert one["std"] == 0.0 and one["mean"] == 2.0 and one["ratio"] == pytest.approx(-2.0)


def test_control_summary_zero_mean_and_empty():
    assert control_summary(1.0, [1.0, -1.0])["ratio"] == math.inf
    assert math.isnan(control_summary(0.0, [1.0, -1.0])["ratio"])
    with pytest.raises(ValueError, match="at least one control effect"):
        control_summary(1.0, [])
