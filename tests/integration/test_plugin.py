"""The plugin end to end through pytester, on the constructed known-circuit model.

By construction L0H0 is a previous-token head, L0H1 a duplicate-token head and L1H0 an
induction head; every other head has zero weights (uniform attention). The expected verdicts
below follow from that construction, not from running icltest.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

PROBE = "{kind: repeated_random, length: 20, repeats: 2, batch: 8, seed: 3}"


def _spec(model_dir: Path, claims: str) -> str:
    return f"schema_version: 1\nmodel: {{path: '{model_dir}'}}\ndefaults:\n  probe: {PROBE}\nclaims:\n{claims}"


GOOD_CLAIMS = """\
  - id: induction
    kind: head_score
    score: induction
    heads: [1.0, 1.1]
    expect: ">= 0.9"
    marks: [induction]
  - id: prev
    kind: head_score
    score: previous_token
    heads: [0.0]
    expect: ">= 0.9"
  - id: no-layer0-induction
    kind: head_score
    score: induction
    heads: {layers: "0"}
    expect: "< 0.3"
  - id: top-induction
    kind: head_rank
    score: induction
    head: 1.0
    expect: {rank: "<= 1"}
"""


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_collection_ids_and_marks(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    pytester.makefile(".yaml", icl_circuit=_spec(circuit_dir, GOOD_CLAIMS))
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    ids = [line for line in result.outlines if "::" in line]
    assert ids == [
        "icl_circuit.yaml::induction[L1H0]",
        "icl_circuit.yaml::induction[L1H1]",
        "icl_circuit.yaml::prev[L0H0]",
        "icl_circuit.yaml::no-layer0-induction[layers0]",
        "icl_circuit.yaml::top-induction[L1H0]",
    ]
    marked = pytester.runpytest("--collect-only", "-q", "-m", "induction", "-p", "no:cacheprovider")
    assert [l for l in marked.outlines if "::" in l] == ids[:2]


def test_run_failure_text_and_json_report(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    text = _spec(circuit_dir, GOOD_CLAIMS)
    pytester.makefile(".yaml", icl_circuit=text)
    result = pytester.runpytest("--icl-json", "out.json", "--icl-markdown", "out.md", "-p", "no:cacheprovider")
    # L1H1 has zero weights -> uniform attention -> far below 0.9: exactly one failure.
    result.assert_outcomes(passed=4, failed=1)
    out = result.stdout.str()
    claim_line = _line_of(text, "- id: induction")
    assert "claim 'induction' (head_score) failed for L1H1" in out
    assert "expected: >= 0.9" in out
    assert "probe:    repeated_random(length=20, repeats=2, batch=8, seed=3" in out
    assert f"spec:     icl_circuit.yaml:{claim_line}:" in out
    assert "replay:   pytest 'icl_circuit.yaml::induction[L1H1]'" in out

    report = json.loads((pytester.path / "out.json").read_text())
    by_item = {f"{c['id']}[{c['target']}]": c for c in report["claims"]}
    assert set(by_item) == {"induction[L1H0]", "induction[L1H1]", "prev[L0H0]",
                            "no-layer0-induction[layers0]", "top-induction[L1H0]"}
    assert by_item["induction[L1H0]"]["passed"] and by_item["induction[L1H0]"]["value"] >= 0.95
    assert not by_item["induction[L1H1]"]["passed"] and by_item["induction[L1H1]"]["value"] < 0.3
    assert by_item["top-induction[L1H0]"]["value"] == 1.0
    assert by_item["prev[L0H0]"]["spec"].startswith(f"icl_circuit.yaml:{_line_of(text, '- id: prev')}:")
    assert report["summary"] == {"claims": 5, "passed": 4, "failed": 1, "xfailed": 0, "spec_errors": 0,
                                 "forward_passes": 1}
    env = report["env"]
    assert env["torch"] and env["transformers"] and env["python"]
    model = by_item["prev[L0H0]"]["model"]
    assert model["revision"].startswith("local-sha256:") and model["dtype"] == "float32"
    assert by_item["prev[L0H0]"]["seed"] == 3
    md = (pytester.path / "out.md").read_text()
    assert "**4/5 claims passed**, 1 failed" in md and "❌ | `induction[L1H1]`" in md


def test_keyword_selection_runs_one_item(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    pytester.makefile(".yaml", icl_circuit=_spec(circuit_dir, GOOD_CLAIMS))
    result = pytester.runpytest("-k", "induction and L1H0 and not top", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_bad_spec_is_a_collection_error_for_that_file_only(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    pytester.makefile(".yaml", icl_good=_spec(circuit_dir, GOOD_CLAIMS.split("  - id: prev")[0]))
    bad = _spec(circuit_dir, "  - id: typo\n    kind: head_score\n    score: induction\n    heads: [1.0]\n    expct: '>= 0.5'\n")
    pytester.makefile(".yaml", icl_bad=bad)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    out = result.stdout.str()
    line = _line_of(bad, "expct")
    assert re.search(rf"icl_bad\.yaml:{line}:5: .*expct", out), out
    assert "did you mean 'expect'" in out
    assert result.ret == 1


def test_head_out_of_range_points_at_spec_line(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    text = _spec(circuit_dir, "  - id: far\n    kind: head_score\n    score: induction\n    heads: [7.0]\n    expect: '>= 0.5'\n")
    pytester.makefile(".yaml", icl_range=text)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)  # read from the model's config.json at collection: no forward pass
    out = result.stdout.str()
    assert f"icl_range.yaml:{_line_of(text, '[7.0]')}:" in out
    assert "L7H0 is out of range for this model (2 layers x 4 query heads" in out


def test_claims_sharing_a_probe_share_one_forward_pass(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    other_probe = GOOD_CLAIMS + (
        "  - id: other-probe\n    kind: head_score\n    score: induction\n    heads: [1.0]\n"
        "    expect: '>= 0.9'\n    probe: {kind: repeated_random, length: 10, repeats: 3, batch: 4, seed: 1}\n"
    )
    pytester.makefile(".yaml", icl_circuit=_spec(circuit_dir, other_probe))
    pytester.runpytest("--icl-json", "out.json", "-p", "no:cacheprovider")
    report = json.loads((pytester.path / "out.json").read_text())
    assert report["summary"]["claims"] == 6
    assert report["summary"]["forward_passes"] == 2  # five claims on one probe, one on another


def test_hub_id_code_path_loads_through_a_local_folder(circuit_dir: Path) -> None:
    """`model: {id: ...}` goes through from_pretrained exactly as a hub id would (no hub here)."""
    from icltest.models.loading import ModelSource, load_model

    loaded = load_model(ModelSource(id=str(circuit_dir)))
    assert loaded.info["revision"] == "unknown" and loaded.adapter.n_heads == 4
    assert loaded.model.config._attn_implementation == "eager"  # attention probabilities available
