"""`icltest diff --suite S --models A B` end to end on two checkpoints of the training script.

The committed series' ``step_000300`` (before the induction phase change) and ``step_001200``
(after it). Measured (probe seed 0, deterministic), induction score: step 300: every head <= 0.013;
step 1200: L1H2 0.872, L1H1 0.840, L1H0 0.028, L1H3 0.024. So with ">= 0.5" every claim item
fails on step 300, and on step 1200 the top head (L1H2), L1H1 and L1H2 pass while L1H0 and L1H3
still fail.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SPEC = """schema_version: 1
defaults:
  probe: {kind: repeated_random, length: 50, repeats: 2, batch: 16, seed: 0}
claims:
  - id: an-induction-head
    kind: head_score
    score: induction
    heads: {top: 1, by: induction}
    expect: ">= 0.5"
  - id: layer1-induction
    kind: head_score
    score: induction
    heads: [1.0, 1.1, 1.2, 1.3]
    expect: ">= 0.5"
"""


COMMITTED = ROOT / "checkpoints" / "induction-2l"


@pytest.fixture(scope="session")
def series() -> tuple[Path, Path]:
    """(early, late) checkpoint folders, committed (scripts/train_checkpoints.py reproduces them)."""
    return COMMITTED / "step_000300", COMMITTED / "step_001200"


def test_diff_runs_the_suite_on_two_checkpoints_and_names_the_flips(series: tuple[Path, Path], tmp_path: Path,
                                                                    capsys) -> None:
    early, late = series
    (tmp_path / "induction.yaml").write_text(SPEC)
    run = subprocess.run(
        [sys.executable, "-m", "icltest.cli", "diff", "--suite", "induction.yaml",
         "--models", str(early), str(late),
         "--reports-dir", "reports", "--json", "diff.json", "--markdown", "diff.md", "--patterns"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    diff = json.loads((tmp_path / "diff.json").read_text())
    rows = diff["claims"]["rows"]
    assert [(r["claim"], r["flip"]) for r in rows] == [
        ("an-induction-head[top1]", "fail->pass"), ("layer1-induction[L1H1]", "fail->pass"),
        ("layer1-induction[L1H2]", "fail->pass"), ("layer1-induction[L1H0]", None),
        ("layer1-induction[L1H3]", None)]
    assert rows[0]["b"]["head"] == "L1H2"
    assert diff["header"]["weights"]["same"] is False
    assert diff["header"]["a"]["label"].startswith("step_000300@")
    assert diff["header"]["b"]["label"].startswith(late.name + "@")
    text = run.stdout
    assert "FLIP+  an-induction-head[top1]" in text and "fail -> pass" in text

    (model,) = diff["heads"]["models"]
    induction = next(m for m in model["moved_most"] if m["map"] == "induction")
    assert [h["head"] for h in induction["heads"][:2]] == ["L1H2", "L1H1"]
    assert model["profile_maps"] == ["induction"]
    assert "profiles span one map (induction)" in text
    assert diff["patterns"]["available"] is True
    assert len(diff["patterns"]["matching"]["pairs"]) == 8
    assert "== heads matched by attention pattern ==" in text

    md = (tmp_path / "diff.md").read_text()
    assert "| ✅ flipped | `layer1-induction[L1H2]` |" in md

    # The same reports the other way round, as a CI gate: pass -> fail exits 1 and names the items.
    from icltest.cli import main

    reports = sorted((tmp_path / "reports").glob("*.json"))
    assert [p.name[:2] for p in reports] == ["A-", "B-"]
    capsys.readouterr()
    assert main(["diff", str(reports[1]), str(reports[0]), "--fail-on-flip"]) == 1
    captured = capsys.readouterr()
    flipped = [line.split()[1] for line in captured.out.splitlines() if line.startswith("FLIP-")]
    assert flipped == ["an-induction-head[top1]", "layer1-induction[L1H1]", "layer1-induction[L1H2]"]
    assert "3 claim item(s) went from pass to fail" in captured.err


@pytest.mark.parametrize("name, content, expected", [
    ("empty.yaml", "schema_version: 1\nclaims: []\n", "ran no claims (spec error: "),
    ("notes.yaml", "just: text\n", "failed (nothing collected: is the suite a spec file"),
])
def test_run_mode_stops_with_one_line_when_the_suite_runs_nothing(series: tuple[Path, Path], tmp_path: Path,
                                                                  capsys, name: str, content: str,
                                                                  expected: str) -> None:
    from icltest.cli import main

    (tmp_path / name).write_text(content)
    code = main(["diff", "--suite", str(tmp_path / name), "--models", str(series[0]), str(series[1])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 2 and err[0].startswith("icltest diff: running"), err  # progress, then the one error line
    assert err[-1].startswith(f"icltest diff: pytest on {series[0]} ") and expected in err[-1], err
