"""Reference activations for mean and resample ablation, captured from one forward pass.

Zero ablation asks "what if this head wrote nothing?", which moves activations off the model's
usual distribution (a head that always writes a large constant is "important" under zero ablation
for a boring reason). Mean and resample ablation keep activations on-distribution by replacing a
head's output with what it writes on *other* inputs; those other inputs are the reference probe,
and this module records what each head (or each attention / MLP block) wrote on it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Sequence

import torch

from icltest.errors import InterventionError
from icltest.interventions.core import capture
from icltest.models.hookpoints import HookPoint, point

Part = Literal["attn", "mlp"]
PARTS: tuple[str, ...] = ("attn", "mlp")


def _masked_mean(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``x[b, s, ...]`` over batch and positions where ``valid[b, s]`` is True."""
    weight = valid.to(device=x.device, dtype=torch.float32)
    count = weight.sum()
    if count == 0:
        raise InterventionError("the reference valid mask selects no positions; nothing to average over")
    shape = weight.shape + (1,) * (x.dim() - 2)
    return ((x.float() * weight.view(shape)).sum(dim=(0, 1)) / count).to(x.dtype)


def _masked_mean_per_position(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over the batch at each position, counting only valid rows.

    A position where no row is valid (BOS in every sequence) falls back to the plain batch mean
    there: the ablated run has the same kind of token at that position, so its own average is the
    on-distribution replacement.
    """
    weight = valid.to(device=x.device, dtype=torch.float32)
    count = weight.sum(dim=0)
    empty = count == 0
    weight[:, empty] = 1.0
    count = weight.sum(dim=0)
    shape = weight.shape + (1,) * (x.dim() - 2)
    summed = (x.float() * weight.view(shape)).sum(dim=0)
    return (summed / count.view((-1,) + (1,) * (x.dim() - 2))).to(x.dtype)


def _check_tokens(tokens: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
        shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise InterventionError(f"tokens must be a [batch, seq] tensor of ids, got {shape}")
    if valid is None:
        return torch.ones_like(tokens, dtype=torch.bool)
    if tuple(valid.shape) != tuple(tokens.shape):
        raise InterventionError(
            f"valid mask shape {tuple(valid.shape)} does not match tokens shape {tuple(tokens.shape)}"
        )
    return valid.to(torch.bool)


def _check_layers(adapter: Any, layers: Iterable[int] | None) -> list[int]:
    if layers is None:
        return list(range(adapter.n_layers))
    out = sorted({int(layer) for layer in layers})
    bad = [layer for layer in out if not 0 <= layer < adapter.n_layers]
    if bad:
        raise InterventionError(f"layers {bad} out of range: the model has layers 0..{adapter.n_layers - 1}")
    return out


def _missing_layer(kind: str, layer: int, have: Sequence[int]) -> InterventionError:
    return InterventionError(
        f"the {kind} reference has no layer {layer} (captured layers: {list(have)}); "
        f"capture it with layers including {layer}, or layers=None for all"
    )


@dataclass
class HeadReference:
    """Per-head outputs ("z", the input of the attention output projection) on a reference probe.

    Attributes:
        z: layer -> [batch, seq, n_heads, head_dim], detached.
        valid: [batch, seq] positions that count towards means (False at BOS / padding).
    """

    z: dict[int, torch.Tensor]
    valid: torch.Tensor
    _means: dict[tuple[int, bool], torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def layers(self) -> list[int]:
        return sorted(self.z)

    @property
    def batch(self) -> int:
        return int(self.valid.shape[0])

    def layer(self, layer: int) -> torch.Tensor:
        """The stored z for one layer; ValueError names the captured layers if it is missing."""
        if layer not in self.z:
            raise _missing_layer("head", layer, self.layers)
        return self.z[layer]

    def mean(self, layer: int) -> torch.Tensor:
        """[n_heads, head_dim]: each head's output averaged over valid (batch, position) pairs."""
        key = (layer, False)
        if key not in self._means:
            self._means[key] = _masked_mean(self.layer(layer), self.valid)
        return self._means[key]

    def mean_per_position(self, layer: int) -> torch.Tensor:
        """[seq, n_heads, head_dim]: averaged over the batch only, keeping positional structure."""
        key = (layer, True)
        if key not in self._means:
            self._means[key] = _masked_mean_per_position(self.layer(layer), self.valid)
        return self._means[key]


@dataclass
class LayerReference:
    """Outputs of whole attention or MLP blocks on a reference probe.

    Attributes:
        part: "attn" or "mlp": the block's ``attn_out`` / ``mlp_out`` (what it adds to the residual
            stream, after any post-norm).
        out: layer -> [batch, seq, d_model], detached.
        valid: [batch, seq] positions that count towards means.
    """

    part: str
    out: dict[int, torch.Tensor]
    valid: torch.Tensor

    @property
    def layers(self) -> list[int]:
        return sorted(self.out)

    def mean(self, layer: int) -> torch.Tensor:
        """[d_model]: the block's output averaged over valid (batch, position) pairs."""
        if layer not in self.out:
            raise _missing_layer(self.part, layer, self.layers)
        return _masked_mean(self.out[layer], self.valid)


def _forward(model: Any, tokens: torch.Tensor) -> Any:
    device = next(model.parameters()).device
    return lambda: model(input_ids=tokens.to(device))


def capture_head_outputs(
    model: Any,
    adapter: Any,
    tokens: torch.Tensor,
    valid: torch.Tensor | None = None,
    layers: Iterable[int] | None = None,
) -> HeadReference:
    """Run one forward pass and record each requested layer's per-head outputs (``blocks.L.z``).

    Args:
        model: the *ForCausalLM model the adapter wraps (or a callable wrapper with ``parameters``).
        adapter: the model's :class:`~icltest.models.adapters.Adapter`.
        tokens: [batch, seq] reference ids (e.g. a probe drawn with a different seed).
        valid: [batch, seq] positions that count towards means; default all.
        layers: layers to record; default all (record only what you ablate on large models).
    """
    valid = _check_tokens(tokens, valid)
    wanted = _check_layers(adapter, layers)
    store = capture(adapter, [point("z", layer) for layer in wanted], _forward(model, tokens))
    return HeadReference(z={hp.layer: z for hp, z in store.items()}, valid=valid)


def block_point(part: str, layer: int) -> HookPoint:
    """The hook point a block ablation edits: what the attention / MLP block adds to the residual."""
    if part not in PARTS:
        raise InterventionError(f"part must be one of {list(PARTS)}, got {part!r}")
    return point("attn_out" if part == "attn" else "mlp_out", layer)


def capture_layer_outputs(
    model: Any,
    adapter: Any,
    tokens: torch.Tensor,
    part: str,
    valid: torch.Tensor | None = None,
    layers: Iterable[int] | None = None,
) -> LayerReference:
    """Run one forward pass and record each requested layer's ``attn_out`` or ``mlp_out``.

    Args:
        part: "attn" or "mlp": what the block adds to the residual stream (after any post-norm).
        Others: as :func:`capture_head_outputs`.
    """
    block_point(part, 0)
    valid = _check_tokens(tokens, valid)
    wanted = _check_layers(adapter, layers)
    store = capture(adapter, [block_point(part, layer) for layer in wanted], _forward(model, tokens))
    return LayerReference(part=part, out={hp.layer: out for hp, out in store.items()}, valid=valid)
