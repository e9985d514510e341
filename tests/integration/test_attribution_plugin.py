"""logit_attribution end to end through pytester on the constructed model: the induction head is,
by construction, the only head that writes the copied token into the block lm_head reads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch  # noqa: F401  (imported before pytester snapshots sys.modules)
import transformers  # noqa: F401


def _spec(circuit_dir: Path, claims: str) -> str:
    return (f"schema_version: 1\nmodel: {{path: '{circuit_dir}'}}\n"
            "defaults:\n  probe: {kind: repeated_random, length: 12, repeats: 2, batch: 4, seed: 0}\nclaims:\n" + claims)


def test_direct_effect_and_lens_claims_pass_and_fail(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    text = _spec(circuit_dir, (
        "  - id: induction-writes-the-copy\n    kind: logit_attribution\n    heads: [1.0, 0.0]\n    expect: '>= 5'\n"
        "  - id: top-induction\n    kind: logit_attribution\n    heads: {top: 1, by: induction}\n    expect: '>= 5'\n"
        "  - id: mlps-write-nothing\n    kind: logit_attribution\n    layers: {layers: '0-1', part: mlp}\n"
        "    expect: {between: [-0.5, 0.5]}\n"
        "  - id: copied-after-layer-1\n    kind: logit_attribution\n    lens: {layer: 1, top: 1}\n    expect: '>= 0.8'\n"
        "  - id: not-after-layer-0\n    kind: logit_attribution\n    lens: {layer: 0, top: 1}\n    expect: '>= 0.95'\n"
    ))
    pytester.makefile(".yaml", icl_dla=text)
    result = pytester.runpytest("--icl-json", "out.json", "-p", "no:cacheprovider", "-v")
    out = result.stdout.str()
    result.assert_outcomes(passed=4, failed=2)
    assert "induction-writes-the-copy[L0H0] FAILED" in out
    assert "not-after-layer-0[lens-layer0-top1] FAILED" in out
    claims = {c["id"] + "[" + c["target"] + "]": c for c in json.loads((pytester.path / "out.json").read_text())["claims"]}
    l1 = claims["induction-writes-the-copy[L1H0]"]
    assert l1["details"]["rank_among_heads"] == 1
    assert l1["details"]["sum_check_max_abs"] < 1e-3
    assert "frozen" in l1["details"]["final_norm"]
    assert claims["top-induction[top1-induction]"]["details"]["head"] == "L1H0"
    sweep = claims["copied-after-layer-1[lens-layer1-top1]"]["details"]["sweep_top_fraction"]
    # random 12-token segments from 63 tokens repeat a token now and then (ambiguous copies): not 1.0
    assert len(sweep) == 3 and sweep[-1] >= 0.8 and sweep[1] == 0.0


def test_lens_layer_out_of_range_points_at_the_spec_line(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    text = _spec(circuit_dir, "  - id: far\n    kind: logit_attribution\n    lens: {layer: 7}\n    expect: '>= 0'\n")
    pytester.makefile(".yaml", icl_far=text)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "icl_far.yaml:8:" in out and "layer 7 is out of range" in out, out
    assert "Traceback" not in out


def test_scan_attribute_refuses_a_bad_task_before_loading_anything(capsys) -> None:
    from icltest.cli import main

    assert main(["scan", "--model", "no-such-model", "--attribute", "--task", "open_bok"]) == 2
    assert "--task ['open_bok'] not supported" in capsys.readouterr().err


def test_scan_attribute_reports_impossible_inputs_in_one_line(circuit_dir: Path, capsys) -> None:
    from icltest.cli import main

    code = main(["scan", "--path", str(circuit_dir), "--attribute", "--task", "open_book", "--shots", "40",
                 "--quiet", "--scores", "induction", "--length", "12", "--batch", "2"])
    err = capsys.readouterr().err
    assert code == 2
    assert "icltest scan --attribute: shots=40" in err and "Traceback" not in err


def test_scan_attribute_ranks_heads_on_the_constructed_model(circuit_dir: Path, capsys, tmp_path: Path) -> None:
    from icltest.cli import main

    out = tmp_path / "scan.json"
    code = main(["scan", "--path", str(circuit_dir), "--attribute", "--task", "open_book,closed_book", "--shots", "0",
                 "--n", "4", "--quiet", "--scores", "induction", "--length", "12", "--batch", "2", "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())["attribution"]
    assert set(data["tasks"]) == {"open_book", "closed_book"}
    assert len(data["tasks"]["open_book"]["relevance"]) == 2  # layers of the constructed model
    assert len(data["in_context"]) == len(data["parametric"]) == 5
    assert "top 5 in_context" in capsys.readouterr().out
