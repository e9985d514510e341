"""Attention-pattern scores: how much of a head's attention lands where a mechanism says it should.

Every score here has the same shape: for each query position, a *target set* of key positions is
defined from the tokens alone (the previous position, earlier copies of the same token, the token
after an earlier copy...). A head's score is the attention mass it puts on that set, averaged over
the queries whose target set is non-empty. Queries with no target are *excluded* rather than counted
as zero, so a perfect head scores exactly 1.0 however the probe is laid out. (TransformerLens's
``detect_head`` averages over every position, so a perfect induction head on a sequence repeated
twice tops out near 0.5 there; thresholds written against these scores are not comparable.)

Pooling is over queries, not sequences: the batch result is the sum of per-query masses divided by
the number of included queries, so a sequence with more valid queries weighs more. That is the
estimator with the lowest variance when every query is an equally good sample of the mechanism.

All functions are pure and vectorised; the target builders return boolean masks of size
``[batch, seq, seq]``, which for the probe sizes used here (16 x 200) is well under a megabyte.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

__all__ = [
    "SCORES",
    "SCORE_NAMES",
    "duplicate_token_score",
    "duplicate_token_targets",
    "induction_score",
    "induction_targets",
    "pattern_score",
    "prefix_matching_score",
    "prefix_matching_targets",
    "previous_token_score",
    "previous_token_targets",
]

Targets = tuple[Tensor, Tensor]


def _check_tokens(tokens: Tensor, valid: Tensor | None) -> Tensor:
    """Validate ``tokens``/``valid`` shapes and return a boolean ``valid`` (all True when None)."""
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be [batch, seq], got shape {tuple(tokens.shape)}")
    if valid is None:
        return torch.ones(tokens.shape, dtype=torch.bool, device=tokens.device)
    if valid.shape != tokens.shape:
        raise ValueError(f"valid has shape {tuple(valid.shape)} but tokens has {tuple(tokens.shape)}")
    return valid.to(device=tokens.device, dtype=torch.bool)


def _strictly_lower(seq: int, device: torch.device, offset: int = 0) -> Tensor:
    """``[seq, seq]`` mask of key j allowed for query i when ``j < i - offset``."""
    idx = torch.arange(seq, device=device)
    return idx[None, :] < (idx[:, None] - offset)


def _earlier_copies(tokens: Tensor, valid: Tensor) -> Tensor:
    """``[b, i, j]``: j <= i-2 holds the same token as i, and i, j, j+1 are all valid.

    This is the set of earlier occurrences whose *successor* (j+1) is a legal induction target:
    the successor must be strictly before the query (j+1 < i), because a query attending to
    itself is not copying anything from the past.
    """
    b, s = tokens.shape
    same = tokens[:, :, None] == tokens[:, None, :]
    next_valid = torch.zeros_like(valid)
    next_valid[:, :-1] = valid[:, 1:]
    keep = valid[:, None, :] & next_valid[:, None, :] & valid[:, :, None]
    return same & keep & _strictly_lower(s, tokens.device, offset=1)[None]


def _shift_to_successor(mask: Tensor) -> Tensor:
    """Move every key mark from j to j+1 (the token after the earlier copy)."""
    out = torch.zeros_like(mask)
    out[..., 1:] = mask[..., :-1]
    return out


def previous_token_targets(tokens: Tensor, valid: Tensor | None = None) -> Targets:
    """Target of query i is {i-1}; included when i >= 1 and both i and i-1 are valid.

    Returns:
        ``(targets [b, s, s] bool, query_mask [b, s] bool)``.
    """
    valid = _check_tokens(tokens, valid)
    b, s = tokens.shape
    idx = torch.arange(s, device=tokens.device)
    diag = (idx[None, :] == idx[:, None] - 1)[None]
    targets = diag & valid[:, :, None] & valid[:, None, :]
    return targets, targets.any(-1)


def duplicate_token_targets(tokens: Tensor, valid: Tensor | None = None) -> Targets:
    """Targets of query i are the valid earlier positions j < i holding the same token.

    The query itself is not a target: every token trivially matches itself, and a head that
    just attends to its own position should not look like a duplicate-token head.
    """
    valid = _check_tokens(tokens, valid)
    b, s = tokens.shape
    same = tokens[:, :, None] == tokens[:, None, :]
    targets = same & valid[:, :, None] & valid[:, None, :] & _strictly_lower(s, tokens.device)[None]
    return targets, targets.any(-1)


def prefix_matching_targets(tokens: Tensor, valid: Tensor | None = None) -> Targets:
    """Targets of query i are {j+1} for EVERY earlier copy j <= i-2 of tokens[i] (Olsson et al.).

    With three or more repeats this differs from :func:`induction_targets`: a head that spreads
    its attention over the successors of all earlier copies is a perfect prefix-matching head
    even though it is not attending only to the most recent one.
    """
    valid = _check_tokens(tokens, valid)
    targets = _shift_to_successor(_earlier_copies(tokens, valid))
    return targets, targets.any(-1)


def induction_targets(tokens: Tensor, valid: Tensor | None = None) -> Targets:
    """Target of query i is {j+1} for the MOST RECENT earlier copy j <= i-2 of tokens[i].

    This is TransformerLens's induction pattern ("the token after the previous copy") with the
    normalisation of this module: queries with no earlier copy are excluded.
    """
    valid = _check_tokens(tokens, valid)
    copies = _earlier_copies(tokens, valid)
    b, s = tokens.shape
    idx = torch.arange(s, device=tokens.device).expand(b, s, s)
    last = torch.where(copies, idx, torch.full_like(idx, -1)).amax(-1)  # [b, s]
    query_mask = last >= 0
    succ = (last + 1).clamp(max=s - 1)
    targets = (idx == succ[:, :, None]) & query_mask[:, :, None]
    return targets, query_mask


def pattern_score(
    attn: Tensor, targets: Tensor, query_mask: Tensor, per_sequence: bool = False
) -> Tensor:
    """Mean attention mass on each query's target set, per head.

    Args:
        attn: ``[b, h, q, k]`` post-softmax attention of one layer (one pattern per query head).
        targets: ``[b, q, k]`` bool, the key positions each query should attend to.
        query_mask: ``[b, q]`` bool, the queries that count (normally ``targets.any(-1)``).
        per_sequence: return one value per sequence instead of pooling the batch.

    Returns:
        float32 ``[h]`` (sum of per-query masses / number of included queries in the batch), or
        ``[b, h]`` when ``per_sequence``. NaN where no query is included, because "no evidence"
        must not read as either a pass or a zero.
    """
    if attn.dim() != 4:
        raise ValueError(f"attn must be [batch, heads, q, k], got shape {tuple(attn.shape)}")
    b, h, q, k = attn.shape
    if targets.shape != (b, q, k):
        raise ValueError(f"targets has shape {tuple(targets.shape)}, expected {(b, q, k)} for attn {tuple(attn.shape)}")
    if query_mask.shape != (b, q):
        raise ValueError(f"query_mask has shape {tuple(query_mask.shape)}, expected {(b, q)}")
    device = attn.device
    tmask = targets.to(device=device, dtype=torch.float32)
    qmask = query_mask.to(device=device, dtype=torch.float32)
    # Mass on the target set per (sequence, head, query); einsum avoids materialising attn*mask.
    mass = torch.einsum("bhqk,bqk->bhq", attn.to(torch.float32), tmask)
    summed = torch.einsum("bhq,bq->bh", mass, qmask)  # [b, h]
    counts = qmask.sum(-1)  # [b]
    if per_sequence:
        out = summed / counts[:, None]
        return torch.where(counts[:, None] > 0, out, torch.full_like(out, float("nan")))
    total = counts.sum()
    if total == 0:
        return torch.full((h,), float("nan"), dtype=torch.float32, device=device)
    return summed.sum(0) / total


def _score_with(builder: Callable[[Tensor, Tensor | None], Targets]) -> Callable[..., Tensor]:
    def score(attn: Tensor, tokens: Tensor, valid: Tensor | None = None, per_sequence: bool = False) -> Tensor:
        if attn.dim() == 4 and attn.shape[0] != tokens.shape[0]:
            raise ValueError(f"attn batch {attn.shape[0]} does not match tokens batch {tokens.shape[0]}")
        targets, query_mask = builder(tokens.to(attn.device), None if valid is None else valid.to(attn.device))
        return pattern_score(attn, targets, query_mask, per_sequence=per_sequence)

    name = builder.__name__.removesuffix("_targets")
    score.__name__ = score.__qualname__ = f"{name}_score"
    score.__doc__ = (
        f"The ``{name}`` score of every head of one layer.\n\n"
        f"Args:\n    attn: ``[b, h, s, s]`` attention probabilities.\n    tokens: ``[b, s]`` ids.\n"
        f"    valid: ``[b, s]`` positions that may be queries or targets (None: all).\n"
        f"    per_sequence: ``[b, h]`` instead of ``[h]``.\n\n"
        f"Returns:\n    float32 scores; see :func:`pattern_score` and :func:`{builder.__name__}`."
    )
    return score


previous_token_score = _score_with(previous_token_targets)
duplicate_token_score = _score_with(duplicate_token_targets)
induction_score = _score_with(induction_targets)
prefix_matching_score = _score_with(prefix_matching_targets)

SCORES: dict[str, Callable[..., Tensor]] = {
    "previous_token": previous_token_score,
    "duplicate_token": duplicate_token_score,
    "induction": induction_score,
    "prefix_matching": prefix_matching_score,
}
"""Score name -> ``fn(attn, tokens, valid=None, per_sequence=False)``; the names specs use."""

SCORE_NAMES: tuple[str, ...] = tuple(SCORES)
