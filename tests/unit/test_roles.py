"""In-context / parametric contrast and the task / retrieval split, on hand-made tensors."""
from __future__ import annotations

import torch

from icltest.attribution.roles import in_context_score, task_or_retrieval


def test_contrast_puts_both_tasks_on_one_scale():
    open_book = torch.tensor([[4.0, 0.0], [0.0, -4.0]])      # total |.| = 8
    closed_book = torch.tensor([[0.0, 1.0], [1.0, 0.0]])     # total |.| = 2
    score = in_context_score(open_book, closed_book)
    expected = torch.tensor([[0.5, -0.5], [-0.5, -0.5]])     # 4/8 - 0, 0 - 1/2, 0 - 1/2, -4/8 - 0
    torch.testing.assert_close(score, expected)


def test_all_zero_relevance_stays_zero():
    zero = torch.zeros(2, 2)
    torch.testing.assert_close(in_context_score(zero, zero), zero)


def test_heads_are_split_by_mass_over_chance():
    mass = {"question": torch.tensor([[0.30, 0.05, 0.05]]), "answer": torch.tensor([[0.02, 0.04, 0.008]])}
    uniform = {"question": 0.1, "answer": 0.01}
    rows = task_or_retrieval([(0, 0), (0, 1), (0, 2)], mass, uniform)
    # L0H0: question 3x chance, answer 2x -> task; L0H1: question 0.5x, answer 4x -> retrieval;
    # L0H2: question 0.5x, answer 0.8x -> below chance on both: neither
    assert [r["role"] for r in rows] == ["task", "retrieval", "neither"]
    assert rows[0]["question_over_chance"] == 3.0 and rows[1]["answer_over_chance"] == 4.0
