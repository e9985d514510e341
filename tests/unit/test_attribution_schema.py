"""Spec validation of the attribution claim kinds: good specs load, mistakes name file:line and the key.

Line numbers are counted by hand from the texts below.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from icltest.schema import SpecError, load_spec

HEAD = "schema_version: 1\nmodel: smollm2-135m\nclaims:\n"  # claims start on line 4


def _load(tmp_path: Path, text: str):
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + text)
    return load_spec(path)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(SpecError) as info:
        _load(tmp_path, text)
    return str(info.value)


def test_attribution_kinds_load(tmp_path: Path) -> None:
    spec = _load(tmp_path, (
        "  - {id: a, kind: logit_attribution, heads: [18.6], expect: '>= 1'}\n"
        "  - {id: b, kind: logit_attribution, heads: {top: 1, by: induction}, expect: '>= 1'}\n"
        "  - {id: c, kind: logit_attribution, lens: {layer: -3, top: 10}, task: open_book, shots: 2, expect: '>= 0.5'}\n"
        "  - {id: d, kind: logit_attribution, layers: {layers: '20-29', part: mlp}, task: closed_book, expect: '>= 0'}\n"
        "  - {id: e, kind: head_attribution, role: in_context, heads: [16.0], expect: {rank: '<= 10'}}\n"
        "  - {id: f, kind: head_attribution, role: open_book, agreement: {layers: '10-20'}, expect: {spearman: '>= 0.5'}}\n"
        "  - {id: g, kind: source_tracking, expect: {auroc: '>= 0.8'}, control: {draws: 19, expect: {p: '<= 0.1'}}}\n"
    )).spec
    kinds = [c.kind for c in spec.claims]
    assert kinds == ["logit_attribution"] * 4 + ["head_attribution"] * 2 + ["source_tracking"]
    assert spec.claims[5].agreement.layers == list(range(10, 21))
    assert spec.claims[2].lens.layer == -3


@pytest.mark.parametrize("text, line, fragment", [
    ("  - id: a\n    kind: logit_attribution\n    heads: [18.6]\n    lens: {layer: 3}\n    expect: '>= 1'\n",
     4, "exactly one of heads"),
    ("  - id: a\n    kind: logit_attribution\n    lens: {layer: 3, tops: 5}\n    expect: '>= 1'\n", 6, "tops"),
    ("  - id: a\n    kind: logit_attribution\n    heads: [18.6]\n    task: opn_book\n    expect: '>= 1'\n", 7, "opn_book"),
    ("  - id: a\n    kind: head_attribution\n    role: in_context\n    expect: {rank: '<= 3'}\n", 4, "needs heads"),
    ("  - id: a\n    kind: head_attribution\n    role: in_context\n    expect: {spearman: '>= 0.5'}\n", 4, "per task"),
    ("  - id: a\n    kind: head_attribution\n    role: memory\n    heads: [1.0]\n    expect: {rank: '<= 3'}\n", 6, "role"),
    ("  - id: a\n    kind: head_attribution\n    role: open_book\n    heads: [1.0]\n    expect: {rank: '<= 3', spearman: '> 0'}\n",
     8, "exactly one of rank"),
    ("  - id: a\n    kind: source_tracking\n    expect: {auc: '>= 0.8'}\n", 6, "auc"),
    ("  - id: a\n    kind: logit_attribution\n    heads: [18.6]\n    seed: 7\n    expect: '>= 1'\n", 4,
     "only apply to task prompts"),
    ("  - id: a\n    kind: head_attribution\n    role: open_book\n    agreement: {layers: [-2, 3]}\n"
     "    expect: {spearman: '> 0'}\n", 7, "greater than or equal to 0"),
    ("  - id: a\n    kind: source_tracking\n    n: 4\n    expect: {auroc: '>= 0.8'}\n", 6, "n"),
])
def test_attribution_mistakes_point_at_the_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    message = _error(tmp_path, text)
    assert f"s.yaml:{line}:" in message, message
    assert fragment in message, message
