"""Random-head controls: seeded draws and the target-vs-control summary, with hand-worked numbers."""
from __future__ import annotations

import math
import re

import pytest
import torch

from icltest.errors import InputError
from icltest.schema.expect import parse_comparison
from icltest.scores.control import (
    control_summary,
    draw_layer_matched_heads,
    draw_random_heads,
    effect_ratio,
    guarded_ratio,
    permutation_p,
    target_position,
    z_score,
)

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
    ],
)
def test_effect_ratio_values(target, mean, expected):
    assert effect_ratio(target, mean) == expected


@pytest.mark.parametrize("target, mean", [(0.0, 0.0), (2.0, 0.0), (-2.0, 0.0), (math.nan, 1.0), (1.0, math.nan)])
def test_effect_ratio_to_a_zero_or_nan_mean_is_nan_never_infinite(target, mean):
    # A ratio to nothing is no evidence: inf would pass any lower bound.
    assert math.isnan(effect_ratio(target, mean))


# ------------------------------------------------------------------- p, z, guarded ratio, position

@pytest.mark.parametrize(
    "target, effects, expected",
    [
        (5.0, [1, 2, 3], 1 / 4),          # beats all 3: (1 + 0) / (3 + 1)
        (2.0, [1, 2, 3], 3 / 4),          # ties count against the target: (1 + 2) / 4
        (0.0, [1, 2, 3], 1.0),
        (8.1, [0.1 * i for i in range(19)], 1 / 20),   # 19 draws: the smallest p is 0.05
        (1.0, [0.0] * 19, 0.05),
    ],
)
def test_permutation_p(target, effects, expected):
    assert permutation_p(target, effects) == pytest.approx(expected)


@pytest.mark.parametrize(
    "target, effects, expected",
    [
        (5.0, [1, 2, 3], 3.0),            # mean 2, sample sd 1
        (-1.0, [1, 2, 3], -3.0),
        (10.0, [2, 4, 4, 4, 5, 5, 7, 9], 5 / math.sqrt(32 / 7)),
        (2.0, [1, 1, 1], math.inf),       # sd 0: every draw equal and the target above them
        (0.0, [1, 1, 1], -math.inf),
    ],
)
def test_z_score(target, effects, expected):
    assert z_score(target, effects) == pytest.approx(expected)


@pytest.mark.parametrize("target, effects", [(1.0, [1, 1, 1]),      # sd 0 and target == mean: no evidence
                                             (3.0, [2.0]),           # one draw: no spread to scale by
                                             (math.nan, [1, 2]), (1.0, [1, math.nan])])
def test_z_score_nan_cases(target, effects):
    assert math.isnan(z_score(target, effects))


def test_p_is_nan_with_a_nan_anywhere():
    assert math.isnan(permutation_p(math.nan, [1, 2])) and math.isnan(permutation_p(1.0, [math.nan, 2]))


@pytest.mark.parametrize(
    "target, effects, expected",
    [
        (5.0, [1, 2, 3], 2.5),                       # mean 2 > 3 x se (1/sqrt(3) = 0.577)
        (10.0, [2, 4, 4, 4, 5, 5, 7, 9], 2.0),       # mean 5 > 3 x se (sqrt(32/7)/sqrt(8) = 0.756)
        (4.0, [2.0, 2.0, 2.0], 2.0),                 # sd 0, mean 2: every draw agrees
    ],
)
def test_guarded_ratio_when_the_control_mean_is_clearly_not_zero(target, effects, expected):
    ratio, reason = guarded_ratio(target, effects)
    assert ratio == pytest.approx(expected) and reason is None


@pytest.mark.parametrize(
    "target, effects, fragment",
    [
        (1.0, [1.0, -1.0], "within 3 standard errors"),       # the old code said inf
        (4.0, [0.0] * 19, "within 3 standard errors"),        # the old code said inf: passed '>= 1000000'
        (4.0, [-1.0, 0.5, 2.0], "within 3 standard errors"),  # mean 0.5, se 0.866
        (4.0, [1e-9] * 5, "indistinguishable from 0"),
        (4.0, [2.0], "needs at least 2 draws"),
        (math.nan, [1.0, 2.0], "NaN"),
    ],
)
def test_guarded_ratio_is_nan_with_a_reason(target, effects, fragment):
    ratio, reason = guarded_ratio(target, effects)
    assert math.isnan(ratio) and fragment in reason
    assert not parse_comparison(">= 1000000").check(ratio)


@pytest.mark.parametrize(
    "target, effects, text",
    [
        (8.1, [0.9] + [0.1] * 18, "target 8.1 > all 19 draws (max 0.9)"),
        (2.0, [1, 2, 3], "target 2 > 1 of 3 draws (2 at or above it; max 3)"),
        (0.5, [1, 2, 3], "target 0.5 <= all 3 draws (min 1)"),
        (math.nan, [1, 2], "target nan: not comparable (NaN in the target or a draw)"),
    ],
)
def test_target_position(target, effects, text):
    assert target_position(target, effects) == text


# ------------------------------------------------------------------------------ control_summary

def test_control_summary_one_two_three():
    s = control_summary(5.0, [1, 2, 3])
    assert s["draws"] == [1.0, 2.0, 3.0]
    assert all(isinstance(x, float) for x in s["draws"])
    assert s["n"] == 3
    assert s["mean"] == pytest.approx(2.0)
    assert s["sd"] == pytest.approx(1.0)  # sample sd: sqrt(((1)^2 + 0 + 1^2) / (3 - 1))
    assert s["se"] == pytest.approx(1 / math.sqrt(3))
    assert s["min"] == 1.0 and s["max"] == 3.0
    assert s["p"] == pytest.approx(0.25) and s["z"] == pytest.approx(3.0) and s["above"] == 0
    assert s["ratio"] == pytest.approx(2.5) and s["ratio_note"] is None
    assert s["position"] == "target 5 > all 3 draws (max 3)"


def test_control_summary_sample_not_population_sd():
    # Deviations from mean 5: -3 -1 -1 -1 0 0 2 4 -> squares sum 32; sample var 32/7 (population 4).
    s = control_summary(10.0, [2, 4, 4, 4, 5, 5, 7, 9])
    assert s["mean"] == pytest.approx(5.0)
    assert s["sd"] == pytest.approx(math.sqrt(32 / 7))
    assert s["ratio"] == pytest.approx(2.0)


def test_control_summary_single_draw_has_no_spread():
    one = control_summary(-4.0, [2.0])
    assert one["sd"] == 0.0 and one["mean"] == 2.0
    assert math.isnan(one["z"]) and math.isnan(one["ratio"]) and one["p"] == pytest.approx(1.0)


def test_control_summary_zero_mean_and_empty():
    s = control_summary(1.0, [1.0, -1.0])
    assert math.isnan(s["ratio"]) and "within 3 standard errors" in s["ratio_note"]
    assert s["p"] == pytest.approx(2 / 3) and s["z"] == pytest.approx(1 / math.sqrt(2))
    with pytest.raises(ValueError, match="at least one control effect"):
        control_summary(1.0, [])


@pytest.mark.parametrize("op", [">=", ">", "<=", "<", "==", "!="])
def test_no_statistic_of_a_nan_comparison_passes(op):
    s = control_summary(math.nan, [1.0, 2.0, 3.0])
    for key in ("p", "z", "ratio"):
        assert not parse_comparison(f"{op} 0.5").check(s[key]), key


# ------------------------------------------------------------------------- layer-matched draws

def test_layer_matched_draws_take_as_many_heads_from_each_target_layer_never_a_target():
    targets = [(1, 0), (1, 1), (0, 2)]
    draws = draw_layer_matched_heads(4, targets, draws=200, seed=3)
    assert len(draws) == 200
    seen = set()
    for draw in draws:
        assert draw == sorted(draw) and len(set(draw)) == 3
        assert sum(1 for l, _ in draw if l == 1) == 2 and sum(1 for l, _ in draw if l == 0) == 1
        assert not set(draw) & set(targets)
        seen |= set(draw)
    # Every non-target head of layers 0 and 1 appears; nothing from other layers.
    assert seen == {(0, 0), (0, 1), (0, 3), (1, 2), (1, 3)}
    assert draws == draw_layer_matched_heads(4, targets, draws=200, seed=3)
    assert draws != draw_layer_matched_heads(4, targets, draws=200, seed=4)


def test_layer_matched_draws_need_enough_other_heads_in_the_layer():
    with pytest.raises(InputError, match=r"layer 1 has 1 head\(s\) besides the 3 targets there"):
        draw_layer_matched_heads(4, [(1, 0), (1, 1), (1, 2)], draws=1)


# ------------------------------------------------------------------------------------- schema

def _control(**kwargs):
    from icltest.schema.blocks import ControlSpec

    return ControlSpec.model_validate(kwargs)


def test_control_defaults_reach_p_005_and_old_keys_still_validate():
    spec = _control(expect={"p": "<= 0.05", "z": ">= 3"})
    assert spec.draws == 19 and spec.match is None
    assert 1 / (spec.draws + 1) <= 0.05
    old = _control(random_heads="same_count", draws=5, seed=0, expect={"effect_ratio": ">= 5"})
    assert old.expect.effect_ratio.check(6.0)
    assert _control(random_heads="same_count", match="layers", expect={"mean": "<= 1"}).match == "layers"


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(draws=5, expect={"p": "<= 0.05"}), "the smallest possible p is 1/6 = 0.167"),
        (dict(draws=5, expect={"p": "<= 0.05"}), "draws >= 19"),
        (dict(draws=19, expect={"p": "< 0.05"}), "draws >= 20"),
        (dict(expect={"p": "<= 0"}), "p is always > 0"),
        (dict(draws=1, expect={"z": ">= 3"}), "z needs draws >= 2"),
        (dict(draws=1, expect={"effect_ratio": ">= 3"}), "effect_ratio needs draws >= 2"),
        (dict(random_heads=2, match="layers", expect={"p": "<= 0.05"}), "match: layers needs random_heads: same_count"),
        (dict(expect={}), "give p, z, effect_ratio and/or mean"),
    ],
)
def test_control_spec_errors(kwargs, fragment):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=re.escape(fragment)):
        _control(**kwargs)


def test_random_directions_have_the_norm_and_replay_by_seed() -> None:
    from icltest.scores.control import random_directions

    like = torch.tensor([3.0, 4.0, 0.0, 0.0])  # norm 5
    r = random_directions(like, 6, seed=2)
    assert r.shape == (6, 4)
    torch.testing.assert_close(r.norm(dim=-1), torch.full((6,), 5.0))
    assert torch.equal(r, random_directions(like, 6, seed=2)) and not torch.equal(r, random_directions(like, 6, seed=3))
    assert len({tuple(row.tolist()) for row in r}) == 6  # distinct directions


def test_spearman_ignores_non_finite_entries_and_is_nan_without_a_ranking() -> None:
    from icltest.scores.ranking import spearman

    assert spearman([1, 2, 3, float("nan")], [10, 20, 30, 0]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))  # constant: no ranking
    assert math.isnan(spearman([1, 2], [1, 2]))  # fewer than 3
