"""Tiny random configs of every supported architecture, for tests and for checking a new adapter row.

Use with ``AutoModelForCausalLM.from_config(CONFIGS[name](), attn_implementation="eager")`` and
:func:`icltest.testing.hookcheck.check_hook_points`.
"""
from __future__ import annotations

import transformers as tf

CONFIGS = {
    "gpt2": lambda: tf.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=50, n_positions=64),
    "llama": lambda: tf.LlamaConfig(num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
                                    hidden_size=48, intermediate_size=64, vocab_size=50),
    "mistral": lambda: tf.MistralConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                        hidden_size=32, intermediate_size=64, vocab_size=50),
    "qwen2": lambda: tf.Qwen2Config(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                                    hidden_size=32, intermediate_size=64, vocab_size=50),
    "qwen3": lambda: tf.Qwen3Config(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                    hidden_size=32, head_dim=8, intermediate_size=64, vocab_size=50),
    "gemma": lambda: tf.GemmaConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                                    hidden_size=32, head_dim=8, intermediate_size=64, vocab_size=50),
    "gemma2": lambda: tf.Gemma2Config(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                                      hidden_size=32, head_dim=16, intermediate_size=64, vocab_size=50),
    "gemma3_text": lambda: tf.Gemma3TextConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                                               hidden_size=32, head_dim=16, intermediate_size=64, vocab_size=50),
    "gemma3": lambda: tf.Gemma3Config(  # multimodal checkpoint: Gemma3ForConditionalGeneration, tiny vision tower
        text_config=dict(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, hidden_size=32,
                         head_dim=16, intermediate_size=64, vocab_size=50),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=28, patch_size=14), mm_tokens_per_image=4),
    "gpt_neox": lambda: tf.GPTNeoXConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=32,
                                         intermediate_size=64, vocab_size=50),
    "gpt_neox_serial": lambda: tf.GPTNeoXConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=32,
                                                intermediate_size=64, vocab_size=50, use_parallel_residual=False),
}


def build_tiny(name: str, *, seed: int = 0, perturb: tuple[str, ...] = ("norm", "ln"), scale: float = 0.3):
    """A tiny random model of ``name`` (eager attention, eval mode) with the parameters whose names
    contain any of ``perturb`` jittered by ``scale`` * N(0, 1): Gemma's ``(1 + w)`` norm weights start
    at exactly 1 and biases at 0, which would hide a missing scale or bias term in a test."""
    import torch

    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(CONFIGS[name](), attn_implementation="eager").eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if any(part in n for part in perturb):
                p.add_(scale * torch.randn_like(p))
    return model
