"""In-context vs parametric: the contrast of two tasks' head relevances, on one scale."""
from __future__ import annotations

import torch


def normalised(relevance: torch.Tensor) -> torch.Tensor:
    """Relevance divided by its total magnitude over all heads (so two tasks' maps compare)."""
    total = relevance.abs().sum()
    return relevance / total if float(total) > 0 else relevance


def in_context_score(open_book: torch.Tensor, closed_book: torch.Tensor) -> torch.Tensor:
    """[L, H] open-book relevance minus closed-book relevance, each normalised: high = in-context
    head, low (negative) = parametric head (Kahardipraja et al. 2025's contrast)."""
    return normalised(open_book) - normalised(closed_book)
