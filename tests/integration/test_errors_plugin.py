"""User mistakes are short messages at the spec line (no traceback), through pytester.

The constructed model (icltest/testing/known_circuit.py) has a 64-token vocabulary with BOS = 0,
so 63 drawable tokens: the numbers in the expected messages follow from that.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest


def _spec(model_dir: Path, claims: str) -> str:
    return f"schema_version: 1\nmodel: {{path: '{model_dir}'}}\nclaims:\n{claims}"


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _run(pytester: pytest.Pytester, text: str) -> str:
    pytester.makefile(".yaml", icl_err=text)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    return result.stdout.str()


def _no_traceback(out: str) -> None:
    assert "Traceback" not in out and not re.search(r"^E\s", out, re.M), out
    assert "icltest/probes" not in out and "icltest/strategies" not in out, out


def test_probe_longer_than_the_vocabulary_is_a_spec_error(pytester: pytest.Pytester, circuit_dir: Path,
                                                          tmp_path: Path) -> None:
    from icltest.testing import build_known_circuit

    # A 16-token vocabulary (15 drawable): a probe past it still fits the 64 positions, which are
    # checked first, at collection. (circuit_dir imports torch before pytester snapshots sys.modules.)
    small_vocab = build_known_circuit(vocab_size=16).save(tmp_path / "small-vocab")
    text = _spec(small_vocab, "  - id: long\n    kind: head_score\n    score: induction\n    heads: [1.0]\n"
                              "    expect: '>= 0.5'\n    probe: {kind: repeated_random, length: 20, batch: 2}\n")
    out = _run(pytester, text)
    assert f"ClaimSpecError: icl_err.yaml:{_line_of(text, 'probe:')}:12: probe: probe length 20 exceeds the 15 drawable tokens" in out
    assert f"spec: icl_err.yaml:{_line_of(text, '- id: long')}:5" in out
    assert "replay: pytest 'icl_err.yaml::long[L1H0]'" in out
    _no_traceback(out)


def test_reference_shots_the_task_cannot_serve_point_at_the_reference(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    pytester.makefile(".yaml", tiny_task='name: tiny\npairs:\n  - {input: "a", output: "b"}\n'
                                         '  - {input: "c", output: "d"}\n  - {input: "e", output: "f"}\n')
    text = _spec(circuit_dir, "  - id: gain\n    kind: task_accuracy\n    task: tiny_task.yaml\n    shots: 1\n    n: 4\n"
                              "    split: select\n    expect: '>= 0'\n    reference: {shots: 5, expect: {gain: '>= 0'}}\n")
    out = _run(pytester, text)
    # The select split holds 2 of the 3 pairs (c, e): a query can have at most 1 demonstration, so the
    # 1-shot run works and the 5-shot reference cannot.
    assert (f"ClaimSpecError: icl_err.yaml:{_line_of(text, 'reference:')}:24: reference.shots: shots must be an int "
            "in [0, 1] for task 'tiny' (split select: 2 of 3 items)") in out
    _no_traceback(out)


def test_pinned_ids_outside_the_vocabulary_are_a_spec_error(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    text = _spec(circuit_dir, "  - id: pinned\n    kind: property\n"
                              "    strategy: {kind: repeated_random, length: [2, 5], repeats: 2}\n"
                              "    check: {score: induction, head: 1.0, per_sequence: '>= 0.9'}\n    examples: 2\n"
                              "    examples_pinned: [{ids: [0, 5, 70, 5, 70], segment: 2, repeats: 2}]\n")
    out = _run(pytester, text)
    line = _line_of(text, "examples_pinned")
    assert (f"ClaimSpecError: icl_err.yaml:{line}:23: examples_pinned[0]: token ids [70, 70] are not in this "
            "model's vocabulary (64 tokens)") in out
    _no_traceback(out)


def test_icl_score_position_beyond_the_probe_points_at_late(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    text = _spec(circuit_dir, "  - id: far\n    kind: icl_score\n    late: 90\n    expect: '<= 0'\n"
                              "    probe: {kind: repeated_random, length: 10, repeats: 2, batch: 2}\n")
    out = _run(pytester, text)
    # BOS + 10 tokens x 2 repeats = 21 tokens: the last predicted position is 20.
    assert (f"ClaimSpecError: icl_err.yaml:{_line_of(text, 'late: 90')}:11: late: icl_score needs token positions "
            "1 <= early < late <= 20 (the probe has 21 tokens") in out
    _no_traceback(out)


def test_answer_top1_pinned_example_without_answer_is_a_load_error(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    text = _spec(circuit_dir, "  - id: pinned\n    kind: property\n    strategy: {kind: few_shot, task: antonym}\n"
                              "    check: {metric: answer_top1, per_sequence: '>= 1'}\n"
                              "    examples_pinned: [[0, 5, 6]]\n")
    pytester.makefile(".yaml", icl_err=text)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert re.search(rf"icl_err\.yaml:{_line_of(text, '- id: pinned')}:5: claims\[0\]: answer_top1 checks the answer "
                     "token: every examples_pinned entry needs answer", result.stdout.str()), result.stdout.str()
