"""Claims that compute a value for every head put the whole table in details["maps"] (attribution
and function-vector CIE here, on hand-made tables; pattern scores and DLA are checked end to end in
tests/integration/test_report_maps_plugin.py)."""
from __future__ import annotations

import types
from pathlib import Path

import torch

from icltest.claims import function_vector as fv
from icltest.claims import head_attribution as ha
from icltest.schema import load_spec

SCORE = torch.tensor([[0.9, -0.1, 0.5], [0.3, 0.7, -0.2]])


def _claim(tmp_path: Path, text: str):
    path = tmp_path / "s.yaml"
    path.write_text("schema_version: 1\nmodel: x\nclaims:\n" + text)
    return load_spec(path).spec.claims[0]


def test_head_attribution_map_is_the_role_score_with_the_claimed_head(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(ha, "role_score", lambda claim, ctx: (SCORE, {"inputs": ["open", "closed"], "seconds": 0.0}))
    monkeypatch.setattr(ha, "_exact_effects", lambda claim, ctx, head: {})
    ctx = types.SimpleNamespace(loaded=types.SimpleNamespace(adapter=types.SimpleNamespace(n_layers=2, n_heads=3)),
                                location=lambda key: f"s.yaml:{key}")
    claim = _claim(tmp_path, "  - {id: a, kind: head_attribution, role: in_context, heads: [1.1, 0.2], expect: {rank: '<= 3'}}\n")
    target = ha.targets(claim)[0]
    (entry,) = ha.measure(claim, target, ctx).details["maps"]
    assert entry["name"] == "in_context attribution" and entry["kind"] == "attribution"
    assert entry["probe"] == "open; closed" and "open-book minus closed-book" in entry["unit"]
    assert entry["values"] == [[0.9, -0.1, 0.5], [0.3, 0.7, -0.2]]
    assert entry["targets"] == [list(target.heads[0])]


def test_function_vector_cie_map_marks_the_chosen_heads(tmp_path) -> None:
    claim = _claim(tmp_path, "  - {id: f, kind: function_vector, task: antonym, heads: {top: 2}, expect: {gain: '> 0'}}\n")
    cie = torch.tensor([[0.01, float("nan"), 0.2], [0.05, 0.3, 0.0]])
    entry = fv._cie_map(claim, cie, [(1, 1), (0, 2)])
    assert entry["kind"] == "cie" and entry["name"] == "antonym CIE (attribution)"
    assert entry["values"] == [[0.01, None, 0.2], [0.05, 0.3, 0.0]] and entry["targets"] == [[0, 2], [1, 1]]
    assert "shuffled-label" in entry["probe"]
