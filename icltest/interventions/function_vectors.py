"""Function vectors (Todd et al. 2024): mean head outputs, causal indirect effect, injection.

- **Mean head outputs**: over k-shot prompts of a task, each head's output at the last token,
  averaged. A head's output is its share of what its layer writes to the residual stream:
  ``z_h W_O,h`` on pre-norm models; on post-norm models (Gemma 2/3) that times the attention
  post-norm's gain over the rms of the whole o_proj output at that position (the norm's scale
  frozen, as :func:`icltest.attribution.dla.head_shares` computes it), so the shares sum to
  ``attn_out``.
- **Causal indirect effect (CIE)** of a head: on k-shot prompts whose demonstrations' outputs are
  shuffled, replace the head's z at the last token by its mean over clean prompts and read the
  gain in the probability of the correct answer's first token, averaged over prompts. ``exact``
  runs the patch for each head (post-norm models: this layer's post-norm scale frozen, as head
  ablation does); ``attribution`` estimates every head at once from one forward and one backward
  pass per chunk of prompts, ``dp/dz . (mean z - z)`` at the last position
  (:func:`icltest.attribution.patching.attribute_inputs`).
- **Function vector**: the sum of the chosen heads' mean outputs. It is *added* to the residual
  stream after layer L (``blocks.L.resid_post``) at the last prompt token of zero-shot prompts;
  rows scored on every answer token (their first token collides with another answer's) are
  teacher-forced, and there the vector goes at the last *prompt* token only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from icltest.interventions.core import Intervention, apply
from icltest.models.forward import logits_at
from icltest.models.hookpoints import HookPoint, hooked

CHUNK = 16


@dataclass
class PromptSet:
    """Left-padded prompts read at their last position, with each one's answer's first token.

    Attributes:
        ids, mask: [n, seq] token ids and attention mask (left padding).
        answers: [n] first answer token per prompt.
    """

    ids: torch.Tensor
    mask: torch.Tensor
    answers: torch.Tensor

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def chunks(self, size: int = CHUNK) -> Any:
        for s in range(0, len(self), size):
            yield slice(s, min(len(self), s + size))

    def as_inputs(self) -> Any:
        """The attribution layer's view: one scored token per row, read at the last position."""
        import types

        return types.SimpleNamespace(tokens=self.ids, mask=self.mask, kept=1,
                                     answer_tokens=[[int(a)] for a in self.answers], full=[False] * len(self),
                                     answer_ids=[int(a) for a in self.answers])


@dataclass
class MeanHeads:
    """Per-head means at the last token over clean k-shot prompts.

    Attributes:
        z: [n_layers, n_heads, head_dim] mean o_proj input per head (what CIE patches in).
        out: [n_layers, n_heads, d_model] mean head output (what a function vector sums).
        n: prompts averaged.
    """

    z: torch.Tensor
    out: torch.Tensor
    n: int


def last_token_z(loaded: Any, prompts: PromptSet) -> torch.Tensor:
    """[n, n_layers, n_heads, head_dim] every head's z at the last position (fp32, CPU)."""
    adapter = loaded.adapter
    L = adapter.n_layers
    parts = []
    for rows in prompts.chunks():
        got: dict[int, torch.Tensor] = {}

        def reader(layer: int) -> Any:
            def read(z: torch.Tensor) -> None:
                got[layer] = z[:, -1].detach().float().cpu()
            return read

        with torch.no_grad(), hooked(adapter, {HookPoint(layer, "z"): [reader(layer)] for layer in range(L)}):
            logits_at(loaded.model, prompts.ids[rows], 1, prompts.mask[rows])
        parts.append(torch.stack([got[layer] for layer in range(L)], 1))
    return torch.cat(parts)


@torch.no_grad()
def mean_heads(loaded: Any, prompts: PromptSet) -> MeanHeads:
    """Mean z and mean head output (residual-stream share) at the last token of ``prompts``."""
    from icltest.attribution.dla import head_shares

    z = last_token_z(loaded, prompts)  # [n, L, H, D]
    out = torch.stack([head_shares(loaded.adapter, layer, z[:, layer])[0].mean(0)
                       for layer in range(z.shape[1])])  # [L, H, d]
    return MeanHeads(z.mean(0), out, int(z.shape[0]))


def function_vector(means: MeanHeads, heads: Sequence[tuple[int, int]]) -> torch.Tensor:
    """[d_model] the sum of the chosen heads' mean outputs."""
    if not heads:
        raise ValueError("a function vector needs at least one head")
    return torch.stack([means.out[layer, head] for layer, head in heads]).sum(0)


def answer_prob(logits: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """[n] probability of each row's answer token from last-position logits [n, vocab]."""
    return torch.softmax(logits.float(), -1).gather(1, answers[:, None].to(logits.device)).squeeze(1).cpu()


def _probs(loaded: Any, prompts: PromptSet, edits: Sequence[Any] = ()) -> torch.Tensor:
    out = []
    with torch.no_grad(), apply(loaded.adapter, list(edits)):
        for rows in prompts.chunks():
            logits = logits_at(loaded.model, prompts.ids[rows], 1, prompts.mask[rows])[:, -1]
            out.append(answer_prob(logits, prompts.answers[rows]))
    return torch.cat(out)


def cie_exact(loaded: Any, prompts: PromptSet, means: MeanHeads,
              layers: Sequence[int] | None = None) -> torch.Tensor:
    """[n_layers, n_heads] mean gain in answer probability from patching each head's mean z in at
    the last token of the (corrupted) ``prompts``; NaN for layers not in ``layers``."""
    adapter = loaded.adapter
    L, H = adapter.n_layers, adapter.n_heads
    base = _probs(loaded, prompts)
    out = torch.full((L, H), float("nan"))
    for layer in (range(L) if layers is None else layers):
        for head in range(H):
            iv = Intervention(HookPoint(layer, "z"), "mean", heads=(head,), value=means.z[layer],
                              positions=(-1,), post_norm="frozen", note="mean z over clean k-shot prompts")
            out[layer, head] = (_probs(loaded, prompts, [iv]) - base).mean()
    return out


def cie_attribution(loaded: Any, prompts: PromptSet, means: MeanHeads, session: Any = None) -> torch.Tensor:
    """[n_layers, n_heads] first-order estimate of :func:`cie_exact` for every head at once."""
    from icltest.attribution.patching import attribute_inputs

    zs = {layer: means.z[layer] for layer in range(loaded.adapter.n_layers)}
    return attribute_inputs(loaded, prompts.as_inputs(), zs, "answer_prob", session, last_only=True).mean_effect()


def rank_heads(cie: torch.Tensor, top: int) -> list[tuple[int, int]]:
    """The ``top`` heads by CIE (largest first; NaN never chosen)."""
    flat = torch.nan_to_num(cie.flatten(), nan=float("-inf"))
    order = torch.argsort(flat, descending=True, stable=True)[:top].tolist()
    H = cie.shape[1]
    return [(i // H, i % H) for i in order if flat[i] > float("-inf")]


def injection(layer: int, vector: torch.Tensor, where: torch.Tensor, scale: float = 1.0) -> Intervention:
    """Add ``scale * vector`` to ``blocks.layer.resid_post`` at the positions ``where`` ([batch, seq] bool)."""
    value = where.float()[..., None] * vector.float().reshape(1, 1, -1)  # [batch, seq, d]: zero elsewhere
    return Intervention(HookPoint(layer, "resid_post"), "add", value=value, scale=scale,
                        note="function vector at the last prompt token")


def prompt_ends(inputs: Any) -> torch.Tensor:
    """[batch, seq] bool: each row's last prompt token (teacher-forced rows end with answer[:-1])."""
    n, seq = inputs.tokens.shape
    where = torch.zeros(n, seq, dtype=torch.bool)
    for row, (tokens, full) in enumerate(zip(inputs.answer_tokens, inputs.full)):
        where[row, seq - (len(tokens) if full else 1)] = True
    return where


def accuracy_with(loaded: Any, inputs: Any, vectors: Sequence[tuple[int, torch.Tensor] | None],
                  scale: float = 1.0, session: Any = None) -> list[float]:
    """Task accuracy on a run's inputs (first-token exact match; full answers where flagged) with each
    (layer, vector) injected at the last prompt token, or clean for None."""
    from icltest.scores.metrics import answer_matches

    ends = prompt_ends(inputs)
    kept = inputs.kept
    out = []
    for variant in vectors:
        parts = []
        for s in range(0, inputs.tokens.shape[0], CHUNK):
            rows = slice(s, s + CHUNK)
            edits = [] if variant is None else [injection(variant[0], variant[1], ends[rows], scale)]
            with torch.no_grad(), apply(loaded.adapter, edits):
                parts.append(logits_at(loaded.model, inputs.tokens[rows], kept, inputs.mask[rows]).float().cpu())
            if session is not None:
                session.forward_passes += 1
        logits = torch.cat(parts)
        out.append(float(answer_matches(logits, inputs.answer_tokens, inputs.full).float().mean()))
    return out


def random_vectors(like: torch.Tensor, draws: int, seed: int) -> list[torch.Tensor]:
    """``draws`` vectors with Gaussian (seeded) directions and ``like``'s norm."""
    from icltest.scores.control import random_directions

    return list(random_directions(like, draws, seed).unbind(0))


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman correlation over the entries finite in both (see :func:`icltest.scores.ranking.spearman`)."""
    from icltest.scores.ranking import spearman as rho

    return rho(a, b)
