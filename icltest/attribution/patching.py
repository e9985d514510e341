"""Attribution patching: every head's estimated mean-ablation effect from one forward and one backward.

For a metric m and a head's output z (the o_proj input, per head), mean ablation replaces z at
every position with the head's mean over reference inputs, z_ref. To first order the change is

    delta_m ~= sum over positions of  dm/dz . (z_ref - z)

(Nanda 2023; Syed et al. 2023). One backward pass gives dm/dz for every head of every layer at
once, so a scan of all heads costs about three forward passes instead of one per head. The
estimate is exact for a metric linear in z and drifts where ablating a head changes what later
layers attend to; :func:`icltest.claims.head_attribution` reports how well it agrees with exact
mean ablation on the same inputs (Spearman over all heads).

- Reference: the same per-head means exact mean ablation writes (``Run``'s reference inputs:
  the other split of the items, pooled over positions), so the two estimate the same thing.
- Post-norm models (Gemma 2/3): a head is attributed with its own layer's post-norm scale frozen
  (a constant, its value on the clean input) and every later norm live, which is what exact head
  ablation does by default (``post_norm: frozen``); see :func:`_gradients_for`.
- Memory: each head's score is reduced to [batch, n_heads] inside the gradient hook of its layer;
  z itself is kept alive by autograd for the o_proj weight gradient (asked for only so that it
  is), so nothing beyond what the backward pass holds is stored: no per-layer gradients, no
  activation caches.
- Metric: the log-probability of the answer (every answer token, teacher-forced, for rows whose
  first token collides with another answer), or for ``logit_diff`` the logit of the context's
  answer minus the remembered one.
"""
from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from icltest.attribution.dla import norm_gain
from icltest.models.forward import logits_at
from icltest.models.hookpoints import HookPoint, _norm_eps, hooked, o_proj_weight, rms

CHUNK = 16


@dataclass
class HeadAttribution:
    """Estimated effect of mean-ablating each head, per prompt.

    Attributes:
        effect: [rows, n_layers, n_heads] estimated change of the row's metric (negative: the
            head supports the answer).
        metric: [rows] the clean metric per row.
        metric_name: what was differentiated ("answer_logprob" or "logit_diff").
        seconds: wall time of the forward and backward passes.
        passes: forward + backward passes run (each chunk of prompts is one of each).
    """

    effect: torch.Tensor
    metric: torch.Tensor
    metric_name: str
    seconds: float
    passes: int

    def mean_effect(self) -> torch.Tensor:
        """[n_layers, n_heads] the estimated change of the mean metric."""
        return self.effect.mean(0)


def answer_logprob(kept: torch.Tensor, answers: list[list[int]], full: list[bool]) -> torch.Tensor:
    """[n] differentiable log-probability of each row's answer from its last K positions' logits."""
    out = []
    K = kept.shape[1]
    for row, (tokens, whole) in enumerate(zip(answers, full)):
        tokens = list(tokens) if whole else list(tokens[:1])
        steps = kept[row, K - len(tokens):].float()
        logp = torch.log_softmax(steps, -1)
        out.append(logp[torch.arange(len(tokens)), torch.tensor(tokens, device=kept.device)].sum())
    return torch.stack(out)


def _row_metric(inputs: Any, kept: torch.Tensor, rows: slice, name: str) -> torch.Tensor:
    if name == "answer_prob":
        return answer_logprob(kept, inputs.answer_tokens[rows], inputs.full[rows]).exp()
    if name == "logit_diff":
        a = torch.tensor([int(x) for x in inputs.answer_ids[rows]], device=kept.device)
        b = torch.tensor([int(x) for x in inputs.other_ids[rows]], device=kept.device)
        last = kept[:, -1].float()
        return last.gather(1, a[:, None]).squeeze(1) - last.gather(1, b[:, None]).squeeze(1)
    return answer_logprob(kept, inputs.answer_tokens[rows], inputs.full[rows])


@contextmanager
def _gradients_for(adapter: Any, model: Any, leaves: list[torch.Tensor],
                   on_post_grad: Any) -> Iterator[None]:
    """Set up one attribution forward pass.

    Only the o_proj weights require grad (so autograd keeps z for their backward), and the
    embedding output does, as a leaf appended to ``leaves``: the gradient is asked of it, so it
    flows back through every layer (asking only for the weights' gradients would prune the paths).

    Post-norm layers: the norm's output is rewritten, with the same value, as
    ``x1 * s + (norm(x) - x * s)`` with ``s = gain / rms(x)`` detached and ``x1`` an alias of the
    o_proj output ``x``. The gradient reaching ``x1`` is the frozen-scale one, which is what this
    layer's own heads are attributed with (exact ablation freezes the edited layer's post-norm);
    the gradient flowing on to earlier layers is the sum of both terms, the live norm's, as exact
    ablation of an earlier head leaves this norm live. ``on_post_grad(layer, g)`` receives it.
    """
    saved = {p: p.requires_grad for p in model.parameters()}
    with ExitStack() as stack:
        for p in saved:
            p.requires_grad_(False)
        stack.callback(lambda: [p.requires_grad_(flag) for p, flag in saved.items()])
        for layer in range(adapter.n_layers):
            adapter.o_proj(layer).weight.requires_grad_(True)
        emb = model.get_input_embeddings()

        def leaf(_m: Any, _a: Any, out: torch.Tensor) -> torch.Tensor:
            leaves.append(out.detach().requires_grad_(True))
            return leaves[-1]

        handle = emb.register_forward_hook(leaf)
        stack.callback(handle.remove)
        for layer in range(adapter.n_layers):
            post = adapter.attn_post_norm(layer)
            if post is None:
                continue
            gain, eps = norm_gain(post), _norm_eps(post)

            def split(_m: Any, args: tuple[Any, ...], out: Any, layer: int = layer, gain: torch.Tensor = gain,
                      eps: float = eps) -> Any:
                x = args[0]
                scale = (gain.to(x.device) / rms(x, eps)).detach()
                x1 = x.view_as(x)
                x1.register_hook(lambda g: on_post_grad(layer, g))
                return out + ((x1.float() * scale) - (x.float() * scale)).to(out.dtype)

            h = post.register_forward_hook(split)
            stack.callback(h.remove)
        with torch.enable_grad():
            yield


def attribute_heads(run: Any, metric_name: str | None = None, *, row_metric: Any = None,
                    keep: Any = None) -> HeadAttribution:
    """Estimated mean-ablation effect of every head on ``run``'s inputs, per prompt.

    Args:
        run: a :class:`~icltest.runs.run.Run` (its inputs and its mean-ablation reference).
        metric_name: "answer_logprob" (default; also for recall / accuracy / answer_prob runs)
            or "logit_diff" (default for a logit_diff run).
        row_metric: ``row_metric(logits, rows) -> [rows]`` differentiable per-row metric from the
            kept logits, replacing the task metric (token probes: see
            :func:`icltest.circuits.probe_row_metric`); ``keep`` is then the kept positions (int
            or index tensor). Inputs without a mask (probes) count every position.
    """
    name = metric_name or ("logit_diff" if run.metric.name == "logit_diff" else "answer_logprob")
    ref = run._reference("heads")
    means = {layer: ref.mean(layer) for layer in range(run.loaded.adapter.n_layers)}
    return attribute_inputs(run.loaded, run.inputs, means, name, run.session, row_metric=row_metric, keep=keep)


def attribute_inputs(loaded: Any, inputs: Any, means: dict[int, torch.Tensor], name: str, session: Any = None,
                     last_only: bool = False, *, row_metric: Any = None, keep: Any = None) -> HeadAttribution:
    """:func:`attribute_heads` on given inputs and per-head means.

    Args:
        inputs: ``tokens``, ``mask``, ``kept``, ``answer_tokens``, ``full`` (and ``answer_ids`` /
            ``other_ids`` for logit_diff), like a task run's inputs.
        means: layer -> [n_heads, head_dim] the value each head's z moves to.
        name: "answer_logprob", "answer_prob" or "logit_diff".
        session: counts forward passes (optional).
        last_only: move z at the last position only (function vectors' causal indirect effect),
            instead of at every valid position (mean ablation).
        row_metric, keep: as :func:`attribute_heads`.
    """
    model, adapter = loaded.model, loaded.adapter
    device = next(model.parameters()).device
    L, H, D = adapter.n_layers, adapter.n_heads, adapter.head_dim
    means = {layer: means[layer].float().to(device) for layer in range(L)}
    n = inputs.tokens.shape[0]
    effect = torch.zeros(n, L, H)
    metric = torch.zeros(n)
    kept = inputs.kept if keep is None else keep
    start, passes = time.perf_counter(), 0
    for c in range(0, n, CHUNK):
        rows = slice(c, min(n, c + CHUNK))
        ids = inputs.tokens[rows].to(device)
        mask = inputs.mask[rows].to(device) if inputs.mask is not None else None
        valid = mask.bool() if mask is not None else torch.ones_like(ids, dtype=torch.bool)
        if last_only:
            valid = torch.zeros_like(valid)
            valid[:, -1] = True
        clean: dict[int, torch.Tensor] = {}

        def accumulate(layer: int, grad_z: torch.Tensor) -> None:
            z = clean.pop(layer)
            diff = (means[layer].to(z.dtype) - z).float()  # [b, s, H, D]
            per_pos = (grad_z.float() * diff).sum(-1)  # [b, s, H]
            effect[rows, layer] += torch.where(valid[..., None], per_pos, 0.0).sum(1).cpu()  # pads: 0, never NaN

        def on_post_grad(layer: int, g: torch.Tensor) -> None:  # g at the o_proj output -> at z, per head
            weight = o_proj_weight(adapter.o_proj(layer)).detach().float().reshape(-1, H, D)
            accumulate(layer, torch.einsum("bsm,mhd->bshd", g.float(), weight))

        def reader(layer: int) -> Any:
            def handler(z: torch.Tensor) -> torch.Tensor:
                clean[layer] = z.detach()
                if adapter.attn_post_norm(layer) is None:
                    z.register_hook(lambda g: accumulate(layer, g))
                return z  # returned so that z itself is on the path to the output
            return handler

        handlers = {HookPoint(layer, "z"): [reader(layer)] for layer in range(L)}
        leaves: list[torch.Tensor] = []
        with _gradients_for(adapter, model, leaves, on_post_grad), hooked(adapter, handlers):
            logits = logits_at(model, ids, kept, mask)
            values = row_metric(logits, rows) if row_metric is not None else _row_metric(inputs, logits, rows, name)
            torch.autograd.grad(values.sum(), leaves)
        metric[rows] = values.detach().float().cpu()
        passes += 1
        if session is not None:
            session.forward_passes += 1
    return HeadAttribution(effect, metric, name, time.perf_counter() - start, passes)
