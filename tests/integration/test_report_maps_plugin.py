"""Per-head maps, the HTML report and JUnit properties, end to end on the constructed known-circuit model.

The expected induction map is computed here from the model's own attention weights (transformers'
``output_attentions``) on the probe's tokens, by the score's definition, without icltest's score
code: a query's score is its attention mass on the positions right after earlier copies of its
token, averaged over the queries that have such a position.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

PROBE = {"kind": "repeated_random", "length": 20, "repeats": 2, "batch": 8, "seed": 3}
CLAIMS = """\
  - id: induction
    kind: head_score
    score: induction
    heads: [1.0, 1.1]
    expect: ">= 0.9"
  - id: quiet-layer0
    kind: head_score
    score: induction
    heads: {layers: "0"}
    expect: "< 0.3"
  - id: top-induction
    kind: head_score
    score: induction
    heads: {top: 1}
    expect: ">= 0.9"
  - id: prev-rank
    kind: head_rank
    score: previous_token
    head: 0.0
    expect: {rank: "<= 1"}
  - id: dla
    kind: logit_attribution
    heads: [1.0]
    expect: "> 0"
"""


def _spec(model_dir: Path) -> str:
    probe = "{" + ", ".join(f"{k}: {v}" for k, v in PROBE.items()) + "}"
    return f"schema_version: 1\nmodel: {{path: '{model_dir}'}}\ndefaults:\n  probe: {probe}\nclaims:\n{CLAIMS}"


def _expected_induction(model_dir: Path) -> tuple[list[list[float]], str]:
    """[layer][head] induction score from HF attention weights on the probe's tokens, and the probe label."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from icltest.probes import make_probe, vocab_from_tokenizer
    from icltest.schema.spec import ProbeSpec

    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    probe = make_probe(ProbeSpec(**PROBE), vocab_from_tokenizer(tok, model.get_input_embeddings().weight.shape[0]), tok)
    tokens, valid = probe.tokens, probe.valid
    with torch.no_grad():
        attentions = model(input_ids=tokens, output_attentions=True).attentions  # per layer [b, heads, q, k]
    out = []
    for att in attentions:
        row = []
        for head in range(att.shape[1]):
            total, count = 0.0, 0
            for b in range(tokens.shape[0]):
                for i in range(tokens.shape[1]):
                    targets = [j + 1 for j in range(i - 1) if valid[b, i] and valid[b, j] and valid[b, j + 1]
                               and tokens[b, j] == tokens[b, i]]
                    if targets:
                        total += float(att[b, head, i, targets].sum())
                        count += 1
            row.append(total / count)
        out.append(row)
    return out, probe.label


def test_maps_html_and_junit(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    pytester.makefile(".yaml", icl_maps=_spec(circuit_dir))
    result = pytester.runpytest("-p", "no:cacheprovider", "--icl-json", "r.json", "--icl-html", "r.html",
                                "--icl-markdown", "r.md", "--junitxml", "junit.xml")
    result.assert_outcomes(passed=5, failed=1)  # L1H1 is uniform: far below 0.9
    assert "PytestWarning" not in result.stdout.str()  # no xunit2 incompatibility warning
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["schema_version"] == 2
    by_item = {f"{c['id']}[{c['target']}]": c for c in report["claims"]}
    expected, label = _expected_induction(circuit_dir)

    # every head_score record carries the full induction table, equal to the independent computation
    for item in ("induction[L1H0]", "induction[L1H1]", "quiet-layer0[layers0]", "top-induction[top1]"):
        (entry,) = by_item[item]["details"]["maps"]
        assert entry["name"] == "induction" and entry["kind"] == "score" and entry["probe"] == label
        assert [len(row) for row in entry["values"]] == [4, 4]
        for l in range(2):
            for h in range(4):
                assert entry["values"][l][h] == pytest.approx(expected[l][h], abs=2e-5), (item, l, h)
    maps = {(m["name"], m["kind"]): m for m in report["maps"]}
    assert set(maps) == {("induction", "score"), ("previous_token", "score"), ("direct logit attribution", "dla")}
    induction = maps[("induction", "score")]
    # targets: the listed heads, the top-1 head and, of the layer-0 population, only the head closest to failing
    (population,) = by_item["quiet-layer0[layers0]"]["details"]["maps"]
    ((layer, head),) = population["targets"]
    assert layer == 0 and expected[0][head] == pytest.approx(max(expected[0]), abs=2e-5)
    assert induction["targets"] == sorted([[0, head], [1, 0], [1, 1]])
    assert induction["claims"] == ["induction", "quiet-layer0", "top-induction"]
    assert induction["model"] == by_item["dla[L1H0]"]["model"]["name"]
    # the measured values sit at the targets, and the top-1 claim's value is the map's maximum
    assert induction["values"][1][0] == pytest.approx(by_item["induction[L1H0]"]["value"], abs=1e-5)
    assert induction["values"][1][1] == pytest.approx(by_item["induction[L1H1]"]["value"], abs=1e-5)
    flat = [v for row in induction["values"] for v in row]
    assert max(flat) == pytest.approx(by_item["top-induction[top1]"]["value"], abs=1e-5)
    assert max(expected[0]) == pytest.approx(by_item["quiet-layer0[layers0]"]["value"], abs=2e-5)  # worst head
    assert maps[("previous_token", "score")]["targets"] == [[0, 0]]
    dla = maps[("direct logit attribution", "dla")]
    assert dla["targets"] == [[1, 0]] and dla["values"][1][0] == pytest.approx(by_item["dla[L1H0]"]["value"], abs=1e-5)

    html = (pytester.path / "r.html").read_text()
    assert sorted(re.findall(r'<img [^>]*data-map="([^"]*)"', html)) == sorted(m["name"] for m in report["maps"])
    assert len(re.findall(r"data-claim=", html)) == 6
    md = (pytester.path / "r.md").read_text()
    assert "## Head maps" in md and "| **induction** (score) | L1H0 " in md

    # JUnit XML (pytest's default family): the measured value per testcase, no bulky record
    cases = {c.get("name"): c for c in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")}
    assert len(cases) == 6
    for name, case in cases.items():
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert set(props) >= {"icl_value", "icl_expect", "icl_passed", "icl_unit"}, name
        assert "icl_record" not in props
        record = by_item[name]
        assert float(props["icl_value"]) == pytest.approx(record["value"])
        assert props["icl_expect"] == record["expect"] and props["icl_unit"] == record["unit"]
        assert props["icl_passed"] == str(record["passed"])


def test_xdist_records_reach_the_report_without_the_junit_record(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    """The record still travels from the workers (the controller's JSON has every claim) but stays out of the XML."""
    pytest.importorskip("xdist")
    pytester.makefile(".yaml", icl_maps=_spec(circuit_dir))
    result = pytester.runpytest("-p", "no:cacheprovider", "-n", "2", "--icl-json", "r.json", "--junitxml", "junit.xml")
    result.assert_outcomes(passed=5, failed=1)
    report = json.loads((pytester.path / "r.json").read_text())
    assert len(report["claims"]) == 6 and len(report["maps"]) == 3
    xml = (pytester.path / "junit.xml").read_text()
    assert xml.count('name="icl_value"') == 6 and "icl_record" not in xml
