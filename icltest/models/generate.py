"""Greedy generation that keeps whatever hooks are registered, with or without a KV cache.

``model.generate`` is avoided on purpose: its many code paths (cache classes, logits processors,
stopping rules) make it hard to say what an injection hook saw. This loop is one forward pass per
new token, inside the caller's hook context (e.g. :func:`icltest.interventions.apply`):

- ``use_cache=True``: the prompt once, then one token per call with ``past_key_values``: a hook
  at a residual point then sees ``[batch, 1, d]`` for every new token, so an ``add`` at every
  position (or a handler that treats a one-token call as a position after the prompt) still
  edits every generated token, exactly as without a cache;
- ``use_cache=False``: the whole sequence again at every step (quadratic, but the plain reference).

Left-padded batches keep their mask and get position ids counted from each row's first real token
(:func:`icltest.models.forward.padding_kwargs`), so padding never changes a row's tokens.
"""
from __future__ import annotations

from typing import Any

import torch

from icltest.models.forward import padding_kwargs


@torch.no_grad()
def greedy(model: Any, ids: torch.Tensor, mask: torch.Tensor | None = None, new_tokens: int = 16,
           *, use_cache: bool = True) -> torch.Tensor:
    """The ``new_tokens`` greedy (argmax) tokens after each row of left-padded ``ids``: [batch, new_tokens].

    No stopping at end-of-sequence: every row gets exactly ``new_tokens`` (cut them afterwards).
    """
    if new_tokens < 0:
        raise ValueError(f"new_tokens must be >= 0, got {new_tokens}")
    device = next(model.parameters()).device
    ids = ids.to(device)
    mask = torch.ones_like(ids) if mask is None else mask.to(device)
    out: list[torch.Tensor] = []
    past = None
    step_ids = ids
    import inspect

    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    for _ in range(new_tokens):
        kwargs = padding_kwargs(mask, device)
        if use_cache and past is not None:
            kwargs["position_ids"] = kwargs["position_ids"][:, -step_ids.shape[1]:]
        if past is not None:
            kwargs[cache_kw] = past
        result = model(input_ids=step_ids, use_cache=use_cache, **kwargs)
        nxt = result.logits[:, -1].argmax(-1, keepdim=True)
        out.append(nxt)
        mask = torch.cat([mask, torch.ones_like(nxt)], 1)
        if use_cache:
            past = getattr(result, "cache", None) or getattr(result, "past_key_values", None)
            step_ids = nxt
        else:
            ids = torch.cat([ids, nxt], 1)
            step_ids = ids
    if not out:
        return ids.new_zeros((ids.shape[0], 0))
    return torch.cat(out, 1).cpu()
