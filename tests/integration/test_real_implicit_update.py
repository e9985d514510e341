"""Implicit rank-1 updates on the real SmolLM2-135M and Gemma 3 270M weights.

The expected with-context outputs are read with plain forward hooks on the unpatched model (the
MLP's post-norm or the MLP module for ``mlp``, the decoder layer for ``block``), not through icltest.
"""
from __future__ import annotations

import pytest
import torch

from icltest.interventions import apply
from icltest.interventions import implicit_update as iu


def _plain_last(model, module, ids):
    box = []
    handle = module.register_forward_hook(
        lambda m, a, out: box.append((out[0] if isinstance(out, tuple) else out)[0, -1].detach().clone()))
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([ids]))
    finally:
        handle.remove()
    return box[0].double()


@pytest.mark.slow
@pytest.mark.parametrize("alias", ["smollm2-135m", "gemma3-270m"])
@pytest.mark.parametrize("through", ["mlp", "block"])
def test_rank1_patch_reproduces_the_context_on_real_weights(real_model, alias, through) -> None:
    loaded = real_model(alias)
    adapter, model = loaded.adapter, loaded.model
    item = iu.task_items(loaded.tokenizer, "antonym", shots=5, n=1, seed=3)[0]
    layers = [0, adapter.n_layers // 2, adapter.n_layers - 1]
    with_ctx = iu.read_last(adapter, item.with_context, layers)
    free = iu.read_last(adapter, item.free, layers)
    before = {k: v.clone() for k, v in model.state_dict().items() if "mlp" in k or "feedforward" in k}
    for layer in layers:
        if through == "block":
            module = adapter.layers()[layer]
        else:
            module = adapter.mlp_post_norm(layer) or adapter.mlp(layer)
        want = _plain_last(model, module, item.with_context)
        unpatched = _plain_last(model, module, item.free)
        patch = iu.implicit_patch(adapter, layer, with_ctx, free, through=through)
        with apply(adapter, patch.edits):
            got = _plain_last(model, module, item.free)
        err = float((got - want).norm() / want.norm())
        assert err < 1e-5, (alias, through, layer, err)
        assert float((unpatched - want).norm() / want.norm()) > 0.05  # the context moved this output
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
