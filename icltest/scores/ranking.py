"""Ranking heads by a score table: "L18H6 is the top induction head", "top 3 by prefix_matching".

Tables are ``[layers, heads]`` float tensors. NaN (a head whose score had no evidence) ranks below
every number: it is never "greater" than anything, and top lists put it last, so a missing
measurement cannot be mistaken for a strong head.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["rank_of", "top_heads"]


def _check_table(scores: Tensor) -> Tensor:
    if scores.dim() != 2:
        raise ValueError(f"scores must be a [layers, heads] table, got shape {tuple(scores.shape)}")
    return scores.detach().to("cpu", torch.float64)


def rank_of(scores: Tensor, layer: int, head: int) -> int:
    """Rank of one head, 1 = highest.

    Ties share the better rank (competition ranking, "1224"): the rank is 1 + the number of heads
    with a strictly greater score. A claim "rank <= 1" therefore passes for a head tied at the top,
    which is the honest reading when the measurement cannot separate them. A NaN head ranks below
    every head with a number (1 + the number of non-NaN heads).

    Raises:
        IndexError: when (layer, head) is outside the table.
    """
    table = _check_table(scores)
    n_layers, n_heads = table.shape
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise IndexError(f"head L{layer}H{head} is outside a table of {n_layers} layers x {n_heads} heads")
    value = float(table[layer, head])
    if math.isnan(value):
        return 1 + int((~torch.isnan(table)).sum())
    return 1 + int((table > value).sum())


def top_heads(scores: Tensor, k: int) -> list[tuple[int, int, float]]:
    """The ``k`` highest-scoring heads as ``(layer, head, value)``, best first.

    Ties are broken by (layer, head) ascending so the list is deterministic across runs and
    devices; NaN heads come last. ``k`` larger than the table returns every head.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    table = _check_table(scores)
    entries = []
    for layer in range(table.shape[0]):
        for head in range(table.shape[1]):
            value = float(table[layer, head])
            nan = math.isnan(value)
            entries.append((nan, -value if not nan else 0.0, layer, head, value))
    entries.sort()
    return [(layer, head, value) for _, _, layer, head, value in entries[:k]]


def spearman(a: Any, b: Any) -> float:
    """Spearman's rho over the entries finite in both (average ranks for ties); NaN with fewer than 3
    such entries or when either side is constant (no ranking to correlate)."""
    from scipy.stats import spearmanr

    a, b = torch.as_tensor(a).flatten().double(), torch.as_tensor(b).flatten().double()
    ok = torch.isfinite(a) & torch.isfinite(b)
    a, b = a[ok], b[ok]
    if a.numel() < 3 or bool((a == a[0]).all()) or bool((b == b[0]).all()):
        return float("nan")
    return float(spearmanr(a.numpy(), b.numpy()).statistic)
