"""Circuit ablations on the real SmolLM2-135M weights, checked against plain torch hooks.

The complement ablation of a circuit (every head outside it mean-ablated) must give the loss a
forward pass hooked by hand gives (icltest.testing.circuit_check: means computed from the
reference probe with the model's own o_proj modules), and the induction heads must be necessary.
"""
from __future__ import annotations

import pytest

from icltest.circuits import CircuitRun, Node, NodeAblation, faithfulness, universe_nodes
from icltest.schema.spec import MetricSpec, ProbeSpec
from icltest.session import Session
from icltest.testing.circuit_check import hand_ablated_loss


@pytest.mark.slow
def test_complement_of_the_induction_heads_matches_hand_hooks_on_smollm2(real_model) -> None:
    loaded = real_model("smollm2-135m")
    adapter = loaded.adapter
    run = CircuitRun(Session(), loaded, MetricSpec(name="repeated_token_loss", part="second_half"),
                     ProbeSpec(length=30, repeats=2, batch=4, seed=0))
    circuit = {Node(18, 6), Node(17, 3), Node(17, 4), Node(16, 0), Node(11, 1)}
    outside = [n for n in universe_nodes(adapter.n_layers, adapter.n_heads, "heads") if n not in circuit]
    full, ablated, only, empty = run.values([None, NodeAblation.of(circuit), NodeAblation.of(outside),
                                             NodeAblation.of(outside + sorted(circuit, key=str))])
    ref, probe = run._reference_inputs(), run.inputs.probe
    expected = hand_ablated_loss(loaded.model, adapter.n_heads, adapter.head_dim, run.inputs.tokens, ref.tokens,
                                 ref.valid, [(n.layer, n.head) for n in outside], [], "mean", probe.prefix,
                                 probe.segment)
    assert only == pytest.approx(expected, rel=1e-4)
    assert ablated - full > 1.0  # the induction circuit is necessary on repeated tokens
    f, why = faithfulness(only, full, empty)
    assert why is None and f == pytest.approx((only - empty) / (full - empty))


def test_circuit_claims_end_to_end_on_the_constructed_model(pytester: pytest.Pytester, circuit_dir) -> None:
    """Through the plugin on the saved known-circuit model (no real weights): the induction circuit
    passes, the duplicate head alone fails sufficiency, and the report carries the MIB numbers."""
    import json

    text = (f"schema_version: 1\nmodel: {{path: '{circuit_dir}'}}\n"
            "defaults:\n  probe: {kind: repeated_random, length: 12, repeats: 2, batch: 4, seed: 0}\nclaims:\n"
            "  - id: induction-circuit\n    kind: circuit\n    heads: [0.0, 1.0]\n"
            "    metric: {name: repeated_token_loss, part: second_half}\n"
            "    expect: {necessity: {increase: '>= 1.0'}, faithfulness: '>= 0.9'}\n"
            "    curve: {ranking: [1.0, 0.0], sizes: [0.125, 0.25, 1.0], expect: {cpr: '>= 0.7'}}\n"
            "  - id: duplicate-head-alone\n    kind: circuit\n    heads: [0.1]\n"
            "    metric: {name: repeated_token_loss, part: second_half}\n    expect: {faithfulness: '>= 0.9'}\n")
    pytester.makefile(".yaml", icl_circuit=text)
    result = pytester.runpytest("--icl-json", "out.json", "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=1, failed=1)
    assert "duplicate-head-alone[circuit] FAILED" in result.stdout.str()
    claims = {c["id"]: c for c in json.loads((pytester.path / "out.json").read_text())["claims"]}
    d = claims["induction-circuit"]["details"]
    assert d["faithfulness"] == pytest.approx(1.0, abs=1e-4) and d["universe_size"] == 8
    assert d["sweeps"][0]["points"][-1][0] == 1.0 and d["cpr"] >= 0.7
