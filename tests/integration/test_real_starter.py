"""`icltest scan --write-spec` on the real SmolLM2-135M and Gemma 3 270M: the starter spec passes when run.

The command runs in this process, so it reuses the model the ``real_model`` fixture loaded (models
are shared per process); the written spec then runs through a nested ``pytest.main`` (not pytester:
its teardown drops modules first imported during the test, and torch's cannot be imported twice),
whose own session measures the claims again at the spec's seed. Cost per model: the scan's default
probe at 3 seeds, then once more for the run.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from icltest.cli import main


@pytest.mark.slow
@pytest.mark.parametrize("alias", ["smollm2-135m", "gemma3-270m"])
def test_starter_spec_for_a_real_model_passes(alias: str, real_model, tmp_path: Path, capsys) -> None:
    from icltest.schema import load_spec

    real_model(alias)  # skip (or fail under ICLTEST_REQUIRE_MODELS) without the weights; loads once
    start = time.perf_counter()
    spec = tmp_path / f"{alias}.yaml"
    assert main(["scan", "--model", alias, "--spec-seeds", "0,1,2", "--write-spec", str(spec), "--quiet"]) == 0
    written = time.perf_counter() - start
    assert f"wrote {spec}" in capsys.readouterr().out

    loaded = load_spec(spec)
    assert loaded.spec.model.alias == alias
    claims = loaded.spec.claims
    # both models have induction heads (Olsson et al.; the suites in suites/ name them): the spec keeps some
    assert any(c.kind == "head_score" and c.score == "induction" and isinstance(c.heads, list) for c in claims)
    assert any(c.kind == "head_rank" for c in claims)
    assert any(c.kind == "head_score" and str(c.expect).startswith("<") for c in claims)  # population claims

    report = tmp_path / "report.json"
    code = pytest.main([str(spec), "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                        "--icl-json", str(report)])
    results = json.loads(report.read_text())["claims"]
    failed = [r["id"] for r in results if not r["passed"]]
    assert code == 0 and len(results) == len(claims) and not failed, failed
    with capsys.disabled():
        print(f"\n{alias}: spec written in {written:.1f} s ({len(claims)} claims), run in "
              f"{time.perf_counter() - start - written:.1f} s")
