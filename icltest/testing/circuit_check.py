"""An independent reference for circuit ablations: plain torch hooks, no icltest hook engine.

:func:`hand_ablated_loss` replaces heads' slices of the attention output projection's input and
whole MLP outputs by their mean over a reference batch (or zero) with ``register_forward_hook``
on the model's own modules (GPT-2 ``attn.c_proj`` / ``mlp``; Llama-style ``self_attn.o_proj`` /
``mlp``) and reads the second copy's loss of a two-repeat probe, so tests can check what
:mod:`icltest.circuits` ablates against a computation that shares none of its code.
"""
from __future__ import annotations

from typing import Any

import torch


def _modules(model: Any, layer: int) -> tuple[Any, Any]:
    if hasattr(model, "transformer"):
        block = model.transformer.h[layer]
        return block.attn.c_proj, block.mlp
    block = model.model.layers[layer]
    return block.self_attn.o_proj, block.mlp


def hand_ablated_loss(model: Any, n_heads: int, head_dim: int, ids: torch.Tensor, ref_ids: torch.Tensor,
                      ref_valid: torch.Tensor, heads: list, mlps: list, method: str, prefix: int, segment: int) -> float:
    """Second-half loss with `heads` (o_proj input slices) and `mlps` (MLP outputs) replaced by
    their mean over the reference's valid positions (or zero), using plain forward hooks."""
    L = len(model.transformer.h) if hasattr(model, "transformer") else len(model.model.layers)
    z_ref, mlp_ref = {}, {}
    handles = []
    for layer in range(L):
        o, mlp = _modules(model, layer)
        handles.append(o.register_forward_pre_hook(lambda m, a, layer=layer: z_ref.__setitem__(layer, a[0].detach())))
        handles.append(mlp.register_forward_hook(lambda m, a, out, layer=layer: mlp_ref.__setitem__(layer, out.detach())))
    with torch.no_grad():
        model(input_ids=ref_ids)
    for h in handles:
        h.remove()
    w = ref_valid.float()[..., None]
    z_mean = {l: (z * w).sum((0, 1)) / w.sum() for l, z in z_ref.items()}
    mlp_mean = {l: (x * w).sum((0, 1)) / w.sum() for l, x in mlp_ref.items()}
    handles = []
    for layer in range(L):
        o, mlp = _modules(model, layer)
        hs = [h for l, h in heads if l == layer]
        if hs:
            def pre(m, args, layer=layer, hs=hs):
                z = args[0].clone().view(*args[0].shape[:2], n_heads, head_dim)
                for h in hs:
                    z[:, :, h] = 0.0 if method == "zero" else z_mean[layer].view(n_heads, head_dim)[h]
                return (z.view(args[0].shape),) + tuple(args[1:])
            handles.append(o.register_forward_pre_hook(pre))
        if layer in mlps:
            handles.append(mlp.register_forward_hook(
                lambda m, a, out, layer=layer: torch.zeros_like(out) if method == "zero" else mlp_mean[layer].expand_as(out)))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    for h in handles:
        h.remove()
    pos = torch.arange(prefix + segment, prefix + 2 * segment)
    loss = torch.nn.functional.cross_entropy(logits[:, pos - 1].transpose(1, 2), ids[:, pos])
    return float(loss)
