"""A claim kind declared outside icltest, through a real ``icltest.claim_kinds`` entry point.

The kind lives in a module written into the pytester folder, and a ``*.dist-info`` folder next to
it declares the entry point, exactly as an installed package would. The expected numbers follow
from the constructed model (icltest/testing/known_circuit.py: 2 layers x 4 heads), not from
running the kind.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

KIND_MODULE = '''
"""An outside claim kind: the model has a number of attention heads."""
from __future__ import annotations

from typing import Literal

from icltest.claims.base import Measurement, Target, Verdict
from icltest.schema import ClaimBase, Expectation


class Schema(ClaimBase):
    """The number of attention heads, in total or per layer."""

    kind: Literal["head_count"]
    per_layer: bool = False
    explode: bool = False
    expect: Expectation


def targets(claim):
    return [Target("per-layer" if claim.per_layer else "total")]


def measure(claim, target, ctx):
    if claim.explode:
        raise ValueError("a bug inside the head_count kind")
    adapter = ctx.loaded.adapter
    count = adapter.n_heads if claim.per_layer else adapter.n_heads * adapter.n_layers
    return Measurement(float(count), "heads", {"layers": adapter.n_layers})


def judge(claim, target, m):
    passed = claim.expect.check(m.value)
    return Verdict(passed, str(claim.expect), f"head_count judged {int(m.value)} heads (expected {claim.expect})", m)
'''


@pytest.fixture
def outside_kind(pytester: pytest.Pytester) -> Path:
    """Install the ``head_count`` kind the way a package does: a module plus a dist-info entry point."""
    pytester.makepyfile(icl_headcount=KIND_MODULE)
    dist = pytester.path / "icl_headcount-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: icl-headcount\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[icltest.claim_kinds]\nhead_count = icl_headcount\n")
    pytester.syspathinsert()  # removed again when the test ends
    return pytester.path


def _spec(model_dir: Path, claims: str) -> str:
    return f"schema_version: 1\nmodel: {{path: '{model_dir}'}}\nclaims:\n{claims}"


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


COUNT_CLAIMS = """\
  - id: total
    kind: head_count
    expect: "== 8"
  - id: per-layer
    kind: head_count
    per_layer: true
    expect: "> 4"
"""


def test_outside_kind_is_registered_through_its_entry_point(outside_kind: Path) -> None:
    from icltest.claims import claim_module, known_kinds

    assert "head_count" in known_kinds()
    assert claim_module("head_count").__name__ == "icl_headcount"


def test_outside_kind_is_collected_run_and_judged_by_its_own_judge(
        pytester: pytest.Pytester, outside_kind: Path, circuit_dir: Path) -> None:
    text = _spec(circuit_dir, COUNT_CLAIMS)
    pytester.makefile(".yaml", icl_count=text)
    collected = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    assert [l for l in collected.outlines if "::" in l] == ["icl_count.yaml::total[total]",
                                                           "icl_count.yaml::per-layer[per-layer]"]
    result = pytester.runpytest("--icl-json", "out.json", "-p", "no:cacheprovider")
    # 2 layers x 4 heads: 8 in total (== 8 holds); 4 per layer (> 4 does not).
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "claim 'per-layer' (head_count) failed for per-layer" in out
    assert "head_count judged 4 heads (expected > 4)" in out
    assert f"spec:     icl_count.yaml:{_line_of(text, '- id: per-layer')}:" in out
    records = {c["id"]: c for c in json.loads((pytester.path / "out.json").read_text())["claims"]}
    assert records["total"]["value"] == 8.0 and records["total"]["passed"]
    assert records["per-layer"]["value"] == 4.0 and not records["per-layer"]["passed"]


def test_outside_kind_errors_are_located(pytester: pytest.Pytester, outside_kind: Path, circuit_dir: Path) -> None:
    bad_key = _spec(circuit_dir, "  - id: typo\n    kind: head_count\n    per_layr: true\n    expect: '== 8'\n")
    bad_kind = _spec(circuit_dir, "  - id: typo\n    kind: head_cont\n    expect: '== 8'\n")
    pytester.makefile(".yaml", icl_badkey=bad_key, icl_badkind=bad_kind)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    out = result.stdout.str()
    assert re.search(rf"icl_badkey\.yaml:{_line_of(bad_key, 'per_layr')}:5: claims\[0\]\.per_layr: "
                     r"unknown key 'per_layr' \(did you mean 'per_layer'\?\)", out), out
    assert re.search(rf"icl_badkind\.yaml:{_line_of(bad_kind, 'head_cont')}:11: .*unknown claim kind 'head_cont' "
                     r"\(did you mean 'head_count'\?\)", out), out
    assert ("head_score, head_rank, ablation, icl_score, task_accuracy, property, head_attention, "
            "logit_attribution, head_attribution, source_tracking, function_vector, steering, circuit, "
            "implicit_update, head_count") in out


def test_outside_kind_is_in_the_json_schema(outside_kind: Path, tmp_path: Path) -> None:
    from icltest.schema.jsonschema import SCHEMA_PATH, main

    target = tmp_path / "mine.schema.json"
    assert main(["--output", str(target)]) == 0
    schema = json.loads(target.read_text())
    mapping = schema["properties"]["claims"]["items"]["discriminator"]["mapping"]
    assert set(mapping) == {"head_score", "head_rank", "ablation", "icl_score", "task_accuracy", "property",
                            "head_attention", "logit_attribution", "head_attribution", "source_tracking", "function_vector",
                            "steering", "circuit", "implicit_update", "head_count"}
    definition = schema["$defs"][mapping["head_count"].rsplit("/", 1)[-1]]
    assert set(definition["properties"]) >= {"id", "kind", "per_layer", "expect", "marks", "probe"}
    assert definition["additionalProperties"] is False
    shipped = json.loads(SCHEMA_PATH.read_text())  # the shipped file documents the built-ins only
    assert "head_count" not in shipped["properties"]["claims"]["items"]["discriminator"]["mapping"]


def test_a_bug_in_a_kind_is_a_traceback_not_a_user_error(
        pytester: pytest.Pytester, outside_kind: Path, circuit_dir: Path) -> None:
    text = _spec(circuit_dir, "  - id: boom\n    kind: head_count\n    explode: true\n    expect: '== 8'\n")
    pytester.makefile(".yaml", icl_boom=text)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert re.search(r"^E\s+ValueError: a bug inside the head_count kind$", out, re.M), out
    assert 'raise ValueError("a bug inside the head_count kind")' in out  # the source line: a real traceback


def test_a_broken_entry_point_names_its_package(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    dist = pytester.path / "icl_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: icl-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[icltest.claim_kinds]\nbroken = icl_module_that_is_not_there\n")
    pytester.syspathinsert()
    pytester.makefile(".yaml", icl_any=_spec(circuit_dir, "  - id: a\n    kind: head_rank\n    score: induction\n"
                                                          "    head: 1.0\n    expect: {rank: '<= 1'}\n"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert ("ClaimKindError: claim kind 'broken' (entry point broken = icl_module_that_is_not_there (icl-broken)) "
            "could not be loaded: ModuleNotFoundError") in out
    assert "Traceback" not in out and not re.search(r"^E\s", out, re.M), out
