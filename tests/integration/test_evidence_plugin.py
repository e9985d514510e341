"""Minimum evidence and determinism, through pytester on constructed models.

A property claim passes only on enough valid (non-rejected) examples, and counts generated
examples apart from shrink steps; the same spec run twice with the same seed reports the same
values. Known answers come from the construction (icltest/testing/known_circuit.py): with a
vocabulary of 4 (BOS + 3 tokens) a 2-token segment repeated twice can be one of 3 x 2 = 6
sequences, and a 1-token segment has no later-copy token to score (rejected); L1H1 attends
uniformly, so an induction score >= 0.5 fails on every input and shrinks.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

STRATEGY = "{kind: repeated_random, length: [2, 20], repeats: 2}"


def _spec(model_dir: Path, claims: str, probe: str = "") -> str:
    defaults = f"defaults:\n  probe: {probe}\n" if probe else ""
    return f"schema_version: 1\nmodel: {{path: '{model_dir}'}}\n{defaults}claims:\n{claims}"


@pytest.fixture(scope="module")
def tiny_vocab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from icltest.testing import build_known_circuit

    return build_known_circuit(vocab_size=4).save(tmp_path_factory.mktemp("tiny-vocab"))


def _run(pytester: pytest.Pytester, text: str, out: str = "out.json", *args: str) -> tuple[pytest.RunResult, dict]:
    pytester.makefile(".yaml", icl_evidence=text)
    # An explicit profile (scale 1): a profile loaded by an earlier in-process run would otherwise persist.
    result = pytester.runpytest("--icl-json", out, "-p", "no:cacheprovider", "--hypothesis-profile", "icltest-dev", *args)
    return result, json.loads((pytester.path / out).read_text())


def test_a_property_needs_enough_valid_examples(pytester: pytest.Pytester, tiny_vocab_dir: Path) -> None:
    claim = ("  - id: few-valid\n    kind: property\n    strategy: {kind: repeated_random, length: [1, 2], repeats: 2}\n"
             "    check: {metric: second_copy_top1, per_sequence: '>= 0.5'}\n    examples: 40\n")
    result, report = _run(pytester, _spec(tiny_vocab_dir, claim))
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    found = re.search(r"only (\d+) valid examples \(minimum 10\)", out)  # default: max(5, 40 // 4)
    assert found and int(found.group(1)) <= 6, out  # at most the 6 scorable sequences that exist
    details = report["claims"][0]["details"]
    assert details["examples_valid"] == int(found.group(1)) and details["min_examples"] == 10
    assert details["examples_run"] == details["examples_valid"] + details["examples_rejected"]


def test_all_inputs_rejected_is_a_clear_failure_not_a_traceback(pytester: pytest.Pytester,
                                                                 tiny_vocab_dir: Path) -> None:
    claim = ("  - id: none-valid\n    kind: property\n    strategy: {kind: repeated_random, length: [1, 1], repeats: 2}\n"
             "    check: {metric: second_copy_top1, per_sequence: '>= 0.5'}\n    examples: 8\n")
    result, report = _run(pytester, _spec(tiny_vocab_dir, claim))
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "only 0 valid examples (minimum 5)" in out
    assert "Traceback" not in out and "Unsatisfiable" not in out
    assert report["claims"][0]["value"] is None and report["nonfinite"] == {"/claims/0/value": "nan"}


def test_explicit_min_examples(pytester: pytest.Pytester, tiny_vocab_dir: Path) -> None:
    claim = ("  - id: few-valid\n    kind: property\n    strategy: {kind: repeated_random, length: [1, 2], repeats: 2}\n"
             "    check: {metric: second_copy_top1, per_sequence: '>= 0.5'}\n    examples: 40\n    min_examples: 3\n")
    result, report = _run(pytester, _spec(tiny_vocab_dir, claim))
    result.assert_outcomes(passed=1)
    assert report["claims"][0]["details"]["min_examples"] == 3
    over = claim.replace("min_examples: 3", "min_examples: 41")
    pytester.makefile(".yaml", icl_evidence=_spec(tiny_vocab_dir, over))
    bad = pytester.runpytest("-p", "no:cacheprovider")
    assert "min_examples (41) is more than the budget (examples: 40)" in bad.stdout.str() and bad.ret != 0


def test_examples_run_counts_generated_examples_not_shrink_steps(pytester: pytest.Pytester,
                                                                  circuit_dir: Path) -> None:
    claim = (f"  - id: uniform\n    kind: property\n    strategy: {STRATEGY}\n"
             "    check: {score: induction, head: 1.1, per_sequence: '>= 0.5'}\n    examples: 5\n")
    result, report = _run(pytester, _spec(circuit_dir, claim))
    result.assert_outcomes(failed=1)
    details = report["claims"][0]["details"]
    # Every input has an induction target (nothing rejected) and the first one already fails.
    assert details["examples_budget"] == 5 and 1 <= details["examples_run"] <= 5
    assert details["examples_rejected"] == 0 and details["shrink_steps"] >= 1
    assert details["counterexample"]["length"] <= 6
    assert f"after {details['examples_run']} examples and {details['shrink_steps']} shrink steps" in result.stdout.str()


DETERMINISTIC = """\
  - id: induction
    kind: head_score
    score: induction
    heads: {layers: "0-1"}
    expect: ">= 0"
  - id: necessary
    kind: ablation
    heads: [1.0]
    metric: {name: repeated_token_loss, part: second_half}
    expect: {increase: ">= 1"}
    control: {expect: {p: "<= 0.05"}}
  - id: resampled
    kind: ablation
    heads: [0.0, 1.0]
    method: resample
    metric: {name: repeated_token_loss}
    expect: {increase: ">= 0"}
  - id: copying
    kind: icl_score
    expect: "<= 0"
  - id: copies-any-repeat
    kind: property
    strategy: {kind: repeated_random, length: [2, 12], repeats: 2}
    check: {score: induction, head: 1.0, per_sequence: ">= 0.9"}
    examples: 10
  - id: uniform-shrinks
    kind: property
    strategy: {kind: repeated_random, length: [2, 12], repeats: 2}
    check: {score: induction, head: 1.1, per_sequence: ">= 0.5"}
    examples: 10
"""
TIMINGS = {"seconds", "forward_seconds", "seconds_per_forward", "load_seconds", "time"}


def _without_timings(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k not in TIMINGS}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    if isinstance(obj, str):  # summaries quote the time per forward pass
        return re.sub(r"[0-9.e-]+ s each", "T s each", obj)
    return obj


def test_the_same_spec_and_seed_give_identical_values(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    text = _spec(circuit_dir, DETERMINISTIC, probe="{kind: repeated_random, length: 16, repeats: 2, batch: 4, seed: 5}")
    first, a = _run(pytester, text, "a.json", "--icl-seed", "3")
    second, b = _run(pytester, text, "b.json", "--icl-seed", "3")
    first.assert_outcomes(passed=5, failed=1)
    second.assert_outcomes(passed=5, failed=1)
    assert a["env"]["session_seed"] == b["env"]["session_seed"] == 3
    for x, y in zip(_without_timings(a["claims"]), _without_timings(b["claims"]), strict=True):
        assert x == y, x["id"]
    assert a["nonfinite"] == b["nonfinite"]
