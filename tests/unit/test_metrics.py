"""Behavioural metrics on hand-made tensors whose answers are worked out by hand in each test.

Index conventions under test (see ``icltest.scores.metrics``): token positions p index the input
ids; loss index i is the loss of predicting token i+1, so position p is read at loss index p-1.
"""
from __future__ import annotations

import math

import pytest
import torch

from icltest.scores.metrics import (
    answer_prob,
    first_token_accuracy,
    icl_score,
    logit_diff,
    segment_loss,
    segment_positions,
    token_losses,
)

LN2, LN3 = math.log(2.0), math.log(3.0)


# ------------------------------------------------------------------------------- token_losses

def _manual_losses(logits: list[list[float]], tokens: list[int]) -> list[float]:
    """-log softmax(logits[i])[tokens[i+1]] in plain Python, one sequence."""
    out = []
    for i in range(len(tokens) - 1):
        row = logits[i]
        log_z = math.log(sum(math.exp(v) for v in row))
        out.append(log_z - row[tokens[i + 1]])
    return out


def test_token_losses_hand_computed_values():
    # Row 0 uniform over 3 -> loss ln 3 whatever the target; row 1 has probs (1/4, 1/2, 1/4) and
    # target 1 -> ln 2; row 2 is never read (it would predict a token after the end).
    logits = torch.tensor([[[0.0, 0.0, 0.0], [0.0, LN2, 0.0], [9.0, -9.0, 9.0]]])
    tokens = torch.tensor([[2, 0, 1]])
    losses = token_losses(logits, tokens)
    assert losses.shape == (1, 2)
    assert losses[0, 0].item() == pytest.approx(LN3, abs=1e-6)
    assert losses[0, 1].item() == pytest.approx(LN2, abs=1e-6)


def test_token_losses_match_manual_log_softmax_batch():
    logits = [
        [[1.0, 2.0, -1.0, 0.5], [0.0, -3.0, 2.0, 1.0], [4.0, 0.0, 0.0, 0.0], [0.3, 0.2, 0.1, 0.0]],
        [[-1.0, 0.0, 1.0, 2.0], [2.0, 2.0, 2.0, -2.0], [0.0, 5.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]],
    ]
    tokens = [[0, 2, 3, 0], [3, 1, 0, 1]]
    got = token_losses(torch.tensor(logits), torch.tensor(tokens))
    assert got.shape == (2, 3)
    for b in range(2):
        expected = _manual_losses(logits[b], tokens[b])
        assert got[b].tolist() == pytest.approx(expected, abs=1e-5)


def test_token_losses_are_float32_for_half_logits():
    logits = torch.zeros(1, 3, 4, dtype=torch.bfloat16)
    got = token_losses(logits, torch.tensor([[0, 1, 2]]))
    assert got.dtype == torch.float32
    assert got[0].tolist() == pytest.approx([math.log(4.0)] * 2, abs=1e-6)


@pytest.mark.parametrize(
    "logits_shape, tokens_shape",
    [((1, 3, 4), (1, 4)), ((2, 3, 4), (1, 3)), ((3, 4), (1, 3)), ((1, 3, 4), (3,))],
)
def test_token_losses_rejects_mismatched_shapes(logits_shape, tokens_shape):
    with pytest.raises(ValueError, match="expected logits"):
        token_losses(torch.zeros(logits_shape), torch.zeros(tokens_shape, dtype=torch.long))


def test_token_losses_needs_two_tokens():
    with pytest.raises(ValueError, match="at least 2 tokens"):
        token_losses(torch.zeros(1, 1, 4), torch.zeros(1, 1, dtype=torch.long))


# -------------------------------------------------------------------------- segment_positions

# prefix 1 (BOS), segment 3, 2 repeats: [BOS, a b c, a b c] -> repeat 0 at 1..3, repeat 1 at 4..6.
@pytest.mark.parametrize(
    "part, expected",
    [("first", [1, 2, 3]), ("second_half", [4, 5, 6]), ("later", [4, 5, 6]),
     ("all", [1, 2, 3, 4, 5, 6]), (0, [1, 2, 3]), (1, [4, 5, 6])],
)
def test_segment_positions_with_bos(part, expected):
    assert segment_positions(prefix=1, segment=3, repeats=2, part=part) == expected


# prefix 0, segment 3, 2 repeats: [a b c, a b c]; position 0 is never predicted, so it is dropped.
@pytest.mark.parametrize(
    "part, expected",
    [("first", [1, 2]), ("second_half", [3, 4, 5]), ("all", [1, 2, 3, 4, 5]), (0, [1, 2]), (1, [3, 4, 5])],
)
def test_segment_positions_without_bos(part, expected):
    assert segment_positions(prefix=0, segment=3, repeats=2, part=part) == expected


def test_segment_positions_three_repeats_later_and_index():
    # prefix 2, segment 2, 3 repeats: repeats at 2..3, 4..5, 6..7.
    assert segment_positions(prefix=2, segment=2, repeats=3, part="later") == [4, 5, 6, 7]
    assert segment_positions(prefix=2, segment=2, repeats=3, part="second_half") == [4, 5, 6, 7]
    assert segment_positions(prefix=2, segment=2, repeats=3, part=2) == [6, 7]
    assert segment_positions(prefix=2, segment=2, repeats=3, part="first") == [2, 3]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(prefix=1, segment=3, repeats=1, part="second_half"), "at least 2 repeats"),
        (dict(prefix=1, segment=3, repeats=1, part="later"), "at least 2 repeats"),
        (dict(prefix=1, segment=3, repeats=2, part=2), "out of range"),
        (dict(prefix=1, segment=3, repeats=2, part=-1), "out of range"),
        (dict(prefix=1, segment=3, repeats=2, part=True), "part must be one of"),
        (dict(prefix=1, segment=3, repeats=2, part="middle"), "part must be one of"),
        (dict(prefix=-1, segment=3, repeats=2, part="all"), "prefix >= 0"),
        (dict(prefix=1, segment=0, repeats=2, part="all"), "segment >= 1"),
        (dict(prefix=1, segment=3, repeats=0, part="all"), "repeats >= 1"),
    ],
)
def test_segment_positions_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        segment_positions(**kwargs)


# ------------------------------------------------------------------------------- segment_loss

def test_segment_loss_with_bos_reads_loss_index_position_minus_one():
    # 7 tokens (BOS + 2 x 3) -> 6 losses; distinct powers of two reveal any off-by-one.
    loss = torch.tensor([[1.0, 2.0, 4.0, 8.0, 16.0, 32.0]])
    kw = dict(prefix=1, segment=3, repeats=2)
    assert segment_loss(loss, part="first", **kw) == pytest.approx((1 + 2 + 4) / 3)
    assert segment_loss(loss, part="second_half", **kw) == pytest.approx((8 + 16 + 32) / 3)
    assert segment_loss(loss, part=1, **kw) == pytest.approx((8 + 16 + 32) / 3)
    assert segment_loss(loss, part="all", **kw) == pytest.approx(63 / 6)


def test_segment_loss_without_bos_skips_unpredicted_first_token():
    # 6 tokens (2 x 3, no BOS) -> 5 losses; repeat 0's first token (position 0) has no loss.
    loss = torch.tensor([[1.0, 2.0, 4.0, 8.0, 16.0]])
    kw = dict(prefix=0, segment=3, repeats=2)
    assert segment_loss(loss, part="first", **kw) == pytest.approx((1 + 2) / 2)
    assert segment_loss(loss, part="second_half", **kw) == pytest.approx((4 + 8 + 16) / 3)
    assert segment_loss(loss, part="all", **kw) == pytest.approx(31 / 5)


def test_segment_loss_averages_over_batch():
    loss = torch.tensor([[1.0, 2.0, 4.0, 8.0, 16.0, 32.0], [3.0, 3.0, 3.0, 0.0, 0.0, 6.0]])
    kw = dict(prefix=1, segment=3, repeats=2)
    assert segment_loss(loss, part="first", **kw) == pytest.approx((7 + 9) / 6)
    assert segment_loss(loss, part="second_half", **kw) == pytest.approx((56 + 6) / 6)


def test_segment_loss_end_to_end_from_logits():
    # Logits uniform over V=5 everywhere except where the second repeat is predicted, where the
    # next token gets a huge logit: first repeat costs ln 5 per token, the second nothing.
    vocab = 5
    tokens = torch.tensor([[0, 3, 1, 2, 3, 1, 2]])
    logits = torch.zeros(1, 7, vocab)
    for p in (3, 4, 5):  # loss indices 3..5 predict positions 4..6 (repeat 1)
        logits[0, p, tokens[0, p + 1]] = 50.0
    losses = token_losses(logits, tokens)
    kw = dict(prefix=1, segment=3, repeats=2)
    assert segment_loss(losses, part="first", **kw) == pytest.approx(math.log(vocab), abs=1e-5)
    assert segment_loss(losses, part="second_half", **kw) == pytest.approx(0.0, abs=1e-5)


def test_segment_loss_rejects_too_short_losses():
    with pytest.raises(ValueError, match="needs 7"):
        segment_loss(torch.zeros(1, 5), prefix=1, segment=3, repeats=2, part="first")


def test_segment_loss_rejects_non_2d():
    with pytest.raises(ValueError, match=r"\[batch, seq-1\]"):
        segment_loss(torch.zeros(6), prefix=1, segment=3, repeats=2, part="first")


def test_segment_loss_with_no_predicted_position():
    # One-token segment at position 0 with no BOS: nothing predicts it.
    with pytest.raises(ValueError, match="selects no predicted position"):
        segment_loss(torch.zeros(1, 1), prefix=0, segment=1, repeats=2, part="first")


# ---------------------------------------------------------------------------------- icl_score

def test_icl_score_converts_positions_to_loss_indices():
    # 6 tokens -> 5 losses at indices 0..4 predicting positions 1..5.
    loss = torch.tensor([[1.0, 2.0, 4.0, 8.0, 16.0]])
    assert icl_score(loss, late=5, early=2) == pytest.approx(16.0 - 2.0)
    assert icl_score(loss, late=3, early=1) == pytest.approx(4.0 - 1.0)


def test_icl_score_negative_when_late_loss_lower_and_batch_mean():
    loss = torch.tensor([[5.0, 4.0, 1.0], [3.0, 2.0, 0.0]])
    # early=1 -> index 0: mean 4; late=3 -> index 2: mean 0.5.
    assert icl_score(loss, late=3, early=1) == pytest.approx(0.5 - 4.0)


@pytest.mark.parametrize("late, early", [(3, 0), (6, 2), (2, 2), (2, 3)])
def test_icl_score_out_of_range(late, early):
    with pytest.raises(ValueError, match="1 <= early < late <= 5"):
        icl_score(torch.zeros(1, 5), late=late, early=early)


# ------------------------------------------------------------- first_token_accuracy et al.

LOGITS = torch.tensor([[0.0, 5.0, 1.0], [2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])  # argmax 1, 0, 2


def test_first_token_accuracy_ints():
    assert first_token_accuracy(LOGITS, [1, 0, 1]) == pytest.approx(2 / 3)
    assert first_token_accuracy(LOGITS, [1, 0, 2]) == pytest.approx(1.0)
    assert first_token_accuracy(LOGITS, [0, 1, 0]) == pytest.approx(0.0)


def test_first_token_accuracy_sequences_use_first_id():
    # Only the first id of each sequence counts: the second ids would make every row wrong/right.
    assert first_token_accuracy(LOGITS, [[1, 0], [0], [2, 2, 2]]) == pytest.approx(1.0)
    assert first_token_accuracy(LOGITS, [[0, 1], [1, 0], [2]]) == pytest.approx(1 / 3)
    assert first_token_accuracy(LOGITS, torch.tensor([[1, 9], [1, 9], [2, 9]])) == pytest.approx(2 / 3)
    assert first_token_accuracy(LOGITS, torch.tensor([1, 0, 0])) == pytest.approx(2 / 3)


def test_first_token_accuracy_errors_and_empty():
    with pytest.raises(ValueError, match="2 answers for 3 rows"):
        first_token_accuracy(LOGITS, [1, 0])
    with pytest.raises(ValueError, match="no tokens"):
        first_token_accuracy(LOGITS, [[1], [], [2]])
    with pytest.raises(ValueError, match=r"\[n, vocab\]"):
        first_token_accuracy(torch.zeros(1, 2, 3), [0])
    assert math.isnan(first_token_accuracy(torch.zeros(0, 3), []))


def test_answer_prob_hand_computed():
    # Row 0: probs (1/4, 1/2, 1/4); row 1: exp(ln 3)=3 vs 1, 1 -> (3/5, 1/5, 1/5).
    logits = torch.tensor([[0.0, LN2, 0.0], [LN3, 0.0, 0.0]])
    got = answer_prob(logits, [1, 0])
    assert got.dtype == torch.float32
    assert got.tolist() == pytest.approx([0.5, 0.6], abs=1e-6)
    assert answer_prob(logits, [[2, 1], [1]]).tolist() == pytest.approx([0.25, 0.2], abs=1e-6)


def test_logit_diff_hand_computed_and_shift_invariant():
    logits = torch.tensor([[1.0, 4.0, -2.0], [0.5, 0.0, 3.0]])
    assert logit_diff(logits, [1, 2], [2, 0]).tolist() == pytest.approx([6.0, 2.5])
    assert logit_diff(logits, [[0, 1], [1]], [[1], [2, 0]]).tolist() == pytest.approx([-3.0, -3.0])
    shifted = logits + torch.tensor([[100.0], [-7.0]])
    assert logit_diff(shifted, [1, 2], [2, 0]).tolist() == pytest.approx([6.0, 2.5])


def test_logit_diff_counts_checked_per_argument():
    with pytest.raises(ValueError, match="b_ids has 1 answers for 2 rows"):
        logit_diff(torch.zeros(2, 3), [0, 1], [0])
