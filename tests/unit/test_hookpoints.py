"""Named hook points on tiny random models of every supported architecture.

Every expected value is computed independently of the hook engine: from plain torch hooks on the
raw modules, from the modules' own weights, or from identities of the residual stream.
"""
from __future__ import annotations

import pytest
import torch

from icltest.errors import InterventionError
from icltest.models.adapters import ARCHITECTURES, Adapter
from icltest.models.hookpoints import HookPoint, hooked, point
from icltest.testing.hookcheck import check_hook_points

from icltest.testing.tiny_configs import CONFIGS, build_tiny  # noqa: E402


def test_every_supported_architecture_has_a_config() -> None:
    assert set(ARCHITECTURES) <= set(CONFIGS)


def build(name: str):
    return build_tiny(name)  # random norms: Gemma's (1 + w) weights start at exactly 1


TOKENS = torch.randint(0, 50, (3, 9), generator=torch.Generator().manual_seed(1))


def capture(adapter, points):
    store: dict[str, torch.Tensor] = {}

    def reader(key):
        def read(x):
            store[key] = x.detach().clone()
        return read

    handlers = {hp: [reader(str(hp))] for hp in points}
    with torch.no_grad(), hooked(adapter, handlers):
        logits = adapter.model(input_ids=TOKENS).logits
    return store, logits


def raw_o_proj(adapter, layer):
    """o_proj input and output via plain torch hooks (independent of the engine)."""
    seen = {}
    mod = adapter.o_proj(layer)
    h1 = mod.register_forward_pre_hook(lambda m, a: seen.__setitem__("in", a[0].detach().clone()))
    h2 = mod.register_forward_hook(lambda m, a, o: seen.__setitem__("out", o.detach().clone()))
    with torch.no_grad():
        adapter.model(input_ids=TOKENS)
    h1.remove(), h2.remove()
    return seen["in"], seen["out"]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_residual_stream_identities(name: str) -> None:
    model = build(name)
    adapter = Adapter.for_model(model)
    check_hook_points(adapter, TOKENS, atol=1e-5, rtol=1e-5)
    store, _ = capture(adapter, [point("z", 1)])
    z_in, _ = raw_o_proj(adapter, 1)
    torch.testing.assert_close(store["blocks.1.z"].reshape(z_in.shape), z_in, atol=0, rtol=0)


def test_self_check_catches_a_wrong_adapter_row() -> None:
    """The check can fail: calling Llama's pre-MLP norm an attention post-norm is caught."""
    from dataclasses import replace

    model = build("llama")
    adapter = Adapter.for_model(model)
    adapter.arch = replace(adapter.arch, attn_post_norm="post_attention_layernorm")
    with pytest.raises(AssertionError, match="resid_post != resid_pre"):
        check_hook_points(adapter, TOKENS)


def _all_hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("name", ["gpt2", "gemma3_text", "llama"])
def test_writes_change_logits_and_hooks_are_removed_even_after_an_error(name: str) -> None:
    model = build(name)
    adapter = Adapter.for_model(model)
    with torch.no_grad():
        before = model(input_ids=TOKENS).logits
    zero = lambda x: torch.zeros_like(x)  # noqa: E731
    for hp in ["resid_pre", "resid_mid", "resid_post", "z", "result", "attn_out", "mlp_in", "mlp_hidden", "mlp_out"]:
        with torch.no_grad(), hooked(adapter, {point(hp, 1): [zero]}):
            after = model(input_ids=TOKENS).logits
        assert not torch.equal(before, after), hp
    with pytest.raises(RuntimeError, match="boom"):
        with hooked(adapter, {point("z", 0): [zero], point("attn_out", 1): [zero]}, freeze_post_norm=[0, 1]):
            raise RuntimeError("boom")
    assert _all_hooks(model) == 0
    with torch.no_grad():
        assert torch.equal(model(input_ids=TOKENS).logits, before)


def test_pattern_is_read_only_and_points_are_validated() -> None:
    adapter = Adapter.for_model(build("llama"))
    with pytest.raises(InterventionError, match="read-only"):
        with torch.no_grad(), hooked(adapter, {point("pattern", 0): [lambda x: x * 0]}):
            adapter.model(input_ids=TOKENS)
    with pytest.raises(InterventionError, match="layers 0..1"):
        with hooked(adapter, {point("z", 5): [lambda x: None]}):
            pass
    with pytest.raises(InterventionError, match="unknown hook point"):
        HookPoint.parse("blocks.0.attn_output")
    assert str(HookPoint.parse("blocks.3.z")) == "blocks.3.z" and HookPoint.parse("unembed").layer == -1


def keep(store, key):
    def read(x):
        store[key] = x.clone()
    return read


def _share_frozen(adapter, layer, heads, o_out, result):
    """Post-norm output with the clean norm scale and the given heads' results removed."""
    norm = adapter.attn_post_norm(layer)
    scale = (1 + norm.weight) / torch.sqrt(o_out.pow(2).mean(-1, keepdim=True) + norm.eps)
    return (o_out - result[..., heads, :].sum(-2)) * scale


def test_post_norm_head_ablation_removes_exactly_the_heads_share() -> None:
    model = build("gemma3_text")
    adapter = Adapter.for_model(model)
    layer = 1
    clean, _ = capture(adapter, [point("result", layer), point("attn_out", layer)])
    _, o_out = raw_o_proj(adapter, layer)

    def zero_heads(heads):
        def edit(z):
            z = z.clone()
            z[..., heads, :] = 0
            return z
        return edit

    for heads in ([0], [1, 3], [0, 1, 2]):
        got_frozen = {}
        with torch.no_grad(), hooked(adapter, {point("z", layer): [zero_heads(heads)],
                                               point("attn_out", layer): [keep(got_frozen, "v")]},
                                     freeze_post_norm=[layer]):
            model(input_ids=TOKENS)
        expected = _share_frozen(adapter, layer, heads, o_out, clean[f"blocks.{layer}.result"])
        torch.testing.assert_close(got_frozen["v"], expected, atol=1e-5, rtol=1e-5)
        got_live = {}
        with torch.no_grad(), hooked(adapter, {point("z", layer): [zero_heads(heads)],
                                               point("attn_out", layer): [keep(got_live, "v")]}):
            model(input_ids=TOKENS)
        assert not torch.allclose(got_live["v"], expected, atol=1e-3)  # the live norm rescales what is left
    # all heads removed: attn_out is exactly zero, and the next layer sees resid_mid == resid_pre
    seen = {}
    with torch.no_grad(), hooked(adapter, {point("z", layer): [zero_heads([0, 1, 2, 3])],
                                           point("attn_out", layer): [keep(seen, "a")],
                                           point("resid_pre", layer): [keep(seen, "pre")],
                                           point("resid_mid", layer): [keep(seen, "mid")]},
                                 freeze_post_norm=[layer]):
        model(input_ids=TOKENS)
    assert torch.count_nonzero(seen["a"]) == 0
    assert torch.equal(seen["mid"], seen["pre"])


def test_freeze_leaves_unedited_rows_bit_identical() -> None:
    model = build("gemma3_text")
    adapter = Adapter.for_model(model)
    with torch.no_grad():
        clean = model(input_ids=TOKENS).logits

    def zero_row0(z):
        z = z.clone()
        z[0, :, 1] = 0
        return z

    with torch.no_grad(), hooked(adapter, {point("z", 0): [zero_row0]}, freeze_post_norm=[0]):
        out = model(input_ids=TOKENS).logits
    assert torch.equal(out[1:], clean[1:])
    assert not torch.equal(out[0], clean[0])


def test_patching_z_on_a_post_norm_model_reproduces_the_source_attn_out() -> None:
    """Patch (not an ablation) defaults to a live norm: the patched run's attn_out is the source's."""
    from icltest.interventions import Intervention, apply

    model = build("gemma3_text")
    adapter = Adapter.for_model(model)
    source = torch.randint(0, 50, TOKENS.shape, generator=torch.Generator().manual_seed(9))
    src = {}
    with torch.no_grad(), hooked(adapter, {point("z", 1): [keep(src, "z")], point("attn_out", 1): [keep(src, "a")]}):
        model(input_ids=source)
    got = {}
    with torch.no_grad(), apply(adapter, [Intervention(point("z", 1), "patch", value=src["z"])]), \
            hooked(adapter, {point("attn_out", 1): [keep(got, "a")]}):
        model(input_ids=TOKENS)
    torch.testing.assert_close(got["a"], src["a"], atol=1e-6, rtol=1e-6)


def test_nested_freezes_of_one_norm_are_refused() -> None:
    from icltest.interventions import Intervention, apply

    adapter = Adapter.for_model(build("gemma3_text"))
    with apply(adapter, [Intervention(point("z", 1), "zero", heads=(0,))]):
        with pytest.raises(InterventionError, match="already frozen"):
            with apply(adapter, [Intervention(point("z", 1), "zero", heads=(1,))]):
                pass
    with apply(adapter, [Intervention(point("z", 1), "zero", heads=(1,))]):  # the mark is cleared on exit
        pass


def test_resid_mid_write_on_a_parallel_block_is_refused() -> None:
    adapter = Adapter.for_model(build("gpt_neox"))
    assert adapter.parallel_residual
    with pytest.raises(InterventionError, match="parallel"):
        with torch.no_grad(), hooked(adapter, {point("resid_mid", 1): [lambda x: torch.zeros_like(x)]}):
            adapter.model(input_ids=TOKENS)


def test_zeroing_every_head_at_result_is_exact_in_bfloat16() -> None:
    model = build("llama").to(torch.bfloat16)
    adapter = Adapter.for_model(model)
    got = {}
    with torch.no_grad(), hooked(adapter, {point("result", 1): [lambda x: torch.zeros_like(x)],
                                           point("attn_out", 1): [keep(got, "a")]}):
        model(input_ids=TOKENS)
    assert torch.count_nonzero(got["a"]) == 0  # the Llama o_proj has no bias
