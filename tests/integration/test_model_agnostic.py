"""Model-agnostic specs: a spec without `model:` runs on --icl-model; neither is one located error."""
from __future__ import annotations

from pathlib import Path

import pytest

SPEC = """\
schema_version: 1
defaults:
  probe: {kind: repeated_random, length: 20, repeats: 2, batch: 8, seed: 3}
claims:
  - id: an-induction-head
    kind: head_score
    score: induction
    heads: {top: 1, by: induction}
    expect: ">= 0.9"
  - id: no-strong-head-elsewhere
    kind: head_score
    score: induction
    heads: {layers: "0"}
    expect: ">= 0.9"
"""


def test_spec_without_model_runs_on_icl_model(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    pytester.makefile(".yaml", agnostic=SPEC)  # not a conventional spec name (icl_spec_paths): named explicitly
    result = pytester.runpytest("agnostic.yaml", "-p", "no:cacheprovider", "--icl-model", str(circuit_dir), "-q")
    # the constructed model's L1H0 is an induction head and layer 0 has none (by construction)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["PASS*an-induction-head[[]top1[]]*", "FAIL*no-strong-head-elsewhere[[]layers0[]]*"])


def test_spec_without_model_and_no_icl_model_is_one_located_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", agnostic=SPEC)
    result = pytester.runpytest("agnostic.yaml", "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert "agnostic.yaml:1:1: model: this spec names no model: and no --icl-model was given" in out
    assert "Traceback" not in out
    assert result.ret != 0


def test_shipped_specs_have_no_model_and_validate() -> None:
    from icltest.schema import load_spec

    root = Path(__file__).resolve().parents[2] / "specs"
    files = sorted(root.glob("*.yaml"))
    assert files
    for path in files:
        loaded = load_spec(path)
        assert loaded.spec.model is None, path
