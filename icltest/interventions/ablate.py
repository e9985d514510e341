"""Ablation as a case of :class:`~icltest.interventions.core.Intervention`: heads and whole blocks.

A mechanistic claim ("these heads do induction") is only as good as the counterfactual behind
it: remove the heads, and the behaviour should go away. Ablations are hooks, not weight edits,
so nothing about the model changes outside the ``with`` block.

"Ablating a head" edits its slice of ``blocks.L.z`` (the o_proj input; exact for GQA, one slice
per query head). On post-norm models (Gemma 2/3) the default ``post_norm="frozen"`` keeps the
post-attention norm's scale at its value for the unedited output, so the ablation removes exactly
the head's share of what reaches the residual stream; ``"live"`` lets the norm rescale what is
left. Every result records which one was used.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import torch

from icltest.errors import InterventionError
from icltest.interventions.core import Intervention, apply
from icltest.interventions.reference import PARTS, HeadReference, LayerReference, block_point
from icltest.models.hookpoints import point

HEAD_METHODS: tuple[str, ...] = ("zero", "mean", "resample")
LAYER_METHODS: tuple[str, ...] = ("zero", "mean")


@dataclass(frozen=True)
class HeadAblation:
    """What an :func:`ablate_heads` block does, for results and replay lines.

    Attributes:
        heads: the (layer, head) pairs ablated, sorted and de-duplicated.
        method: "zero", "mean" or "resample".
        shift: for resample, sequence i reads reference sequence (i + shift) % batch; else None.
        per_position: for mean, whether the mean is taken per position.
        post_norm: "frozen" or "live" ("frozen" is a no-op on pre-norm models).
    """

    heads: tuple[tuple[int, int], ...]
    method: str
    shift: int | None = None
    per_position: bool = False
    post_norm: str = "frozen"


def check_heads(adapter: Any, heads: Iterable[Any]) -> tuple[tuple[int, int], ...]:
    """Sorted, de-duplicated (layer, head) pairs, each within the model."""
    out = set()
    for item in heads:
        try:
            layer, head = (int(v) for v in item)
        except (TypeError, ValueError):
            raise InterventionError(f"each head must be a (layer, head) pair of ints, got {item!r}") from None
        if not (0 <= layer < adapter.n_layers and 0 <= head < adapter.n_heads):
            raise InterventionError(
                f"head L{layer}H{head} is out of range: the model has layers 0..{adapter.n_layers - 1} "
                f"and heads 0..{adapter.n_heads - 1}"
            )
        out.add((layer, head))
    return tuple(sorted(out))


def resample_shift(batch: int, seed: int) -> int:
    """A seeded shift in 1..batch-1, so no sequence is ever paired with itself."""
    if batch < 2:
        raise InterventionError(
            f"resample ablation needs a reference batch of at least 2 sequences, got {batch}: "
            "each sequence must take a head's output from a different one"
        )
    generator = torch.Generator().manual_seed(int(seed))
    return 1 + int(torch.randint(batch - 1, (1,), generator=generator).item())


def head_ablation(
    adapter: Any,
    heads: Sequence[tuple[int, int]],
    method: str = "zero",
    reference: HeadReference | None = None,
    *,
    per_position: bool = False,
    seed: int = 0,
    rows: tuple[int, int] | None = None,
    post_norm: str = "frozen",
) -> tuple[list[Intervention], HeadAblation]:
    """The interventions that ablate ``heads`` (one per layer, at ``blocks.L.z``).

    Args:
        method: "zero" writes zeros; "mean" the head's mean output on the reference (over valid
            batch x positions, or per position with ``per_position=True``); "resample" the same
            head's output on a *different* reference sequence (sequence i reads (i + shift) %
            batch, with a shift in 1..batch-1 drawn from ``seed``).
        reference: from :func:`~icltest.interventions.capture_head_outputs`; for mean / resample.
        rows: restrict to these batch rows (one variant of a stacked batch).
        post_norm: "frozen" (default) or "live"; see the module docstring.

    Raises:
        InterventionError: unknown method, bad heads, a missing reference or reference layer.
    """
    if method not in HEAD_METHODS:
        raise InterventionError(f"head ablation method must be one of {list(HEAD_METHODS)}, got {method!r}")
    if method != "zero" and not isinstance(reference, HeadReference):
        raise InterventionError(
            f"{method} ablation needs reference=capture_head_outputs(model, adapter, tokens) from a reference probe")
    if per_position and method != "mean":
        raise InterventionError("per_position=True only applies to method='mean'")
    checked = check_heads(adapter, heads)
    by_layer: dict[int, list[int]] = {}
    for layer, head in checked:
        by_layer.setdefault(layer, []).append(head)
    shift = resample_shift(reference.batch, seed) if method == "resample" else None  # type: ignore[union-attr]
    edits = []
    for layer, layer_heads in by_layer.items():
        value, note = None, ""
        if method == "mean":
            value = reference.mean_per_position(layer) if per_position else reference.mean(layer)  # type: ignore[union-attr]
            note = f"mean over the reference {'per position' if per_position else 'pooled over positions'}"
        elif method == "resample":
            z = reference.layer(layer)  # type: ignore[union-attr]
            value = z[(torch.arange(z.shape[0], device=z.device) + int(shift or 0)) % z.shape[0]]
            note = f"reference sequence (i + {shift}) % {z.shape[0]}"
        edits.append(Intervention(point("z", layer), method, tuple(layer_heads), value, rows=rows,
                                  post_norm=post_norm, note=note))
    return edits, HeadAblation(checked, method, shift, per_position, post_norm)


def block_ablation(
    adapter: Any,
    layers: Iterable[int],
    part: str,
    method: str = "zero",
    reference: LayerReference | None = None,
    *,
    rows: tuple[int, int] | None = None,
) -> list[Intervention]:
    """Interventions that replace what whole attention / MLP blocks add to the residual stream.

    ``mean`` writes the block's mean output (``attn_out`` / ``mlp_out``) over the reference's
    valid positions at every position.

    Raises:
        InterventionError: unknown part/method, layers out of range, a missing/mismatched reference.
    """
    if part not in PARTS:
        raise InterventionError(f"part must be one of {list(PARTS)}, got {part!r}")
    if method not in LAYER_METHODS:
        raise InterventionError(f"layer ablation method must be one of {list(LAYER_METHODS)}, got {method!r}")
    wanted = sorted({int(layer) for layer in layers})
    bad = [layer for layer in wanted if not 0 <= layer < adapter.n_layers]
    if bad:
        raise InterventionError(f"layers {bad} out of range: the model has layers 0..{adapter.n_layers - 1}")
    if method == "mean":
        if not isinstance(reference, LayerReference):
            raise InterventionError(
                f"mean ablation needs reference=capture_layer_outputs(model, adapter, tokens, part={part!r})")
        if reference.part != part:
            raise InterventionError(f"the reference holds {reference.part!r} outputs but part is {part!r}")
    return [Intervention(block_point(part, layer), method,
                         value=reference.mean(layer) if method == "mean" else None,  # type: ignore[union-attr]
                         rows=rows, note="mean over the reference, pooled" if method == "mean" else "")
            for layer in wanted]


@contextmanager
def ablate_heads(adapter: Any, heads: Sequence[tuple[int, int]], method: str = "zero",
                 reference: HeadReference | None = None, **options: Any) -> Iterator[HeadAblation]:
    """Ablate attention heads inside a ``with`` block; ``options`` as :func:`head_ablation`'s."""
    edits, info = head_ablation(adapter, heads, method, reference, **options)
    with apply(adapter, edits):
        yield info


@contextmanager
def ablate_layers(adapter: Any, layers: Iterable[int], part: str, method: str = "zero",
                  reference: LayerReference | None = None) -> Iterator[None]:
    """Ablate whole attention or MLP blocks inside a ``with`` block (see :func:`block_ablation`)."""
    with apply(adapter, block_ablation(adapter, layers, part, method, reference)):
        yield


def rewrite_head_input(
    x: torch.Tensor,
    heads: Sequence[int],
    n_heads: int,
    head_dim: int,
    replacement: torch.Tensor | None = None,
) -> torch.Tensor:
    """An o_proj input ``[..., n_heads * head_dim]`` with some heads' slices replaced (a copy).

    ``replacement`` None writes zeros; otherwise a tensor broadcastable to ``[..., n_heads,
    head_dim]`` whose ``[..., h, :]`` slice is written for head h. The same edit the ``z`` hook
    point applies, for code that holds the tensor itself.
    """
    if x.shape[-1] != n_heads * head_dim:
        raise InterventionError(
            f"output-projection input has width {x.shape[-1]}, expected n_heads * head_dim = "
            f"{n_heads} * {head_dim}; the adapter's head geometry does not match this model")
    z = x.reshape(*x.shape[:-1], n_heads, head_dim)
    squeeze = z.dim() == 3
    if squeeze:
        z = z.unsqueeze(0)
    value = None if replacement is None else replacement.expand(z.shape)
    iv = Intervention(point("z", 0), "zero" if value is None else "patch", tuple(heads), value)
    out = iv.handler()(z)
    return (out.squeeze(0) if squeeze else out).reshape(x.shape)
