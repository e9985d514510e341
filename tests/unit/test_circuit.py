"""kind: circuit on known answers.

- The constructed GPT-2's induction circuit (L0H0 previous-token + L1H0 induction) is necessary and
  sufficient, f = 1, under mean, zero and counterfactual ablation; wrong circuits (the duplicate
  head L0H1 alone, the induction head without its previous-token head) are not sufficient.
- Faithfulness, CPR and CMD arithmetic against hand-computed numbers.
- The complement ablation touches exactly the nodes outside C: CircuitRun's value equals a forward
  pass hooked by hand (plain torch hooks on o_proj inputs and MLP outputs, means computed here).
- Spec mistakes are one located error.
"""
from __future__ import annotations

import math
import types
from pathlib import Path

import pytest
import torch

from icltest.circuits import (
    MIB_SIZES,
    CircuitRun,
    Node,
    NodeAblation,
    curve_areas,
    faithfulness,
    order_nodes,
    probe_row_metric,
    size_counts,
    universe_nodes,
)
from icltest.claims import circuit as cc
from icltest.claims.base import Measurement
from icltest.models.adapters import Adapter
from icltest.models.loading import LoadedModel, ModelSource
from icltest.schema import SpecError, load_spec
from icltest.schema.spec import MetricSpec, ProbeSpec
from icltest.session import Session
from icltest.testing import build_known_circuit
from icltest.testing.circuit_check import hand_ablated_loss
from icltest.testing.known_circuit import build_tokenizer
from icltest.testing.tiny_configs import build_tiny

HEAD = "schema_version: 1\nmodel: x\nclaims:\n"  # claims start on line 4
LOSS = "metric: {name: repeated_token_loss, part: second_half}"


@pytest.fixture(scope="module")
def known():
    kc = build_known_circuit()
    return LoadedModel(kc.model, kc.tokenizer, Adapter.for_model(kc.model), ModelSource(path="known-circuit"))


def _claim(tmp_path: Path, text: str):
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + text)
    return load_spec(path).spec.claims[0]


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(SpecError) as info:
        _claim(tmp_path, text)
    return str(info.value)


def _ctx(loaded, session=None, probe=None):
    return types.SimpleNamespace(session=session or Session(), loaded=loaded,
                                 probe_spec=probe or ProbeSpec(length=20, batch=8, seed=0),
                                 location=lambda key: f"s.yaml:{key}")


def _run(claim, ctx):
    target = cc.targets(claim)[0]
    m = cc.measure(claim, target, ctx)
    return m, cc.judge(claim, target, m)


# ----------------------------------------------------------------------------- known circuit


@pytest.mark.parametrize("ablation", ["mean", "zero", "counterfactual"])
def test_induction_circuit_is_necessary_and_sufficient(tmp_path, known, ablation):
    claim = _claim(tmp_path, f"  - {{id: a, kind: circuit, heads: [0.0, 1.0], ablation: {ablation}, {LOSS}, "
                             "expect: {necessity: {increase: '>= 2.0'}, faithfulness: '>= 0.95', sufficiency: '<= 0.01'}}\n")
    m, v = _run(claim, _ctx(known))
    d = m.details
    assert v.passed, v.summary
    assert d["m_full"] < 0.5 < 3.0 < d["m_circuit_ablated"]  # copies the second half; guesses without the circuit
    assert m.value == pytest.approx(1.0, abs=1e-4)
    # every head outside the circuit writes nothing in the construction: m(C) is exactly m(full)
    assert d["m_circuit_only"] == pytest.approx(d["m_full"], abs=1e-5)
    assert d["circuit"] == ["L0H0", "L1H0"] and d["universe_size"] == 8


@pytest.mark.parametrize("heads,expected_f", [("[0.1]", 0.0), ("[1.0]", 0.0), ("[0.0]", 0.0)])
def test_wrong_circuits_are_not_sufficient(tmp_path, known, heads, expected_f):
    claim = _claim(tmp_path, f"  - {{id: a, kind: circuit, heads: {heads}, {LOSS}, expect: {{faithfulness: '>= 0.8'}}}}\n")
    m, v = _run(claim, _ctx(known))
    assert not v.passed
    assert m.value == pytest.approx(expected_f, abs=0.1)
    assert "FAILED" in v.summary


def test_duplicate_head_is_not_necessary(tmp_path, known):
    claim = _claim(tmp_path, f"  - {{id: a, kind: circuit, heads: [0.1], {LOSS}, expect: {{necessity: {{increase: '>= 1.0'}}}}}}\n")
    m, v = _run(claim, _ctx(known))
    assert not v.passed and abs(m.value) < 1e-5


def test_positions_restrict_the_ablation(tmp_path, known):
    # Ablating the circuit only on the first copy leaves the second half's loss as it is: the
    # previous-token head's writes on the first copy are what induction reads, so mean-ablating
    # L0H0 there breaks it, while ablating L1H0 there (it predicts nothing on the first copy) does not.
    def nec(heads, positions):
        claim = _claim(tmp_path, f"  - {{id: a, kind: circuit, heads: {heads}, positions: {positions}, {LOSS}, "
                                 "expect: {necessity: {increase: '>= 1'}}}\n")
        return _run(claim, _ctx(known))[0].value

    first_copy = list(range(1, 20))  # position 20 predicts the first token of the second copy
    assert nec("[1.0]", first_copy) == pytest.approx(0.0, abs=1e-5)
    assert nec("[0.0]", first_copy) > 2.0
    assert nec("[1.0]", "second_half") > 2.0


def test_control_places_the_circuit_above_random_sets(tmp_path, known):
    claim = _claim(tmp_path, f"  - {{id: a, kind: circuit, heads: [0.0, 1.0], {LOSS}, expect: {{faithfulness: '>= 0.9'}}, "
                             "control: {draws: 19, seed: 0, expect: {p: '<= 0.05'}}}\n")
    m, v = _run(claim, _ctx(known))
    c = m.details["control"]
    assert v.passed and c["n"] == 19 and c["p"] == pytest.approx(0.05)
    assert all(not {"L0H0", "L1H0"} & set(d["heads"]) for d in c["draws"])
    assert max(d["value"] for d in c["draws"]) < 0.2


def test_curve_from_a_ranked_list(tmp_path, known):
    # sizes 1/8 .. 1 of 8 heads: the best order has L1H0 then L0H0 -> f = 0 at 1 head, 1 from 2 heads on
    claim = _claim(tmp_path, f"  - {{id: a, kind: circuit, heads: [0.0, 1.0], {LOSS}, expect: {{faithfulness: '>= 0.9'}}, "
                             "curve: {ranking: [1.0, 0.0], sizes: [0.125, 0.25, 0.5, 1.0], expect: {cpr: '>= 0.8'}}}\n")
    m, v = _run(claim, _ctx(known))
    d = m.details
    assert d["curve"]["nodes"] == [1, 2, 4, 8]
    f = d["curve"]["f_cpr_order"]
    assert f[0] == pytest.approx(0.0, abs=0.1) and all(x == pytest.approx(1.0, abs=1e-4) for x in f[1:])
    by_hand = 0.125 * (f[0] + f[1]) / 2 + 0.25 * (f[1] + f[2]) / 2 + 0.5 * (f[2] + f[3]) / 2
    assert d["cpr"] == pytest.approx(by_hand) and v.passed
    assert d["sweeps"][0]["points"][1] == [0.25, pytest.approx(1.0, abs=1e-4)]
    assert d["curve"]["nodes_to_f_0.8"] == 2


def test_attribution_curve_is_computed_on_another_seed(tmp_path, known):
    claim = _claim(tmp_path, f"  - {{id: a, kind: circuit, heads: [0.0, 1.0], {LOSS}, expect: {{faithfulness: '>= 0.9'}}, "
                             "curve: {ranking: attribution, sizes: [0.25, 0.5, 1.0]}}\n")
    m, _ = _run(claim, _ctx(known))
    d = m.details
    assert "seed=2" in d["ranking_inputs"] and "seed=0" in d["inputs"]
    assert d["curve"]["f_cpr_order"][-1] == pytest.approx(1.0)
    # the induction head's mean ablation raises the loss: attribution ranks it first
    assert d["curve"]["top_nodes"][0]["node"] == "L1H0" and d["curve"]["top_nodes"][0]["score"] > 0


def test_probe_row_metric_reads_the_runs_loss(known):
    run = CircuitRun(Session(), known, MetricSpec(name="repeated_token_loss", part="second_half"),
                     ProbeSpec(length=20, batch=4, seed=3))
    keep, row_metric = probe_row_metric(run)
    with torch.no_grad():
        logits = known.model(input_ids=run.inputs.tokens).logits[:, keep]
    assert float(row_metric(logits, slice(0, 4)).mean()) == pytest.approx(run.value(), rel=1e-5)


# ----------------------------------------------------------------------------- complement vs hand hooks


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("method", ["mean", "zero"])
def test_complement_ablation_touches_exactly_the_nodes_outside(arch, method):
    model = build_tiny(arch)
    adapter = Adapter.for_model(model)
    loaded = LoadedModel(model, build_tokenizer(50), adapter, ModelSource(path=f"tiny-{arch}"))
    run = CircuitRun(Session(), loaded, MetricSpec(name="repeated_token_loss", part="second_half"),
                     ProbeSpec(length=12, batch=3, seed=0))
    universe = universe_nodes(adapter.n_layers, adapter.n_heads, "heads+mlps")
    circuit = {Node(0, 1), Node(1, 2), Node(0)}
    outside = [n for n in universe if n not in circuit]
    got = run.value(NodeAblation.of(outside, method=method))
    ref = run._reference_inputs()
    heads = [(n.layer, n.head) for n in outside if n.is_head]
    mlps = [n.layer for n in outside if not n.is_head]
    assert Node(1) in outside and (0, 1) not in heads and 0 not in mlps
    probe = run.inputs.probe
    expected = hand_ablated_loss(model, adapter.n_heads, adapter.head_dim, run.inputs.tokens, ref.tokens, ref.valid,
                        heads, mlps, method, probe.prefix, probe.segment)
    assert got == pytest.approx(expected, rel=0, abs=2e-6)
    # and it is not the same as ablating one node fewer (the test can tell sets apart)
    fewer = hand_ablated_loss(model, adapter.n_heads, adapter.head_dim, run.inputs.tokens, ref.tokens, ref.valid,
                     heads[1:], mlps, method, probe.prefix, probe.segment)
    assert abs(fewer - expected) > 1e-5


# ----------------------------------------------------------------------------- arithmetic


def test_faithfulness_arithmetic():
    assert faithfulness(2.0, 1.0, 5.0)[0] == pytest.approx(0.75)  # loss: (2 - 5) / (1 - 5)
    assert faithfulness(0.6, 0.8, 0.2)[0] == pytest.approx(2 / 3)  # accuracy: (0.6 - 0.2) / (0.8 - 0.2)
    assert faithfulness(0.9, 0.8, 0.2)[0] == pytest.approx(7 / 6)  # above the full model: not clipped
    assert faithfulness(0.1, 0.8, 0.2)[0] == pytest.approx(-1 / 6)
    f, why = faithfulness(3.0, 4.0, 4.0 + 1e-9)
    assert math.isnan(f) and "float resolution" in why
    assert math.isnan(faithfulness(math.nan, 1.0, 0.0)[0])


def test_cpr_and_cmdhand_ablated_loss():
    cpr, cmd = curve_areas([0.25, 0.5, 1.0], [0.0, 0.5, 1.0])
    assert cpr == pytest.approx(0.25 * 0.25 + 0.5 * 0.75)  # 0.4375
    assert cmd == pytest.approx(0.25 * 0.75 + 0.5 * 0.25)  # 0.3125
    cpr, cmd = curve_areas([0.5, 1.0], [1.5, 0.5])  # f above 1, crossing it: MIB averages |1 - f| ends
    assert cpr == pytest.approx(0.5) and cmd == pytest.approx(0.25)
    cpr, cmd = curve_areas(MIB_SIZES, [1.0] * len(MIB_SIZES))
    assert cpr == pytest.approx(0.999) and cmd == 0.0
    cpr, cmd = curve_areas(MIB_SIZES, [0.0] * len(MIB_SIZES))
    assert cpr == 0.0 and cmd == pytest.approx(0.999)
    with pytest.raises(ValueError):
        curve_areas([0.5, 1.0], [1.0])


def test_size_counts_floor_like_mib():
    assert size_counts(MIB_SIZES, 270) == [0, 0, 1, 2, 5, 13, 27, 54, 135, 270]
    assert size_counts([0.29, 1.0], 100) == [29, 100]  # not 28 from 0.29 * 100 = 28.999...


def test_orders_signed_and_absolute():
    scores = {Node(0, 0): -3.0, Node(0, 1): 1.0, Node(1, 0): 2.0}
    assert order_nodes(scores, absolute=False) == [Node(1, 0), Node(0, 1), Node(0, 0)]
    assert order_nodes(scores, absolute=True) == [Node(0, 0), Node(1, 0), Node(0, 1)]


def test_nan_faithfulness_fails_with_the_reason(tmp_path):
    claim = _claim(tmp_path, f"  - {{id: a, kind: circuit, heads: [0.0], {LOSS}, expect: {{faithfulness: '>= 0.0'}}}}\n")
    details = {"circuit_size": 1, "universe_size": 8, "universe": "heads", "ablation": "mean", "m_full": 1.0,
               "m_circuit_ablated": 1.0, "m_circuit_only": 1.0, "m_empty": 1.0, "necessity": {"effect": 0.0},
               "faithfulness": math.nan, "sufficiency_gap": 0.0, "faithfulness_note": "equal within float resolution"}
    v = cc.judge(claim, cc.targets(claim)[0], Measurement(math.nan, "f", details))
    assert not v.passed and "float resolution" in v.summary


# ----------------------------------------------------------------------------- schema


def test_good_specs_load(tmp_path):
    c = _claim(tmp_path, "  - {id: a, kind: circuit, heads: [{top: 3, by: induction}, 16.0, 'L2H1'], mlps: '0-1', "
                         f"universe: heads+mlps, {LOSS}, expect: {{faithfulness: '>= 0.5'}}, "
                         "curve: {ranking: ['mlp.0', 18.6], sizes: [0.5, 1]}}\n")
    assert c.mlps == [0, 1] and len(c.heads) == 3 and c.curve.ranking[0].mlp == 0
    c = _claim(tmp_path, "  - {id: a, kind: circuit, heads: {top: 2, by: induction}, metric: {name: accuracy, task: antonym}, "
                         "positions: [-1], expect: {necessity: {drop: '>= 0.1'}}}\n")
    assert c.positions == [-1]


@pytest.mark.parametrize("text,message", [
    ("heads: [], " + LOSS + ", expect: {faithfulness: '>= 0.5'}", "name the circuit"),
    ("mlps: [0], " + LOSS + ", expect: {faithfulness: '>= 0.5'}", "universe: heads+mlps"),
    ("heads: [0.0], ablation: counterfactual, metric: {name: accuracy, task: antonym}, expect: {faithfulness: '>= 0.5'}",
     "counterfactual needs a token-probe"),
    ("heads: [0.0], " + LOSS + ", expect: {}", "at least one of necessity"),
    ("heads: [0.0], " + LOSS + ", expect: {faithfulness: '>= 0.5'}, curve: {ranking: attribution, sizes: [0.1, 0.5]}",
     "must end at 1"),
    ("heads: [0.0], universe: heads+mlps, " + LOSS + ", expect: {faithfulness: '>= 0.5'}, curve: {ranking: attribution}",
     "ranks heads only"),
    ("heads: [0.0], " + LOSS + ", expect: {faithfulness: '>= 0.5'}, curve: {ranking: [0.0], sizes: [0.5, 0.2, 1]}",
     "strictly ascending"),
    ("heads: [0.0], " + LOSS + ", expect: {faithfulness: '>= 0.5'}, control: {draws: 9, expect: {p: '<= 0.05'}}",
     "can never pass"),
    ("heads: [0.0], " + LOSS + ", expect: {faithfulness: '>= 0.5'}, curve: {ranking: ['mlp.1']}", "universe: heads has none"),
    ("heads: [0.0], positions: second_half, metric: {name: accuracy, task: antonym}, expect: {faithfulness: '>= 0.5'}",
     "second_half"),
    ("heads: [0.0], positions: [3], metric: {name: accuracy, task: antonym}, expect: {faithfulness: '>= 0.5'}",
     "left-padded"),
    # f(1) = 1 alone gives (1 - 0.5) / 2 = 0.25 with these sizes: a CPR bound at or under it cannot fail
    ("heads: [0.0], " + LOSS + ", expect: {faithfulness: '>= 0.5'}, "
     "curve: {ranking: attribution, sizes: [0.1, 0.5, 1], expect: {cpr: '>= 0.25'}}", "cannot fail"),
])
def test_bad_specs_are_one_located_error(tmp_path, text, message):
    error = _error(tmp_path, "  - {id: a, kind: circuit, " + text + "}\n")
    assert message in error and "s.yaml:4" in error


def test_heads_out_of_range_point_at_the_spec(tmp_path, known):
    from icltest.claims.base import ClaimSpecError

    claim = _claim(tmp_path, f"  - {{id: a, kind: circuit, heads: [0.0, 5.0], {LOSS}, expect: {{faithfulness: '>= 0.5'}}}}\n")
    with pytest.raises(ClaimSpecError, match="out of range"):
        cc.measure(claim, cc.targets(claim)[0], _ctx(known))


def test_a_cpr_bound_above_the_free_last_trapezoid_is_accepted(tmp_path):
    claim = _claim(tmp_path, "  - {id: a, kind: circuit, heads: [0.0], " + LOSS + ", expect: {faithfulness: '>= 0.5'}, "
                             "curve: {ranking: attribution, sizes: [0.1, 0.5, 1], expect: {cpr: '>= 0.3'}}}\n")
    assert claim.curve.expect.cpr.bound == 0.3
    # the arithmetic behind the refusal: a curve that recovers nothing below k = 1
    assert curve_areas([0.1, 0.5, 1.0], [0.0, 0.0, 1.0])[0] == pytest.approx(0.25)


@pytest.mark.parametrize("field,key", [("select_seed: 0", "select_seed"), ("reference: {seed: 0}", "reference.seed")])
def test_selection_or_reference_on_the_judged_probe_is_refused(tmp_path, known, field, key):
    from icltest.claims.base import ClaimSpecError

    claim = _claim(tmp_path, f"  - {{id: a, kind: circuit, heads: [{{top: 1, by: induction}}], {field}, {LOSS}, "
                             "expect: {faithfulness: '>= 0.5'}}\n")
    with pytest.raises(ClaimSpecError, match="judged probe's own seed") as info:
        cc.measure(claim, cc.targets(claim)[0], _ctx(known))  # the judged probe is seed 0
    assert key in str(info.value)
