"""Random-head controls as statistics, end to end through pytester on the constructed model.

Known answers from the construction (icltest/testing/known_circuit.py): zero-ablating L1H0 sends
the copied half's loss to about ln(64); every head except L0H0 and L1H0 writes nothing, so
ablating it has effect exactly 0; L0H0 feeds L1H0's keys, so ablating it has a large effect.
The draws are recomputed here with draw_random_heads; the statistics are computed by hand from
the effects the report lists, not taken from the claim's own summary.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from icltest.scores.control import draw_random_heads

PROBE = "{kind: repeated_random, length: 20, repeats: 2, batch: 8, seed: 3}"


def _spec(model_dir: Path, claims: str) -> str:
    return f"schema_version: 1\nmodel: {{path: '{model_dir}'}}\ndefaults:\n  probe: {PROBE}\nclaims:\n{claims}"


def _ablate(cid: str, control: str) -> str:
    return (f"  - id: {cid}\n    kind: ablation\n    heads: [1.0]\n"
            "    metric: {name: repeated_token_loss, part: second_half}\n"
            f"    expect: {{increase: '>= 3.5'}}\n    control: {control}\n")


def _run(pytester: pytest.Pytester, text: str) -> tuple[pytest.RunResult, dict]:
    pytester.makefile(".yaml", icl_control=text)
    result = pytester.runpytest("--icl-json", "out.json", "-p", "no:cacheprovider")
    report = json.loads((pytester.path / "out.json").read_text())
    return result, {c["id"]: c for c in report["claims"]} | {"_nonfinite": report.get("nonfinite", {})}


def test_a_ratio_to_a_zero_effect_control_is_no_evidence(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    # Seed 0 draws L1H1 and L1H3: both write nothing, so the control mean is exactly 0 and the
    # old ratio target / |0| = inf passed any bound.
    assert draw_random_heads(2, 4, 1, exclude=[(1, 0)], draws=2, seed=0) == [[(1, 1)], [(1, 3)]]
    text = _spec(circuit_dir, _ablate("ratio-to-nothing", "{draws: 2, seed: 0, expect: {effect_ratio: '>= 1000000'}}"))
    result, claims = _run(pytester, text)
    result.assert_outcomes(failed=1)
    control = claims["ratio-to-nothing"]["details"]["control"]
    assert [d["effect"] for d in control["draws"]] == [0.0, 0.0]
    assert control["effect_ratio"] is None  # NaN, written as null in strict JSON ...
    assert claims["_nonfinite"]["/claims/0/details/control/effect_ratio"] == "nan"  # ... and named here
    assert "within 3 standard errors" in control["ratio_note"]
    assert "ratio n/a (control mean 0 is within 3 standard errors" in result.stdout.str()


def test_target_beats_every_one_of_19_default_draws(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    text = _spec(circuit_dir, _ablate("beats-random", "{expect: {p: '<= 0.05', z: '>= 2'}}"))
    result, claims = _run(pytester, text)
    result.assert_outcomes(passed=1)
    record = claims["beats-random"]
    control = record["details"]["control"]
    draws = draw_random_heads(2, 4, 1, exclude=[(1, 0)], draws=19, seed=0)  # the default: 19 draws, seed 0
    assert [d["heads"] for d in control["draws"]] == [[f"L{l}H{h}" for l, h in d] for d in draws]
    effects = [d["effect"] for d in control["draws"]]
    target = record["value"]
    n = len(effects)
    mean = sum(effects) / n
    sd = math.sqrt(sum((e - mean) ** 2 for e in effects) / (n - 1))
    # L0H0 (drawn 4 times) hurts almost as much as L1H0 itself: the draws are bimodal, z is about 2.
    assert n == control["n"] == 19 and max(effects) < target
    assert control["p"] == pytest.approx(1 / 20)
    assert control["z"] == pytest.approx((target - mean) / sd, rel=1e-3)
    assert control["mean"] == pytest.approx(mean, abs=1e-4) and control["sd"] == pytest.approx(sd, abs=1e-4)
    assert control["position"] == f"target {target:.4g} > all 19 draws (max {max(effects):.4g})"
    summary = record["summary"]
    for fragment in ("19 random draws of 1 heads", f"> all 19 draws (max {max(effects):.4g})", "p = 0.05",
                     "N = 19", f"sd {sd:.4f}"):
        assert fragment in summary, (fragment, summary)
    assert record["expect"] == "increase >= 3.5; control p <= 0.05; control z >= 2"


def test_layer_matched_control_draws_only_from_the_targets_layers(pytester: pytest.Pytester,
                                                                   circuit_dir: Path) -> None:
    text = _spec(circuit_dir, _ablate("layer-matched", "{match: layers, draws: 19, expect: {p: '<= 0.05', z: '>= 3'}}"))
    result, claims = _run(pytester, text)
    result.assert_outcomes(passed=1)
    control = claims["layer-matched"]["details"]["control"]
    heads = {h for d in control["draws"] for h in d["heads"]}
    assert heads <= {"L1H1", "L1H2", "L1H3"} and len(heads) > 1  # layer 1, never the target L1H0
    # Those heads write nothing: every draw's effect is 0, sd 0, so z is +inf (target above them all).
    assert all(d["effect"] == 0.0 for d in control["draws"])
    assert control["z"] is None and claims["_nonfinite"]["/claims/0/details/control/z"] == "inf"
    assert control["match"] == "layers" and "layer-matched" in claims["layer-matched"]["summary"]


def test_p_bound_out_of_reach_of_the_draws_is_a_spec_error(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    text = _spec(circuit_dir, _ablate("too-few", "{draws: 5, expect: {p: '<= 0.05'}}"))
    pytester.makefile(".yaml", icl_control=text)
    result = pytester.runpytest("-p", "no:cacheprovider")
    out = result.stdout.str()
    assert "the smallest possible p is 1/6 = 0.167" in out and "use draws >= 19" in out
    assert result.ret != 0


def test_population_claims_state_how_they_treat_many_heads(pytester: pytest.Pytester, circuit_dir: Path) -> None:
    claims = ("  - id: no-layer0-induction\n    kind: head_score\n    score: induction\n    heads: {layers: '0'}\n"
              "    expect: '< 0.3'\n"
              "  - id: top2\n    kind: head_score\n    score: induction\n    heads: {top: 2, by: induction}\n"
              "    expect: '>= 0'\n")
    _, records = _run(pytester, _spec(circuit_dir, claims))
    for cid in ("no-layer0-induction", "top2"):
        rule = records[cid]["details"]["multiple_comparisons"]
        assert rule.startswith("every head meets the bound (no multiple-comparison correction needed: "
                               "a bound, not a test")
    _, single = _run(pytester, _spec(circuit_dir, _ablate("one", "{draws: 19, expect: {p: '<= 0.05'}}")))
    assert "one test per item" in single["one"]["details"]["control"]["multiple_comparisons"]
