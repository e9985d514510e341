"""Baselines end to end through pytester: save on one model, compare another, update, under xdist.

Models: the constructed known circuit (L1H0 is an induction head by construction, attention >= 0.99
on its target) and a copy whose L1H0 query weights are scaled by 0.1, which shrinks the head's
attention-logit gap from 20 to 2 nats, so its induction score must fall far below the original's
while layer 0 (previous-token L0H0, duplicate-token L0H1) is untouched. The checkpoint series test
uses the committed checkpoints of scripts/train_checkpoints.py (no induction head at step 300, one
at steps 1200 and 1500: checkpoints/induction-2l/metrics.json).
"""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERIES = ROOT / "checkpoints" / "induction-2l"
PROBE = "{kind: repeated_random, length: 20, repeats: 2, batch: 8, seed: 3}"
COMMON = ("-p", "no:cacheprovider")

CLAIMS = """\
schema_version: 1
defaults:
  probe: %s
claims:
  - id: induction
    kind: head_score
    score: induction
    heads: [1.0]
    expect: ">= 0.05"
    baseline: {max_drop: 0.05}
  - id: induction-no-tolerance
    kind: head_score
    score: induction
    heads: [1.0]
    expect: ">= 0.05"
  - id: prev
    kind: head_score
    score: previous_token
    heads: [0.0]
    expect: ">= 0.5"
    baseline: {max_drop: 0.05}
""" % PROBE


@pytest.fixture(scope="session")
def weak_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The known circuit with L1H0's query scaled by 0.1 (a later 'release' whose induction head weakened)."""
    import torch

    from icltest.testing import build_known_circuit

    circuit = build_known_circuit()
    head_dim = 64 + 64  # vocab + positions (icltest.testing.known_circuit)
    with torch.no_grad():
        circuit.model.transformer.h[1].attn.c_attn.weight[:, :head_dim] *= 0.1
    return circuit.save(tmp_path_factory.mktemp("weak-circuit"))


def _run(pytester: pytest.Pytester, model: Path, *args: str) -> pytest.RunResult:
    # "--icl-model=PATH", not "--icl-model PATH": pytest takes a separate existing path into the rootdir
    # search, which would move the rootdir (and baselines/) to the common ancestor of both folders.
    return pytester.runpytest(*COMMON, f"--icl-model={model}", *args)


def _report(pytester: pytest.Pytester, name: str = "r.json") -> dict:
    return json.loads((pytester.path / name).read_text())


def test_save_then_compare_a_weaker_model(pytester: pytest.Pytester, circuit_dir: Path, weak_dir: Path) -> None:
    pytester.makefile(".yaml", icl_spec=CLAIMS)
    saved = _run(pytester, circuit_dir, "--icl-save-baseline", "v1")  # no --icl-json: the save still happens
    saved.assert_outcomes(passed=3)
    path = pytester.path / "baselines" / "v1.json"
    assert f"icltest baseline 'v1' saved: baselines/v1.json (3 claims)" in saved.stdout.str()
    data = json.loads(path.read_text())
    assert sorted(data["claims"]) == ["icl_spec.yaml::induction-no-tolerance[L1H0]", "icl_spec.yaml::induction[L1H0]",
                                      "icl_spec.yaml::prev[L0H0]"]
    assert data["claims"]["icl_spec.yaml::induction[L1H0]"]["value"] > 0.99  # attention >= 0.99 by construction
    assert data["env"]["models"][circuit_dir.name]["weights_sha256"]

    result = _run(pytester, weak_dir, "--icl-baseline", "v1", "--icl-json", "r.json", "--junitxml", "junit.xml")
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    # the claim still meets its own expectation (>= 0.05): the baseline alone fails it
    assert "claim 'induction' (head_score) regressed for L1H0" in out, out
    assert "  baseline: 1 in 'v1' (baselines/v1.json); delta -0." in out
    assert "beyond tolerance max_drop 0.05 (the claim's baseline.max_drop); higher is better" in out
    assert "  regressed: icl_spec.yaml::induction[L1H0]\n" in out
    assert "icltest baseline 'v1' (baselines/v1.json): 2 pass, 1 regressed; different weights" in out

    report = _report(pytester)
    verdicts = {c["item"]: c["baseline"]["verdict"] for c in report["claims"]}
    assert verdicts == {"icl_spec.yaml::induction[L1H0]": "regressed", "icl_spec.yaml::prev[L0H0]": "pass",
                        "icl_spec.yaml::induction-no-tolerance[L1H0]": "pass"}
    no_tolerance = next(c for c in report["claims"] if c["id"] == "induction-no-tolerance")
    assert no_tolerance["baseline"]["delta"] < -0.5 and "cannot regress" in no_tolerance["baseline"]["reason"]
    regressed = next(c for c in report["claims"] if c["id"] == "induction")
    assert regressed["passed"] is False and regressed["claim_passed"] is True
    base = report["baseline"]
    assert base["name"] == "v1" and base["same_weights"] is False and base["missing"] == []
    assert base["counts"] == {"pass": 2, "regressed": 1, "improved": 0, "new": 0, "incomparable": 0}
    assert {"model.name", "model.weights_sha256"} <= {c["key"] for c in base["env_changes"]}

    cases = {c.get("name"): c for c in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["induction[L1H0]"].iter("property")}
    assert props["icl_baseline_verdict"] == "regressed" and props["icl_baseline_value"] == "1.0"
    assert float(props["icl_delta"]) < -0.5


def test_same_weights_under_another_name_pass(pytester: pytest.Pytester, circuit_dir: Path,
                                              tmp_path: Path) -> None:
    pytester.makefile(".yaml", icl_spec=CLAIMS)
    _run(pytester, circuit_dir, "--icl-save-baseline", "v1").assert_outcomes(passed=3)
    renamed = shutil.copytree(circuit_dir, tmp_path / "release-candidate")
    result = _run(pytester, renamed, "--icl-baseline", "v1", "--icl-json", "r.json")
    result.assert_outcomes(passed=3)
    base = _report(pytester)["baseline"]
    assert base["same_weights"] is True  # identity by file hash, not by name
    assert base["env_changes"] == [{"key": "model.name", "baseline": circuit_dir.name, "current": "release-candidate"}]
    assert "3 pass; same weights (sha256); model " in result.stdout.str()


def test_session_tolerance_update_new_and_missing(pytester: pytest.Pytester, circuit_dir: Path,
                                                  weak_dir: Path) -> None:
    pytester.makefile(".yaml", icl_spec=CLAIMS)
    _run(pytester, circuit_dir, "--icl-save-baseline", "v1").assert_outcomes(passed=3)

    session = _run(pytester, weak_dir, "--icl-baseline", "v1", "--icl-max-drop", "0.1")
    session.assert_outcomes(passed=1, failed=2)  # --icl-max-drop gives the claim with no baseline: key a tolerance
    assert "regressed: icl_spec.yaml::induction[L1H0], icl_spec.yaml::induction-no-tolerance[L1H0]" in session.stdout.str()
    assert "(--icl-max-drop)" in session.stdout.str()

    update = _run(pytester, weak_dir, "--icl-baseline", "v1", "--icl-update-baseline", "--icl-json", "u.json")
    update.assert_outcomes(passed=3)  # regressions are reported, not failed, while rewriting
    accepted = [c["baseline"].get("accepted") for c in _report(pytester, "u.json")["claims"]
                if c["baseline"]["verdict"] == "regressed"]
    assert accepted == ["update"]  # the one claim with its own tolerance (no --icl-max-drop here)
    assert "icltest baseline 'v1' updated: baselines/v1.json (3 claims)" in update.stdout.str()
    _run(pytester, weak_dir, "--icl-baseline", "v1").assert_outcomes(passed=3)

    pytester.makefile(".yaml", icl_spec=CLAIMS.replace("id: prev", "id: previous"))
    renamed = _run(pytester, weak_dir, "--icl-baseline", "v1", "--icl-json", "r.json")
    renamed.assert_outcomes(passed=3)
    base = _report(pytester)["baseline"]
    assert base["counts"]["new"] == 1 and base["missing"] == ["icl_spec.yaml::prev[L0H0]"]


def test_xfail_claim_that_regresses_stays_xfail(pytester: pytest.Pytester, circuit_dir: Path, weak_dir: Path) -> None:
    spec = CLAIMS.replace('expect: ">= 0.05"\n    baseline: {max_drop: 0.05}',
                          'expect: ">= 0.9"\n    baseline: {max_drop: 0.05}\n    marks: [xfail]')
    pytester.makefile(".yaml", icl_spec=spec.replace("marks: [xfail]", ""))
    _run(pytester, circuit_dir, "--icl-save-baseline", "v1").assert_outcomes(passed=3)
    pytester.makefile(".yaml", icl_spec=spec)
    result = _run(pytester, weak_dir, "--icl-baseline", "v1", "--icl-json", "r.json")
    result.assert_outcomes(passed=2, xfailed=1)
    record = next(c for c in _report(pytester)["claims"] if c["id"] == "induction")
    assert record["baseline"]["verdict"] == "regressed" and "marked xfail" in record["baseline"]["reason"]
    assert record["baseline"]["accepted"] == "xfail"  # the reports show "regressed (xfail)", not a regression


@pytest.mark.parametrize(("args", "message"), [
    (("--icl-baseline", "nope"), "ERROR: --icl-baseline nope: baseline file baselines/nope.json does not exist; "
                                 "create it with --icl-save-baseline NAME"),
    (("--icl-baseline", "bad"), "ERROR: --icl-baseline bad: baseline file baselines/bad.json is not valid JSON "
                                "(line 1, column 12: Expecting value)"),
    (("--icl-update-baseline",), "ERROR: --icl-update-baseline rewrites the baseline named by --icl-baseline"),
    (("--icl-baseline", "v1", "--icl-max-drop", "-1"), "ERROR: --icl-max-drop must be a number >= 0"),
    (("--icl-max-drop", "0.1"), "ERROR: --icl-max-drop is the tolerance for comparing with a baseline"),
])
def test_bad_baseline_or_option_is_one_usage_line(pytester: pytest.Pytester, circuit_dir: Path, args: tuple,
                                                  message: str) -> None:
    pytester.makefile(".yaml", icl_spec=CLAIMS)
    (pytester.path / "baselines").mkdir()
    (pytester.path / "baselines" / "bad.json").write_text('{"claims": ')
    (pytester.path / "baselines" / "v1.json").write_text('{"schema_version": 1, "claims": {}}')
    result = _run(pytester, circuit_dir, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr.str()


def test_baseline_dir_ini_and_a_path(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    pytester.makefile(".yaml", icl_spec=CLAIMS)
    pytester.makeini("[pytest]\nicl_baseline_dir = ci/baselines\n")
    _run(pytester, circuit_dir, "--icl-save-baseline", "main").assert_outcomes(passed=3)
    assert (pytester.path / "ci" / "baselines" / "main.json").is_file()
    _run(pytester, circuit_dir, "--icl-save-baseline", "elsewhere/b.json").assert_outcomes(passed=3)
    result = _run(pytester, circuit_dir, "--icl-baseline", "elsewhere/b.json")
    result.assert_outcomes(passed=3)
    assert "icltest baseline 'b' (elsewhere/b.json): 3 pass; same weights (sha256)" in result.stdout.str()


def test_xdist_compares_in_workers_and_the_controller_saves(pytester: pytest.Pytester, circuit_dir: Path,
                                                            weak_dir: Path) -> None:
    pytest.importorskip("xdist")
    pytester.makefile(".yaml", icl_spec=CLAIMS)
    _run(pytester, circuit_dir, "--icl-save-baseline", "serial").assert_outcomes(passed=3)
    _run(pytester, circuit_dir, "-n", "2", "--icl-save-baseline", "parallel").assert_outcomes(passed=3)
    serial, parallel = (json.loads((pytester.path / "baselines" / f"{n}.json").read_text()) for n in ("serial", "parallel"))
    for data in (serial, parallel):
        data.pop("created"), data.pop("name")
    assert parallel == serial
    assert sorted(p.name for p in (pytester.path / "baselines").iterdir()) == ["parallel.json", "serial.json"]

    one = _run(pytester, weak_dir, "--icl-baseline", "serial", "--icl-json", "one.json")
    two = _run(pytester, weak_dir, "-n", "2", "--icl-baseline", "serial", "--icl-json", "two.json")
    for run in (one, two):
        run.assert_outcomes(passed=2, failed=1)
        assert "regressed: icl_spec.yaml::induction[L1H0]" in run.stdout.str()
    a, b = _report(pytester, "one.json"), _report(pytester, "two.json")
    assert [c["baseline"] for c in a["claims"]] == [c["baseline"] for c in b["claims"]]
    assert a["baseline"] == b["baseline"]


SERIES_SPEC = """\
schema_version: 1
defaults:
  probe: {kind: repeated_random, length: 50, repeats: 2, batch: 16, seed: 0}
claims:
  - id: an-induction-head-formed
    kind: head_score
    score: induction
    heads: {top: 1, by: induction}
    expect: ">= 0.5"
  - id: the-induction-head-is-L1H2
    kind: head_score
    score: induction
    heads: [1.2]
    expect: ">= 0.5"
  - id: a-previous-token-head-formed
    kind: head_score
    score: previous_token
    heads: {top: 1, by: previous_token}
    expect: ">= 0.3"
"""


def test_checkpoint_series_later_passes_earlier_regresses(pytester: pytest.Pytester) -> None:
    """Baseline on step 1200; step 1500 keeps the circuits (pass or improved), step 300 lost them all."""
    pytester.makefile(".yaml", icl_series=SERIES_SPEC)
    _run(pytester, SERIES / "step_001200", "--icl-save-baseline", "step1200").assert_outcomes(passed=3)
    later = _run(pytester, SERIES / "step_001500", "--icl-baseline", "step1200", "--icl-max-drop", "0.1")
    later.assert_outcomes(passed=3)
    early = _run(pytester, SERIES / "step_000300", "--icl-baseline", "step1200", "--icl-max-drop", "0.1",
                 "--icl-json", "r.json")
    early.assert_outcomes(failed=3)
    assert "regressed: icl_series.yaml::an-induction-head-formed[top1], icl_series.yaml::the-induction-head-is-L1H2"\
           "[L1H2], icl_series.yaml::a-previous-token-head-formed[top1]" in early.stdout.str()
    report = _report(pytester)
    assert report["baseline"]["counts"]["regressed"] == 3 and report["baseline"]["same_weights"] is False


def test_a_report_as_baseline_says_so_and_a_nameless_baseline_is_named_by_its_file(
        pytester: pytest.Pytester, circuit_dir: Path) -> None:
    pytester.makefile(".yaml", icl_spec=CLAIMS)
    _run(pytester, circuit_dir, "--icl-json", "r.json").assert_outcomes(passed=3)
    result = _run(pytester, circuit_dir, "--icl-baseline", "r.json")  # the report, not a baseline
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(
        "ERROR: --icl-baseline r.json: r.json is an icltest report (pytest --icl-json), not a baseline; "
        "compare two reports with icltest diff"), result.stderr.str()

    _run(pytester, circuit_dir, "--icl-save-baseline", "v1").assert_outcomes(passed=3)
    path = pytester.path / "baselines" / "v1.json"
    data = json.loads(path.read_text())
    del data["name"]  # written by hand, or by another tool
    path.write_text(json.dumps(data))
    compared = _run(pytester, circuit_dir, "--icl-baseline", "v1")
    compared.assert_outcomes(passed=3)
    assert "icltest baseline 'v1' (baselines/v1.json): 3 pass" in compared.stdout.str()  # never 'None'
