"""Attention mass from one query position onto named token spans, for every head.

For each prompt, each layer and each (query) head, the attention probabilities in the row of the
query position (by default the last position: the one that predicts the answer) are summed over
each span's positions. Only that one row per layer is kept, never the whole [q, k] map.

Chance level: a head that spread its attention evenly over the positions it can see would put on
a span the span's share of those positions (non-pad positions up to and including the query).
That share, per prompt and averaged, is returned as ``uniform`` so a mass can be read against it.

Left-padded batches (``icltest.probes.prompts.pad_left``) are run with their attention mask and
position ids that count from each row's first real token, as ``icltest.runs.run.Run`` does, so a
padded row sees exactly what it would see alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from icltest.models.forward import logits_at

CHUNK = 16  # prompts per forward pass


@dataclass
class SpanAttention:
    """Attention mass on spans from one query position.

    Attributes:
        mass: span -> [n_layers, n_heads] mass averaged over prompts.
        per_prompt: span -> [batch, n_layers, n_heads] mass of each prompt.
        uniform: span -> the span's mean share of the visible positions (chance level).
        uniform_per_prompt: span -> [batch] each prompt's share.
        query: [batch] the query position of each row, in padded coordinates.
        forward_passes: forward passes run.
    """

    mass: dict[str, torch.Tensor]
    per_prompt: dict[str, torch.Tensor]
    uniform: dict[str, float]
    uniform_per_prompt: dict[str, torch.Tensor]
    query: torch.Tensor
    forward_passes: int = 0


def _query_index(query: Any, batch: int, width: int) -> torch.Tensor:
    if query is None:
        return torch.full((batch,), width - 1, dtype=torch.long)
    q = torch.as_tensor(query, dtype=torch.long).reshape(-1)
    if q.numel() == 1:
        q = q.expand(batch).clone()
    if q.numel() != batch:
        raise ValueError(f"query: {q.numel()} positions for a batch of {batch}")
    q = torch.where(q < 0, q + width, q)
    if bool(((q < 0) | (q >= width)).any()):
        raise ValueError(f"query positions must lie in [0, {width})")
    return q


def measure_span_attention(
    loaded: Any,
    ids: torch.Tensor,
    mask: torch.Tensor | None,
    span_masks: Mapping[str, torch.Tensor],
    *,
    query: Any = None,
    chunk: int = CHUNK,
) -> SpanAttention:
    """Attention mass from the query position of every row onto each span, for every head.

    Args:
        loaded: a loaded model (``model``, ``adapter``), with eager attention.
        ids: [batch, seq] token ids, left-padded.
        mask: [batch, seq] attention mask (1 on tokens), or None when no row is padded.
        span_masks: span name -> [batch, seq] bool (:func:`icltest.probes.spans.span_masks`).
        query: the query position per row (an int for all rows, or [batch]); default the last
            column, i.e. each prompt's last token under left padding. Negative counts from the end.
        chunk: rows per forward pass.

    Raises:
        ValueError: shapes that do not match, a span mask on padding, a query on padding.
        AttentionNotCaptured: the model was not loaded with eager attention.
    """
    from icltest.models.hookpoints import HookPoint, hooked

    ids = torch.as_tensor(ids, dtype=torch.long)
    batch, width = ids.shape
    mask = torch.ones_like(ids) if mask is None else torch.as_tensor(mask).long()
    if tuple(mask.shape) != (batch, width):
        raise ValueError(f"mask {tuple(mask.shape)} does not match ids {(batch, width)}")
    names = list(span_masks)
    spans = {name: torch.as_tensor(span_masks[name]).bool() for name in names}
    for name, m in spans.items():
        if tuple(m.shape) != (batch, width):
            raise ValueError(f"span {name!r}: mask {tuple(m.shape)} does not match ids {(batch, width)}")
        if bool((m & (mask == 0)).any()):
            raise ValueError(f"span {name!r} covers padding")
    q = _query_index(query, batch, width)
    if bool((mask[torch.arange(batch), q] == 0).any()):
        raise ValueError("a query position is on padding")
    # What the query can see: real tokens at or before it.
    visible = (mask.bool() & (torch.arange(width)[None, :] <= q[:, None]))
    n_visible = visible.sum(-1).float()
    uniform_rows = {name: (m & visible).sum(-1).float() / n_visible for name, m in spans.items()}

    adapter, model = loaded.adapter, loaded.model
    n_layers, n_heads = adapter.n_layers, adapter.n_heads
    device = next(model.parameters()).device
    per_prompt = {name: torch.zeros(batch, n_layers, n_heads) for name in names}
    passes = 0
    for start in range(0, batch, chunk):
        rows = slice(start, min(batch, start + chunk))
        q_rows = q[rows].to(device)
        weights = torch.stack([spans[name][rows] for name in names], 1).float().to(device)  # [b, S, seq]
        found: dict[int, torch.Tensor] = {}

        def reader(layer: int):
            def read(probs: torch.Tensor) -> None:
                # probs [b, heads, q, k]: keep the query row only, then sum it over each span.
                row = probs[torch.arange(probs.shape[0], device=probs.device), :, q_rows, :].float()  # [b, heads, k]
                found[layer] = torch.einsum("bhk,bsk->bsh", row, weights).cpu()
            return read

        handlers = {HookPoint(layer, "pattern"): [reader(layer)] for layer in range(n_layers)}
        with torch.no_grad(), hooked(adapter, handlers):
            logits_at(model, ids[rows], 1, mask[rows])
        passes += 1
        missing = [layer for layer in range(n_layers) if layer not in found]
        if missing:
            raise RuntimeError(f"no attention pattern was read at layers {missing}")
        for layer in range(n_layers):
            for s, name in enumerate(names):
                per_prompt[name][rows, layer] = found[layer][:, s]
    return SpanAttention(
        mass={name: per_prompt[name].mean(0) for name in names},
        per_prompt=per_prompt,
        uniform={name: float(uniform_rows[name].mean()) for name in names},
        uniform_per_prompt=uniform_rows,
        query=q,
        forward_passes=passes,
    )


def span_attention(loaded: Any, ids: torch.Tensor, mask: torch.Tensor | None,
                   span_masks: Mapping[str, torch.Tensor], **kwargs: Any) -> dict[str, torch.Tensor]:
    """span -> [n_layers, n_heads] attention mass from each row's last position, averaged over rows.

    The full result (per prompt, uniform baselines) is :func:`measure_span_attention`.
    """
    return measure_span_attention(loaded, ids, mask, span_masks, **kwargs).mass


def padded_with_spans(batch: Any, tokenizer: Any) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(ids, mask, span masks) of a prompt batch that has spans, left-padded as ``Run`` pads.

    Raises:
        InputError: the batch has no spans (built without ``spans=True``, or with a chat template).
    """
    from icltest.errors import InputError
    from icltest.probes.prompts import pad_left
    from icltest.probes.spans import span_masks

    if not batch.spans:
        raise InputError("span attention is measured on plain prompts with spans: with a chat template the parts "
                         "of the prompt have no spans; use chat_template: no")
    from icltest.probes.prompts import pad_id

    pad = pad_id(tokenizer)
    ids, mask = pad_left(batch.input_ids, pad)
    return ids, mask, span_masks(batch.spans, mask)


def book_span_attention(loaded: Any, task: str = "open_book", *, shots: int = 0, n: int = 48, seed: int = 0,
                        split: str = "test", chat_template: str = "no", chunk: int = CHUNK) -> tuple[SpanAttention, Any]:
    """Build book prompts with their spans, left-pad them and measure from each prompt's last token.

    Returns:
        (the measurement, the :class:`~icltest.probes.prompts.TaskBatch` it was measured on).

    Raises:
        InputError: the prompts cannot be built (shots, split), or use a chat template (no spans).
    """
    from icltest.probes.books import build_book_prompts

    batch = build_book_prompts(task, loaded.tokenizer, n=n, seed=seed, shots=shots, split=split,
                               chat_template=chat_template, spans=True)
    ids, mask, masks = padded_with_spans(batch, loaded.tokenizer)
    return measure_span_attention(loaded, ids, mask, masks, chunk=chunk), batch
