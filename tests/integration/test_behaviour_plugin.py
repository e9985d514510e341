"""Behavioural claims end to end through pytester, on the constructed known-circuit model.

Known answers from the construction (icltest/testing/known_circuit.py): lm_head reads only the
block L1H0 writes, so zero-ablating L1H0 makes every logit 0 and the loss exactly ln(64); heads
with zero weights (and L0H1, whose OV is zero) write nothing, so ablating them changes nothing;
L0H0 feeds L1H0's keys, so ablating it breaks copying too.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from icltest.scores.control import draw_random_heads

PROBE = "{kind: repeated_random, length: 20, repeats: 2, batch: 8, seed: 3}"
LN_V = math.log(64)


def _spec(model_dir: Path, claims: str) -> str:
    return f"schema_version: 1\nmodel: {{path: '{model_dir}'}}\ndefaults:\n  probe: {PROBE}\nclaims:\n{claims}"


def _run(pytester: pytest.Pytester, text: str, *args: str) -> tuple[pytest.RunResult, dict]:
    pytester.makefile(".yaml", icl_behaviour=text)
    result = pytester.runpytest("--icl-json", "out.json", "-p", "no:cacheprovider", *args)
    report = json.loads((pytester.path / "out.json").read_text())
    return result, {c["id"]: c for c in report["claims"]} | {"_summary": report["summary"]}


ABLATE_INDUCTION = """\
  - id: induction-necessary
    kind: ablation
    heads: [1.0]
    metric: {name: repeated_token_loss, part: second_half}
    expect: {increase: ">= 3.5"}
    control: {random_heads: same_count, draws: 6, seed: 4, expect: {mean: "<= 10"}}
  - id: induction-mean
    kind: ablation
    heads: [1.0]
    method: mean
    metric: {name: repeated_token_loss, part: second_half}
    expect: {increase: ">= 1.0"}
  - id: zero-heads-do-nothing
    kind: ablation
    heads: [0.2, 0.3, 1.1, 1.2, 1.3, 0.1]
    metric: {name: repeated_token_loss, part: second_half}
    expect: {increase: "<= 0.000001"}
  - id: copying
    kind: icl_score
    expect: "<= -2"
"""


def test_ablation_claims_match_the_construction(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    result, claims = _run(pytester, _spec(circuit_dir, ABLATE_INDUCTION))
    result.assert_outcomes(passed=4)
    main = claims["induction-necessary"]["details"]
    # The second copy is copied perfectly except its first token (nothing predicts a segment's start):
    # 1 of 20 positions at about ln(64), the rest near 0.
    assert main["clean"] < 0.3
    assert main["ablated"] == pytest.approx(LN_V, abs=1e-3)  # all logits 0 -> uniform over 64 tokens
    # Each random draw of one head (never L1H0) has effect 0, except L0H0 which breaks the keys.
    draws = draw_random_heads(2, 4, 1, exclude=[(1, 0)], draws=6, seed=4)
    for draw, got in zip(draws, main["control"]["draws"]):
        assert got["heads"] == [f"L{l}H{h}" for l, h in draw]
        if draw == [(0, 0)]:
            assert got["effect"] > 1.0
        else:
            assert got["effect"] == pytest.approx(0.0, abs=1e-5)
    assert claims["zero-heads-do-nothing"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert claims["induction-mean"]["details"]["reference_seed"] == 4  # probe seed 3 + 1
    assert claims["copying"]["value"] < -2


def test_ablation_failure_shows_control_and_replay(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    claim = ("  - id: too-strong\n    kind: ablation\n    heads: [1.0]\n"
             "    metric: {name: repeated_token_loss}\n    expect: {increase: '>= 100'}\n"
             "    control: {draws: 2, expect: {effect_ratio: '>= 2'}}\n")
    result, claims = _run(pytester, _spec(circuit_dir, claim))
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "claim 'too-strong' (ablation) failed for L1H0" in out
    assert "zero-ablate heads L1H0: repeated_token_loss" in out and "expected >= 100" in out
    assert "2 random draws of 1 heads" in out
    assert "replay:   pytest 'icl_behaviour.yaml::too-strong[L1H0]'" in out
    assert claims["too-strong"]["passed"] is False


def test_claims_sharing_a_metric_share_the_clean_run(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    two = ("  - id: a\n    kind: ablation\n    heads: [1.0]\n    metric: {name: repeated_token_loss}\n"
           "    expect: {increase: '>= 1'}\n"
           "  - id: b\n    kind: ablation\n    heads: [0.0]\n    metric: {name: repeated_token_loss}\n"
           "    expect: {increase: '>= 0.5'}\n")
    result, claims = _run(pytester, _spec(circuit_dir, two))
    result.assert_outcomes(passed=2)
    assert claims["_summary"]["forward_passes"] == 3  # one clean run + one per ablation, not 4


def test_block_ablation_of_layer1_attention(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    claim = ("  - id: attn1\n    kind: ablation\n    block: {layers: [1], part: attn}\n"
             "    metric: {name: repeated_token_loss}\n    expect: {increase: '>= 3.5'}\n")
    result, claims = _run(pytester, _spec(circuit_dir, claim))
    result.assert_outcomes(passed=1)
    assert claims["attn1"]["details"]["ablated"] == pytest.approx(LN_V, abs=1e-3)
    assert claims["attn1"]["target"] == "attn-layers1"
