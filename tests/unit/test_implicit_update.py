"""implicit_update: the rank-1 identity on tiny models of every architecture, read with plain torch hooks.

Expected values come from plain ``register_forward_hook`` reads of the unpatched model run WITH the
context, and from the patch formula written out here by hand; the library only builds the patch.
Wrong patches (one of the two gated matrices, ``A`` read before the pre-norm, the block without
its down-projection or norm-scale patch) must miss by far more than the tolerance.
"""
from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

from icltest.claims import implicit_update as claim_mod
from icltest.claims.base import ClaimSpecError
from icltest.interventions import WeightEdit, apply
from icltest.interventions import implicit_update as iu
from icltest.models.adapters import Adapter
from icltest.schema import SpecError, load_spec
from icltest.testing.tiny_configs import CONFIGS, build_tiny

ARCHS = sorted(CONFIGS)
TOL32 = 1e-5  # float32 rounding on these tiny models is ~3e-7; a wrong patch misses by > 1e-2
PREFIX, CONTEXT, QUERY = [3], [5, 17, 9, 30, 2, 44, 12, 8, 21, 7, 33, 15], [11, 26, 4, 19]


def _layer(model, adapter, layer):
    return adapter.layers()[layer]


def _plain_read(model, module, ids, *, output=True, index=None):
    """Last-token activation at ``module``'s output (or input) with a plain forward hook."""
    box = []

    def hook(_m, args, out):
        x = out if output else args[0]
        x = x[0] if isinstance(x, tuple) else x
        box.append(x[0, -1].detach().clone())

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([ids]))
    finally:
        handle.remove()
    return box[0]


def _out_module(adapter, layer, through):
    if through == "block":
        return adapter.layers()[layer]
    post = adapter.mlp_post_norm(layer)
    return post if post is not None else adapter.mlp(layer)


def _rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


def _setup(name, dtype=torch.float32):
    model = build_tiny(name).to(dtype)
    adapter = Adapter.for_model(model)
    layers = list(range(adapter.n_layers))
    with_ctx = iu.read_last(adapter, PREFIX + CONTEXT + QUERY, layers)
    free = iu.read_last(adapter, PREFIX + QUERY, layers)
    return model, adapter, with_ctx, free


def _patched_plain(model, adapter, layer, through, edits):
    with apply(adapter, edits):
        return _plain_read(model, _out_module(adapter, layer, through), PREFIX + QUERY)


@pytest.mark.parametrize("through", ["mlp", "block"])
@pytest.mark.parametrize("name", ARCHS)
def test_patch_reproduces_the_with_context_output(name, through):
    model, adapter, with_ctx, free = _setup(name)
    for layer in range(adapter.n_layers):
        module = _out_module(adapter, layer, through)
        want = _plain_read(model, module, PREFIX + CONTEXT + QUERY)  # unpatched model, WITH context
        unpatched = _plain_read(model, module, PREFIX + QUERY)
        patch = iu.implicit_patch(adapter, layer, with_ctx, free, through=through)
        got = _patched_plain(model, adapter, layer, through, patch.edits)
        assert _rel(got, want) < TOL32, (name, through, layer, _rel(got, want))
        moved = _rel(unpatched, want)
        # the context really moves the output (GPT-NeoX's parallel layer 0 MLP reads only the token's embedding)
        if not (name == "gpt_neox" and layer == 0 and through == "mlp"):
            assert moved > 1e-2, (name, through, layer, moved)


@pytest.mark.parametrize("name", ARCHS)
def test_input_patches_are_the_hand_formula_on_every_matrix_that_reads_the_mlp_input(name):
    model, adapter, with_ctx, free = _setup(name)
    expected_names = {"gpt2": ["c_fc"], "gpt_neox": ["dense_h_to_4h"], "gpt_neox_serial": ["dense_h_to_4h"]}
    for layer in range(adapter.n_layers):
        mlp = adapter.mlp(layer)
        a_ctx = _plain_read(model, mlp, PREFIX + CONTEXT + QUERY, output=False).double()
        a_free = _plain_read(model, mlp, PREFIX + QUERY, output=False).double()
        patch = iu.implicit_patch(adapter, layer, with_ctx, free)
        names = [n for n, _ in iu.input_matrices(adapter, layer)]
        assert names == expected_names.get(name, ["gate_proj", "up_proj"])
        assert len(patch.deltas) == len(names)
        for attr in names:
            module = getattr(mlp, attr)
            w = module.weight.detach().double()
            w = w.t() if type(module).__name__ == "Conv1D" else w  # [out, in]
            hand = torch.outer(w @ (a_ctx - a_free), a_free) / a_free.dot(a_free)
            hand = hand.t() if type(module).__name__ == "Conv1D" else hand
            got = next(d for p, d in patch.deltas.items() if p.endswith(f"mlp.{attr}.weight"))
            assert torch.allclose(got, hand, rtol=1e-5, atol=1e-7 * float(hand.abs().max()) + 1e-12)


def test_float64_error_is_rounding():
    errors = {}
    for dtype in (torch.float32, torch.float64):
        model, adapter, with_ctx, free = _setup("llama", dtype)
        for layer in range(adapter.n_layers):
            for through in ("mlp", "block"):
                patch = iu.implicit_patch(adapter, layer, with_ctx, free, through=through)
                errors.setdefault(dtype, []).append(iu.relative_error(iu.patched_output(adapter, patch, PREFIX + QUERY),
                                                                      patch.target))
    assert max(errors[torch.float64]) < 1e-13
    assert 1e-9 < max(errors[torch.float32]) < TOL32  # float32: rounding-sized, not zero, not large


def test_only_up_proj_on_swiglu_does_not_reproduce():
    model, adapter, with_ctx, free = _setup("llama")
    for layer in range(adapter.n_layers):
        want = _plain_read(model, adapter.mlp(layer), PREFIX + CONTEXT + QUERY)
        patch = iu.implicit_patch(adapter, layer, with_ctx, free, matrices=["up_proj"])
        got = _patched_plain(model, adapter, layer, "mlp", patch.edits)
        assert _rel(got, want) > 1e-2


def test_a_read_before_the_norm_without_a_norm_patch_does_not_reproduce():
    """dW built from the residual stream entering the MLP branch (before its RMSNorm): wrong."""
    model, adapter, _, _ = _setup("llama")
    for layer in range(adapter.n_layers):
        norm = adapter.layers()[layer].post_attention_layernorm  # the pre-MLP norm: its input is resid_mid
        h_ctx = _plain_read(model, norm, PREFIX + CONTEXT + QUERY, output=False).double()
        h_free = _plain_read(model, norm, PREFIX + QUERY, output=False).double()
        want = _plain_read(model, adapter.mlp(layer), PREFIX + CONTEXT + QUERY)
        edits = []
        for attr in ("gate_proj", "up_proj"):
            w = getattr(adapter.mlp(layer), attr).weight.detach().double()
            delta = torch.outer(w @ (h_ctx - h_free), h_free) / h_free.dot(h_free)
            edits.append(WeightEdit(f"model.layers.{layer}.mlp.{attr}.weight", delta=delta))
        got = _patched_plain(model, adapter, layer, "mlp", edits)
        assert _rel(got, want) > 1e-2


@pytest.mark.parametrize("name", ["llama", "gpt2", "gemma3_text"])
def test_the_mlp_patch_alone_does_not_reproduce_the_block(name):
    model, adapter, with_ctx, free = _setup(name)
    for layer in range(adapter.n_layers):
        want = _plain_read(model, adapter.layers()[layer], PREFIX + CONTEXT + QUERY)
        patch = iu.implicit_patch(adapter, layer, with_ctx, free, through="mlp")
        got = _patched_plain(model, adapter, layer, "block", patch.edits)
        assert _rel(got, want) > 1e-3


@pytest.mark.parametrize("name", ["gemma2", "gemma3_text"])
def test_post_norm_block_needs_the_norm_scale_patch(name):
    model, adapter, with_ctx, free = _setup(name)
    for layer in range(adapter.n_layers):
        want = _plain_read(model, adapter.layers()[layer], PREFIX + CONTEXT + QUERY)
        patch = iu.implicit_patch(adapter, layer, with_ctx, free, through="block")
        norm_edits = [e for e in patch.edits if "post_feedforward_layernorm" in e.param]
        assert len(norm_edits) == 1 and norm_edits[0].value is not None
        without = [e for e in patch.edits if e not in norm_edits]
        assert _rel(_patched_plain(model, adapter, layer, "block", without), want) > 1e-3
        assert _rel(_patched_plain(model, adapter, layer, "block", patch.edits), want) < TOL32


@pytest.mark.parametrize("through", ["mlp", "block"])
def test_patches_are_rank_one(through):
    model, adapter, with_ctx, free = _setup("gemma3_text")
    params = dict(model.named_parameters())
    for layer in range(adapter.n_layers):
        patch = iu.implicit_patch(adapter, layer, with_ctx, free, through=through)
        assert len(patch.deltas) == (2 if through == "mlp" else 3)
        for pname, delta in patch.deltas.items():
            s = torch.linalg.svdvals(delta)
            assert s[0] > 0 and s[1] / s[0] < 1e-12
            assert iu.applied_rank_ratio(params[pname], delta) < 1e-4
            assert abs(patch.fro()[pname] - float(torch.linalg.matrix_norm(delta))) < 1e-9


def test_rank_check_can_fail():
    param = torch.zeros(6, 5)
    rank2 = torch.outer(torch.arange(6.0), torch.ones(5)) + torch.outer(torch.ones(6), torch.arange(5.0) ** 2)
    assert iu.applied_rank_ratio(param, rank2.double()) > 0.01
    assert iu.applied_rank_ratio(param, torch.outer(torch.arange(6.0), torch.ones(5)).double()) < 1e-7


@pytest.mark.parametrize("through", ["mlp", "block"])
def test_weights_come_back_exactly(through):
    model, adapter, with_ctx, free = _setup("gemma3_text")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    patch = iu.implicit_patch(adapter, 1, with_ctx, free, through=through)
    iu.patched_output(adapter, patch, PREFIX + QUERY)
    with pytest.raises(RuntimeError, match="boom"), apply(adapter, patch.edits):
        assert not torch.equal(model.model.layers[1].mlp.up_proj.weight, before["model.layers.1.mlp.up_proj.weight"])
        raise RuntimeError("boom")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_growth_norms_match_the_patch_norms():
    """||dW_i|| from the prefix sweep equals ||dW|| of the patch built for that prefix."""
    model, adapter, _, _ = _setup("llama")
    acts = iu.context_growth(adapter, PREFIX, CONTEXT, QUERY, [0, 1])
    for layer in (0, 1):
        total, steps = iu.growth_norms(adapter, layer, acts[layer])
        assert len(total) == len(CONTEXT) + 1 and len(steps) == len(CONTEXT) and total[0] == 0.0
        for i in (3, len(CONTEXT)):
            wc = iu.read_last(adapter, PREFIX + CONTEXT[:i] + QUERY, [layer])
            fr = iu.read_last(adapter, PREFIX + QUERY, [layer])
            fro = iu.implicit_patch(adapter, layer, wc, fr).fro()
            assert abs(total[i] - sum(v ** 2 for v in fro.values()) ** 0.5) < 1e-4 * total[i]
        # a step is the norm of the difference of consecutive patches
        wa = iu.read_last(adapter, PREFIX + CONTEXT[:4] + QUERY, [layer])
        wb = iu.read_last(adapter, PREFIX + CONTEXT[:5] + QUERY, [layer])
        fr = iu.read_last(adapter, PREFIX + QUERY, [layer])
        da, db = iu.implicit_patch(adapter, layer, wa, fr).deltas, iu.implicit_patch(adapter, layer, wb, fr).deltas
        step = sum(float((db[k] - da[k]).norm()) ** 2 for k in da) ** 0.5
        assert abs(steps[4] - step) < 1e-4 * step


# ------------------------------------------------------------------------------------ the claim

HEAD = "schema_version: 1\nmodel: smollm2-135m\nclaims:\n"  # claims start on line 4


def _claim(tmp_path: Path, text: str):
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + text)
    return load_spec(path).spec.claims[0]


class WordHash:
    """A tokenizer for 50-token tiny models: each word of the text -> 1 + (its letter sum mod 49); BOS 0."""

    bos_token_id = 0

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [1 + sum(map(ord, w)) % 49 for w in text.split()]}


def _ctx(name="llama"):
    model = build_tiny(name)
    loaded = types.SimpleNamespace(model=model, adapter=Adapter.for_model(model), tokenizer=WordHash(), source="tiny")
    return types.SimpleNamespace(loaded=loaded, session=types.SimpleNamespace(forward_passes=0),
                                 location=lambda key: f"s.yaml:{'.'.join(key)}")


@pytest.mark.parametrize("name", ["llama", "gemma3_text", "gpt2"])
@pytest.mark.parametrize("through", ["mlp", "block"])
def test_claim_passes_at_float_tolerance_and_fails_below_rounding(tmp_path, name, through):
    text = (f"  - {{id: a, kind: implicit_update, through: {through}, text: {{context: 12, query: 4}}, n: 2, "
            "expect: {rel_error: '<= 1e-5'}}\n")
    claim = _claim(tmp_path, text)
    m = claim_mod.measure(claim, claim_mod.targets(claim)[0], _ctx(name))
    assert 0 < m.value < 1e-5 and m.details["unpatched_min"] > 1e-2
    assert claim_mod.judge(claim, claim_mod.targets(claim)[0], m).passed
    strict = _claim(tmp_path, text.replace("1e-5", "1e-9"))
    assert not claim_mod.judge(strict, claim_mod.targets(strict)[0], m).passed
    assert {p["layer"] for p in m.details["per_layer"]} == {0, 1}
    sweeps = m.details["sweeps"]
    assert sweeps[0]["points"][0] == [0, 0.0] and len(sweeps[0]["points"]) == 13


def test_claim_fails_when_a_patch_is_not_rank_one(tmp_path):
    claim = _claim(tmp_path, "  - {id: a, kind: implicit_update, task: antonym, expect: {rel_error: '<= 1e-4'}}\n")
    from icltest.claims.base import Measurement

    details = {"rank_ratio_max": 0.2, "worst": {"layer": 0, "item": 0}, "rel_error_median": 1e-7, "layers": [0],
               "items": 1, "unpatched_min": 0.5, "unpatched_median": 0.5}
    assert not claim_mod.judge(claim, claim_mod.targets(claim)[0], Measurement(1e-7, "relative error", details)).passed
    details["rank_ratio_max"] = 1e-7
    assert claim_mod.judge(claim, claim_mod.targets(claim)[0], Measurement(1e-7, "relative error", details)).passed
    vacuous = {**details, "unpatched_max": 0.0}  # the context changed nothing: no update was reproduced
    assert not claim_mod.judge(claim, claim_mod.targets(claim)[0], Measurement(0.0, "relative error", vacuous)).passed
    assert not claim_mod.judge(claim, claim_mod.targets(claim)[0],
                               Measurement(float("nan"), "relative error", details)).passed


def test_layer_out_of_range_is_a_located_error(tmp_path):
    claim = _claim(tmp_path, "  - {id: a, kind: implicit_update, layers: '0-5', text: {context: 8, query: 2}, n: 1, "
                             "expect: {rel_error: '<= 1e-4'}}\n")
    with pytest.raises(ClaimSpecError, match=r"layers \[2, 3, 4, 5\] out of range: the model has layers 0..1"):
        claim_mod.measure(claim, claim_mod.targets(claim)[0], _ctx())


def test_too_long_text_is_a_located_error(tmp_path):
    claim = _claim(tmp_path, "  - {id: a, kind: implicit_update, text: {context: 2000, query: 8}, n: 2, "
                             "expect: {rel_error: '<= 1e-4'}}\n")
    with pytest.raises(ClaimSpecError, match="text: corpus 'essays'"):
        claim_mod.measure(claim, claim_mod.targets(claim)[0], _ctx())


@pytest.mark.parametrize("text, fragment", [
    ("  - {id: a, kind: implicit_update, task: antonym, shots: 0, expect: {rel_error: '<= 1e-4'}}\n",
     "s.yaml:4:58: claims[0].shots: shots: 0 gives no context C"),
    ("  - {id: a, kind: implicit_update, task: antonyms, expect: {rel_error: '<= 1e-4'}}\n",
     "s.yaml:4:42: claims[0].task: unknown task 'antonyms' (did you mean 'antonym'?)"),
    ("  - {id: a, kind: implicit_update, expect: {rel_error: '<= 1e-4'}}\n", "give exactly one input"),
    ("  - {id: a, kind: implicit_update, task: antonym, text: {}, expect: {rel_error: '<= 1e-4'}}\n",
     "give exactly one input"),
    ("  - {id: a, kind: implicit_update, text: {}, shots: 3, expect: {rel_error: '<= 1e-4'}}\n",
     "shots and split only apply to task prompts"),
    ("  - {id: a, kind: implicit_update, task: antonym, through: attn, expect: {rel_error: '<= 1e-4'}}\n",
     "claims[0].through"),
    ("  - {id: a, kind: implicit_update, task: antonym, layers: '5-2', expect: {rel_error: '<= 1e-4'}}\n",
     "runs backwards"),
    ("  - {id: a, kind: implicit_update, task: antonym, layers: [], expect: {rel_error: '<= 1e-4'}}\n",
     "layers is empty"),
    ("  - {id: a, kind: implicit_update, task: antonym, expect: {rel_err: '<= 1e-4'}}\n", "rel_err"),
])
def test_schema_mistakes_are_located(tmp_path, text, fragment):
    with pytest.raises(SpecError) as info:
        _claim(tmp_path, text)
    assert fragment in str(info.value)


def test_layers_forms(tmp_path):
    base = "  - {{id: a, kind: implicit_update, task: antonym, layers: {}, expect: {{rel_error: '<= 1e-4'}}}}\n"
    assert _claim(tmp_path, base.format("all")).layers is None
    assert _claim(tmp_path, base.format("'0-2,5'")).layers == [0, 1, 2, 5]
    assert _claim(tmp_path, base.format("[3]")).layers == [3]
    assert claim_mod.targets(_claim(tmp_path, base.format("all")))[0].id == "mlp-layersall-antonym-5shot"


def test_growth_expectation_is_judged_on_every_layer(tmp_path):
    from icltest.claims.base import Measurement

    claim = _claim(tmp_path, "  - {id: a, kind: implicit_update, task: antonym, expect: {rel_error: '<= 1e-4'}, "
                             "growth: {expect: {rho: '<= -0.2'}}}\n")
    details = {"rank_ratio_max": 1e-7, "worst": {"layer": 0, "item": 0}, "rel_error_median": 1e-7, "layers": [0, 1],
               "items": 1, "unpatched_min": 0.5, "unpatched_median": 0.5, "unpatched_max": 0.5,
               "growth": {"rho_median_per_layer": [-0.4, -0.3]}}
    target = claim_mod.targets(claim)[0]
    assert claim_mod.judge(claim, target, Measurement(1e-7, "relative error", details)).passed
    for rhos in ([-0.4, 0.1], [-0.4, float("nan")]):
        details["growth"] = {"rho_median_per_layer": rhos}
        verdict = claim_mod.judge(claim, target, Measurement(1e-7, "relative error", details))
        assert not verdict.passed and "growth rho" in verdict.expect
    # a lower bound is judged on every layer too, not on the largest rho
    claim = _claim(tmp_path, "  - {id: a, kind: implicit_update, task: antonym, expect: {rel_error: '<= 1e-4'}, "
                             "growth: {expect: {rho: '>= 0.2'}}}\n")
    details["growth"] = {"rho_median_per_layer": [-0.9, 0.3]}
    verdict = claim_mod.judge(claim, target, Measurement(1e-7, "relative error", details))
    assert not verdict.passed and "FAILED at layer 0 -0.900" in verdict.summary
    details["growth"] = {"rho_median_per_layer": [0.25, 0.3]}
    assert claim_mod.judge(claim, target, Measurement(1e-7, "relative error", details)).passed


def test_growth_activations_are_the_same_in_chunks_of_any_size():
    from icltest.testing.tiny_configs import build_tiny

    model = build_tiny("llama")
    adapter = Adapter.for_model(model)
    context, query = list(range(5, 25)), [30, 31, 32]
    one = iu.context_growth(adapter, [1], context, query, [0, 1], chunk=64)
    parts = iu.context_growth(adapter, [1], context, query, [0, 1], chunk=3)
    for layer in (0, 1):
        assert one[layer].shape == (len(context) + 1, model.config.hidden_size)
        torch.testing.assert_close(parts[layer], one[layer], rtol=1e-5, atol=1e-6)


def test_growth_rho_detects_shrinking_steps():
    assert iu._spearman([5.0, 4.0, 3.0, 2.5, 1.0]) == pytest.approx(-1.0)
    assert iu._spearman([1.0, 3.0, 2.0, 4.0]) == pytest.approx(0.8)
    assert iu._spearman([1.0, 1.0, 1.0]) != iu._spearman([1.0, 1.0, 1.0])  # constant: NaN
