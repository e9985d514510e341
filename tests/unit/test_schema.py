"""Spec loading and validation: every error class names file:line:col, the key, and a fix.

Expected lines/columns are counted from the YAML texts below by hand (1-based), not taken from
the loader.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from icltest.schema import Comparison, SpecError, load_spec, parse_comparison

HEAD = "schema_version: 1\nmodel: smollm2-135m\nclaims:\n"
GOOD_CLAIM = "  - id: a\n    kind: head_score\n    score: induction\n    heads: [18.6]\n    expect: '>= 0.5'\n"


def _errors(tmp_path: Path, text: str, name: str = "s.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return str(info.value)


def _where(tmp_path: Path, name: str, line: int, col: int) -> str:
    return f"{tmp_path / name}:{line}:{col}"


def test_valid_spec_loads_with_all_head_forms(tmp_path: Path) -> None:
    text = HEAD + (
        "  - id: a\n    kind: head_score\n    score: induction\n    heads: [18.6, 18.10, 'L2H3', [4, 5], {layer: 6, head: 7}]\n"
        "    expect: '>= 0.5'\n"
        "  - id: b\n    kind: head_score\n    score: previous_token\n    heads: {layers: '0-2,7'}\n    expect: {between: [0, 0.3]}\n"
        "  - id: c\n    kind: head_score\n    score: induction\n    heads: {top: 3, by: prefix_matching}\n    expect: '> 0.1'\n"
        "  - id: d\n    kind: head_rank\n    score: duplicate_token\n    head: 8.0\n    expect: {rank: '<= 2'}\n"
    )
    (tmp_path / "s.yaml").write_text(text)
    spec = load_spec(tmp_path / "s.yaml").spec
    assert [(h.layer, h.head) for h in spec.claims[0].heads] == [(18, 6), (18, 10), (2, 3), (4, 5), (6, 7)]
    assert spec.claims[1].heads.layers == [0, 1, 2, 7]
    assert spec.claims[2].heads.top == 3 and spec.claims[2].heads.by == "prefix_matching"
    assert (spec.claims[3].head.layer, spec.claims[3].head.head) == (8, 0)
    assert spec.model.alias == "smollm2-135m"


def test_location_points_at_each_claim(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(HEAD + GOOD_CLAIM + GOOD_CLAIM.replace("id: a", "id: b"))
    loaded = load_spec(tmp_path / "s.yaml")
    assert loaded.location(("claims", 0)).endswith("s.yaml:4:5")
    assert loaded.location(("claims", 1)).endswith("s.yaml:9:5")
    assert loaded.location(("claims", 1, "heads", 0)).endswith("s.yaml:12:13")
    assert loaded.location(("claims", 1, "no-such-key")).endswith("s.yaml:9:5")  # falls back to the parent


def test_yaml_syntax_error(tmp_path: Path) -> None:
    out = _errors(tmp_path, HEAD + "  - id: a\n    heads: [1.0\n")
    assert "not valid YAML" in out and out.startswith(f"{tmp_path / 's.yaml'}:")


def test_unsafe_tag_is_refused(tmp_path: Path) -> None:
    out = _errors(tmp_path, "schema_version: 1\nmodel: !!python/object/apply:os.system ['true']\nclaims: []\n")
    assert _where(tmp_path, "s.yaml", 2, 8) in out and "not allowed" in out


# One row per error class: spec text, expected "line:col: key: message" (lines/cols counted by hand).
ERROR_CASES = {
    "duplicate_key": (HEAD + GOOD_CLAIM + "    expect: '>= 0.6'\n",
                      (9, 5), "claims[0].expect: duplicate key 'expect' (first given at line 8)"),
    "unknown_nested_key": (HEAD + GOOD_CLAIM + "    probe: {length: 20, bacth: 4}\n",
                           (9, 25), "claims[0].probe.bacth: unknown key 'bacth' (did you mean 'batch'?)"),
    "unknown_claim_kind": (HEAD + GOOD_CLAIM.replace("head_score", "head_scor"),
                           (5, 11), "claims[0].kind: unknown claim kind 'head_scor' (did you mean 'head_score'?)"),
    "wrong_type": (HEAD + GOOD_CLAIM + "    probe: {length: fifty}\n",
                   (9, 21), "claims[0].probe.length: Input should be a valid integer, unable to parse string as an integer (got 'fifty')"),
    "bad_score_name": (HEAD + GOOD_CLAIM.replace("score: induction", "score: inductoin"),
                       (6, 12), "claims[0].score: got 'inductoin' (did you mean 'induction'?)"),
    "missing_required_key": (HEAD + GOOD_CLAIM.replace("    expect: '>= 0.5'\n", ""),
                             (4, 5), "claims[0].expect: required key 'expect' is missing"),
    "bad_head_reference": (HEAD + GOOD_CLAIM.replace("[18.6]", "[18]"),
                           (7, 13), "claims[0].heads[0]: 18 names no head"),
    "duplicate_claim_id": (HEAD + GOOD_CLAIM + GOOD_CLAIM,
                           (9, 9), "claims[1].id: duplicate claim id 'a' (first used at line 4)"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_error_class_names_file_line_col_and_key(tmp_path: Path, case: str) -> None:
    text, (line, col), message = ERROR_CASES[case]
    out = _errors(tmp_path, text)
    assert f"{_where(tmp_path, 's.yaml', line, col)}: {message}" in out, out


def test_unknown_key_with_did_you_mean(tmp_path: Path) -> None:
    out = _errors(tmp_path, HEAD + GOOD_CLAIM.replace("expect:", "expct:"))
    assert f"{_where(tmp_path, 's.yaml', 8, 5)}: claims[0].expct: unknown key 'expct' (did you mean 'expect'?)" in out
    assert "required key 'expect'" not in out  # the guess already explains the missing key


@pytest.mark.parametrize(
    "expect, fragment",
    [("'>> 0.5'", "could not read comparison"), ("0.5", "a bare number"), ("{between: [0.6, 0.2]}", "low is greater"),
     ("'>= 0.5; import os'", "could not read comparison")],
)
def test_bad_expectation(tmp_path: Path, expect: str, fragment: str) -> None:
    out = _errors(tmp_path, HEAD + GOOD_CLAIM.replace("'>= 0.5'", expect))
    assert f"{_where(tmp_path, 's.yaml', 8, 13)}: claims[0].expect: " in out and fragment in out


def test_unknown_alias_and_remote_code_key(tmp_path: Path) -> None:
    out = _errors(tmp_path, "schema_version: 1\nmodel: smolm2-135m\nclaims:\n" + GOOD_CLAIM)
    assert f"{_where(tmp_path, 's.yaml', 2, 8)}: model: unknown model alias 'smolm2-135m' (did you mean 'smollm2-135m'?)" in out
    out = _errors(tmp_path, "schema_version: 1\nmodel: {id: gpt2, trust_remote_code: true}\nclaims:\n" + GOOD_CLAIM)
    assert "model.trust_remote_code: unknown key 'trust_remote_code'" in out


def test_every_problem_is_reported_in_file_order(tmp_path: Path) -> None:
    out = _errors(tmp_path, HEAD + GOOD_CLAIM.replace("score: induction", "score: x").replace("expect:", "expct:"))
    lines = out.splitlines()
    assert len(lines) == 2 and ":6:" in lines[0] and ":8:" in lines[1]


def test_relative_model_path_is_resolved_against_the_spec(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "s.yaml").write_text("schema_version: 1\nmodel: {path: ../weights}\nclaims:\n" + GOOD_CLAIM)
    spec = load_spec(tmp_path / "sub" / "s.yaml").spec
    assert Path(spec.model.path) == (tmp_path / "weights").resolve()


@pytest.mark.parametrize(
    "text, value, passed, margin",
    [(">= 0.6", 0.6, True, 0.0), (">= 0.6", 0.5, False, -0.1), ("< 0.3", 0.1, True, 0.2), ("> 1", 1.0, False, 0.0),
     ("<= -1.5", -2.0, True, 0.5), ("== 1", 1.0, True, 0.0), ("!= 0", 0.0, False, 0.0)],
)
def test_comparison_check_and_margin(text: str, value: float, passed: bool, margin: float) -> None:
    comparison = parse_comparison(text)
    assert comparison.check(value) is passed
    assert comparison.margin(value) == pytest.approx(margin)


def test_between_and_nan() -> None:
    between = parse_comparison({"between": [0.2, 0.6]})
    assert between == Comparison("between", 0.2, 0.6) and str(between) == "between 0.2 and 0.6"
    assert between.check(0.2) and between.check(0.6) and not between.check(0.61)
    assert between.margin(0.3) == pytest.approx(0.1)
    for comparison in (between, parse_comparison(">= 0"), parse_comparison("!= 1")):
        assert not comparison.check(math.nan) and comparison.margin(math.nan) == -math.inf


def test_schema_score_names_match_the_scores() -> None:
    from icltest.scores.patterns import SCORE_NAMES
    from icltest.schema.spec import SCORE_NAMES as SPEC_NAMES

    assert set(SPEC_NAMES) == set(SCORE_NAMES)


def test_published_json_schema_is_current() -> None:
    from icltest.schema.jsonschema import SCHEMA_PATH, render

    assert SCHEMA_PATH.read_text(encoding="utf-8") == render(), "run: python -m icltest.schema.jsonschema"
    schema = json.loads(SCHEMA_PATH.read_text())
    assert set(schema["properties"]) >= {"schema_version", "model", "claims"}
    kinds = schema["properties"]["claims"]["items"]["discriminator"]["mapping"]
    from icltest.claims import known_kinds

    assert sorted(kinds) == known_kinds()


@pytest.mark.parametrize("suite", sorted((Path(__file__).parents[2] / "suites").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_suites_validate(suite: Path) -> None:
    assert load_spec(suite).spec.claims


ABLATION = ("  - id: abl\n    kind: ablation\n    heads: [18.6]\n    metric: {name: recall, task: open_book}\n"
            "    expect: {drop: '>= 0.3'}\n")


def test_behavioural_claims_load(tmp_path: Path) -> None:
    text = HEAD + ABLATION + (
        "    also: {task: closed_book, expect: {drop: '<= 0.1'}}\n"
        "    control: {draws: 3, expect: {effect_ratio: '>= 2'}}\n"
        "  - id: icl\n    kind: icl_score\n    probe: {kind: natural_text, length: 300, batch: 8}\n    expect: '<= -0.5'\n"
        "  - id: acc\n    kind: task_accuracy\n    task: antonym\n    shots: 5\n    expect: '>= 0.5'\n"
        "    reference: {shots: 0, expect: {gain: '>= 0.3'}}\n"
    )
    (tmp_path / "s.yaml").write_text(text)
    claims = load_spec(tmp_path / "s.yaml").spec.claims
    assert claims[0].also[0].task == "closed_book" and claims[0].control.random_heads == "same_count"
    merged = claims[0].metric.merged(claims[0].also[0])
    assert (merged.name, merged.task) == ("recall", "closed_book")
    assert claims[1].probe.kind == "natural_text" and claims[1].probe.length == 300
    assert claims[2].reference.expect.gain.check(0.31) and claims[2].reference.shots == 0
    assert claims[2].baseline is None


TASK = "  - id: acc\n    kind: task_accuracy\n    task: antonym\n    shots: 5\n    expect: '>= 0.5'\n"


def test_a_task_claim_takes_a_release_baseline_tolerance_and_a_reference(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(HEAD + TASK + "    baseline: {max_drop: 0.05}\n"
                                     "    reference: {shuffled_labels: true, expect: {gain: '>= 0.2'}}\n")
    claim = load_spec(tmp_path / "s.yaml").spec.claims[0]
    assert claim.baseline.max_drop == 0.05 and claim.baseline.direction is None
    assert claim.reference.shuffled_labels and claim.reference.shots == 5  # the claim's own shots


@pytest.mark.parametrize("old", ["{shots: 0, expect: {gain: '>= 0.3'}}",
                                 "{shuffled_labels: true, expect: {gain: '>= 0.3'}}",
                                 "{shots: 0, max_drop: 0.05}"])
def test_the_old_task_reference_under_baseline_says_what_it_is_now(tmp_path: Path, old: str) -> None:
    out = _errors(tmp_path, HEAD + GOOD_CLAIM + TASK + f"    baseline: {old}\n")
    # one problem, at the value of claims[1].baseline: HEAD 3 lines + 5 + 5, so line 14, after "    baseline: "
    assert out.count(str(tmp_path / "s.yaml") + ":") == 1, out
    assert (f"{_where(tmp_path, 's.yaml', 14, 15)}: claims[1].baseline: `baseline:` is the release-baseline "
            "tolerance ({max_drop, direction}); the zero-shot or shuffled-label reference condition is now "
            "`reference: {shots: 0, expect: {gain: ...}}` (same fields)") in out, out


@pytest.mark.parametrize(
    "replace, where, fragment",
    [(("    heads: [18.6]\n", ""), (4, 5), "give exactly one of heads"),
     (("task: open_book", "task: open_bok"), (7, 34), "unknown task 'open_bok' (did you mean 'open_book'?)"),
     (("{name: recall, task: open_book}", "{name: recall}"), (7, 13), "metric recall needs a task"),
     (("{name: recall, task: open_book}", "{name: repeated_token_loss, task: open_book}"), (7, 13),
      "metric repeated_token_loss does not use task"),
     (("{drop: '>= 0.3'}", "{drop: '>= 0.3', increase: '> 1'}"), (8, 13), "give exactly one of increase"),
     (("kind: ablation", "kind: ablaton"), (5, 11), "did you mean 'ablation'?"),
     (("{name: recall, task: open_book}", "{name: logit_diff, task: open_book}"), (7, 13), "it needs task: counterfactual")],
)
def test_behavioural_claim_errors(tmp_path: Path, replace: tuple[str, str], where: tuple[int, int], fragment: str) -> None:
    out = _errors(tmp_path, HEAD + ABLATION.replace(*replace))
    assert f"{_where(tmp_path, 's.yaml', *where)}: " in out and fragment in out, out


def test_probe_kind_typo_suggests_a_key(tmp_path: Path) -> None:
    out = _errors(tmp_path, HEAD + GOOD_CLAIM + "    probe: {kind: natural_text, lenght: 30}\n")
    assert "unknown key 'lenght' (did you mean 'length'?)" in out and "corpus" in out
