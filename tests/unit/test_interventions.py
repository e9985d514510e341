"""Ablations on the constructed known circuit: effects follow from its wiring, and exit restores it."""
from __future__ import annotations

import math

import pytest
import torch

from icltest.errors import IcltestError
from icltest.interventions import (
    ablate_heads,
    ablate_layers,
    capture_head_outputs,
    capture_layer_outputs,
)
from icltest.models.adapters import Adapter
from icltest.probes.random_tokens import Vocab, repeated_random
from icltest.scores.metrics import segment_loss, token_losses
from icltest.testing import build_known_circuit

LENGTH, REPEATS, BATCH = 20, 2, 8
VOCAB = Vocab(allowed=torch.arange(1, 64), bos_id=0)


@pytest.fixture(scope="module")
def circuit():
    kc = build_known_circuit()
    with torch.no_grad():  # let transformers install its lazy output-capturing hooks up front
        kc.model(input_ids=torch.zeros(1, 2, dtype=torch.long), output_attentions=True)
    return kc.model, Adapter.for_model(kc.model)


@pytest.fixture(scope="module")
def probe():
    return repeated_random(VOCAB, length=LENGTH, repeats=REPEATS, batch=BATCH, seed=0)


@pytest.fixture(scope="module")
def other_probe():
    """Same shape, different seed: the reference for mean and resample ablation."""
    return repeated_random(VOCAB, length=LENGTH, repeats=REPEATS, batch=BATCH, seed=1)


def logits_of(model, tokens):
    with torch.no_grad():
        return model(input_ids=tokens).logits


def second_half(model, probe) -> float:
    loss = token_losses(logits_of(model, probe.tokens), probe.tokens)
    return segment_loss(loss, prefix=probe.prefix, segment=LENGTH, repeats=REPEATS, part="second_half")


def hooks(model) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Hook ids per module; transformers adds its own output-capturing hooks, so compare snapshots."""
    return {
        name: (tuple(m._forward_pre_hooks), tuple(m._forward_hooks)) for name, m in model.named_modules()
    }


def test_baseline_copies_second_half(circuit, probe):
    model, _ = circuit
    assert second_half(model, probe) < 0.5


def test_zero_induction_head_raises_second_half_loss(circuit, probe):
    model, adapter = circuit
    with ablate_heads(adapter, [(1, 0)], "zero") as info:
        loss = second_half(model, probe)
    assert info.heads == ((1, 0),) and info.shift is None
    # With the only head writing to the block lm_head reads removed, every logit is equal: log V.
    assert loss > 2.0
    assert loss == pytest.approx(math.log(64), abs=1e-3)


def test_zero_weight_head_is_exact_noop(circuit, probe):
    model, adapter = circuit
    base = logits_of(model, probe.tokens)
    with ablate_heads(adapter, [(1, 1), (0, 3)], "zero"):
        assert torch.equal(logits_of(model, probe.tokens), base)


def test_zero_previous_token_head_breaks_induction_by_composition(circuit, probe):
    model, adapter = circuit
    with ablate_heads(adapter, [(0, 0)], "zero"):
        assert second_half(model, probe) > 2.0


def test_mean_ablation_from_other_seed_raises_loss(circuit, probe, other_probe):
    model, adapter = circuit
    ref = capture_head_outputs(model, adapter, other_probe.tokens, other_probe.valid, layers=[1])
    assert ref.layers == [1]
    with ablate_heads(adapter, [(1, 0)], "mean", ref):
        assert second_half(model, probe) > 2.0
    with ablate_heads(adapter, [(1, 0)], "mean", ref, per_position=True):
        assert second_half(model, probe) > 2.0


def test_resample(circuit, probe, other_probe):
    model, adapter = circuit
    ref = capture_head_outputs(model, adapter, other_probe.tokens, other_probe.valid)
    base = logits_of(model, probe.tokens)
    with ablate_heads(adapter, [(1, 1)], "resample", ref, seed=3):
        assert torch.equal(logits_of(model, probe.tokens), base)
    with ablate_heads(adapter, [(1, 0)], "resample", ref, seed=3) as info:
        assert second_half(model, probe) > 2.0
    assert 1 <= info.shift < BATCH


def test_layer_ablation(circuit, probe, other_probe):
    model, adapter = circuit
    base = logits_of(model, probe.tokens)
    with ablate_layers(adapter, [1], "attn", "zero"):
        assert second_half(model, probe) > 2.0
    ref = capture_layer_outputs(model, adapter, other_probe.tokens, "attn", other_probe.valid)
    with ablate_layers(adapter, [1], "attn", "mean", ref):
        assert second_half(model, probe) > 2.0
    # MLPs are zero by construction: replacing their output with zeros (or their mean, zero) is exact.
    with ablate_layers(adapter, [0, 1], "mlp", "zero"):
        assert torch.equal(logits_of(model, probe.tokens), base)
    mlp_ref = capture_layer_outputs(model, adapter, other_probe.tokens, "mlp")
    with ablate_layers(adapter, [0, 1], "mlp", "mean", mlp_ref):
        assert torch.equal(logits_of(model, probe.tokens), base)


def test_attention_probs_pass_through_layer_ablation(circuit, probe):
    model, adapter = circuit
    with torch.no_grad():
        base = model(input_ids=probe.tokens, output_attentions=True).attentions[1]
        with ablate_layers(adapter, [1], "attn", "zero"):
            inside = model(input_ids=probe.tokens, output_attentions=True).attentions[1]
    assert torch.equal(base, inside)


def test_captured_z_reproduces_attention_output(circuit, probe):
    """z is the projection input: c_proj(z) must equal the attention module's own output."""
    model, adapter = circuit
    heads = capture_head_outputs(model, adapter, probe.tokens, probe.valid)
    attn = capture_layer_outputs(model, adapter, probe.tokens, "attn")
    for layer in range(adapter.n_layers):
        z = heads.z[layer]
        assert z.shape == (BATCH, 2 * LENGTH + 1, adapter.n_heads, adapter.head_dim)
        proj = adapter.o_proj(layer)
        manual = z.reshape(BATCH, -1, adapter.n_heads * adapter.head_dim) @ proj.weight + proj.bias
        torch.testing.assert_close(manual, attn.out[layer], rtol=1e-5, atol=1e-5)
    assert heads.mean(0).shape == (adapter.n_heads, adapter.head_dim)


@pytest.mark.parametrize(
    "enter",
    [
        lambda ad, ref: ablate_heads(ad, [(1, 0), (0, 0)], "zero"),
        lambda ad, ref: ablate_heads(ad, [(1, 0)], "mean", ref),
        lambda ad, ref: ablate_heads(ad, [(1, 0)], "resample", ref),
        lambda ad, ref: ablate_layers(ad, [1], "attn", "zero"),
    ],
)
def test_restored_bit_identical_after_exit_and_exception(circuit, probe, other_probe, enter):
    model, adapter = circuit
    ref = capture_head_outputs(model, adapter, other_probe.tokens, other_probe.valid)
    before = logits_of(model, probe.tokens)
    installed = hooks(model)
    with enter(adapter, ref):
        assert not torch.equal(logits_of(model, probe.tokens), before)
    assert torch.equal(logits_of(model, probe.tokens), before)
    assert hooks(model) == installed
    with pytest.raises(RuntimeError, match="boom"):
        with enter(adapter, ref):
            raise RuntimeError("boom")
    assert torch.equal(logits_of(model, probe.tokens), before)
    assert hooks(model) == installed


def test_hook_error_during_forward_still_restores(circuit, probe):
    model, adapter = circuit
    small = repeated_random(VOCAB, length=LENGTH, repeats=REPEATS, batch=4, seed=2)
    ref = capture_head_outputs(model, adapter, small.tokens, small.valid)
    installed = hooks(model)
    with pytest.raises(IcltestError, match="same batch size"):
        with ablate_heads(adapter, [(1, 0)], "resample", ref):
            logits_of(model, probe.tokens)
    assert hooks(model) == installed


def test_ablation_under_autograd(circuit, probe, other_probe):
    """Editing a clone keeps autograd intact: backward runs and ablated heads get no gradient path."""
    model, adapter = circuit
    ref = capture_head_outputs(model, adapter, other_probe.tokens, other_probe.valid)
    d = adapter.head_dim
    e = adapter.n_heads * d
    model.zero_grad()
    token_losses(model(input_ids=probe.tokens).logits, probe.tokens).mean().backward()
    grad = model.transformer.h[1].attn.c_attn.weight.grad
    assert torch.count_nonzero(grad[:, 2 * e : 2 * e + d]) > 0  # unablated: the value path is live
    model.zero_grad()
    with ablate_heads(adapter, [(1, 0)], "mean", ref):
        loss = token_losses(model(input_ids=probe.tokens).logits, probe.tokens).mean()
        loss.backward()
    grad = model.transformer.h[1].attn.c_attn.weight.grad
    model.zero_grad()
    # L1H0's query/key/value columns are [0, D), [E, E+D), [2E, 2E+D): ablated, so zero gradient.
    for start in (0, e, 2 * e):
        assert torch.count_nonzero(grad[:, start : start + d]) == 0


def test_input_validation(circuit, other_probe):
    model, adapter = circuit
    ref = capture_head_outputs(model, adapter, other_probe.tokens, layers=[0])
    installed = hooks(model)
    cases = [
        (lambda: ablate_heads(adapter, [(1, 0)], "scramble"), "method must be one of"),
        (lambda: ablate_heads(adapter, [(1, 0)], "mean"), "needs reference"),
        (lambda: ablate_heads(adapter, [(2, 0)]), "out of range"),
        (lambda: ablate_heads(adapter, [(0, 4)]), "out of range"),
        (lambda: ablate_heads(adapter, [1]), "pair of ints"),
        (lambda: ablate_heads(adapter, [(1, 0)], "mean", ref), "no layer 1"),
        (lambda: ablate_heads(adapter, [(0, 0)], "zero", per_position=True), "per_position"),
        (lambda: ablate_layers(adapter, [0], "mlp", "resample"), "method must be one of"),
        (lambda: ablate_layers(adapter, [0], "ffn"), "part must be one of"),
        (lambda: ablate_layers(adapter, [5], "attn"), "out of range"),
        (lambda: ablate_layers(adapter, [0], "attn", "mean"), "needs reference"),
    ]
    for make, message in cases:
        with pytest.raises(IcltestError, match=message):
            with make():
                pass
    assert hooks(model) == installed
    with pytest.raises(IcltestError, match=r"\[batch, seq\]"):
        capture_head_outputs(model, adapter, other_probe.tokens[0])
