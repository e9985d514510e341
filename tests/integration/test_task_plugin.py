"""task_accuracy end to end through pytester on the constructed model: the shuffled-label reference,
the split and BOS in every result, and the spec errors a reference can cause.

The known-circuit tokenizer maps unknown words (the separator "->") to <bos> (id 0); the task file
uses its t-words, so every prompt tokenizes and the model answers by copying, as constructed.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

PAIRS = [{"input": f"t{i}", "output": f"t{i + 30}"} for i in range(1, 25)]


def _setup(pytester: pytest.Pytester, circuit_dir: Path, claims: str) -> str:
    pytester.makefile(".yaml", words=yaml.safe_dump({"name": "words", "pairs": PAIRS}))
    text = f"schema_version: 1\nmodel: {{path: '{circuit_dir}'}}\nclaims:\n{claims}"
    pytester.makefile(".yaml", icl_tasks=text)
    return text


def test_shuffled_label_reference_uses_the_same_demonstrations(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    _setup(pytester, circuit_dir, "  - id: labels-matter\n    kind: task_accuracy\n    task: words.yaml\n"
                                  "    shots: 3\n    n: 12\n    expect: '>= 0'\n"
                                  "    reference: {shots: 3, shuffled_labels: true, expect: {gain: '>= -1'}}\n")
    result = pytester.runpytest("--icl-json", "out.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    claim = json.loads((pytester.path / "out.json").read_text())["claims"][0]
    details, base = claim["details"], claim["details"]["reference"]
    assert base["shots"] == 3 and base["shuffled_labels"] is True
    assert base["gain"] == pytest.approx(claim["value"] - base["value"], abs=1e-4)
    assert "shuffled labels" in base["inputs"] and "shuffled labels" not in details["inputs"]
    assert details["split"] == "test" and details["bos"] == 0
    test_items = details["items"]
    assert 0 < test_items < len(PAIRS) and details["items_total"] == len(PAIRS)
    assert "split=test" in details["inputs"] and "bos=id 0" in details["inputs"]
    assert details["full_answer_items"] == 0


def test_shuffled_reference_shots_default_to_the_claims(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    _setup(pytester, circuit_dir, "  - id: labels-matter\n    kind: task_accuracy\n    task: words.yaml\n"
                                  "    shots: 4\n    n: 8\n    split: select\n    expect: '>= 0'\n"
                                  "    reference: {shuffled_labels: true, expect: {gain: '>= -1'}}\n")
    result = pytester.runpytest("--icl-json", "out.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    details = json.loads((pytester.path / "out.json").read_text())["claims"][0]["details"]
    assert details["reference"]["shots"] == 4 and details["split"] == "select"


@pytest.mark.parametrize("shots, reference, fragment", [
    (1, "{shuffled_labels: true, expect: {gain: '>= 0'}}", "shuffled_labels needs at least 2 shots to permute"),
    (3, "{shots: 2, shuffled_labels: true, expect: {gain: '>= 0'}}",
     "a shuffled-label reference uses the claim's own demonstrations: shots must be 3 (the claim's) or left out"),
])
def test_shuffled_reference_errors(pytester: pytest.Pytester, circuit_dir: Path, shots: int, reference: str,
                                  fragment: str) -> None:
    text = _setup(pytester, circuit_dir, "  - id: bad\n    kind: task_accuracy\n    task: words.yaml\n"
                                         f"    shots: {shots}\n    expect: '>= 0'\n    reference: {reference}\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    out = result.stdout.str()
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "reference:" in l)
    assert fragment in out and f"icl_tasks.yaml:{line}" in out, out
    assert "Traceback" not in out
