"""Direct logit attribution and the logit lens, read through the named hook points.

Direct logit attribution (DLA) splits the logit of a target token at a read position into what
each component wrote into the residual stream: the embedding, every head, every attention bias,
every MLP block. The residual stream entering the final norm is exactly their sum (``resid_post =
resid_pre + attn_out + mlp_out`` at every layer, parallel blocks included), and:

- **final norm**: its scale is *frozen* at the value it takes on the full residual stream at that
  position (as TransformerLens's ``apply_ln_to_stack`` does). RMSNorm is then linear:
  ``c -> c * gain / rms(resid)``. LayerNorm also centres each component (``c - mean(c)``), and its
  bias goes to a ``constant`` term with any unembedding bias. With the scale frozen the parts sum
  to the model's own logit (checked in tests to float precision); what a part would contribute
  through a *re-normalised* stream if it were removed is a different question (ablation).
- **post-norm blocks** (Gemma 2/3): a head's share of ``attn_out`` is its result times the
  post-norm's gain over the rms of the whole o_proj output, i.e. the post-norm scale is frozen the
  same way, so the heads' and the bias's shares sum to ``attn_out``.
- **centred logits** (default): the attributed quantity is the target's logit minus the mean
  logit over the vocabulary, i.e. the unembedding row is centred (``W_U[t] - mean_v W_U[v]``), as
  TransformerLens does by default. Softmax ignores a shift of every logit, so a component writing
  along the mean unembedding direction would otherwise get credit on every target without
  changing any probability. ``centred=False`` attributes the raw logit.
- **soft-capping** (Gemma 2): the attributed logit is the one *before* the cap (the cap is not
  linear); ranks do not change under it, probabilities from the logit lens apply it.

The logit lens reads the residual stream after layer L through the final norm and unembedding,
as if the model stopped there: the rank and probability of a token at every layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from icltest.errors import InterventionError
from icltest.models.forward import logits_at
from icltest.models.hookpoints import HookPoint, _norm_eps, hooked, o_proj_weight, rms

FINAL_NORM_TREATMENT = ("final-norm scale frozen at its value on the full residual stream at each read position "
                        "(LayerNorm: components centred, its bias in `constant`); logits before any soft-cap")
CENTRED = "target logit minus the mean logit over the vocabulary (unembedding centred)"
RAW = "raw target logit"


def norm_gain(norm: Any) -> torch.Tensor:
    """The elementwise gain of an RMS-type norm module, read off the module itself (fp32).

    ``norm(ones) = gain / sqrt(1 + eps)`` for every RMSNorm variant (Llama ``w``, Gemma ``1 + w``),
    so the gain comes from the module's own forward, whatever its parameterisation.
    """
    weight = next(norm.parameters(), None)
    width = int(weight.shape[-1]) if weight is not None else None
    if width is None:
        raise InterventionError(f"{type(norm).__name__} has no weight: cannot read its gain")
    ones = torch.ones(1, width, dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        return norm(ones).float().reshape(-1) * math.sqrt(1.0 + _norm_eps(norm))


def _is_layer_norm(norm: Any) -> bool:
    return isinstance(norm, torch.nn.LayerNorm)


@dataclass
class DirectEffects:
    """Direct contributions to the target logit at N read positions.

    Attributes:
        heads: [N, n_layers, n_heads] each head's direct effect.
        attn_bias: [N, n_layers] the o_proj bias's share (0 where there is none).
        mlp: [N, n_layers] each MLP block's direct effect.
        embed: [N] the token (and position) embedding's.
        constant: [N] final-norm bias and unembedding bias.
        logit: [N] the model's logit for the target at the read position (before any soft-cap),
            minus the mean logit over the vocabulary when ``centred``.
        targets: [N] the target token ids.
        centred: whether logits are centred (see the module docstring).
    """

    heads: torch.Tensor
    attn_bias: torch.Tensor
    mlp: torch.Tensor
    embed: torch.Tensor
    constant: torch.Tensor
    logit: torch.Tensor
    targets: torch.Tensor
    centred: bool = True
    treatment: str = FINAL_NORM_TREATMENT
    target_prob: torch.Tensor | None = None

    @property
    def quantity(self) -> str:
        return CENTRED if self.centred else RAW

    def total(self) -> torch.Tensor:
        """[N] the sum of every part: equals ``logit`` (the decomposition's check)."""
        return (self.heads.sum((1, 2)) + self.attn_bias.sum(1) + self.mlp.sum(1) + self.embed + self.constant)

    def attn(self) -> torch.Tensor:
        """[N, n_layers] each attention block's direct effect (heads + bias)."""
        return self.heads.sum(2) + self.attn_bias


def head_shares(adapter: Any, layer: int, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each head's share of what layer ``layer``'s attention writes to the residual stream (fp32, CPU).

    Args:
        z: [N, n_heads, head_dim] the o_proj input per head at N positions.

    Returns:
        (result [N, n_heads, d_model], bias [d_model] or [N, d_model]). Pre-norm: ``z_h W_O,h`` and
        the o_proj bias (zeros without one), summing to ``attn_out``. Post-norm (Gemma 2/3): both
        times the post-norm's gain over the rms of the whole o_proj output at that position (its
        scale frozen), so they still sum to ``attn_out``.
    """
    H, D = adapter.n_heads, adapter.head_dim
    o_proj = adapter.o_proj(layer)
    weight = o_proj_weight(o_proj).float().cpu().reshape(-1, H, D)  # [d, H, D]
    result = torch.einsum("nhd,mhd->nhm", z.float().cpu(), weight)  # [N, H, d]
    bias = o_proj.bias.float().cpu() if getattr(o_proj, "bias", None) is not None else torch.zeros(weight.shape[0])
    post = adapter.attn_post_norm(layer)
    if post is not None:
        factor = norm_gain(post).cpu() / rms(result.sum(1) + bias, _norm_eps(post))  # [N, d]
        result = result * factor[:, None, :]
        bias = bias * factor
    return result, bias


def _direction(adapter: Any, final_resid: torch.Tensor, targets: torch.Tensor,
               centred: bool) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Per read position: the vector a component is dotted with, the constant term, and whether to centre."""
    norm, unembed = adapter.final_norm(), adapter.unembed()
    weight = unembed.weight.detach()
    w_u = weight[targets.to(weight.device)].float().cpu()  # [N, d]
    has_bias = getattr(unembed, "bias", None) is not None
    bias = unembed.bias.detach()[targets].float().cpu() if has_bias else torch.zeros(len(targets))
    if centred:
        w_u = w_u - weight.float().mean(0).cpu()
        if has_bias:
            bias = bias - unembed.bias.detach().float().mean().cpu()
    eps = _norm_eps(norm)
    if _is_layer_norm(norm):
        centred = final_resid - final_resid.mean(-1, keepdim=True)
        scale = 1.0 / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + eps)
        gain = norm.weight.float().cpu() if norm.weight is not None else torch.ones(final_resid.shape[-1])
        nbias = norm.bias.float().cpu() if norm.bias is not None else torch.zeros(final_resid.shape[-1])
        return w_u * gain * scale, (w_u * nbias).sum(-1) + bias, True
    scale = 1.0 / rms(final_resid, eps)
    return w_u * norm_gain(norm).cpu() * scale, bias, False


@torch.no_grad()
def direct_effects(loaded: Any, ids: torch.Tensor, read: torch.Tensor, targets: torch.Tensor | None,
                   mask: torch.Tensor | None = None, centred: bool = True) -> DirectEffects:
    """Direct logit attribution of every head, attention bias, MLP and the embedding.

    Args:
        loaded: a loaded model (``model``, ``adapter``).
        ids: [batch, seq] token ids.
        read: [batch, seq] bool, the positions whose logits are attributed (N = read.sum()).
        targets: [N] the token whose logit is attributed at each read position (row-major order
            of ``read``), or None for the model's own greedy token there (one forward pass).
        mask: attention mask for left-padded prompts (position ids follow it), or None.
        centred: attribute the logit minus the mean logit (default) or the raw logit.

    Returns:
        :class:`DirectEffects`, fp32 on the CPU.
    """
    adapter = loaded.adapter
    n_read = int(read.sum())
    if targets is not None and targets.shape != (n_read,):
        raise InterventionError(f"targets must have one id per read position ({n_read}), got shape {tuple(targets.shape)}")
    L, H, D = adapter.n_layers, adapter.n_heads, adapter.head_dim
    points = {HookPoint(0, "resid_pre"): ("embed", 0), HookPoint(L - 1, "resid_post"): ("final", 0)}
    for layer in range(L):
        points[HookPoint(layer, "z")] = ("z", layer)
        points[HookPoint(layer, "mlp_out")] = ("mlp_out", layer)
    got = {key: x.float().cpu() for key, x in _read_points(loaded, ids, read, points, mask).items()}

    final = got[("final", 0)]
    logits = _lens_logits(adapter, final)
    if targets is None:
        targets = logits.argmax(-1)
    direction, constant, centre = _direction(adapter, final, targets, centred)

    def effect(vectors: torch.Tensor) -> torch.Tensor:  # [N, ..., d] -> [N, ...]
        if centre:
            vectors = vectors - vectors.mean(-1, keepdim=True)
        shape = (direction.shape[0],) + (1,) * (vectors.dim() - 2) + (direction.shape[1],)
        return (vectors * direction.view(shape)).sum(-1)

    heads = torch.zeros(n_read, L, H)
    attn_bias = torch.zeros(n_read, L)
    mlp = torch.zeros(n_read, L)
    for layer in range(L):
        result, bias = head_shares(adapter, layer, got[("z", layer)].reshape(n_read, H, D))
        heads[:, layer] = effect(result)
        attn_bias[:, layer] = effect(bias.expand(n_read, -1)) if bias.dim() == 1 else effect(bias)
        mlp[:, layer] = effect(got[("mlp_out", layer)])
    embed = effect(got[("embed", 0)])
    logit = logits.gather(1, targets[:, None].cpu()).squeeze(1)
    prob = torch.softmax(_softcap(adapter, logits), -1).gather(1, targets[:, None].cpu()).squeeze(1)
    if centred:
        logit = logit - logits.mean(1)
    return DirectEffects(heads, attn_bias, mlp, embed, constant, logit, targets.cpu(), centred, target_prob=prob)


def _read_points(loaded: Any, ids: torch.Tensor, read: torch.Tensor, points: dict[HookPoint, Any],
                 mask: torch.Tensor | None) -> dict[Any, torch.Tensor]:
    """One forward pass; each hook point's activation at the ``read`` positions ([N, ...]), by key."""
    device = next(loaded.model.parameters()).device
    read_d = read.to(device)
    got: dict[Any, torch.Tensor] = {}

    def keep(key: Any) -> Any:
        def handler(x: torch.Tensor) -> None:
            got[key] = x[read_d].detach()
        return handler

    with torch.no_grad(), hooked(loaded.adapter, {hp: [keep(key)] for hp, key in points.items()}):
        logits_at(loaded.model, ids, 1, mask)
    return got


def _lens_logits(adapter: Any, resid: torch.Tensor) -> torch.Tensor:
    """[N, vocab] logits (before soft-cap) of residual-stream vectors [N, d] via the final norm and unembedding."""
    norm, unembed = adapter.final_norm(), adapter.unembed()
    w = unembed.weight
    with torch.no_grad():
        out = unembed(norm(resid.to(device=w.device, dtype=w.dtype)))
    return out.float().cpu()


def _softcap(adapter: Any, logits: torch.Tensor) -> torch.Tensor:
    config = adapter.model.config
    config = getattr(config, "text_config", None) or config
    cap = getattr(config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


@dataclass
class LensReadout:
    """The logit lens at every layer for N read positions.

    Attributes:
        rank: [N, n_layers + 1] the target's rank (0 = top; tokens tied with it count as above
            it) read after the embedding (column 0) and after each layer (column L + 1; the last
            column is the model's output).
        prob: [N, n_layers + 1] its probability there (soft-cap applied).
    """

    rank: torch.Tensor
    prob: torch.Tensor

    def top_fraction(self, k: int) -> torch.Tensor:
        """[n_layers + 1] the share of read positions whose target is within the top k."""
        return (self.rank < k).float().mean(0)


@torch.no_grad()
def logit_lens(loaded: Any, ids: torch.Tensor, read: torch.Tensor, targets: torch.Tensor,
               mask: torch.Tensor | None = None) -> LensReadout:
    """Rank and probability of ``targets`` read from the residual stream after every layer."""
    adapter = loaded.adapter
    L = adapter.n_layers
    points = {HookPoint(0, "resid_pre"): -1, **{HookPoint(layer, "resid_post"): layer for layer in range(L)}}
    got = _read_points(loaded, ids, read, points, mask)
    t = targets.cpu()[:, None]
    ranks, probs = [], []
    for layer in range(-1, L):
        logits = _lens_logits(adapter, got.pop(layer))
        target = logits.gather(1, t)
        ranks.append((logits >= target).sum(1) - 1)  # ties count against the target
        probs.append(torch.softmax(_softcap(adapter, logits), -1).gather(1, t).squeeze(1))
    return LensReadout(torch.stack(ranks, 1), torch.stack(probs, 1))
