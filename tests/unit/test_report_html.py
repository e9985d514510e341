"""Rendered reports from hand-made report dicts: HTML (self-contained, one heatmap per map, the claim
table, regressions first), maps merged in build_report, Markdown for a CI step summary, the
terminal table with a baseline column, and `icltest report --html`."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from icltest.report import build_report, render_html, render_markdown, terminal_lines, write_html
from icltest.report.maps import head_map, merge_maps

MODEL = {"name": "tiny", "weights_sha256": "ab" * 32, "dtype": "float32"}
PROBE = "repeated_random(length=20, repeats=2, batch=8, seed=3)"
INDUCTION = [[0.01, 0.02, 0.03, 0.04], [0.95, 0.25, 0.02, None]]
ATTRIBUTION = [[0.3, -0.2, 0.0, 0.1], [-0.5, 0.05, 0.0, 0.02]]


def _record(cid: str, target: str, value: float, passed: bool, maps: list[dict[str, Any]] | None = None,
            baseline: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    record = {"id": cid, "kind": "head_score", "target": target, "item": f"s.yaml::{cid}[{target}]", "value": value,
              "unit": "induction score", "expect": ">= 0.9", "passed": passed, "summary": f"summary of {cid}",
              "spec": f"s.yaml:{len(cid)}:5", "probe": PROBE, "model": dict(MODEL),
              "details": {"maps": maps or []}, **extra}
    if baseline is not None:
        record["baseline"] = baseline
    return record


def _report() -> dict[str, Any]:
    induction = {"name": "induction", "kind": "score", "probe": PROBE, "unit": "induction score",
                 "values": INDUCTION, "targets": [[1, 0]]}
    attribution = {"name": "in_context attribution", "kind": "attribution", "probe": "open_book; closed_book",
                   "unit": "relevance", "values": ATTRIBUTION, "targets": [[0, 0]]}
    sweep = {"name": "layer sweep", "x": "layer", "y": "accuracy", "points": [[0, 0.1], [1, 0.6]],
             "reference": {"no injection": 0.1}}
    records = [
        _record("passing", "L1H0", 0.95, True, [induction], {"verdict": "pass", "value": 0.94, "delta": 0.01,
                                                            "max_drop": 0.05, "direction": "higher", "reason": ""}),
        _record("failing", "L1H1", 0.25, False, [dict(induction, targets=[[1, 1]])]),
        _record("dropped", "L0H0", 0.3, False, [attribution], {"verdict": "regressed", "value": 0.6, "delta": -0.3,
                                                              "max_drop": 0.05, "direction": "higher", "reason": "fell"}),
    ]
    records[0]["details"]["sweeps"] = [sweep]
    report = build_report(records, [], forward_passes=1, session_seed=0)
    report["baseline"] = {"name": "release-1", "path": "baselines/release-1.json", "created": "2025-01-01T00:00:00",
                          "model": {"name": "tiny"}, "env_changes": [{"key": "torch", "baseline": "2.3", "current": "2.4"}],
                          "counts": {"pass": 1, "regressed": 1, "improved": 0, "new": 0, "incomparable": 0}, "missing": ["s.yaml::gone[L0H0]"], "same_weights": True}
    return report


def test_html_one_heatmap_per_map_and_the_claim_table() -> None:
    report = _report()
    html = render_html(report)
    maps = re.findall(r'<img [^>]*data-map="([^"]*)"', html)
    assert sorted(maps) == ["in_context attribution", "induction"]  # two maps, one image each
    for png in re.findall(r'data-map="[^"]*"[^>]*src="data:image/png;base64,([^"]+)"', html):
        assert base64.b64decode(png).startswith(b"\x89PNG")
    claims = re.findall(r'<tr class="row-[A-Z]+" data-claim="([^"]+)"', html)
    assert claims == ["dropped[L0H0]", "failing[L1H1]", "passing[L1H0]"]  # regression, failure, the rest
    for cid in ("passing", "failing", "dropped"):
        assert f"summary of {cid}" in html
    assert re.search(r'data-sweep="passing\[L1H0\]"', html)
    assert "release-1" in html and "torch" in html and "s.yaml::gone[L0H0]" in html


def test_html_makes_no_network_reference() -> None:
    html = render_html(_report())
    refs = re.findall(r'(?:src|href)\s*=\s*["\']?([^"\'\s>]+)', html, flags=re.I)
    assert refs and all(r.startswith(("data:image/png;base64,", "#")) for r in refs), [r[:40] for r in refs]
    assert "http://" not in html and "https://" not in html and "@import" not in html and "url(" not in html


def test_html_leaves_no_matplotlib_state() -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    before_figs, before_rc = plt.get_fignums(), dict(matplotlib.rcParams)
    render_html(_report())
    assert plt.get_fignums() == before_figs
    assert dict(matplotlib.rcParams) == before_rc


def test_html_renders_an_old_report_and_odd_maps() -> None:
    """A schema-1 report (no maps) and maps with null cells or out-of-range targets still render."""
    old = {"summary": {"claims": 0, "passed": 0, "failed": 0, "spec_errors": 0}, "claims": [], "env": {}}
    assert "No claim in this run measured a per-head map" in render_html(old)
    odd = dict(_report(), maps=[{"name": "x <b>", "kind": "score", "probe": None, "unit": "",
                                 "values": [[None, None]], "targets": [[5, 5]]}])
    html = render_html(odd)
    assert 'data-map="x &lt;b&gt;"' in html and "<b>x <b>" not in html


def test_write_html_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "r.html"
    write_html(_report(), target)
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in target.parent.iterdir()] == ["r.html"]


def test_build_report_merges_maps_by_model_name_and_probe() -> None:
    a = head_map("induction", "score", PROBE, "induction score", INDUCTION, [(1, 0)])
    b = head_map("induction", "score", PROBE, "induction score", INDUCTION, [(1, 1), (1, 0)])
    other_probe = head_map("induction", "score", "repeated_random(seed=9)", "induction score", INDUCTION, [(0, 0)])
    records = [_record("b-claim", "L1H1", 0.25, False, [b]), _record("a-claim", "L1H0", 0.95, True, [a, other_probe])]
    report = build_report(records)
    assert report["schema_version"] == 2
    maps = report["maps"]
    assert [(m["name"], m["probe"]) for m in maps] == [("induction", PROBE), ("induction", "repeated_random(seed=9)")]
    assert maps[0]["targets"] == [[1, 0], [1, 1]] and maps[0]["claims"] == ["a-claim", "b-claim"]
    assert maps[1]["targets"] == [[0, 0]] and maps[1]["claims"] == ["a-claim"]
    assert maps[0]["model"] == "tiny" and maps[0]["weights_sha256"] == MODEL["weights_sha256"]
    assert maps[0]["values"] == [[0.01, 0.02, 0.03, 0.04], [0.95, 0.25, 0.02, None]]
    # another model's weights with the same name stay apart
    other = _record("c", "L1H0", 0.9, True, [a])
    other["model"] = dict(MODEL, weights_sha256="cd" * 32)
    assert len(build_report(records + [other])["maps"]) == 3
    assert merge_maps(list(reversed(records))) == maps  # order of records does not matter
    attribution = head_map("an attribution", "attribution", "p", "u", ATTRIBUTION)
    mixed = build_report([_record("x", "L0H0", 0.1, True, [attribution, a])])["maps"]
    assert [m["kind"] for m in mixed] == ["score", "attribution"]  # pattern scores first, whatever the names


def test_head_map_rounds_and_nulls() -> None:
    m = head_map("x", "dla", "p", "u", [[0.123456789, float("nan")], [float("inf"), -1.0]], [(1, 1), (0, 0), (1, 1)])
    assert m["values"] == [[0.12346, None], [None, -1.0]] and m["targets"] == [[0, 0], [1, 1]]
    with pytest.raises(ValueError, match="kind"):
        head_map("x", "heat", "p", "u", [[0.0]])


def test_markdown_regressions_first_then_failed_then_baseline_columns() -> None:
    md = render_markdown(_report())
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections[:3] == ["## Regressions", "## Failed (other than regressions)", "## All claims"]
    regressions = md.split("## Regressions")[1].split("## Failed")[0]
    assert "`dropped[L0H0]`" in regressions and "`failing[L1H1]`" not in regressions
    assert "| baseline | Δ | vs baseline |" in md
    assert "| 0.6000 | -0.3000 | 🔻 regressed |" in md
    assert "Against the baseline **release-1**: 🔻 regressed 1, pass 1" in md
    maps = md.split("## Head maps")[1].split("\n## ")[0]
    assert (f"| **induction** (score) | L1H0 0.9500, L1H1 0.2500, L0H3 0.0400 | L1H0 0.9500, L1H1 0.2500 | `{PROBE}` |"
            in maps), maps
    assert "| torch | `2.3` | `2.4` |" in md and "`s.yaml::gone[L0H0]`" in md


def test_markdown_without_baseline_has_no_baseline_column() -> None:
    report = _report()
    del report["baseline"]
    for r in report["claims"]:
        r.pop("baseline", None)
    md = render_markdown(report)
    assert "## Regressions" not in md and "vs baseline" not in md and "## Failed\n" in md


def test_terminal_regressions_first_with_aligned_baseline_column() -> None:
    lines = terminal_lines(_report()["claims"])
    header, *rows, tail = lines
    assert header.split() == ["claim", "measured", "expected", "baseline", "delta", "vs", "baseline", "spec"]
    assert rows[0].startswith("FAIL") and "dropped[L0H0]" in rows[0] and "regressed" in rows[0]
    assert [r.split()[1] for r in rows] == ["dropped[L0H0]", "passing[L1H0]", "failing[L1H1]"]
    column = header.index("baseline")
    assert all(r[column - 2:column] == "  " for r in rows)  # every row's baseline cell starts in one column
    assert rows[0][column:].split()[0] == "0.6000" and rows[2][column:].split()[0] == "-"
    assert tail == "1/3 claims passed; against the baseline: 1 regressed, 1 pass"


def test_cli_report_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from icltest.cli import main
    from icltest.report import write_json

    src = tmp_path / "r.json"
    write_json(_report(), src)
    assert main(["report", str(src), "--html", str(tmp_path / "r.html")]) == 1  # a claim failed
    assert capsys.readouterr().out == ""
    assert len(re.findall(r"data-map=", (tmp_path / "r.html").read_text())) == 2
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["report", str(tmp_path / "bad.json"), "--html", str(tmp_path / "x.html")]) == 2
    assert "is not JSON" in capsys.readouterr().err
    (tmp_path / "other.json").write_text(json.dumps({"a": 1}))
    assert main(["report", str(tmp_path / "other.json")]) == 2
    assert "not an icltest report" in capsys.readouterr().err


def test_reports_get_the_permissions_a_plain_write_would(tmp_path: Path) -> None:
    """A temp file from mkstemp is owner-only; the report that replaces the target must not be."""
    import os

    old = os.umask(0o022)
    try:
        write_html(_report(), tmp_path / "new.html")
        assert (tmp_path / "new.html").stat().st_mode & 0o777 == 0o644
        kept = tmp_path / "kept.html"
        kept.write_text("old")
        kept.chmod(0o640)
        write_html(_report(), kept)
        assert kept.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
