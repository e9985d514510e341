"""Under pytest-xdist, collection happens in the workers, but the controller writes the reports: a
spec file that failed to collect in a worker must still be listed in its JSON and Markdown, and
the merged JSON must equal the serial run's (timings aside)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("xdist")

GOOD = """\
  - id: induction
    kind: head_score
    score: induction
    heads: [1.0, 1.1]
    expect: ">= 0.9"
  - id: top
    kind: head_rank
    score: induction
    head: 1.0
    expect: {rank: "<= 1"}
"""
BAD = "  - id: typo\n    kind: head_score\n    score: induction\n    heads: [1.0]\n    expct: '>= 0.5'\n"


def _spec(model_dir: Path, claims: str) -> str:
    return (f"schema_version: 1\nmodel: {{path: '{model_dir}'}}\ndefaults:\n"
            f"  probe: {{kind: repeated_random, length: 20, repeats: 2, batch: 8, seed: 3}}\nclaims:\n{claims}")


def _untimed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _merged(path: Path) -> tuple[list, list, dict]:
    report = json.loads(path.read_text())
    claims = sorted((_untimed(c) for c in report["claims"]), key=lambda c: c["item"])
    summary = {k: v for k, v in report["summary"].items() if k != "forward_passes"}  # per worker under xdist
    return claims, report["spec_errors"], summary


def test_spec_errors_reach_the_controllers_reports(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    bad = _spec(circuit_dir, BAD)
    pytester.makefile(".yaml", icl_good=_spec(circuit_dir, GOOD), icl_bad=bad)
    common = ("-p", "no:cacheprovider")
    serial = pytester.runpytest(*common, "--icl-json", "serial.json", "--icl-markdown", "serial.md")
    serial.assert_outcomes(passed=2, failed=1, errors=1)
    parallel = pytester.runpytest(*common, "-n", "2", "--icl-json", "xdist.json", "--icl-markdown", "xdist.md")
    parallel.assert_outcomes(passed=2, failed=1, errors=1)

    claims, spec_errors, summary = _merged(pytester.path / "serial.json")
    assert len(claims) == 3 and summary["spec_errors"] == 1
    (error,) = spec_errors
    line = next(i for i, text in enumerate(bad.splitlines(), 1) if "expct" in text)
    assert error["file"] == "icl_bad.yaml"
    assert f"icl_bad.yaml:{line}:5: claims[0].expct: unknown key 'expct' (did you mean 'expect'?)" in error["error"]
    assert _merged(pytester.path / "xdist.json") == (claims, spec_errors, summary)
    for name in ("serial.md", "xdist.md"):
        markdown = (pytester.path / name).read_text()
        assert "1 spec file(s) with errors" in markdown and "- `icl_bad.yaml`" in markdown, markdown
        assert f"icl_bad.yaml:{line}:5: claims[0].expct: unknown key" in markdown, markdown
