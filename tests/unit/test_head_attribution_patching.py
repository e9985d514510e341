"""Attribution patching against finite differences computed with plain torch hooks.

The finite difference moves one head's o_proj input a small step towards its reference mean and
reads the metric again, so it checks the gradient, the (reference - clean) direction, the padding
mask and (on Gemma 3) the frozen post-norm scale without going through icltest's hook engine.
"""
from __future__ import annotations

import types

import pytest
import torch

from icltest.attribution.patching import attribute_heads
from icltest.models.adapters import Adapter
from icltest.testing.tiny_configs import build_tiny

EPS = 1e-3  # central differences in float32: curvature error ~EPS^2, rounding ~1e-6 / EPS


def build(name):
    return build_tiny(name)


def fake_run(model, metric="answer_logprob"):
    adapter = Adapter.for_model(model)
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(1, 50, (3, 8), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # a left-padded row
    answers = [[5], [7, 9], [11]]
    full = [False, True, False]
    ids[1, -1] = 7  # teacher-forced: the row's input ends with the answer's first token
    means = {layer: torch.randn(adapter.n_heads, adapter.head_dim, generator=gen, )
             for layer in range(adapter.n_layers)}
    inputs = types.SimpleNamespace(tokens=ids, mask=mask, kept=2, answer_tokens=answers, full=full,
                                   answer_ids=[5, 7, 11], other_ids=[6, 8, 12])
    ref = types.SimpleNamespace(mean=lambda layer: means[layer])
    run = types.SimpleNamespace(loaded=types.SimpleNamespace(model=model, adapter=adapter), inputs=inputs,
                                metric=types.SimpleNamespace(name=metric), session=types.SimpleNamespace(forward_passes=0),
                                _reference=lambda what: ref)
    return run, means


def metric_with_step(run, means, layer, head, step, name):
    """Rows' metric with head (layer, head) moved `step` of the way to its mean, by raw hooks."""
    model, adapter, inputs = run.loaded.model, run.loaded.adapter, run.inputs
    H, D = adapter.n_heads, adapter.head_dim
    o_proj = adapter.o_proj(layer)
    post = adapter.attn_post_norm(layer)
    clean_rms = {}

    def rms_of(x):
        return torch.sqrt(x.pow(2).mean(-1, keepdim=True) + post.eps)

    def record(_m, args, out):
        clean_rms["r"] = rms_of(args[0])

    def freeze(_m, args, out):  # Gemma 3 RMSNorm: x / rms(x) * (1 + w), with the clean rms
        return args[0] / clean_rms["r"] * (1 + post.weight)

    def move(_m, args):
        z = args[0].reshape(*args[0].shape[:-1], H, D).clone()
        z[..., head, :] += step * (means[layer][head] - z[..., head, :])
        return (z.reshape(args[0].shape),)

    kwargs = {"attention_mask": inputs.mask, "position_ids": (inputs.mask.cumsum(-1) - 1).clamp(min=0)}
    with torch.no_grad():
        handles = []
        if post is not None:
            handles.append(post.register_forward_hook(record))
            model(input_ids=inputs.tokens, **kwargs)
            handles[0].remove()
            handles = [post.register_forward_hook(freeze)]
        handles.append(o_proj.register_forward_pre_hook(move))
        try:
            logits = model(input_ids=inputs.tokens, **kwargs).logits[:, -2:]
        finally:
            for h in handles:
                h.remove()
    if name == "logit_diff":
        last = logits[:, -1]
        return last[torch.arange(3), torch.tensor([5, 7, 11])] - last[torch.arange(3), torch.tensor([6, 8, 12])]
    # written out here, not through answer_logprob: rows 0 and 2 read token 5 / 11 at the last
    # position; row 1 (teacher-forced) reads 7 at the second-to-last and 9 at the last
    logp = torch.log_softmax(logits.float(), -1)
    return torch.stack([logp[0, -1, 5], logp[1, -2, 7] + logp[1, -1, 9], logp[2, -1, 11]])


@pytest.mark.parametrize("name", ["llama", "gpt2", "gemma3_text", "gemma2", "qwen2", "gpt_neox"])
@pytest.mark.parametrize("metric", ["answer_logprob", "logit_diff"])
def test_attribution_matches_finite_differences(name, metric):
    model = build(name)
    run, means = fake_run(model, metric)
    got = attribute_heads(run)
    adapter = run.loaded.adapter
    checked = 0
    for layer in range(adapter.n_layers):
        for head in range(adapter.n_heads):
            ahead = metric_with_step(run, means, layer, head, EPS, metric)
            behind = metric_with_step(run, means, layer, head, -EPS, metric)
            slope = (ahead - behind) / (2 * EPS)  # [rows] d metric / d step = grad . (mean - z)
            torch.testing.assert_close(got.effect[:, layer, head], slope, rtol=1e-2, atol=2e-3)
            checked += 1
    assert checked == adapter.n_layers * adapter.n_heads
    assert got.effect.abs().max() > 1e-3  # not trivially zero
    assert run.session.forward_passes == 1


def test_parameters_keep_their_requires_grad_and_no_hooks_remain():
    model = build("llama")
    flags = [p.requires_grad for p in model.parameters()]
    run, _ = fake_run(model)
    attribute_heads(run)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
