"""Ablation context managers: knock out heads or whole blocks for the duration of a ``with``.

A mechanistic claim ("these heads do induction") is only as good as the counterfactual behind
it: remove the heads, and the behaviour should go away. Ablations are hooks, not weight edits,
so nothing about the model changes outside the ``with`` block — every hook is removed in a
``finally`` — and an exception inside the block cannot leave a half-ablated model behind.

Per-head ablation hooks the *input* of the attention output projection (o_proj / c_proj /
dense), where heads are still separate: viewed as [batch, seq, n_heads, head_dim], head h's
slice is exactly what that head contributes, so editing it is exact for every architecture
the adapters know (GQA included: the projection input has one slice per query head).
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import torch

from icltest.interventions.reference import PARTS, HeadReference, LayerReference, block

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
    """

    heads: tuple[tuple[int, int], ...]
    method: str
    shift: int | None = None
    per_position: bool = False


def rewrite_head_input(
    x: torch.Tensor,
    heads: Sequence[int],
    n_heads: int,
    head_dim: int,
    replacement: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return a copy of an output-projection input with some heads' slices replaced.

    The input is cloned, never edited in place: autograd and other hooks may hold it.

    Args:
        x: [..., n_heads * head_dim], normally [batch, seq, n_heads * head_dim].
        heads: head indices (within this layer) to rewrite.
        n_heads, head_dim: the head geometry used to split the last dimension.
        replacement: None writes zeros; otherwise a tensor broadcastable to
            ``x.shape[:-1] + (n_heads, head_dim)`` whose ``[..., h, :]`` slice is written for head h.

    Raises:
        ValueError: the last dimension is not ``n_heads * head_dim``.
    """
    if x.shape[-1] != n_heads * head_dim:
        raise ValueError(
            f"output-projection input has width {x.shape[-1]}, expected n_heads * head_dim = "
            f"{n_heads} * {head_dim}; the adapter's head geometry does not match this model"
        )
    z = x.reshape(*x.shape[:-1], n_heads, head_dim).clone()
    idx = list(heads)
    if replacement is None:
        z[..., idx, :] = 0
    else:
        full = replacement.to(device=z.device, dtype=z.dtype).expand(z.shape)
        z[..., idx, :] = full[..., idx, :]
    return z.reshape(x.shape)


def _check_heads(adapter: Any, heads: Iterable[Any]) -> tuple[tuple[int, int], ...]:
    out = set()
    for item in heads:
        try:
            layer, head = (int(v) for v in item)
        except (TypeError, ValueError):
            raise ValueError(f"each head must be a (layer, head) pair of ints, got {item!r}") from None
        if not (0 <= layer < adapter.n_layers and 0 <= head < adapter.n_heads):
            raise ValueError(
                f"head L{layer}H{head} is out of range: the model has layers 0..{adapter.n_layers - 1} "
                f"and heads 0..{adapter.n_heads - 1}"
            )
        out.add((layer, head))
    return tuple(sorted(out))


def _resample_shift(batch: int, seed: int) -> int:
    """A seeded shift in 1..batch-1, so no sequence is ever paired with itself."""
    if batch < 2:
        raise ValueError(
            f"resample ablation needs a reference batch of at least 2 sequences, got {batch}: "
            "each sequence must take a head's output from a different one"
        )
    generator = torch.Generator().manual_seed(int(seed))
    return 1 + int(torch.randint(batch - 1, (1,), generator=generator).item())


def _replacement_fn(
    method: str, reference: HeadReference | None, layer: int, per_position: bool, shift: int | None
) -> Any:
    """Build ``f(x) -> replacement or None`` for one layer, checking shapes when the hook runs."""
    if method == "zero":
        return lambda x: None
    if reference is None:
        raise ValueError(f"{method} ablation needs a HeadReference")
    if method == "mean" and not per_position:
        mean = reference.mean(layer)
        return lambda x: mean
    if method == "mean":
        mean_pp = reference.mean_per_position(layer)

        def per_pos(x: torch.Tensor) -> torch.Tensor:
            if x.dim() != 3 or x.shape[1] != mean_pp.shape[0]:
                raise ValueError(
                    f"per-position mean ablation at layer {layer}: the reference has "
                    f"{mean_pp.shape[0]} positions but the ablated input has shape {tuple(x.shape)}; "
                    "use a reference probe of the same length, or per_position=False"
                )
            return mean_pp

        return per_pos
    z = reference.layer(layer)
    index = (torch.arange(z.shape[0], device=z.device) + int(shift or 0)) % z.shape[0]
    source = z[index]

    def resample(x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or tuple(x.shape[:2]) != tuple(source.shape[:2]):
            raise ValueError(
                f"resample ablation at layer {layer}: reference [batch, seq] = "
                f"{list(source.shape[:2])} but the ablated input has shape {tuple(x.shape)}; "
                "capture the reference with a probe of the same batch size and length"
            )
        return source

    return resample


@contextmanager
def ablate_heads(
    adapter: Any,
    heads: Sequence[tuple[int, int]],
    method: str = "zero",
    reference: HeadReference | None = None,
    *,
    per_position: bool = False,
    seed: int = 0,
) -> Iterator[HeadAblation]:
    """Ablate attention heads inside a ``with`` block; the model is untouched on exit.

    Args:
        adapter: an :class:`~icltest.models.adapters.Adapter` (``n_layers``, ``n_heads``,
            ``head_dim``, ``o_proj(layer)``).
        heads: (layer, head) pairs.
        method: "zero" writes zeros; "mean" writes the head's mean output on the reference
            (over valid batch x positions, or over the batch per position with
            ``per_position=True``); "resample" writes the same head's output on a *different*
            reference sequence at the same position (sequence i reads (i + shift) % batch, with a
            shift in 1..batch-1 drawn from ``seed``).
        reference: from :func:`capture_head_outputs`; required for mean and resample.
        per_position: mean only; see above.
        seed: resample only; picks the shift.

    Yields:
        A :class:`HeadAblation` describing what is applied (the resample shift included).

    Raises:
        ValueError: unknown method, bad heads, a missing reference or reference layer, or (when
            the model runs) a reference whose shape cannot serve the input.
    """
    if method not in HEAD_METHODS:
        raise ValueError(f"head ablation method must be one of {list(HEAD_METHODS)}, got {method!r}")
    if method != "zero" and not isinstance(reference, HeadReference):
        raise ValueError(
            f"{method} ablation needs reference=capture_head_outputs(model, adapter, tokens) "
            "from a reference probe"
        )
    if per_position and method != "mean":
        raise ValueError("per_position=True only applies to method='mean'")
    checked = _check_heads(adapter, heads)
    by_layer: dict[int, list[int]] = {}
    for layer, head in checked:
        by_layer.setdefault(layer, []).append(head)
    shift = _resample_shift(reference.batch, seed) if method == "resample" else None  # type: ignore[union-attr]
    fns = {layer: _replacement_fn(method, reference, layer, per_position, shift) for layer in by_layer}

    def make_hook(layer: int, layer_heads: list[int]) -> Any:
        fn = fns[layer]

        def hook(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
            x = args[0]
            new = rewrite_head_input(x, layer_heads, adapter.n_heads, adapter.head_dim, fn(x))
            return (new,) + tuple(args[1:])

        return hook

    with ExitStack() as stack:
        for layer, layer_heads in by_layer.items():
            handle = adapter.o_proj(layer).register_forward_pre_hook(make_hook(layer, layer_heads))
            stack.callback(handle.remove)
        yield HeadAblation(checked, method, shift, per_position)


@contextmanager
def ablate_layers(
    adapter: Any,
    layers: Iterable[int],
    part: str,
    method: str = "zero",
    reference: LayerReference | None = None,
) -> Iterator[None]:
    """Replace whole attention or MLP block outputs inside a ``with`` block.

    For attention the module's output[0] is replaced and the rest of its tuple (attention
    probabilities) is passed through, so attention-pattern hooks still see the real pattern.

    Args:
        adapter: the model's adapter.
        layers: layer indices.
        part: "attn" or "mlp".
        method: "zero", or "mean" (the block's mean output on the reference, broadcast to
            every position).
        reference: from :func:`capture_layer_outputs` with the same ``part``; required for mean.

    Raises:
        ValueError: unknown part/method, layers out of range, or a missing/mismatched reference.
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {list(PARTS)}, got {part!r}")
    if method not in LAYER_METHODS:
        raise ValueError(f"layer ablation method must be one of {list(LAYER_METHODS)}, got {method!r}")
    wanted = sorted({int(layer) for layer in layers})
    bad = [layer for layer in wanted if not 0 <= layer < adapter.n_layers]
    if bad:
        raise ValueError(f"layers {bad} out of range: the model has layers 0..{adapter.n_layers - 1}")
    means: dict[int, torch.Tensor] = {}
    if method == "mean":
        if not isinstance(reference, LayerReference):
            raise ValueError(
                f"mean ablation needs reference=capture_layer_outputs(model, adapter, tokens, part={part!r})"
            )
        if reference.part != part:
            raise ValueError(f"the reference holds {reference.part!r} outputs but part is {part!r}")
        means = {layer: reference.mean(layer) for layer in wanted}

    def make_hook(layer: int) -> Any:
        def hook(_module: Any, _args: Any, output: Any) -> Any:
            main = output[0] if isinstance(output, tuple) else output
            new = torch.zeros_like(main)
            if method == "mean":
                new = new + means[layer].to(device=main.device, dtype=main.dtype)
            return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new

        return hook

    with ExitStack() as stack:
        for layer in wanted:
            handle = block(adapter, layer, part).register_forward_hook(make_hook(layer))
            stack.callback(handle.remove)
        yield
