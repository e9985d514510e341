"""head_attribution's verdicts on hand-made relevance maps: a rank bound passes and fails, ties and
non-finite scores are handled, and agreement is judged on its Spearman rho."""
from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

from icltest.claims import head_attribution as ha
from icltest.claims.base import ClaimSpecError
from icltest.schema import load_spec


def _claim(tmp_path: Path, text: str):
    path = tmp_path / "s.yaml"
    path.write_text("schema_version: 1\nmodel: x\nclaims:\n" + text)
    return load_spec(path).spec.claims[0]


def _ctx():
    adapter = types.SimpleNamespace(n_layers=2, n_heads=3)
    return types.SimpleNamespace(loaded=types.SimpleNamespace(adapter=adapter), location=lambda key: f"s.yaml:{key}")


SCORE = torch.tensor([[0.9, 0.1, 0.5], [0.3, 0.7, 0.2]])  # ranks: L0H0 1, L1H1 2, L0H2 3, L1H0 4, L1H2 5, L0H1 6


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(ha, "role_score", lambda claim, ctx: (SCORE, {"inputs": ["fake"], "seconds": 0.0}))
    monkeypatch.setattr(ha, "_exact_effects", lambda claim, ctx, head: {
        "open_book": {"metric": "answer_logprob", "estimated_change": -0.1, "exact_change": -0.2}})


def test_rank_bound_passes_and_fails(tmp_path, fake):
    claim = _claim(tmp_path, "  - {id: a, kind: head_attribution, role: in_context, heads: [1.1, 1.2], expect: {rank: '<= 3'}}\n")
    verdicts = {}
    for target in ha.targets(claim):
        m = ha.measure(claim, target, _ctx())
        verdicts[target.id] = (m.value, ha.judge(claim, target, m).passed)
    assert verdicts == {"L1H1": (2.0, True), "L1H2": (5.0, False)}


def test_ties_share_the_better_rank():
    ranks = ha._ranks(torch.tensor([[0.5, 0.5], [0.1, 0.9]]))
    assert ranks.tolist() == [[2, 2], [4, 1]]


def test_a_non_finite_score_is_an_error_not_rank_one(tmp_path, monkeypatch):
    bad = SCORE.clone()
    bad[1, 2] = float("nan")
    monkeypatch.setattr(ha, "role_score", lambda claim, ctx: (bad, {"inputs": ["fake"], "seconds": 0.0}))
    claim = _claim(tmp_path, "  - {id: a, kind: head_attribution, role: open_book, heads: [1.2], expect: {rank: '<= 3'}}\n")
    with pytest.raises(ClaimSpecError, match="non-finite"):
        ha.measure(claim, ha.targets(claim)[0], _ctx())


def test_agreement_verdict_follows_rho(tmp_path):
    claim = _claim(tmp_path, "  - {id: a, kind: head_attribution, role: open_book, expect: {spearman: '>= 0.5'}}\n")
    target = ha.targets(claim)[0]
    details = {"heads_compared": 6, "top10_overlap": 3, "attribution_seconds": 1.0, "exact_seconds": 9.0}
    from icltest.claims.base import Measurement

    assert ha.judge(claim, target, Measurement(0.6, "rho", details)).passed
    assert not ha.judge(claim, target, Measurement(0.4, "rho", details)).passed
