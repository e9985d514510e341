"""Self-check of the named hook points on any loaded model, against independent computations.

``resid_post = resid_pre + attn_out + mlp_out``, ``resid_mid = resid_pre + attn_out``, the
per-head ``result`` summed plus the bias equals the o_proj output read by a plain torch hook,
``attn_out`` equals that output (pre-norm) or its post-norm computed from the norm's weights
(Gemma 2/3), ``mlp_out`` equals ``mlp_hidden`` times the down projection (pre-norm), each layer's
``resid_post`` is the next layer's ``resid_pre``, ``final_norm`` is the final norm of the last
``resid_post`` and ``unembed`` (soft-capped where the model caps) equals the logits. Run it after
adding an architecture row; the project's tests run it on every supported architecture and on
the real SmolLM2 and Gemma 3 weights.
"""
from __future__ import annotations

from typing import Any

import torch

from icltest.models.hookpoints import LAYER_POINTS, hooked, o_proj_weight, point


def _capture(adapter: Any, tokens: torch.Tensor, layers: list[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    store: dict[str, torch.Tensor] = {}

    def reader(key: str) -> Any:
        def read(x: torch.Tensor) -> None:
            store[key] = x.detach().float().clone()
        return read

    points = [point(p, l) for l in layers for p in LAYER_POINTS] + [point("final_norm"), point("unembed")]
    with torch.no_grad(), hooked(adapter, {hp: [reader(str(hp))] for hp in points}):
        logits = adapter.model(input_ids=tokens).logits.float()
    return store, logits


def _raw_o_proj(adapter: Any, layer: int, tokens: torch.Tensor) -> torch.Tensor:
    seen: dict[str, torch.Tensor] = {}
    handle = adapter.o_proj(layer).register_forward_hook(lambda m, a, o: seen.__setitem__("out", o.detach().float()))
    try:
        with torch.no_grad():
            adapter.model(input_ids=tokens)
    finally:
        handle.remove()
    return seen["out"]


def check_hook_points(adapter: Any, tokens: torch.Tensor, layers: list[int] | None = None,
                      atol: float = 1e-4, rtol: float = 1e-4) -> None:
    """Assert the identities above on ``tokens``; AssertionError names the first that fails."""
    layers = list(range(adapter.n_layers)) if layers is None else layers
    a, logits = _capture(adapter, tokens, layers)
    close = dict(atol=atol, rtol=rtol)
    b, s = tokens.shape
    for layer in layers:
        def k(name: str) -> torch.Tensor:
            return a[f"blocks.{layer}.{name}"]

        def same(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
            try:
                torch.testing.assert_close(got, want, **close)
            except AssertionError as exc:
                raise AssertionError(f"layer {layer}: {what}\n{exc}") from None

        same(k("resid_post"), k("resid_pre") + k("attn_out") + k("mlp_out"), "resid_post != resid_pre + attn_out + mlp_out")
        same(k("resid_mid"), k("resid_pre") + k("attn_out"), "resid_mid != resid_pre + attn_out")
        o_out = _raw_o_proj(adapter, layer, tokens)
        bias = adapter.o_proj(layer).bias
        summed = k("result").sum(-2) + (bias.float() if bias is not None else 0)
        same(summed, o_out, "sum of per-head results + bias != o_proj output")
        assert k("z").shape == (b, s, adapter.n_heads, adapter.head_dim), f"layer {layer}: z shape {k('z').shape}"
        norm = adapter.attn_post_norm(layer)
        if norm is None:
            same(summed, k("attn_out"), "attn_out != o_proj output (pre-norm model)")
        else:
            scale = torch.rsqrt(o_out.pow(2).mean(-1, keepdim=True) + norm.eps) * (1 + norm.weight.float())
            same(k("attn_out"), o_out * scale, "attn_out != post_norm(o_proj output)")
        pattern = k("pattern")
        same(pattern.sum(-1), torch.ones_like(pattern.sum(-1)), "attention rows do not sum to 1")
        if adapter.mlp_post_norm(layer) is None:
            down = adapter.mlp_down(layer)
            raw = k("mlp_hidden") @ o_proj_weight(down).float().t() + (down.bias.float() if down.bias is not None else 0)
            same(raw, k("mlp_out"), "mlp_out != down_proj(mlp_hidden)")
        if layer + 1 in layers:
            same(a[f"blocks.{layer + 1}.resid_pre"], k("resid_post"), "next resid_pre != resid_post")
    if layers[-1] == adapter.n_layers - 1:
        with torch.no_grad():
            want = adapter.final_norm()(a[f"blocks.{layers[-1]}.resid_post"].to(adapter.final_norm().weight.dtype))
        torch.testing.assert_close(a["final_norm"], want.float(), **close)
    cap = getattr(getattr(adapter.model.config, "get_text_config", lambda: adapter.model.config)(),
                  "final_logit_softcapping", None)
    unembed = a["unembed"] if cap is None else torch.tanh(a["unembed"] / cap) * cap
    torch.testing.assert_close(unembed, logits, **close)
