"""Forward hooks that hand each layer's attention probabilities to a callback, then drop them.

Keeping every layer's attention maps costs layers x batch x heads x seq^2 floats; handing each
layer's map to a callback inside the forward pass keeps one layer's worth alive at a time.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch


from icltest.errors import AttentionNotCaptured


@contextmanager
def attention_callbacks(adapter: Any, on_layer: Callable[[int, torch.Tensor], None]) -> Iterator[None]:
    """Call `on_layer(layer, probs[b, n_query_heads, q, k])` as each layer's attention runs."""
    handles = []

    def make_hook(layer: int) -> Callable[..., None]:
        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            probs = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if probs is None:
                raise AttentionNotCaptured(
                    f"layer {layer}: attention probabilities were not returned; icltest loads "
                    "models with attn_implementation='eager' — pass a model loaded that way"
                )
            on_layer(layer, probs.detach())

        return hook

    try:
        for layer in range(adapter.n_layers):
            handles.append(adapter.attention(layer).register_forward_hook(make_hook(layer)))
        yield
    finally:
        for handle in handles:
            handle.remove()
