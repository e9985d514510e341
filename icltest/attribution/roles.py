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


def task_or_retrieval(heads: list[tuple[int, int]], mass: dict[str, torch.Tensor],
                      uniform: dict[str, float]) -> list[dict[str, object]]:
    """Split in-context heads by where the last prompt token's attention goes (seed 002):
    *retrieval* heads look at the answer inside the context, *task* heads at the question.

    Each span's mass is read against its chance level (its share of the prompt's tokens), since
    the answer span is a few tokens and the question ten-odd: a head is a retrieval head when its
    mass over chance is larger on the answer than on the question and above chance there, a task
    head when the reverse holds, and "neither" when it looks at both less than chance would (its
    attention is elsewhere: BOS, the prompt format, the demonstrations).
    """
    out = []
    for layer, head in heads:
        q, a = float(mass["question"][layer, head]), float(mass["answer"][layer, head])
        q_over = q / max(float(uniform["question"]), 1e-9)
        a_over = a / max(float(uniform["answer"]), 1e-9)
        out.append({"head": f"L{layer}H{head}", "question": round(q, 4), "answer": round(a, 4),
                    "question_over_chance": round(q_over, 2), "answer_over_chance": round(a_over, 2),
                    "role": "retrieval" if a_over > max(q_over, 1.0) else "task" if q_over > max(a_over, 1.0)
                    else "neither"})
    return out
