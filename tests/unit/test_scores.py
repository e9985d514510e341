"""Pattern scores and rankings on hand-made tensors whose answers are worked out independently."""
from __future__ import annotations

import math

import pytest
import torch

from icltest.scores import (
    SCORE_NAMES,
    SCORES,
    duplicate_token_score,
    induction_score,
    pattern_score,
    prefix_matching_score,
    previous_token_score,
    previous_token_targets,
    rank_of,
    top_heads,
)


def causal_uniform(b: int, h: int, s: int) -> torch.Tensor:
    """Every query spreads its attention evenly over positions 0..i."""
    attn = torch.tril(torch.ones(s, s))
    attn = attn / attn.sum(-1, keepdim=True)
    return attn.expand(b, h, s, s).clone()


def one_hot_attn(b: int, s: int, target_of: list[list[int]]) -> torch.Tensor:
    """[b, 1, s, s] attention where query i of sequence n puts all its mass on target_of[n][i]."""
    attn = torch.zeros(b, 1, s, s)
    for n in range(b):
        for i in range(s):
            attn[n, 0, i, target_of[n][i]] = 1.0
    return attn


def random_attn(b: int, h: int, s: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, h, s, s, generator=g) * 3
    logits = logits.masked_fill(~torch.tril(torch.ones(s, s, dtype=torch.bool)), float("-inf"))
    return torch.softmax(logits, -1)


# ---- slow reference implementation: plain python loops, straight from the definitions ----

def reference_score(name: str, attn: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor, per_sequence: bool):
    b, h, s, _ = attn.shape
    a, t, v = attn.tolist(), tokens.tolist(), valid.tolist()
    sums = [[0.0] * h for _ in range(b)]
    counts = [0] * b
    for n in range(b):
        for i in range(s):
            if not v[n][i]:
                continue
            if name == "previous_token":
                tg = [i - 1] if i >= 1 and v[n][i - 1] else []
            elif name == "duplicate_token":
                tg = [j for j in range(i) if t[n][j] == t[n][i] and v[n][j]]
            else:
                copies = [j for j in range(i - 1) if t[n][j] == t[n][i] and v[n][j] and v[n][j + 1]]
                if name == "induction":
                    tg = [copies[-1] + 1] if copies else []
                else:
                    tg = [j + 1 for j in copies]
            if not tg:
                continue
            counts[n] += 1
            for hh in range(h):
                sums[n][hh] += sum(a[n][hh][i][j] for j in tg)
    if per_sequence:
        return torch.tensor([[x / counts[n] if counts[n] else math.nan for x in sums[n]] for n in range(b)])
    total = sum(counts)
    return torch.tensor([sum(sums[n][hh] for n in range(b)) / total for hh in range(h)])


# ---- previous token ----

def test_perfect_previous_token_head_scores_one():
    s = 10
    tokens = torch.arange(s)[None]
    attn = one_hot_attn(1, s, [[max(i - 1, 0) for i in range(s)]])
    assert previous_token_score(attn, tokens).item() == pytest.approx(1.0)


def test_uniform_attention_previous_token_is_mean_of_inverse_prefix_length():
    b, h, s = 2, 3, 12
    tokens = torch.arange(s).repeat(b, 1)
    expected = sum(1 / (i + 1) for i in range(1, s)) / (s - 1)  # query 0 has no previous token
    got = previous_token_score(causal_uniform(b, h, s), tokens)
    assert got.shape == (h,)
    assert torch.allclose(got, torch.full((h,), expected), atol=1e-6)


def test_bos_is_excluded_as_query_and_target():
    s = 8
    tokens = torch.arange(s)[None]
    valid = torch.ones(1, s, dtype=torch.bool)
    valid[0, 0] = False
    # Query 1's only previous token is BOS: it must not be counted. Uniform attention again.
    expected = sum(1 / (i + 1) for i in range(2, s)) / (s - 2)
    got = previous_token_score(causal_uniform(1, 1, s), tokens, valid)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_previous_token_targets_mask_by_hand():
    tokens = torch.tensor([[5, 6, 7, 8]])
    valid = torch.tensor([[True, True, False, True]])
    targets, qmask = previous_token_targets(tokens, valid)
    # i=1 -> 0 ok; i=2 invalid query; i=3 -> 2 invalid target.
    assert qmask.tolist() == [[False, True, False, False]]
    assert targets[0].nonzero().tolist() == [[1, 0]]


# ---- duplicate token ----

def test_duplicate_token_perfect_and_excludes_self():
    tokens = torch.tensor([[1, 2, 3, 1, 2, 3]])
    # Perfect head: queries 3,4,5 attend to 0,1,2; others attend to themselves (excluded queries).
    attn = one_hot_attn(1, 6, [[0, 1, 2, 0, 1, 2]])
    assert duplicate_token_score(attn, tokens).item() == pytest.approx(1.0)
    # A head that attends to itself everywhere is not a duplicate-token head.
    self_attn = one_hot_attn(1, 6, [list(range(6))])
    assert duplicate_token_score(self_attn, tokens).item() == pytest.approx(0.0)


def test_duplicate_token_sums_all_earlier_copies():
    tokens = torch.tensor([[4, 4, 4]])
    # Uniform: query 1 puts 1/2 on position 0; query 2 puts 1/3 on each of 0 and 1.
    expected = (1 / 2 + 2 / 3) / 2
    assert duplicate_token_score(causal_uniform(1, 1, 3), tokens).item() == pytest.approx(expected)


# ---- induction and prefix matching ----

def test_perfect_induction_on_two_repeats():
    seg = [7, 3, 9, 4, 6]
    tokens = torch.tensor([[0] + seg + seg])
    valid = torch.ones_like(tokens, dtype=torch.bool)
    valid[0, 0] = False
    s = tokens.shape[1]
    # Query at 1+5+k (second copy of seg[k]) attends to 1+k+1; first-copy queries attend to BOS.
    target = [0] * 6 + [1 + k + 1 for k in range(5)]
    attn = one_hot_attn(1, s, [target])
    assert induction_score(attn, tokens, valid).item() == pytest.approx(1.0)
    assert prefix_matching_score(attn, tokens, valid).item() == pytest.approx(1.0)
    # The same head is a poor previous-token head: only query at 6 (seg[0] again) -> target 2 != 5.
    assert previous_token_score(attn, tokens, valid).item() == pytest.approx(0.0)


def test_first_copy_head_on_three_repeats_separates_induction_from_prefix_matching():
    seg = [7, 3, 9, 4]
    n = len(seg)
    tokens = torch.tensor([[0] + seg * 3])
    valid = torch.ones_like(tokens, dtype=torch.bool)
    valid[0, 0] = False
    s = tokens.shape[1]
    # Query in copy c (c = 1, 2) of seg[k] attends to the token after the FIRST copy: 1 + k + 1.
    # The last token of the first copy (k = n-1) has successor 1 + n, the first token of copy 2.
    target = [0] * (1 + n)
    for c in (1, 2):
        target += [1 + k + 1 for k in range(n)]
    attn = one_hot_attn(1, s, [target])
    # Prefix matching: every included query puts all its mass on one of its targets -> 1.
    assert prefix_matching_score(attn, tokens, valid).item() == pytest.approx(1.0)
    # Induction: copy-2 queries (n of them) hit their target (the only earlier copy); copy-3 queries
    # (n of them) hit the first copy's successor, not the most recent one's -> n / (2n).
    assert induction_score(attn, tokens, valid).item() == pytest.approx(0.5)


def test_spread_over_all_copies_is_perfect_prefix_matching_only():
    seg = [5, 6, 7]
    n = len(seg)
    tokens = torch.tensor([seg * 3])
    s = tokens.shape[1]
    attn = torch.zeros(1, 1, s, s)
    for i in range(s):
        earlier = [j + 1 for j in range(i - 1) if tokens[0, j] == tokens[0, i]]
        for j in earlier or [i]:
            attn[0, 0, i, j] = 1 / max(len(earlier), 1)
    # Copy 2 queries: one earlier copy, mass 1 on it. Copy 3: 1/2 on the most recent successor.
    assert prefix_matching_score(attn, tokens).item() == pytest.approx(1.0)
    assert induction_score(attn, tokens).item() == pytest.approx((n * 1 + n * 0.5) / (2 * n))


def test_successor_must_precede_query():
    # tokens[i-1] == tokens[i]: the copy j = i-1 has successor i (the query itself) -> not a target.
    tokens = torch.tensor([[3, 3]])
    attn = one_hot_attn(1, 2, [[0, 1]])
    assert math.isnan(induction_score(attn, tokens).item())
    assert math.isnan(prefix_matching_score(attn, tokens).item())


# ---- pooling, per-sequence, dtypes, shapes ----

def test_per_sequence_nan_for_sequences_without_queries():
    tokens = torch.tensor([[1, 2, 3, 4, 1, 2, 3, 4], [1, 2, 3, 4, 5, 6, 7, 8]])
    attn = causal_uniform(2, 2, 8)
    per = induction_score(attn, tokens, per_sequence=True)
    assert per.shape == (2, 2)
    assert torch.isnan(per[1]).all()
    # Second copy of seq 0: queries 4..7 each put 1/(i+1) on their target.
    expected = sum(1 / (i + 1) for i in range(4, 8)) / 4
    assert torch.allclose(per[0], torch.full((2,), expected), atol=1e-6)
    # Pooled ignores the empty sequence instead of dragging the mean down.
    assert torch.allclose(induction_score(attn, tokens), per[0], atol=1e-6)


def test_pooling_weights_queries_not_sequences():
    tokens = torch.tensor([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]])
    valid = torch.tensor([[True] * 6, [False, False, False, False, True, True]])
    attn = torch.zeros(2, 1, 6, 6)
    for i in range(1, 6):
        attn[0, 0, i, i - 1] = 1.0  # seq 0 perfect: 5 queries scoring 1
        attn[1, 0, i, 0] = 1.0  # seq 1: its single query (5) scores 0
    attn[:, 0, 0, 0] = 1.0
    got = previous_token_score(attn, tokens, valid).item()
    assert got == pytest.approx(5 / 6)  # pooled over 6 queries, not (1 + 0) / 2


def test_all_invalid_pooled_is_nan():
    tokens = torch.tensor([[1, 2, 3]])
    valid = torch.zeros(1, 3, dtype=torch.bool)
    assert torch.isnan(previous_token_score(causal_uniform(1, 2, 3), tokens, valid)).all()


def test_result_is_float32_for_half_inputs():
    tokens = torch.arange(6)[None]
    got = previous_token_score(causal_uniform(1, 2, 6).to(torch.bfloat16), tokens)
    assert got.dtype == torch.float32


def test_shape_errors_are_value_errors():
    with pytest.raises(ValueError):
        pattern_score(torch.zeros(1, 1, 3, 3), torch.zeros(1, 3, 4, dtype=torch.bool), torch.zeros(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError):
        previous_token_score(torch.zeros(2, 1, 3, 3), torch.zeros(1, 3, dtype=torch.long))


@pytest.mark.parametrize("name", SCORE_NAMES)
@pytest.mark.parametrize("per_sequence", [False, True])
def test_vectorised_matches_reference_loop(name, per_sequence):
    b, h, s = 4, 3, 30
    g = torch.Generator().manual_seed(1234)
    tokens = torch.randint(0, 6, (b, s), generator=g)  # small vocab: many repeats, 3+ copies
    valid = torch.rand(b, s, generator=g) > 0.15
    valid[:, 0] = False
    attn = random_attn(b, h, s, seed=99)
    got = SCORES[name](attn, tokens, valid, per_sequence=per_sequence)
    want = reference_score(name, attn, tokens, valid, per_sequence)
    assert got.shape == want.shape
    assert torch.allclose(got, want.float(), atol=1e-5, equal_nan=True)


def test_score_names():
    assert set(SCORE_NAMES) == {"previous_token", "duplicate_token", "induction", "prefix_matching"}


def test_large_batch_is_fast():
    import time

    b, h, s = 16, 32, 200
    tokens = torch.randint(1, 50, (b, s))
    attn = random_attn(b, h, s, seed=3)
    start = time.perf_counter()
    for fn in SCORES.values():
        out = fn(attn, tokens)
        assert torch.isfinite(out).all()
    assert time.perf_counter() - start < 10  # generous: a python loop over positions takes minutes


# ---- ranking ----

def test_rank_of_counts_strictly_greater():
    table = torch.tensor([[0.1, 0.9, 0.5], [0.9, 0.2, float("nan")]])
    assert rank_of(table, 0, 1) == 1
    assert rank_of(table, 1, 0) == 1  # tie shares the better rank
    assert rank_of(table, 0, 2) == 3
    assert rank_of(table, 1, 1) == 4
    assert rank_of(table, 0, 0) == 5
    assert rank_of(table, 1, 2) == 6  # NaN ranks below every number
    with pytest.raises(IndexError):
        rank_of(table, 2, 0)


def test_top_heads_order_and_tie_break():
    table = torch.tensor([[0.1, 0.9, 0.5], [0.9, float("nan"), 0.5]])
    assert top_heads(table, 4) == [(0, 1, pytest.approx(0.9)), (1, 0, pytest.approx(0.9)),
                                   (0, 2, pytest.approx(0.5)), (1, 2, pytest.approx(0.5))]
    everything = top_heads(table, 100)
    assert len(everything) == 6
    assert everything[-1][:2] == (1, 1) and math.isnan(everything[-1][2])
    assert top_heads(table, 0) == []
