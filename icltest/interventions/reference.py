"""Reference activations for mean and resample ablation, captured from one forward pass.

Zero ablation asks "what if this head wrote nothing?", which moves activations off the model's
usual distribution (a head that always writes a large constant is "important" under zero ablation
for a boring reason). Mean and resample ablation keep activations on-distribution by replacing a
head's output with what it writes on *other* inputs; those other inputs are the reference probe,
and this module records what each head (or each attention / MLP block) wrote on it.
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Sequence

import torch

Part = Literal["attn", "mlp"]
PARTS: tuple[str, ...] = ("attn", "mlp")


def _masked_mean(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``x[b, s, ...]`` over batch and positions where ``valid[b, s]`` is True."""
    weight = valid.to(device=x.device, dtype=torch.float32)
    count = weight.sum()
    if count == 0:
        raise ValueError("the reference valid mask selects no positions; nothing to average over")
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
        raise ValueError(f"tokens must be a [batch, seq] tensor of ids, got {shape}")
    if valid is None:
        return torch.ones_like(tokens, dtype=torch.bool)
    if tuple(valid.shape) != tuple(tokens.shape):
        raise ValueError(
            f"valid mask shape {tuple(valid.shape)} does not match tokens shape {tuple(tokens.shape)}"
        )
    return valid.to(torch.bool)


def _check_layers(adapter: Any, layers: Iterable[int] | None) -> list[int]:
    if layers is None:
        return list(range(adapter.n_layers))
    out = sorted({int(layer) for layer in layers})
    bad = [layer for layer in out if not 0 <= layer < adapter.n_layers]
    if bad:
        raise ValueError(f"layers {bad} out of range: the model has layers 0..{adapter.n_layers - 1}")
    return out


def _missing_layer(kind: str, layer: int, have: Sequence[int]) -> ValueError:
    return ValueError(
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
        part: "attn" (the attention module's output[0]) or "mlp".
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


def _forward(model: Any, tokens: torch.Tensor) -> None:
    device = next(model.parameters()).device
    model(input_ids=tokens.to(device))


def capture_head_outputs(
    model: Any,
    adapter: Any,
    tokens: torch.Tensor,
    valid: torch.Tensor | None = None,
    layers: Iterable[int] | None = None,
) -> HeadReference:
    """Run one forward pass and record each requested layer's per-head outputs.

    Uses ``torch.no_grad`` rather than ``inference_mode`` so the stored tensors are ordinary
    tensors that a later forward pass (even one with autograd on) may read.

    Args:
        model: the *ForCausalLM model the adapter wraps.
        adapter: an :class:`~icltest.models.adapters.Adapter` (or anything with ``n_layers``,
            ``n_heads``, ``head_dim`` and ``o_proj(layer)``).
        tokens: [batch, seq] reference ids (e.g. a probe drawn with a different seed).
        valid: [batch, seq] positions that count towards means; default all.
        layers: layers to record; default all (record only what you ablate on large models).
    """
    valid = _check_tokens(tokens, valid)
    wanted = _check_layers(adapter, layers)
    store: dict[int, torch.Tensor] = {}

    def make_hook(layer: int) -> Any:
        def hook(_module: Any, args: tuple[Any, ...]) -> None:
            x = args[0]
            b, s = x.shape[0], x.shape[1]
            store[layer] = x.detach().reshape(b, s, adapter.n_heads, adapter.head_dim).clone()

        return hook

    with ExitStack() as stack, torch.no_grad():
        for layer in wanted:
            handle = adapter.o_proj(layer).register_forward_pre_hook(make_hook(layer))
            stack.callback(handle.remove)
        _forward(model, tokens)
    return HeadReference(z=store, valid=valid)


def block(adapter: Any, layer: int, part: str) -> Any:
    """The module whose output `part` names: the attention module or the MLP."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {list(PARTS)}, got {part!r}")
    return adapter.attention(layer) if part == "attn" else adapter.mlp(layer)


def capture_layer_outputs(
    model: Any,
    adapter: Any,
    tokens: torch.Tensor,
    part: str,
    valid: torch.Tensor | None = None,
    layers: Iterable[int] | None = None,
) -> LayerReference:
    """Run one forward pass and record each requested layer's attention or MLP output.

    Args:
        part: "attn" records the attention module's output[0]; "mlp" the MLP's output.
        Others: as :func:`capture_head_outputs`.
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {list(PARTS)}, got {part!r}")
    valid = _check_tokens(tokens, valid)
    wanted = _check_layers(adapter, layers)
    store: dict[int, torch.Tensor] = {}

    def make_hook(layer: int) -> Any:
        def hook(_module: Any, _args: Any, output: Any) -> None:
            main = output[0] if isinstance(output, tuple) else output
            store[layer] = main.detach().clone()

        return hook

    with ExitStack() as stack, torch.no_grad():
        for layer in wanted:
            handle = block(adapter, layer, part).register_forward_hook(make_hook(layer))
            stack.callback(handle.remove)
        _forward(model, tokens)
    return LayerReference(part=part, out=store, valid=valid)
