"""`icltest diff` on hand-made reports: every expected value here is written by hand.

The reports mimic ``pytest --icl-json`` output (claims list, summary, env, maps) and a baseline
file; the permutation test builds B's maps from A's by swapping heads L1H1 and L1H2 and adding
small noise, and the matching must find the swap.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from icltest.cli import main
from icltest.diff import DiffInputError, diff_sides, load_side, render_markdown, render_text, side_from_dict

SHA_A = "a1" * 32
SHA_B = "b2" * 32
PROBE = "repeated_random(length=50, repeats=2, batch=16, seed=0, bos=id 0)"


def rec(cid: str, target: str, value: Any, passed: bool, *, model: str = "m", sha: str = SHA_A,
        head: str | None = None, expect: str = ">= 0.5", index: int = 0) -> dict[str, Any]:
    details = {"head": head} if head else {}
    return {"id": cid, "kind": "head_score", "target": target, "item": f"specs/s.yaml::{cid}[{target}]",
            "value": value, "unit": "induction score", "expect": expect, "passed": passed, "summary": "",
            "spec": "specs/s.yaml:3:5", "probe": PROBE, "seed": 0,
            "model": {"name": model, "weights_sha256": sha, "dtype": "float32", "device": "cpu",
                      "architecture": "GPT2LMHeadModel", "n_layers": 2, "n_heads": 4},
            "details": details, "order": ["specs/s.yaml", index, 0], "outcome": "passed" if passed else "failed"}


def hmap(name: str, values: list[list[float | None]], *, kind: str = "score", model: str = "m",
         sha: str = SHA_A, probe: str = PROBE) -> dict[str, Any]:
    return {"model": model, "weights_sha256": sha, "name": name, "kind": kind, "probe": probe, "unit": name,
            "values": values, "targets": [], "claims": []}


def report(records: list[dict[str, Any]], maps: list[dict[str, Any]] | None = None, *, model: str = "m",
           sha: str = SHA_A, torch_version: str = "2.5.0") -> dict[str, Any]:
    passed = sum(r["passed"] for r in records)
    out = {"schema_version": 2,
           "summary": {"claims": len(records), "passed": passed, "failed": len(records) - passed, "xfailed": 0,
                       "spec_errors": 0, "forward_passes": 1},
           "claims": records, "spec_errors": [],
           "env": {"icltest": "0.1.0", "torch": torch_version, "transformers": "4.50.0", "python": "3.11.7",
                   "platform": "Linux", "time": "2025-01-01T00:00:00", "session_seed": 0,
                   "models": {model: {"name": model, "weights_sha256": sha, "dtype": "float32",
                                      "architecture": "GPT2LMHeadModel", "n_layers": 2, "n_heads": 4}}},
           "nonfinite": {}}
    if maps is not None:
        out["maps"] = maps
    return out


# A's heads all differ on at least one map; B = A with L1H1 <-> L1H2 swapped, plus noise of ~0.01.
A_MAPS = {
    "induction": [[0.02, 0.05, 0.03, 0.10], [0.04, 0.90, 0.20, 0.06]],
    "previous_token": [[0.10, 0.70, 0.15, 0.40], [0.05, 0.08, 0.30, 0.12]],
    "ablation": [[0.10, 0.60, 0.20, 0.30], [0.00, 2.50, 0.90, -0.10]],
}
B_MAPS = {
    "induction": [[0.03, 0.04, 0.03, 0.11], [0.05, 0.22, 0.89, 0.06]],
    "previous_token": [[0.11, 0.69, 0.16, 0.41], [0.05, 0.31, 0.07, 0.13]],
    "ablation": [[0.11, 0.62, 0.19, 0.31], [0.01, 0.95, 2.48, -0.09]],
}


def _maps(tables: dict[str, Any], sha: str, model: str) -> list[dict[str, Any]]:
    return [hmap(n, v, kind="ablation" if n == "ablation" else "score", sha=sha, model=model) for n, v in tables.items()]


def claims_a() -> list[dict[str, Any]]:
    return [rec("keep", "L1H1", 0.80, True, index=0), rec("break", "L1H2", 0.70, True, index=1),
            rec("fix", "top1", 0.20, False, head="L0H3", index=2), rec("break2", "L0H1", 0.90, True, index=3),
            rec("still", "L0H0", 0.10, False, index=4), rec("gone", "L0H2", 0.60, True, index=5)]


def claims_b() -> list[dict[str, Any]]:
    kw = {"model": "m2", "sha": SHA_B}
    return [rec("keep", "L1H1", 0.82, True, index=0, **kw), rec("break", "L1H2", 0.30, False, index=1, **kw),
            rec("fix", "top1", 0.60, True, head="L1H1", index=2, **kw), rec("break2", "L0H1", 0.10, False, index=3, **kw),
            rec("still", "L0H0", 0.15, False, index=4, **kw), rec("added", "L0H3", 0.55, True, index=5, **kw)]


@pytest.fixture
def ab(tmp_path: Path) -> tuple[Path, Path]:
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    a.write_text(json.dumps(report(claims_a(), _maps(A_MAPS, SHA_A, "m"))))
    b.write_text(json.dumps(report(claims_b(), _maps(B_MAPS, SHA_B, "m2"), model="m2", sha=SHA_B,
                                   torch_version="2.6.0")))
    return a, b


def _diff(a: Path, b: Path, **kw: Any) -> dict[str, Any]:
    return diff_sides(load_side(a), load_side(b), **kw)


def test_the_swapped_heads_are_recovered_by_behaviour(ab):
    result = _diff(*ab)
    (model,) = result["heads"]["models"]
    assert model["profile_maps"] == ["induction", "previous_token", "ablation"]
    match = model["matching"]
    pairs = {p["a"]: p["b"] for p in match["pairs"]}
    assert pairs == {"L0H0": "L0H0", "L0H1": "L0H1", "L0H2": "L0H2", "L0H3": "L0H3",
                     "L1H0": "L1H0", "L1H1": "L1H2", "L1H2": "L1H1", "L1H3": "L1H3"}
    assert [(p["a"], p["b"]) for p in match["moved"]] == [("L1H1", "L1H2"), ("L1H2", "L1H1")] or \
        [(p["a"], p["b"]) for p in match["moved"]] == [("L1H2", "L1H1"), ("L1H1", "L1H2")]
    assert match["same_index"] == 6
    assert match["poor"] == []
    assert all(p["similarity"] > 0.9 for p in match["moved"])  # noise of 0.01 on maps with spread ~0.3-0.8
    text = render_text(result)
    assert re.search(r"A:L1H1 ~ B:L1H2 \(profile similarity 0\.9\d\)", text), text
    assert re.search(r"A:L1H2 ~ B:L1H1 \(profile similarity 0\.9\d\)", text), text
    assert "6/8 heads matched at their own index" in text


def test_without_the_swap_every_head_stays_at_its_index(tmp_path):
    noisy_same = {"induction": B_MAPS["induction"], "previous_token": B_MAPS["previous_token"],
                  "ablation": B_MAPS["ablation"]}
    for t in noisy_same.values():  # undo the swap
        t[1][1], t[1][2] = t[1][2], t[1][1]
    try:
        a = side_from_dict(report(claims_a(), _maps(A_MAPS, SHA_A, "m")))
        b = side_from_dict(report(claims_b(), _maps(noisy_same, SHA_B, "m2"), model="m2", sha=SHA_B))
        match = diff_sides(a, b)["heads"]["models"][0]["matching"]
        assert match["same_index"] == 8 and match["moved"] == []
    finally:
        for t in noisy_same.values():
            t[1][1], t[1][2] = t[1][2], t[1][1]


def test_flipped_claims_come_first_in_order(ab):
    claims = _diff(*ab)["claims"]
    assert [r["claim"] for r in claims["rows"]] == ["break[L1H2]", "break2[L0H1]", "fix[top1]", "keep[L1H1]",
                                                    "still[L0H0]"]
    assert [r["flip"] for r in claims["rows"]] == ["pass->fail", "pass->fail", "fail->pass", None, None]
    assert [r["verdict"] for r in claims["rows"]] == ["pass -> fail", "pass -> fail", "fail -> pass",
                                                      "pass -> pass", "fail -> fail"]
    assert claims["rows"][0]["delta"] == pytest.approx(0.30 - 0.70)
    assert claims["rows"][2]["a"]["head"] == "L0H3" and claims["rows"][2]["b"]["head"] == "L1H1"
    assert [r["claim"] for r in claims["only_a"]] == ["gone[L0H2]"]
    assert [r["claim"] for r in claims["only_b"]] == ["added[L0H3]"]
    assert claims["counts"] == {"compared": 5, "pass->fail": 2, "fail->pass": 1, "still pass": 1,
                                "still not pass": 1, "only A": 1, "only B": 1}


def test_text_lists_flips_before_the_rest_and_the_header(ab):
    text = render_text(_diff(*ab))
    lines = text.splitlines()
    flips = [i for i, line in enumerate(lines) if line.startswith(("FLIP-", "FLIP+"))]
    assert [lines[i].split()[0] for i in flips] == ["FLIP-", "FLIP-", "FLIP+"]
    assert lines.index(next(l for l in lines if l.strip().startswith("keep[L1H1]"))) > flips[-1]
    assert "A = m@a1a1a1a1" in text and "B = m2@b2b2b2b2" in text
    assert "weights: different files (sha256 a1a1a1a1a1a1 vs b2b2b2b2b2b2)" in text
    assert "torch: 2.5.0 -> 2.6.0" in text
    assert "0.2000 (L0H3)" in text and "0.6000 (L1H1)" in text
    assert "only in A: gone[L0H2] (pass, 0.6000)" in text
    assert "only in B: added[L0H3] (pass, 0.5500)" in text


def test_heads_that_moved_most_per_map(ab):
    moved = {m["map"]: m["heads"] for m in _diff(*ab, top=2)["heads"]["models"][0]["moved_most"]}
    assert [(h["head"], h["a"], h["b"]) for h in moved["induction"]] == [("L1H2", 0.20, 0.89), ("L1H1", 0.90, 0.22)]
    assert moved["induction"][0]["delta"] == pytest.approx(0.69)
    assert moved["induction"][1]["delta"] == pytest.approx(-0.68)
    assert [(h["head"], h["delta"]) for h in moved["ablation"]] == [("L1H2", pytest.approx(1.58)),
                                                                   ("L1H1", pytest.approx(-1.55))]
    assert [h["head"] for h in moved["previous_token"]] == ["L1H1", "L1H2"]  # +0.23, -0.23


def test_same_weights_are_named_by_hash_not_by_name(tmp_path):
    a = side_from_dict(report([rec("c", "L0H0", 0.5, True)], [], model="release-1", sha=SHA_A))
    b = side_from_dict(report([rec("c", "L0H0", 0.5, True, model="release-2")], [], model="release-2", sha=SHA_A))
    assert diff_sides(a, b)["header"]["weights"]["same"] is True
    assert "identical files (sha256 a1a1a1a1a1a1)" in render_text(diff_sides(a, b))


def test_profile_similarity_by_hand_and_the_single_map_note():
    # One map, 1 layer x 2 heads: A = [0, 2], B = [0, 4]. Pooled cells 0, 2, 0, 4: mean 1.5,
    # std sqrt((2.25 + 0.25 + 2.25 + 6.25) / 4) = sqrt(2.75) = 1.65831. H1 sits (4 - 2) / 1.65831 =
    # 1.20605 apart, so its similarity is 1 / 2.20605 = 0.45330 (poor at the 0.5 default); H0: 1.
    a = side_from_dict(report([], [hmap("induction", [[0.0, 2.0]])]))
    b = side_from_dict(report([], [hmap("induction", [[0.0, 4.0]], sha=SHA_B)], sha=SHA_B))
    result = diff_sides(a, b)
    model = result["heads"]["models"][0]
    sims = {p["a"]: p["similarity"] for p in model["matching"]["pairs"]}
    assert sims["L0H0"] == pytest.approx(1.0)
    assert sims["L0H1"] == pytest.approx(0.45330, abs=1e-5)
    assert [p["a"] for p in model["matching"]["poor"]] == ["L0H1"]
    text = render_text(result)
    assert "profiles span one map (induction): a profile is one number" in text
    assert "A:L0H1 ~ B:L0H1 (profile similarity 0.45)" in text


def test_different_head_counts_match_rectangularly():
    a = side_from_dict(report([], [hmap("induction", [[0.0, 1.0]])]))
    b = side_from_dict(report([], [hmap("induction", [[1.0, 0.0, 0.5]], sha=SHA_B)], sha=SHA_B))
    model = diff_sides(a, b)["heads"]["models"][0]
    assert {p["a"]: p["b"] for p in model["matching"]["pairs"]} == {"L0H0": "L0H1", "L0H1": "L0H0"}
    assert model["matching"]["unmatched_b"] == ["L0H2"]
    assert model["moved_most"][0]["note"] == "not compared by index: A has 1x2 heads, B 1x3"


def test_a_side_without_maps_gets_one_clear_line(ab, tmp_path):
    plain = tmp_path / "old.json"
    plain.write_text(json.dumps(report(claims_b())))  # no "maps": a report from before maps existed
    result = _diff(ab[0], plain)
    assert result["heads"]["available"] is False
    text = render_text(result)
    assert "heads not compared: B has no per-head maps" in text
    assert [r["claim"] for r in result["claims"]["rows"]][:2] == ["break[L1H2]", "break2[L0H1]"]


def baseline(claims: dict[str, Any]) -> dict[str, Any]:
    return {"schema_version": 1, "name": "v1", "created": "2025-01-01T00:00:00+0000",
            "env": {"models": {"m": {"weights_sha256": SHA_A, "dtype": "float32", "device": "cpu"}},
                    "session_seed": 0, "libraries": {"icltest": "0.1.0", "torch": "2.4.0", "python": "3.11.7"},
                    "data_version": "abc"},
            "claims": claims}


def test_a_baseline_file_is_one_side(ab, tmp_path):
    base = tmp_path / "v1.json"
    base.write_text(json.dumps(baseline({
        "specs/s.yaml::break[L1H2]": {"value": 0.75, "unit": "induction score", "expect": ">= 0.5", "passed": True,
                                      "stats": {"heads.L1H2": 0.75}, "probe": PROBE},
        "specs/s.yaml::fix[top1]": {"value": 0.1, "unit": "induction score", "expect": ">= 0.5", "passed": False,
                                    "stats": {"heads.L0H3": 0.1}, "probe": PROBE},
    })))
    result = _diff(base, ab[1])
    assert result["header"]["a"]["source"] == "baseline"
    assert result["header"]["a"]["label"] == "m@a1a1a1a1"
    assert [(r["claim"], r["flip"]) for r in result["claims"]["rows"]] == [("break[L1H2]", "pass->fail"),
                                                                          ("fix[top1]", "fail->pass")]
    assert result["claims"]["rows"][1]["a"]["head"] == "L0H3"
    text = render_text(result)
    assert "heads not compared: A is a baseline file, which keeps no per-head maps" in text
    assert "torch: 2.4.0 -> 2.6.0" in text


def test_markdown_and_json_outputs(ab, tmp_path, capsys):
    md, js = tmp_path / "d.md", tmp_path / "d.json"
    assert main(["diff", str(ab[0]), str(ab[1]), "--markdown", str(md), "--json", str(js), "--labels", "v1,v2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("icltest diff\nA = v1: ")
    text = md.read_text()
    assert "**2 pass->fail, 1 fail->pass** of 5 claim items" in text
    assert "| ❌ flipped | `break[L1H2]` | 0.7000 | 0.3000 | -0.4000 | pass -> fail |" in text
    assert "| ✅ flipped | `fix[top1]` | 0.2000 (L0H3) | 0.6000 (L1H1) | +0.4000 | fail -> pass |" in text
    assert "- `A:L1H1 ~ B:L1H2 (profile similarity 0.9" in text
    data = json.loads(js.read_text())
    assert data["header"]["a"]["label"] == "v1" and data["header"]["b"]["label"] == "v2"
    assert data["claims"]["counts"]["pass->fail"] == 2
    assert sorted((p["a"], p["b"]) for p in data["heads"]["models"][0]["matching"]["moved"]) == [
        ("L1H1", "L1H2"), ("L1H2", "L1H1")]


def test_fail_on_flip_exit_codes(ab, tmp_path, capsys):
    a, b = ab
    assert main(["diff", str(a), str(b)]) == 0  # informational by default
    assert main(["diff", str(a), str(b), "--fail-on-flip"]) == 1
    assert "2 claim item(s) went from pass to fail (--fail-on-flip)" in capsys.readouterr().err
    fixed = tmp_path / "fixed.json"
    records = claims_a()
    records[2].update(value=0.7, passed=True)  # only "fix" changes: fail -> pass
    fixed.write_text(json.dumps(report(records, _maps(A_MAPS, SHA_A, "m"))))
    assert main(["diff", str(a), str(fixed), "--fail-on-flip"]) == 0
    assert main(["diff", str(fixed), str(a), "--fail-on-flip"]) == 1  # and back: pass -> fail


@pytest.mark.parametrize("content, expected", [
    (None, "no such file"),
    ("{not json", "not JSON (Expecting property name enclosed in double quotes at line 1)"),
    ("[1, 2]", "not an icltest report"),
    ('{"claims": [], "foo": 1}', "not an icltest report"),
    ('{"summary": {}, "claims": [{"value": 1}]}', "claims[0] has no 'id' and 'target'"),
])
def test_bad_input_is_one_line_and_exit_2(ab, tmp_path, capsys, content, expected):
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    assert main(["diff", str(ab[0]), str(bad)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"icltest diff: {bad}: ") and expected in err[0], captured.err
    assert captured.out == ""


@pytest.mark.parametrize("args, expected", [
    (["only-one.json"], "needs two inputs A and B, got 1"),
    (["a.json", "b.json", "--labels", "x"], "--labels needs two names separated by a comma"),
    (["--suite", "s.yaml"], "run mode needs both --suite S.yaml and --models A B"),
    (["--suite", "missing.yaml", "--models", "m1", "m2"], "--suite missing.yaml: no such file or folder"),
    (["a.json", "b.json", "--patterns"], "--patterns needs run mode"),
])
def test_bad_options_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, expected):
    monkeypatch.chdir(tmp_path)
    assert main(["diff", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_load_side_refuses_a_folder(tmp_path):
    with pytest.raises(DiffInputError, match="is a folder"):
        load_side(tmp_path)


def test_markdown_renders_without_maps(ab, tmp_path):
    plain = tmp_path / "old.json"
    plain.write_text(json.dumps(report(claims_b())))
    text = render_markdown(_diff(ab[0], plain))
    assert "## Heads\n\nheads not compared: B has no per-head maps" in text


# ----------------------------------------------------------------------------- run mode (pytest runs stubbed)

SUITE = "schema_version: 1\n{model}claims:\n  - id: a\n    kind: head_score\n    score: induction\n" \
        "    heads: {{top: 1}}\n    expect: \">= 0.5\"\n"


def _no_runs(*args: Any, **kwargs: Any) -> Path:
    raise AssertionError("run mode ran pytest on a suite it should have refused")


@pytest.mark.parametrize("model_line, shown", [
    ("model: smollm2-135m\n", "smollm2-135m"),
    ("model: {id: org/tiny, revision: abc123}\n", "org/tiny@abc123"),
])
def test_run_mode_refuses_a_suite_that_names_its_model(tmp_path, monkeypatch, capsys, model_line, shown):
    import icltest.diff.run as run

    monkeypatch.setattr(run, "run_suite", _no_runs)
    suite = tmp_path / "gate.yaml"
    suite.write_text(SUITE.format(model=model_line))
    assert main(["diff", "--suite", str(suite), "--models", "m1", "m2"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"icltest diff: {suite} names model: {shown}; run mode needs a suite without model: "
                             "(like specs/*.yaml or suites/induction-2l.yaml)"), err
    assert captured.out == ""


def test_run_mode_refuses_a_folder_with_one_spec_naming_its_model(tmp_path, monkeypatch, capsys):
    import icltest.diff.run as run

    monkeypatch.setattr(run, "run_suite", _no_runs)
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "agnostic.yaml").write_text(SUITE.format(model=""))
    (tmp_path / "suite" / "pinned.yaml").write_text(SUITE.format(model="model: {path: ckpt/step_1}\n"))
    (tmp_path / "suite" / "other-tool.yaml").write_text("model: not-a-spec\n")  # no schema_version: not a spec
    assert main(["diff", "--suite", str(tmp_path / "suite"), "--models", "m1", "m2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{tmp_path / 'suite' / 'pinned.yaml'} names model: ckpt/step_1;" in err[0], err


def _fake_runs(ab: tuple[Path, Path], calls: list[tuple[str, Path]]):
    def fake(suite: str, model: str, out: Path, pytest_args: str = "", tag: str = "") -> Path:
        report_path = out / f"{tag}{model}.json"
        report_path.write_text((ab[0] if tag == "A-" else ab[1]).read_text())
        calls.append((model, report_path))
        return report_path
    return fake


def _agnostic_suite_with_fake_runs(ab, tmp_path, monkeypatch) -> tuple[Path, list[tuple[str, Path]]]:
    """A suite naming no model, and pytest runs replaced by copies of the A/B reports (calls recorded)."""
    import icltest.diff.run as run

    calls: list[tuple[str, Path]] = []
    monkeypatch.setattr(run, "run_suite", _fake_runs(ab, calls))
    suite = tmp_path / "agnostic.yaml"
    suite.write_text(SUITE.format(model=""))
    return suite, calls


def test_run_mode_never_prints_a_path_into_the_deleted_temp_folder(ab, tmp_path, monkeypatch, capsys):
    suite, calls = _agnostic_suite_with_fake_runs(ab, tmp_path, monkeypatch)
    js = tmp_path / "diff.json"
    assert main(["diff", "--suite", str(suite), "--models", "m1", "m2", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    temp_folder = calls[0][1].parent
    assert not temp_folder.exists()  # the reports really were temporary
    assert str(temp_folder) not in out and str(temp_folder) not in js.read_text()
    gone = "temporary file (deleted; --reports-dir DIR keeps it) (report)"
    assert f"A = m@a1a1a1a1: GPT2LMHeadModel, 2x4 heads, float32 - pytest on m1, {gone}" in out
    assert f"B = m2@b2b2b2b2: GPT2LMHeadModel, 2x4 heads, float32 - pytest on m2, {gone}" in out


def test_run_mode_prints_the_kept_report_paths_with_reports_dir(ab, tmp_path, monkeypatch, capsys):
    suite, _ = _agnostic_suite_with_fake_runs(ab, tmp_path, monkeypatch)
    kept = tmp_path / "kept"
    assert main(["diff", "--suite", str(suite), "--models", "m1", "m2", "--reports-dir", str(kept)]) == 0
    out = capsys.readouterr().out
    assert f"A = m@a1a1a1a1: GPT2LMHeadModel, 2x4 heads, float32 - {kept / 'A-m1.json'} (report)" in out
    assert (kept / "A-m1.json").is_file() and (kept / "B-m2.json").is_file()
