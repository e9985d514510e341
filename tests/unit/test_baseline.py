"""Baselines (icltest.baseline): verdicts from hand-written numbers, environment diffs, the file.

Every expected verdict below is worked out by hand from the numbers in the test (baseline value,
current value, tolerance, direction); nothing is computed by the code under test first.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from icltest import baseline as bl
from icltest.schema import SpecError, load_spec

LABEL = "repeated_random(length=20, repeats=2, batch=8, seed=3, bos=id 0)"


def entry(value, *, unit="induction score", probe=LABEL, seed=3, model="m") -> dict:
    return {"value": value, "unit": unit, "probe": probe, "probe_version": bl.probe_version(probe), "seed": seed,
            "model": model}


def now(value, *, unit="induction score", probe=LABEL, seed=3) -> dict:
    return {"value": value, "unit": unit, "probe": probe, "seed": seed}


# ----------------------------------------------------------------------------- compare


@pytest.mark.parametrize(("base", "value", "direction", "verdict"), [
    (0.90, 0.80, "higher", "regressed"),   # fell 0.10 > 0.05
    (0.90, 0.86, "higher", "pass"),        # fell 0.04 <= 0.05
    (0.90, 0.85, "higher", "pass"),        # fell exactly 0.05 (0.9 - 0.85 is 0.05000000000000004 in floats)
    (0.90, 0.95, "higher", "pass"),        # rose exactly 0.05: not more than the tolerance
    (0.90, 0.97, "higher", "improved"),    # rose 0.07
    (0.10, 0.20, "lower", "regressed"),    # rose 0.10, lower is better
    (0.10, 0.14, "lower", "pass"),
    (0.10, 0.00, "lower", "improved"),     # fell 0.10
    (3.0, 5.0, "lower", "regressed"),      # a rank: 3 -> 5 is worse
])
def test_verdict_by_direction_and_tolerance(base: float, value: float, direction: str, verdict: str) -> None:
    result = bl.compare(now(value), entry(base), max_drop=0.05, direction=direction)
    assert result["verdict"] == verdict, result
    assert result["value"] == base and result["max_drop"] == 0.05 and result["direction"] == direction
    assert result["delta"] == pytest.approx(value - base)


def test_zero_tolerance_fails_any_drop_and_passes_equal() -> None:
    assert bl.compare(now(0.5), entry(0.5), max_drop=0.0, direction="higher")["verdict"] == "pass"
    assert bl.compare(now(0.4999), entry(0.5), max_drop=0.0, direction="higher")["verdict"] == "regressed"


def test_reason_names_the_tolerance_and_where_it_came_from() -> None:
    result = bl.compare(now(0.6), entry(0.9), max_drop=0.05, direction="higher", tolerance_from="--icl-max-drop")
    assert "0.9 -> 0.6" in result["reason"] and "max_drop 0.05" in result["reason"], result
    assert "--icl-max-drop" in result["reason"]


def test_without_a_tolerance_it_is_reported_but_cannot_regress() -> None:
    result = bl.compare(now(0.1), entry(0.9), max_drop=None, direction="higher")
    assert result["verdict"] == "pass" and result["delta"] == pytest.approx(-0.8)
    assert "no tolerance" in result["reason"] and "cannot regress" in result["reason"], result


def test_without_a_direction_it_is_reported_not_judged() -> None:
    result = bl.compare(now(0.1), entry(0.9), max_drop=0.05, direction=None, direction_why="between 0 and 1")
    assert result["verdict"] == "pass" and "not judged: between 0 and 1" in result["reason"]


def test_new_claim() -> None:
    result = bl.compare(now(0.5), None, max_drop=0.05, direction="higher")
    assert result["verdict"] == "new" and result["value"] is None and result["delta"] is None


@pytest.mark.parametrize(("change", "why"), [
    ({"probe": LABEL.replace("seed=3", "seed=4")}, "probe changed"),
    ({"seed": 4}, "seed changed"),
    ({"unit": "rank"}, "measures something else"),
])
def test_incomparable_when_what_was_measured_changed(change: dict, why: str) -> None:
    result = bl.compare(now(0.2, **change), entry(0.9), max_drop=0.05, direction="higher")
    assert result["verdict"] == "incomparable" and why in result["reason"], result
    assert result["delta"] is None  # not compared, so no change is claimed


def test_incomparable_when_the_task_data_changed() -> None:
    old = entry(0.9)
    old["probe_version"] = "0" * 16  # same label, other data files
    result = bl.compare(now(0.2), old, max_drop=0.05, direction="higher")
    assert result["verdict"] == "incomparable" and "probe's version changed" in result["reason"]


def test_a_nan_baseline_is_incomparable_and_a_nan_now_regresses() -> None:
    assert bl.compare(now(0.5), entry(None), max_drop=0.05, direction="higher")["verdict"] == "incomparable"
    assert bl.compare(now(float("nan")), entry(0.5), max_drop=0.05, direction="higher")["verdict"] == "regressed"
    assert bl.compare(now(float("nan")), entry(0.5), max_drop=None, direction="higher")["verdict"] == "pass"


def test_probe_version_follows_label_and_data() -> None:
    assert bl.probe_version(LABEL) == bl.probe_version(LABEL)
    assert bl.probe_version(LABEL) != bl.probe_version(LABEL + " ")
    assert len(bl.data_version()) == 16


# ----------------------------------------------------------------------------- settings and direction


def _claim(**fields) -> SimpleNamespace:
    return SimpleNamespace(**{"kind": "head_score", "baseline": None, **fields})


def test_tolerance_comes_from_claim_then_spec_then_session() -> None:
    from icltest.schema.base import BaselineSpec, Defaults
    from icltest.schema.expect import parse_comparison

    claim = _claim(expect=parse_comparison(">= 0.5"))
    defaults = Defaults(baseline=BaselineSpec(max_drop=0.2))
    assert bl.claim_settings(claim, Defaults(), 0.3)["max_drop"] == 0.3
    assert bl.claim_settings(claim, defaults, 0.3)["max_drop"] == 0.2
    claim.baseline = BaselineSpec(max_drop=0.1)
    settings = bl.claim_settings(claim, defaults, 0.3)
    assert settings["max_drop"] == 0.1 and "claim" in settings["tolerance_from"]
    assert bl.claim_settings(_claim(expect=parse_comparison(">= 0.5")), Defaults(), None)["max_drop"] is None


@pytest.mark.parametrize(("expect", "direction"), [
    (">= 0.5", "higher"), ("> 0.5", "higher"), ("<= 0.3", "lower"), ("< 0.3", "lower"),
    ("== 1", None), ({"between": [0.2, 0.6]}, None),
])
def test_direction_from_the_expectation(expect, direction) -> None:
    from icltest.schema.expect import parse_comparison

    assert bl.expectation_direction(_claim(expect=parse_comparison(expect)))[0] == direction


def test_direction_from_an_expect_block_and_an_explicit_direction() -> None:
    from icltest.schema.base import BaselineSpec
    from icltest.schema.blocks import RankExpect

    assert bl.expectation_direction(_claim(expect=RankExpect(rank="<= 3")))[0] == "lower"
    claim = _claim(expect=None, baseline=BaselineSpec(direction="higher"))
    assert bl.claim_settings(claim, None, None)["direction"] == "higher"


SPEC = """\
schema_version: 1
model: {{path: /nonexistent}}
{defaults}claims:
  - id: a
    kind: head_score
    score: induction
    heads: [1.0]
    expect: {expect}
{baseline}"""


def test_max_drop_without_a_direction_is_a_spec_error_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SPEC.format(defaults="", expect="'== 1'", baseline="    baseline: {max_drop: 0.1}\n"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    (problem,) = info.value.problems
    assert problem.where.endswith("s.yaml:9:5") and problem.key == "claims[0].baseline", problem
    assert "needs a direction" in problem.message and "baseline: {direction: higher}" in problem.message


def test_a_default_max_drop_without_a_direction_names_the_defaults_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SPEC.format(defaults="defaults:\n  baseline: {max_drop: 0.1}\n",
                                expect="{between: [0.1, 0.9]}", baseline=""))
    with pytest.raises(SpecError, match=r"s\.yaml:6:5: claims\[0\]\.baseline: max_drop \(from defaults.baseline, "
                                        r"line 4\) needs a direction"):
        load_spec(path)


@pytest.mark.parametrize(("baseline", "fine"), [
    ("{max_drop: 0.1, direction: higher}", True), ("{direction: lower}", True), ("{max_drop: 0}", True),
    ("{max_drop: -0.1}", False), ("{max_drop: '0.1'}", False), ("{direction: up}", False), ("{}", False),
    ("{max_drop: 0.1, drop: 1}", False),
])
def test_baseline_key_validation(tmp_path: Path, baseline: str, fine: bool) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SPEC.format(defaults="", expect="'>= 0.5'", baseline=f"    baseline: {baseline}\n"))
    if fine:
        load_spec(path)
    else:
        with pytest.raises(SpecError, match=r"s\.yaml:9:\d+: claims\[0\]\.baseline"):
            load_spec(path)


# ----------------------------------------------------------------------------- environment


def _env(**models) -> dict:
    return {"models": models, "session_seed": 0, "libraries": {"torch": "2.5", "transformers": "4.50"},
            "data_version": "d1"}


def test_same_weights_by_hash_not_by_name() -> None:
    old = _env(**{"main": {"name": "main", "weights_sha256": "aa", "dtype": "float32"}})
    new = _env(**{"step-900": {"name": "step-900", "weights_sha256": "aa", "dtype": "float32"}})
    pairs = [("main", "step-900")]
    assert bl.same_weights(old, new, pairs) is True
    changes = bl.env_changes(old, new, pairs)
    assert changes == [{"key": "model.name", "baseline": "main", "current": "step-900"}]
    renamed = _env(**{"main": {"name": "main", "weights_sha256": "bb", "dtype": "float32"}})
    assert bl.same_weights(old, renamed, [("main", "main")]) is False
    unknown = _env(**{"main": {"name": "main", "dtype": "float32"}})
    assert bl.same_weights(unknown, unknown, [("main", "main")]) is False  # no hash: never "the same"


def test_env_changes_list_dtype_device_libraries_seed_data() -> None:
    old = _env(m={"name": "m", "weights_sha256": "aa", "revision": "r1", "dtype": "float32", "device": "cpu"})
    new = _env(m={"name": "m", "weights_sha256": "aa", "revision": "r2", "dtype": "bfloat16", "device": "cuda"})
    new.update(session_seed=7, libraries={"torch": "2.6", "transformers": "4.50"}, data_version="d2")
    changes = {c["key"]: (c["baseline"], c["current"]) for c in bl.env_changes(old, new, [("m", "m")])}
    assert changes == {"model.revision": ("r1", "r2"), "model.dtype": ("float32", "bfloat16"),
                       "model.device": ("cpu", "cuda"), "session_seed": (0, 7), "torch": ("2.5", "2.6"),
                       "data_version": ("d1", "d2")}


def _record(key: str, value: float, model: str, sha: str, verdict: str | None = None) -> dict:
    record = {"item": key, "id": key, "value": value, "unit": "u", "probe": LABEL, "seed": 3, "passed": True,
              "model": {"name": model, "weights_sha256": sha, "dtype": "float32", "device": "cpu"},
              "details": {"heads": {"L1H0": value}, "per_head": [[0.1] * 4] * 2, "forward_seconds": 0.3}}
    if verdict:  # the baseline entry the plugin matched (none for a new claim)
        record["baseline"] = {"verdict": verdict, "key": None if verdict == "new" else key}
    return record


def test_summary_counts_missing_and_model_pairs_by_claim() -> None:
    baseline = bl.build("v1", [_record("s.yaml::a[L1H0]", 0.9, "old", "aa"), _record("s.yaml::b[L1H1]", 0.8, "old", "aa"),
                               _record("s.yaml::c[L0H0]", 0.7, "old", "aa")], session_seed=0)
    records = [_record("s.yaml::a[L1H0]", 0.5, "new", "bb", "regressed"),
               _record("s.yaml::b[L1H1]", 0.8, "new", "bb", "pass"), _record("s.yaml::d[L0H1]", 0.1, "new", "bb", "new")]
    summary = bl.summarize(baseline, records, path="baselines/v1.json", session_seed=0)
    assert summary["counts"] == {"pass": 1, "regressed": 1, "improved": 0, "new": 1, "incomparable": 0}
    assert summary["missing"] == ["s.yaml::c[L0H0]"] and summary["same_weights"] is False
    keys = {c["key"] for c in summary["env_changes"]}
    assert {"model.name", "model.weights_sha256"} <= keys, summary["env_changes"]
    assert summary["name"] == "v1" and summary["model"]["weights_sha256"] == "aa"
    line = bl.summary_line(summary)
    assert line.startswith("icltest baseline 'v1' (baselines/v1.json): 1 pass, 1 regressed, 1 new"), line
    assert "1 missing" in line and "different weights" in line


# ----------------------------------------------------------------------------- stats and file


def test_stats_keep_scalars_and_drop_maps_sweeps_timings_and_long_lists() -> None:
    details = {"heads": {"L1H0": 0.9, "L1H1": 0.2}, "control": {"p": 0.05, "z": float("inf"), "n": 19},
               "maps": [{"values": [[0.1]]}], "sweep": {"x": [1, 2], "y": [0.1, 0.2]}, "flag": True,
               "short": [1.0, 2.0], "long": list(range(50)), "per_head": [[0.1, 0.2], [0.3, 0.4]],
               "forward_seconds": 1.2, "note": "text"}
    assert bl.extract_stats(details) == {"heads.L1H0": 0.9, "heads.L1H1": 0.2, "control.p": 0.05,
                                         "control.z": None, "control.n": 19, "short.0": 1.0, "short.1": 2.0}


def test_file_is_sorted_strict_json_and_round_trips(tmp_path: Path) -> None:
    document = bl.build("v1", [_record("s.yaml::b[L1H1]", float("nan"), "m", "aa"),
                               _record("s.yaml::a[L1H0]", 0.9, "m", "aa")], session_seed=0, created="2025-01-01")
    path = tmp_path / "baselines" / "v1.json"
    bl.save(path, document)
    text = path.read_text()
    assert "NaN" not in text and text.endswith("\n")
    data = json.loads(text)
    assert list(data["claims"]) == ["s.yaml::a[L1H0]", "s.yaml::b[L1H1]"]
    assert data["claims"]["s.yaml::b[L1H1]"]["value"] is None
    assert data["nonfinite"] == {"/claims/s.yaml::b[L1H1]/value": "nan"}
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"  # stable, reviewable diffs
    assert bl.load(path)["claims"]["s.yaml::a[L1H0]"]["stats"] == {"heads.L1H0": 0.9}
    assert data["env"]["models"]["m"]["weights_sha256"] == "aa"


def test_errored_claims_are_not_saved() -> None:
    records = [_record("s.yaml::a[L1H0]", 0.9, "m", "aa"), {"item": "s.yaml::b[L1H1]", "error": "boom", "passed": False}]
    assert list(bl.build("v1", records, 0)["claims"]) == ["s.yaml::a[L1H0]"]


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v1.json"
    path.write_text("old\n")
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append((Path(src), Path(dst)))
        assert Path(dst).read_text() == "old\n"
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    bl.save(path, bl.build("v1", [_record("s.yaml::a[L1H0]", 0.9, "m", "aa")], 0))
    assert len(seen) == 1 and seen[0][1] == path and seen[0][0].parent == tmp_path
    assert json.loads(path.read_text())["name"] == "v1" and list(tmp_path.iterdir()) == [path]


def test_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v1.json"
    path.write_text("old\n")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        bl.save(path, bl.build("v1", [_record("s.yaml::a[L1H0]", 0.9, "m", "aa")], 0))
    assert path.read_text() == "old\n" and list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(("text", "message"), [
    (None, "does not exist"),
    ('{"claims": ', "is not valid JSON (line 1, column 12"),
    ("[1, 2]", "is not an icltest baseline"),
    ('{"schema_version": 9, "claims": {}}', "schema_version 9"),
    ('{"schema_version": 1, "claims": {"a": {"unit": "u"}}}', "claim 'a' has no value"),
])
def test_a_bad_file_is_one_line(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "v1.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(bl.BaselineError) as info:
        bl.load(path)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert "--icl-save-baseline" in str(info.value)


def test_names_and_paths(tmp_path: Path) -> None:
    assert bl.resolve_path("v1", tmp_path) == tmp_path / "baselines" / "v1.json"
    assert bl.resolve_path("v1", tmp_path, "ci/base") == tmp_path / "ci" / "base" / "v1.json"
    assert bl.resolve_path("out/v1.json", tmp_path) == Path("out/v1.json")
    assert bl.resolve_path("v1.json", tmp_path) == Path("v1.json")
    with pytest.raises(bl.BaselineError):
        bl.resolve_path(" ", tmp_path)


def test_records_sort_by_order_then_item() -> None:
    records = [{"item": "b", "order": ["s.yaml", 1, 0]}, {"item": "a", "order": ["s.yaml", 0, 10]},
               {"item": "c", "order": ["s.yaml", 0, 2]}]
    from icltest.report.records import in_serial_order

    assert [r["item"] for r in in_serial_order(records)] == ["c", "a", "b"]
    assert [r["item"] for r in in_serial_order([{"item": "b"}, {"item": "a"}])] == ["a", "b"]


def test_probe_versions_cover_only_the_data_files_a_probe_reads(tmp_path, monkeypatch) -> None:
    """Editing one task set makes the claims on that task incomparable and leaves the others alone."""
    import shutil

    data = tmp_path / "icltest" / "data"
    shutil.copytree(Path(bl.__file__).parent / "data", data)
    monkeypatch.setattr(bl, "__file__", str(tmp_path / "icltest" / "baseline.py"))
    open_book = "task open_book(shots=2, n=48, seed=0, plain, split=test: 26 of 46 items, bos=id 1)"
    antonym = "task antonym(shots=5, n=48, seed=0, plain, split=test: 32 of 67 items, bos=id 1)"
    tokens = "repeated_random(length=50, repeats=2, batch=16, seed=0, bos=id 1)"
    prose = "natural_text(corpus=essays, length=400, batch=16, seed=0, bos=id 1)"
    conflict = "conflict prompts (test split, shots=2, n=96, seed=0, bos=1)"
    assert [p.name for p in bl.probe_data_files(open_book)] == ["open_book.yaml"]
    assert bl.probe_data_files(tokens) == []
    assert [p.name for p in bl.probe_data_files(prose)] == ["essays.yaml"]
    assert [p.name for p in bl.probe_data_files("steering: dog at blocks.8.resid_post", "steering")] == ["concepts.yaml"]
    assert len(bl.probe_data_files(conflict)) == len([p for p in data.rglob("*") if p.is_file()])  # unknown: all
    labels = (open_book, antonym, tokens, prose, conflict)
    before = {label: bl.probe_version(label) for label in labels}
    with open(data / "tasks" / "antonym.yaml", "a") as handle:
        handle.write("# edited\n")
    after = {label: bl.probe_version(label) for label in labels}
    assert [label for label in labels if before[label] != after[label]] == [antonym, conflict]


def test_entries_are_found_when_the_rootdir_moved() -> None:
    """A key's spec path depends on pytest's rootdir; the same claim under another path still matches."""
    index = bl.EntryIndex({"suites/s.yaml::a[L1H0]": {}, "suites/s.yaml::b[top1]": {}, "other/t.yaml::b[top1]": {}})
    rec = lambda path, name: {"order": [path, 0, 0], "id": name.split("[")[0], "target": name.split("[")[1][:-1]}
    assert index.find(rec("suites/s.yaml", "a[L1H0]")) == ("suites/s.yaml::a[L1H0]", "key")
    assert index.find(rec("/abs/main/suites/s.yaml", "a[L1H0]")) == ("suites/s.yaml::a[L1H0]", "file name and claim")
    assert index.find(rec("main/suites/s.yaml", "b[top1]")) == ("suites/s.yaml::b[top1]", "file name and claim")
    assert index.find(rec("x/u.yaml", "a[L1H0]")) == ("suites/s.yaml::a[L1H0]", "claim")
    assert index.find(rec("x/u.yaml", "b[top1]")) == (None, "")  # two entries named b[top1]: no guess
    assert index.find(rec("x/u.yaml", "c[L0H0]")) == (None, "")


# ----------------------------------------------------------------------------- direction per claim kind
#
# Each case: a claim as a spec writes it, and the direction worked out by hand from what the kind's
# measure() returns as Measurement.value (module docstrings; "value is ..." below), not from the code
# under test. Where the value is not what the top-level expectation bounds, the generic reading of
# `expect` would be wrong or impossible; those cases are marked "not generic".

HEAD = {"heads": [1.0]}
LOSS = {"metric": {"name": "repeated_token_loss"}}
DIRECTION_CASES = [
    # head_score: value = the score of the head closest to failing; the bound is on that score
    ("head_score", {"score": "induction", **HEAD, "expect": ">= 0.5"}, "higher"),
    ("head_score", {"score": "induction", "heads": {"layers": "0-1"}, "expect": "<= 0.1"}, "lower"),
    # head_rank: value = rank (1 = highest score)
    ("head_rank", {"score": "induction", "head": 1.0, "expect": {"rank": "<= 3"}}, "lower"),
    ("head_rank", {"score": "induction", "head": 1.0, "expect": {"rank": {"between": [1, 3]}}}, "lower"),  # not generic
    # icl_score: value = late loss - early loss (nats); more negative = more in-context learning
    ("icl_score", {"expect": "<= -0.5"}, "lower"),
    # ablation: value = the effect in the named direction (increase: ablated - clean, drop: clean - ablated)
    ("ablation", {**HEAD, **LOSS, "expect": {"increase": ">= 1"}}, "higher"),
    ("ablation", {**HEAD, **LOSS, "expect": {"drop": "<= 0.05"}}, "lower"),  # "does not drop"
    # task_accuracy: value = accuracy at the claim's shots; the reference gain is value - reference
    ("task_accuracy", {"task": "antonym", "shots": 5, "expect": ">= 0.5"}, "higher"),
    ("task_accuracy", {"task": "antonym", "shots": 0, "expect": "<= 0.1"}, "lower"),
    ("task_accuracy", {"task": "antonym", "shots": 5, "expect": {"between": [0.0, 1.0]},
                       "reference": {"shots": 0, "expect": {"gain": ">= 0.2"}}}, "higher"),  # not generic
    # property: no expect; value = the example closest to failing check.per_sequence / check.mean
    ("property", {"strategy": {"kind": "repeated_random"},
                  "check": {"score": "induction", "head": 1.0, "per_sequence": ">= 0.3"}}, "higher"),  # not generic
    ("property", {"strategy": {"kind": "repeated_random"},
                  "check": {"score": "previous_token", "head": 1.0, "per_sequence": "<= 0.2"}}, "lower"),  # not generic
    ("property", {"strategy": {"kind": "repeated_random"},
                  "check": {"metric": "second_copy_top1", "mean": ">= 0.5"}}, "higher"),  # not generic
    # head_attention: value = attention mass on the span; over_uniform = mass / uniform moves with it
    ("head_attention", {**HEAD, "span": "answer", "expect": {"between": [0.0, 1.0]}, "over_uniform": ">= 3"},
     "higher"),  # not generic
    ("head_attention", {**HEAD, "span": "question", "expect": "<= 0.05"}, "lower"),
    ("head_attention", {**HEAD, "span": "question", "expect": {"between": [0.1, 0.3]}}, None),
    # logit_attribution: value = direct effect (logits, either sign) or, with lens, a top-k share
    ("logit_attribution", {**HEAD, "expect": ">= 0.5"}, "higher"),
    ("logit_attribution", {**HEAD, "expect": "<= -0.2"}, "lower"),  # a suppression head
    ("logit_attribution", {"lens": {"layer": -1}, "expect": {"between": [0.2, 0.9]}}, "higher"),  # not generic
    # head_attribution: value = the head's rank (1 = most) or Spearman rho with exact ablation
    ("head_attribution", {"role": "in_context", **HEAD, "expect": {"rank": "<= 10"}}, "lower"),
    ("head_attribution", {"role": "open_book", "expect": {"spearman": ">= 0.5"}}, "higher"),
    # source_tracking: value = held-out ROC AUC
    ("source_tracking", {"expect": {"auroc": ">= 0.8"}}, "higher"),
    ("source_tracking", {"expect": {"auroc": {"between": [0.7, 1.0]}}}, "higher"),  # not generic
    # function_vector: value = accuracy with the FV, whichever of accuracy / gain / recall is bounded
    ("function_vector", {"task": "antonym", **HEAD, "expect": {"gain": ">= 0.2"}}, "higher"),
    ("function_vector", {"task": "antonym", **HEAD, "expect": {"accuracy": ">= 0.5", "recall": "<= 1.5"}},
     "higher"),  # not generic: mixed bounds, the value is the accuracy
    ("function_vector", {"task": "antonym", **HEAD, "expect": {"accuracy": "<= 0.1"}}, "lower"),  # random heads
    # steering: value = log-prob gain (nats), also when only the mention share is bounded
    ("steering", {"layer": 0.5, "strength": 4.0, "expect": {"gain": ">= 1"}}, "higher"),
    ("steering", {"layer": 0.5, "strength": 4.0, "expect": {"gain": ">= 1", "mention": "<= 0.9"}, "generate": 4},
     "higher"),  # not generic
    ("steering", {"layer": 0.5, "strength": 4.0, "expect": {"gain": "<= 0.1"}}, "lower"),
    # circuit: value = faithfulness if bounded, else the necessity effect, else the sufficiency gap
    ("circuit", {**HEAD, **LOSS, "expect": {"necessity": {"increase": ">= 1"}, "sufficiency": "<= 0.1"}},
     "higher"),  # not generic: the generic reading takes sufficiency's <= and says lower
    ("circuit", {**HEAD, **LOSS, "expect": {"necessity": {"drop": ">= 0.5"}}}, "higher"),  # not generic
    ("circuit", {**HEAD, **LOSS, "expect": {"faithfulness": ">= 0.8", "sufficiency": "<= 0.1"}},
     "higher"),  # not generic: mixed bounds, the value is f
    ("circuit", {**HEAD, **LOSS, "expect": {"sufficiency": "<= 0.1"}}, "lower"),
    # implicit_update: value = the largest relative error
    ("implicit_update", {"task": "antonym", "expect": {"rel_error": "<= 1e-4"}}, "lower"),
    ("implicit_update", {"task": "antonym", "expect": {"rel_error": {"between": [0, 0.001]}}}, "lower"),  # not generic
]


def _kind_claim(kind: str, fields: dict, **extra):
    from icltest.claims import claim_module

    return claim_module(kind).Schema.model_validate({"id": "c", "kind": kind, **fields, **extra})


@pytest.mark.parametrize(("kind", "fields", "direction"), DIRECTION_CASES,
                         ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(DIRECTION_CASES)])
def test_direction_of_each_claim_kinds_value(kind: str, fields: dict, direction: str | None) -> None:
    found, why = bl.expectation_direction(_kind_claim(kind, fields))
    assert found == direction, why
    assert bool(why) == (direction is None)  # "why not" exactly when there is no direction


def test_every_builtin_kind_has_a_direction_case() -> None:
    from icltest.claims.registry import BUILTIN

    assert {kind for kind, _, _ in DIRECTION_CASES} == set(BUILTIN)


def test_an_explicit_direction_beats_the_kinds_own() -> None:
    from icltest.schema.base import BaselineSpec, Defaults

    circuit = {**HEAD, **LOSS, "expect": {"necessity": {"increase": ">= 1"}, "sufficiency": "<= 0.1"}}
    assert bl.claim_settings(_kind_claim("circuit", circuit), None, 0.1)["direction"] == "higher"
    own = _kind_claim("circuit", circuit, baseline={"direction": "lower", "max_drop": 0.1})
    assert bl.claim_settings(own, None, None)["direction"] == "lower"
    spec_wide = Defaults(baseline=BaselineSpec(direction="lower"))
    assert bl.claim_settings(_kind_claim("circuit", circuit), spec_wide, None)["direction"] == "lower"


KINDS_SPEC = """\
schema_version: 1
model: {path: /nonexistent}
defaults:
  baseline: {max_drop: 0.1}
claims:
  - id: circuit
    kind: circuit
    heads: [1.0]
    metric: {name: repeated_token_loss}
    expect: {necessity: {increase: ">= 1"}, sufficiency: "<= 0.1"}
  - id: property
    kind: property
    strategy: {kind: repeated_random}
    check: {score: induction, head: 1.0, per_sequence: ">= 0.3"}
  - id: rank
    kind: head_rank
    score: induction
    head: 1.0
    expect: {rank: {between: [1, 3]}}
%s"""


def test_a_spec_with_default_max_drop_loads_when_each_kind_knows_its_direction(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(KINDS_SPEC % "")
    assert [c.id for c in load_spec(path).spec.claims] == ["circuit", "property", "rank"]
    # one the kind cannot tell (attention mass bounded on both sides) still needs a direction, at its line
    path.write_text(KINDS_SPEC % ("  - id: mass\n    kind: head_attention\n    heads: [1.0]\n    span: question\n"
                                  "    expect: {between: [0.1, 0.3]}\n"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    (problem,) = info.value.problems
    assert problem.where.endswith("s.yaml:20:5") and problem.key == "claims[3].baseline", problem
    assert "(from defaults.baseline, line 4) needs a direction" in problem.message


# ----------------------------------------------------------------------------- loading: wrong files, names


def test_a_report_given_as_the_baseline_says_it_is_a_report(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema_version": 2, "summary": {"claims": 1, "passed": 1},
                                "claims": [{"id": "a", "target": "L1H0", "value": 0.9}], "env": {}}))
    with pytest.raises(bl.BaselineError) as info:
        bl.load(path, "r.json")
    message = str(info.value)
    assert message.startswith("r.json is an icltest report (pytest --icl-json), not a baseline;"), message
    assert "icltest diff" in message and "--icl-save-baseline" in message and "\n" not in message


def test_a_baseline_without_a_name_is_named_by_its_file(tmp_path: Path) -> None:
    path = tmp_path / "release-3.json"
    path.write_text('{"schema_version": 1, "claims": {}}')
    data = bl.load(path)
    assert data["name"] == "release-3"
    line = bl.summary_line(bl.summarize(data, [], path="baselines/release-3.json", session_seed=0))
    assert line.startswith("icltest baseline 'release-3' (baselines/release-3.json)") and "'None'" not in line, line
    path.write_text('{"schema_version": 1, "name": "v7", "claims": {}}')
    assert bl.load(path)["name"] == "v7"  # a name the file has is kept
