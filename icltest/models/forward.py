"""One way to call a causal LM on (left-padded) ids and keep only the logits that are read.

Every forward pass icltest runs outside a plain probe goes through :func:`logits_at`: left-padded
prompts get their attention mask and position ids (counting from each row's first real token),
and only the kept positions' logits are computed where the architecture supports
``logits_to_keep`` (the unembedding is most of a small model's cost); elsewhere all are computed
and the kept ones selected.
"""
from __future__ import annotations

from typing import Any

import torch


def padding_kwargs(mask: torch.Tensor | None, device: Any = None) -> dict[str, torch.Tensor]:
    """``attention_mask`` and ``position_ids`` for a left-padded batch (empty without a mask)."""
    if mask is None:
        return {}
    return {"attention_mask": mask.to(device), "position_ids": (mask.cumsum(-1) - 1).clamp(min=0).to(device)}


def logits_at(model: Any, ids: torch.Tensor, keep: Any = 1, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Logits [batch, kept, vocab] at the last ``keep`` positions (int) or at index tensor ``keep``.

    ``ids`` and ``mask`` are moved to the model's device; gradients follow the caller's mode.
    """
    device = next(model.parameters()).device
    ids = ids.to(device)
    kwargs = padding_kwargs(mask, device)
    try:
        return model(input_ids=ids, logits_to_keep=keep, **kwargs).logits
    except TypeError:  # an architecture without logits_to_keep: compute all, then select
        out = model(input_ids=ids, **kwargs).logits
        return out[:, -keep:] if isinstance(keep, int) else out[:, keep.to(out.device)]
