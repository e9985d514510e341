"""Attention maps layer by layer: hand each layer's probabilities to a callback, then drop them.

Keeping every layer's attention maps costs layers x batch x heads x seq^2 floats; handing each
layer's map (the ``blocks.L.pattern`` hook point) to a callback inside the forward pass keeps one
layer's worth alive at a time.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import torch

from icltest.models.hookpoints import hooked, point


@contextmanager
def attention_callbacks(adapter: Any, on_layer: Callable[[int, torch.Tensor], None],
                        layers: Iterable[int] | None = None) -> Iterator[None]:
    """Call ``on_layer(layer, probs[b, n_query_heads, q, k])`` as each layer's attention runs."""
    def reader(layer: int) -> Callable[[torch.Tensor], None]:
        def read(probs: torch.Tensor) -> None:
            on_layer(layer, probs.detach())

        return read

    wanted = range(adapter.n_layers) if layers is None else layers
    with hooked(adapter, {point("pattern", layer): [reader(layer)] for layer in wanted}):
        yield
