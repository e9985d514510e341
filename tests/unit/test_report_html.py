"""Rendered reports from hand-made report dicts: HTML (self-contained, one heatmap per map, the claim
table, regressions first), maps merged in build_report, Markdown for a CI step summary, the
terminal table with a baseline column, and `icltest report --html`; regressions accepted by
--icl-update-baseline or under an xfail mark, other weights, environment changes and uncompared claims."""
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


# ----------------------------------------------------------------------------- regressions that did not fail


def _regressed(reason: str = "fell 0.6 -> 0.3 (-0.3), more than max_drop 0.05") -> dict[str, Any]:
    return {"verdict": "regressed", "value": 0.6, "delta": -0.3, "max_drop": 0.05, "direction": "higher",
            "reason": reason}


UPDATED = "fell 0.6 -> 0.3 (-0.3), more than max_drop 0.05 (not failed: --icl-update-baseline accepts this run)"


def _accepted_report() -> dict[str, Any]:
    """One regression that fails its item, one accepted by --icl-update-baseline (the claim passed), one
    accepted whose claim failed its own expectation, one under an xfail mark."""
    records = [
        _record("kept", "L1H0", 0.95, True, baseline={**_regressed(UPDATED), "accepted": "update"}),
        _record("known", "L0H1", 0.3, False, baseline={**_regressed(
            "fell 0.6 -> 0.3 (-0.3), more than max_drop 0.05 (not failed: the claim is marked xfail)"),
            "accepted": "xfail"}, xfail=True),
        _record("dropped", "L0H0", 0.3, False, baseline=_regressed(), claim_passed=True),
        _record("broken", "L1H1", 0.3, False, baseline={**_regressed(UPDATED), "accepted": "update"}),
    ]
    report = build_report(records, [], forward_passes=1, session_seed=0)
    report["baseline"] = {"name": "release-1", "path": "baselines/release-1.json", "created": "2025-01-01T00:00:00",
                          "model": {"name": "tiny"}, "env_changes": [],
                          "counts": {"pass": 0, "regressed": 4, "improved": 0, "new": 0, "incomparable": 0},
                          "missing": [], "same_weights": True}
    return report


def test_html_shows_accepted_and_xfail_regressions_as_such() -> None:
    html = render_html(_accepted_report())
    rows = re.findall(r'<tr class="row-([A-Z]+)" data-claim="([^"]+)">(.*?)</tr>', html)
    assert [(cls, claim) for cls, claim, _ in rows] == [
        ("REGRESSED", "dropped[L0H0]"), ("FAIL", "broken[L1H1]"), ("PASS", "kept[L1H0]"), ("XFAIL", "known[L0H1]")]
    cells = {claim: body for _, claim, body in rows}
    assert '<span class="pill REGRESSED">REGRESSED</span>' in cells["dropped[L0H0]"]
    assert ">regressed (accepted)</td>" in cells["kept[L1H0]"] and ">regressed (accepted)</td>" in cells["broken[L1H1]"]
    assert ">regressed (xfail)</td>" in cells["known[L0H1]"]
    assert ">regressed</td>" in cells["dropped[L0H0]"]
    for claim in ("kept[L1H0]", "broken[L1H1]", "known[L0H1]"):
        assert "REGRESSED" not in cells[claim]
    header = html.split('<h2 id="claims">')[0]
    assert '<span class="count REGRESSED">1 regressed</span>' in header
    assert ">1 regressed (xfail)</span>" in header and ">2 regressed (accepted)</span>" in header
    assert '<span class="label">1/4 claims passed</span>' in header


def test_markdown_lists_only_failing_regressions_under_regressions() -> None:
    md = render_markdown(_accepted_report())
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections[:3] == ["## Regressions", "## Failed (other than regressions)", "## All claims"]
    regressions = md.split("## Regressions")[1].split("## Failed")[0]
    assert "`dropped[L0H0]`" in regressions
    assert "`kept[L1H0]`" not in regressions and "`known[L0H1]`" not in regressions and "`broken[L1H1]`" not in regressions
    failed = md.split("## Failed (other than regressions)")[1].split("## All claims")[0]
    assert "`broken[L1H1]`" in failed and "| regressed (accepted) |" in failed  # failed on its own expectation
    assert "`known[L0H1]`" not in failed and "`kept[L1H0]`" not in failed
    assert ("Against the baseline **release-1**: 🔻 regressed 1, regressed (xfail) 1, regressed (accepted) 2"
            in md)
    assert "**1/4 claims passed**, 2 failed, 1 known failure(s) (xfail)" in md
    kept = next(line for line in md.splitlines() if "`kept[L1H0]`" in line)
    assert kept.startswith("| ✅ |") and "| 0.6000 | -0.3000 | regressed (accepted) |" in kept


def test_markdown_regressions_section_is_absent_when_every_regression_was_accepted() -> None:
    report = _accepted_report()
    report["claims"] = [r for r in report["claims"] if r["id"] in ("kept", "known")]
    md = render_markdown(report)
    assert "## Regressions" not in md and "🔻" not in md
    assert "Against the baseline **release-1**: regressed (xfail) 1, regressed (accepted) 1" in md


def test_terminal_puts_only_failing_regressions_first_and_labels_the_rest() -> None:
    header, *rows, tail = terminal_lines(_accepted_report()["claims"])
    assert [r.split()[:2] for r in rows] == [["FAIL", "dropped[L0H0]"], ["PASS", "kept[L1H0]"],
                                             ["XFAIL", "known[L0H1]"], ["FAIL", "broken[L1H1]"]]
    assert rows[1].split("-0.3000")[1].split()[:2] == ["regressed", "(accepted)"]
    assert rows[2].split("-0.3000")[1].split()[:2] == ["regressed", "(xfail)"]
    assert tail == "1/4 claims passed; against the baseline: 1 regressed, 1 regressed (xfail), 2 regressed (accepted)"


# ----------------------------------------------------------------------------- weights, env changes, uncompared

SHA_OLD, SHA_NEW = "a" * 64, "b" * 64


def _release_report() -> dict[str, Any]:
    """Another checkpoint's weights, torch upgraded; 2 claims new, 1 incomparable, 1 baseline claim gone."""
    verdict = {"value": None, "delta": None, "max_drop": 0.05, "direction": "higher"}
    records = [
        _record("same", "L1H0", 0.95, True, baseline=dict(verdict, verdict="pass", value=0.94, delta=0.01, reason="")),
        _record("added", "L1H0", 0.95, True, baseline=dict(verdict, verdict="new", reason="not in the baseline")),
        _record("added2", "L1H1", 0.95, True, baseline=dict(verdict, verdict="new", reason="not in the baseline")),
        _record("reprobed", "L0H0", 0.95, True, baseline=dict(
            verdict, verdict="incomparable", value=0.5, reason="the probe changed ('a' -> 'b'): not compared")),
    ]
    report = build_report(records, [], forward_passes=1, session_seed=0)
    report["baseline"] = {
        "name": "release-1", "path": "baselines/release-1.json", "created": "2025-01-01T00:00:00",
        "model": {"name": "tiny"}, "same_weights": False, "missing": ["s.yaml::gone[L0H0]"],
        "counts": {"pass": 1, "regressed": 0, "improved": 0, "new": 2, "incomparable": 1},
        "env_changes": [{"key": "model.weights_sha256", "baseline": SHA_OLD, "current": SHA_NEW},
                        {"key": "torch", "baseline": "2.3", "current": "2.4"}]}
    return report


UNCOMPARED = "3 claims not compared (2 new, 1 incomparable) and 1 baseline claim did not run"


def test_markdown_says_what_was_and_was_not_compared() -> None:
    md = render_markdown(_release_report())
    assert "compared anyway" not in md and "different weights" not in md
    head = md.split("\n| |")[0]  # everything above the claim table
    assert ("Against the baseline **release-1**: pass 1, new 2, ≠ incomparable 1 · weights differ from the "
            "baseline's (sha256 aaaaaaaaaaaa -> bbbbbbbbbbbb) · ⚠️ 1 environment change(s) since the baseline "
            "(torch; see Baseline below)") in head
    assert UNCOMPARED in head
    baseline = md.split("## Baseline")[1]
    assert ("⚠️ Environment changes since the baseline (listed, not corrected for): claims were compared across "
            "them, except 1 whose probe, data files, probe seed or unit changed (incomparable: not compared, "
            "judged on their own expectation only).") in baseline
    assert "| model.weights_sha256 | `" + SHA_OLD + "` | `" + SHA_NEW + "` |" in baseline
    assert "| torch | `2.3` | `2.4` |" in baseline


def test_html_shows_other_weights_as_information_and_env_changes_as_warnings() -> None:
    html = render_html(_release_report())
    header = html.split('<h2 id="claims">')[0]
    infos = re.findall(r'<div class="info">(.*?)</div>', header)
    warns = re.findall(r'<div class="warn">(.*?)</div>', header)
    assert infos == ["Weights differ from the baseline&#x27;s (sha256 aaaaaaaaaaaa -&gt; bbbbbbbbbbbb).",
                     UNCOMPARED + "."]
    assert len(warns) == 1 and warns[0].startswith("1 environment change(s) since the baseline: torch (")
    assert "different weights" not in html


def test_terminal_counts_uncompared_and_missing_claims() -> None:
    report = _release_report()
    *_, tail, last = terminal_lines(report["claims"], report["baseline"])
    assert tail == "4/4 claims passed; against the baseline: 1 pass, 2 new, 1 incomparable"
    assert last == UNCOMPARED
    only_missing = [r for r in report["claims"] if r["id"] == "same"]
    assert terminal_lines(only_missing, report["baseline"])[-1] == "1 baseline claim did not run"
    assert terminal_lines(only_missing)[-1] == "1/1 claims passed; against the baseline: 1 pass"  # nothing to add


def test_weights_line_when_same_or_unknown() -> None:
    report = _release_report()
    report["baseline"].update(same_weights=True, env_changes=[], missing=[])
    report["claims"] = report["claims"][:1]
    md = render_markdown(report)
    assert "same weights as the baseline (sha256)" in md and "not compared" not in md
    assert "No environment changes since the baseline." in md
    report["baseline"].update(same_weights=False, env_changes=[
        {"key": "model.weights_sha256", "baseline": None, "current": SHA_NEW}])
    assert "weights not matched with the baseline's (a sha256 is unknown)" in render_markdown(report)


def test_map_top_heads_skips_cells_without_a_finite_value() -> None:
    from icltest.report.maps import map_top_heads

    values = [[0.5, None, float("nan")], [float("inf"), 0.5, 0.9], [0.1]]
    assert map_top_heads(values, 3) == [(1, 2, 0.9), (0, 0, 0.5), (1, 1, 0.5)]  # ties by (layer, head)
    assert map_top_heads(values, 10) == [(1, 2, 0.9), (0, 0, 0.5), (1, 1, 0.5), (2, 0, 0.1)]
    assert map_top_heads([[None, None]], 3) == [] and map_top_heads([], 3) == []
