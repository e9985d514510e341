"""Sweeps (dose-response, layer sweeps) appear in the Markdown report as readable tables."""
from __future__ import annotations

import math

from icltest.report import build_report, render_markdown
from icltest.report.sweeps import render_sweep, sparkline


def _record(sweeps):
    return {"id": "fv", "kind": "function_vector", "target": "antonym", "passed": True, "value": 0.4,
            "details": {"sweeps": sweeps}}


def test_sparkline_spans_the_range_and_marks_missing_values() -> None:
    assert sparkline([0.0, 1.0]) == "▁█"
    assert sparkline([2.0, 2.0, 2.0]) == "▅▅▅"
    assert sparkline([0.0, math.nan, 0.5, 1.0]) == "▁ ▅█"  # 0.5 rounds to the 5th of 8 bars
    assert sparkline([math.nan]) == " "


def test_sweep_table_has_x_across_y_below_best_in_bold_and_references() -> None:
    lines = render_sweep({"name": "layer sweep", "x": "layer", "y": "accuracy",
                          "points": [[0, 0.1], [5, 0.62], [10, 0.3]],
                          "reference": {"no injection": 0.05}})
    text = "\n".join(lines)
    assert "| layer | 0 | 5 | 10 |" in text
    assert "| accuracy | 0.1 | **0.62** | 0.3 |" in text
    assert "reference: no injection 0.05" in text
    assert "▁█▄" in text


def test_malformed_sweep_is_reported_not_dropped() -> None:
    lines = render_sweep({"name": "broken", "points": [[1]]})
    assert len(lines) == 1 and lines[0].startswith("- malformed sweep")


def test_report_has_a_sweeps_section_only_when_a_claim_measured_one() -> None:
    with_sweep = render_markdown(build_report([_record([{"name": "dose", "x": "strength", "y": "gain",
                                                         "points": [[1, 0.2], [4, 0.9]]}])]))
    assert "## Sweeps" in with_sweep and "### `fv[antonym]`" in with_sweep and "| strength | 1 | 4 |" in with_sweep
    without = render_markdown(build_report([{"id": "a", "kind": "head_score", "target": "L1H0", "passed": True,
                                             "value": 0.9, "details": {}}]))
    assert "## Sweeps" not in without
