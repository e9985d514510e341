"""The committed checkpoint series (checkpoints/induction-2l, made by scripts/train_checkpoints.py):
the suite's induction claims fail before the phase change and pass after it, the script
reproduces a committed checkpoint byte for byte, and a run split over pytest-xdist workers groups
items by model and writes the same report as the serial run."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERIES = ROOT / "checkpoints" / "induction-2l"
SUITE = ROOT / "suites" / "induction-2l.yaml"
CLAIM_IDS = ["an-induction-head-formed", "the-induction-head-is-L1H2", "a-previous-token-head-formed",
             "repeated-tokens-are-predicted-from-context", "layer-1-heads-are-necessary"]


def _pytest(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q"],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


def _claims(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["claims"]


@pytest.mark.parametrize("step, passed", [("000300", False), ("000600", False), ("001200", True), ("001500", True)])
def test_induction_claims_fail_before_the_phase_change_and_pass_after(tmp_path: Path, step: str, passed: bool) -> None:
    out = tmp_path / "r.json"
    run = _pytest(str(SUITE), "--icl-model", str(SERIES / f"step_{step}"), "--icl-json", str(out))
    claims = _claims(out)
    assert [c["id"] for c in claims] == CLAIM_IDS, run.stdout[-2000:]
    assert all(c["passed"] is passed for c in claims), [(c["id"], c["value"]) for c in claims]
    assert run.returncode == (0 if passed else 1), run.stdout[-2000:]


def test_the_script_reproduces_a_committed_checkpoint(tmp_path: Path) -> None:
    """Committed checkpoints are only a cache of the script's output: retraining gives the same bytes."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "train_checkpoints.py"), str(tmp_path),
                    "--steps", "300", "--save-steps", "300", "--no-scan", "--quiet"], check=True, timeout=300)
    name = "model.safetensors"
    fresh = hashlib.sha256((tmp_path / "step_000300" / name).read_bytes()).hexdigest()
    committed = hashlib.sha256((SERIES / "step_000300" / name).read_bytes()).hexdigest()
    assert fresh == committed


WORKERS_CONFTEST = '''
import json, os
def pytest_runtest_logreport(report):
    node = getattr(report, "node", None)  # set on the controller for reports that came from a worker
    if report.when == "call" and node is not None:
        with open("workers.jsonl", "a") as handle:
            handle.write(json.dumps([report.nodeid, node.gateway.id]) + "\\n")
'''


def _untimed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if "seconds" not in k and k != "time"}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def test_xdist_groups_items_by_model_and_merges_reports_equal_to_serial(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    text = SUITE.read_text().replace("schema_version: 1\n", "schema_version: 1\nmodel: {path: '%s'}\n")
    for step in ("000600", "001500"):  # one spec file per model: two models in one run
        (tmp_path / f"icl_step{step}.yaml").write_text(text % (SERIES / f"step_{step}"))
    (tmp_path / "conftest.py").write_text(WORKERS_CONFTEST)
    serial = _pytest("--icl-json", "serial.json", cwd=tmp_path)
    parallel = _pytest("-n", "2", "--icl-json", "xdist.json", cwd=tmp_path)
    for run in (serial, parallel):
        assert "5 failed, 5 passed" in run.stdout, run.stdout[-3000:]

    one, two = (json.loads((tmp_path / name).read_text()) for name in ("serial.json", "xdist.json"))
    assert [c["item"] for c in one["claims"]] == [f"icl_step{s}.yaml::{c}" for s in ("000600", "001500")
                                                  for c in _item_names()]
    assert _untimed(two["claims"]) == _untimed(one["claims"])  # same records, same order
    assert {k: v for k, v in two["summary"].items() if k != "forward_passes"} == \
        {k: v for k, v in one["summary"].items() if k != "forward_passes"}

    workers: dict[str, set[str]] = {}
    for line in (tmp_path / "workers.jsonl").read_text().splitlines():
        nodeid, worker = json.loads(line)
        workers.setdefault(nodeid.split("::")[0], set()).add(worker)
    assert set(workers) == {"icl_step000600.yaml", "icl_step001500.yaml"}
    assert all(len(ids) == 1 for ids in workers.values()), workers  # each model's items on one worker


def _item_names() -> list[str]:
    return ["an-induction-head-formed[top1]", "the-induction-head-is-L1H2[L1H2]", "a-previous-token-head-formed[top1]",
            "repeated-tokens-are-predicted-from-context[probe]", "layer-1-heads-are-necessary[L1H1,L1H2]"]


def test_baseline_from_a_late_checkpoint_passes_later_and_flags_earlier(tmp_path: Path) -> None:
    """Release gating end to end on the shipped suite: save at step 1200, then step 1500 keeps every
    claim (serially and under xdist, with the same merged report) and step 300 regresses on all."""
    saved = tmp_path / "step1200.json"
    run = _pytest(str(SUITE), "--icl-model", str(SERIES / "step_001200"), "--icl-save-baseline", str(saved))
    assert run.returncode == 0, run.stdout[-2000:]
    stored = json.loads(saved.read_text())
    assert len(stored["claims"]) == 5

    def compare(step: str, name: str, *extra: str) -> tuple[subprocess.CompletedProcess, dict[str, Any]]:
        out = tmp_path / f"{name}.json"
        done = _pytest(str(SUITE), "--icl-model", str(SERIES / f"step_{step}"), "--icl-baseline", str(saved),
                       "--icl-json", str(out), *extra)
        return done, json.loads(out.read_text())

    later, later_report = compare("001500", "later")
    assert later.returncode == 0, later.stdout[-2000:]
    verdicts = {c["id"]: c["baseline"]["verdict"] for c in later_report["claims"]}
    assert set(verdicts) == set(CLAIM_IDS) and set(verdicts.values()) <= {"pass", "improved"}, verdicts
    assert later_report["baseline"]["same_weights"] is False

    parallel, parallel_report = compare("001500", "later-xdist", "-n", "2")
    assert parallel.returncode == 0, parallel.stdout[-2000:]
    assert _untimed(parallel_report["claims"]) == _untimed(later_report["claims"])

    early, early_report = compare("000300", "early")
    assert early.returncode == 1
    assert {c["id"]: c["baseline"]["verdict"] for c in early_report["claims"]} == {i: "regressed" for i in CLAIM_IDS}
    regressed_line = next(line for line in early.stdout.splitlines() if line.strip().startswith("regressed:"))
    for name in _item_names():
        assert f"suites/induction-2l.yaml::{name}" in regressed_line, regressed_line


def test_baseline_gate_cannot_pass_by_comparing_nothing(tmp_path: Path) -> None:
    """Keys survive a moved rootdir; a baseline that matches no claim, or (strict) leaves claims
    uncompared, fails the run; an update with -k keeps the entries of the claims it did not run."""
    model = str(SERIES / "step_001500")
    saved = tmp_path / "b.json"
    assert _pytest(str(SUITE), "--icl-model", model, "--icl-save-baseline", str(saved)).returncode == 0
    # A copy of the suite in its own folder: saved with --icl-model=PATH, pytest's rootdir is that
    # folder (key "s.yaml::..."); compared with "--icl-model PATH" (a separate argument that is an
    # existing path), the rootdir becomes the repo and the key the file's absolute path.
    own = tmp_path / "own"
    own.mkdir()
    (own / "s.yaml").write_text(SUITE.read_text())
    copy = tmp_path / "copy.json"
    assert _pytest("s.yaml", f"--icl-model={model}", "--icl-save-baseline", str(copy), cwd=own).returncode == 0
    assert all(key.startswith("s.yaml::") for key in json.loads(copy.read_text())["claims"])
    out = tmp_path / "moved.json"
    moved = _pytest("s.yaml", "--icl-model", model, "--icl-baseline", str(copy), "--icl-json", str(out), cwd=own)
    assert moved.returncode == 0, moved.stdout[-2000:]
    assert [c["baseline"]["verdict"] for c in _claims(out)] == ["pass"] * 5, [c["baseline"] for c in _claims(out)]
    assert all("matched by file name and claim" in c["baseline"]["reason"] for c in _claims(out))

    other = tmp_path / "other.yaml"  # the same model, claims the baseline has never seen
    other.write_text("schema_version: 1\nclaims:\n  - id: something-else\n    kind: head_score\n"
                     "    score: induction\n    heads: {top: 1, by: induction}\n    expect: '>= 0.5'\n")
    nothing = _pytest(str(other), "--icl-model", model, "--icl-baseline", str(saved))
    assert nothing.returncode == 1 and "nothing was compared" in nothing.stdout, nothing.stdout[-2000:]

    stale = json.loads(saved.read_text())  # entries for every claim, all from another probe version
    for entry in stale["claims"].values():
        entry["probe_version"] = "0" * 16
    (tmp_path / "stale.json").write_text(json.dumps(stale))
    incomparable = _pytest(str(SUITE), "--icl-model", model, "--icl-baseline", str(tmp_path / "stale.json"))
    assert incomparable.returncode == 1 and "5 claim items found in baseline 'stale' are incomparable" in \
        incomparable.stdout, incomparable.stdout[-2000:]

    both = _pytest(str(SUITE), str(other), "--icl-model", model, "--icl-baseline", str(saved))
    assert both.returncode == 0, both.stdout[-2000:]  # one new claim next to five compared: reported
    strict = _pytest(str(SUITE), str(other), "--icl-model", model, "--icl-baseline", str(saved),
                     "--icl-baseline-strict")
    assert strict.returncode == 1 and "FAILED (--icl-baseline-strict): 1 new" in strict.stdout, strict.stdout[-2000:]

    update = _pytest(str(SUITE), "--icl-model", str(SERIES / "step_001200"), "--icl-baseline", str(saved),
                     "--icl-update-baseline", "-k", "L1H2")
    assert update.returncode == 0, update.stdout[-2000:]
    rewritten = json.loads(saved.read_text())
    assert rewritten["name"] == "b" and len(rewritten["claims"]) == 5  # 1 rewritten, 4 kept
    values = {key.split("::")[1]: entry["value"] for key, entry in rewritten["claims"].items()}
    assert values["the-induction-head-is-L1H2[L1H2]"] == pytest.approx(0.8717, abs=1e-4)  # step 1200's
    assert values["an-induction-head-formed[top1]"] == pytest.approx(0.9555, abs=1e-4)  # step 1500's, kept
