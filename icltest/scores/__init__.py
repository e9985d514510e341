"""Pure scoring functions: attention patterns / score tables -> numbers a claim can judge."""
from __future__ import annotations

from icltest.scores.patterns import (
    SCORE_NAMES,
    SCORES,
    duplicate_token_score,
    duplicate_token_targets,
    induction_score,
    induction_targets,
    pattern_score,
    prefix_matching_score,
    prefix_matching_targets,
    previous_token_score,
    previous_token_targets,
)
from icltest.scores import patterns as _patterns
from icltest.scores.ranking import rank_of, top_heads

__all__ = [*_patterns.__all__, "rank_of", "top_heads"]
