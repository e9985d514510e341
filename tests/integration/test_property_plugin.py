"""Property claims through pytester on the constructed known-circuit model.

By construction L1H0 attends from each token to the successor of its earlier copy, so with two
repeats of distinct tokens its per-sequence induction score is ~1 on every input; L1H1 has zero
weights, attends uniformly, and puts at most 1/3 of a query's attention on any one key of a
sequence with BOS and a repeat, so ">= 0.5" cannot hold and must shrink to a short input.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

STRATEGY = "{kind: repeated_random, length: [2, 20], repeats: 2}"


def _spec(model_dir: Path, claims: str) -> str:
    return f"schema_version: 1\nmodel: {{path: '{model_dir}'}}\nclaims:\n{claims}"


def _claim(cid: str, head: str, expect: str, examples: int = 15, extra: str = "") -> str:
    return (f"  - id: {cid}\n    kind: property\n    strategy: {STRATEGY}\n"
            f"    check: {{score: induction, head: {head}, per_sequence: '{expect}'}}\n"
            f"    examples: {examples}\n{extra}")


def test_property_that_holds_passes(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    pytester.makefile(".yaml", icl_prop=_spec(circuit_dir, _claim("copies", "1.0", ">= 0.9")))
    result = pytester.runpytest("--icl-json", "out.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    record = json.loads((pytester.path / "out.json").read_text())["claims"][0]
    assert record["value"] >= 0.9 and record["details"]["examples_run"] >= 5
    assert record["details"]["forward_calls"] <= record["details"]["examples_run"]  # cache by token ids


def test_property_that_cannot_hold_shrinks_and_replays(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    pytester.makefile(".yaml", icl_prop=_spec(circuit_dir, _claim("uniform", "1.1", ">= 0.5")))
    result = pytester.runpytest("--icl-json", "out.json", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    record = json.loads((pytester.path / "out.json").read_text())["claims"][0]
    example = record["details"]["counterexample"]
    # Smallest input with an induction target: BOS + 2 distinct tokens, repeated twice (5 tokens).
    assert example["length"] <= 6, example
    assert example["value"] < 0.5
    assert "minimal:  ids [" in out and "decoded:" in out and "pin it:   examples_pinned: [{ids: [" in out
    pinned = re.search(r"examples_pinned: \[(\{.*\})\]", out).group(1)
    # Replaying the pinned counterexample alone (one example budget) fails the same way.
    pytester.makefile(".yaml", icl_prop=_spec(circuit_dir, _claim(
        "uniform", "1.1", ">= 0.5", examples=1, extra=f"    examples_pinned: [{pinned}]\n")))
    again = pytester.runpytest("--icl-json", "out2.json", "-p", "no:cacheprovider")
    again.assert_outcomes(failed=1)
    replay = json.loads((pytester.path / "out2.json").read_text())["claims"][0]["details"]["counterexample"]
    assert replay["ids"] == example["ids"]


def test_seed_comes_from_session_seed_and_claim_id(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    from icltest.claims.property import claim_seed

    pytester.makefile(".yaml", icl_prop=_spec(circuit_dir, _claim("copies", "1.0", ">= 0.9", examples=3)))
    pytester.runpytest("--icl-json", "out.json", "--icl-seed", "7", "-p", "no:cacheprovider")
    record = json.loads((pytester.path / "out.json").read_text())["claims"][0]
    assert record["details"]["hypothesis_seed"] == claim_seed(7, "copies") != claim_seed(0, "copies")


def test_mean_check_does_not_shrink(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    claim = (f"  - id: uniform-mean\n    kind: property\n    strategy: {STRATEGY}\n"
             "    check: {score: induction, head: 1.1, mean: '>= 0.5', batch: 4}\n    examples: 3\n")
    pytester.makefile(".yaml", icl_prop=_spec(circuit_dir, claim))
    result = pytester.runpytest("--icl-json", "out.json", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    details = json.loads((pytester.path / "out.json").read_text())["claims"][0]["details"]
    assert details["shrinking"] is False and details["counterexample"]["batch"] == 4


def test_ci_profile_scales_the_budget(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    pytester.makefile(".yaml", icl_prop=_spec(circuit_dir, _claim("copies", "1.0", ">= 0.9", examples=10)))
    pytester.runpytest("--icl-json", "out.json", "--hypothesis-profile", "icltest-ci", "-p", "no:cacheprovider")
    details = json.loads((pytester.path / "out.json").read_text())["claims"][0]["details"]
    assert details["examples_budget"] == 5  # 10 x (50 / 100)


def test_xfail_mark_documents_a_known_failure(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    claim = _claim("uniform", "1.1", ">= 0.5", examples=5, extra="    marks: [xfail]\n")
    pytester.makefile(".yaml", icl_prop=_spec(circuit_dir, claim))
    result = pytester.runpytest("--icl-json", "out.json", "-p", "no:cacheprovider")
    result.assert_outcomes(xfailed=1)
    report = json.loads((pytester.path / "out.json").read_text())
    assert report["summary"]["failed"] == 0 and report["summary"]["xfailed"] == 1
    assert report["claims"][0]["details"]["counterexample"]["length"] <= 6


def test_icl_model_fixture_for_users_own_given_tests(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    pytester.makepyfile(test_mine='''
        from hypothesis import given, settings
        from icltest import strategies as icl

        def test_vocab_and_strategy(icl_model, icl_vocab):
            assert icl_model.adapter.n_heads == 4 and icl_vocab.bos_id == 0

            @settings(max_examples=5, deadline=None, database=None)
            @given(icl.repeated_segments(icl_vocab, length=(2, 5), repeats=2))
            def check(seq):
                assert seq.ids[0] == 0 and seq.ids[1:1 + seq.segment] == seq.ids[1 + seq.segment:]
            check()
    ''')
    result = pytester.runpytest("--icl-model", str(circuit_dir), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    skipped = pytester.runpytest("-p", "no:cacheprovider", "-rs")
    skipped.assert_outcomes(skipped=1)
    assert "--icl-model" in skipped.stdout.str()
