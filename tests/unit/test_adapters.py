"""Adapters on tiny randomly-initialised models of every supported architecture.

Checks geometry against the configs we built (not against the adapter's own output), that the
attention hook yields one row-stochastic causal pattern per *query* head (GQA included), and
that the per-head output hook point really has n_heads * head_dim inputs.
"""
from __future__ import annotations

import pytest
import torch
import transformers as tf

from icltest.models.adapters import Adapter, UnsupportedArchitecture
from icltest.models.hooks import attention_callbacks

from icltest.testing.tiny_configs import CONFIGS as _ALL  # noqa: E402

CONFIGS = {name: make for name, make in _ALL.items() if name != "gemma3"}  # text-only configs: heads read off the config


def _build(name: str):
    torch.manual_seed(0)
    config = CONFIGS[name]()
    model = tf.AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    return model, config


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_adapter_geometry_and_attention_capture(name: str) -> None:
    model, config = _build(name)
    adapter = Adapter.for_model(model)
    expected_heads = getattr(config, "num_attention_heads", None) or config.n_head
    expected_kv = getattr(config, "num_key_value_heads", None) or expected_heads
    assert adapter.n_layers == 2
    assert adapter.n_heads == expected_heads
    assert adapter.n_kv_heads == expected_kv

    seen: dict[int, torch.Tensor] = {}
    tokens = torch.randint(0, 50, (3, 11), generator=torch.Generator().manual_seed(1))
    o_inputs: list[int] = []
    handle = adapter.o_proj(1).register_forward_pre_hook(lambda m, args: o_inputs.append(args[0].shape[-1]))
    with torch.no_grad(), attention_callbacks(adapter, lambda layer, p: seen.__setitem__(layer, p.clone())):
        model(input_ids=tokens)
    handle.remove()
    assert sorted(seen) == [0, 1]
    for probs in seen.values():
        assert probs.shape == (3, expected_heads, 11, 11)  # one pattern per query head
        torch.testing.assert_close(probs.sum(-1), torch.ones(3, expected_heads, 11), atol=1e-5, rtol=0)
        assert torch.all(probs.triu(diagonal=1) == 0)  # causal
    assert o_inputs == [adapter.n_heads * adapter.head_dim]


def test_unsupported_architecture_lists_supported() -> None:
    config = tf.BertConfig(num_hidden_layers=1, num_attention_heads=2, hidden_size=8, intermediate_size=8, vocab_size=20)
    model = tf.BertLMHeadModel(config)
    with pytest.raises(UnsupportedArchitecture) as info:
        Adapter.for_model(model)
    text = str(info.value)
    assert "'bert'" in text and "llama" in text and "gpt2" in text and "gemma3_text" in text


def test_hooks_are_removed_after_context() -> None:
    model, _ = _build("llama")  # 6 query heads over 2 KV heads (GQA)
    adapter = Adapter.for_model(model)
    calls: list[int] = []
    with torch.no_grad():
        with attention_callbacks(adapter, lambda layer, p: calls.append(layer)):
            model(input_ids=torch.tensor([[1, 2, 3]]))
        model(input_ids=torch.tensor([[1, 2, 3]]))
    assert calls == [0, 1]
