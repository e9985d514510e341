"""Named hook points on a plain Hugging Face model, and the one engine that reads and writes them.

The vocabulary is the one interpretability users know (``blocks.L.resid_pre`` ... ``unembed``);
each name is resolved here, once, to a module and a side (input or output) through the adapter,
so nothing else in icltest knows that the attention map is ``output[1]`` or that the per-head
output is the input of ``o_proj``.

Per layer L (``blocks.L.<name>``):

============  ===========================================  ==========================
name          tensor                                       where it is read / written
============  ===========================================  ==========================
resid_pre     [batch, seq, d_model] entering layer L       layer input
resid_mid     resid_pre + attn_out                          attention branch output (GPT-NeoX
                                                           parallel blocks: read-only)
resid_post    [batch, seq, d_model] leaving layer L        layer output
pattern       [batch, n_heads, q, k] attention probs       attention output[1] (read)
z             [batch, seq, n_heads, head_dim]               o_proj input
result        [batch, seq, n_heads, d_model] = z_h W_O,h   o_proj (bias excluded)
attn_out      [batch, seq, d_model] added to the residual  after any post-norm
mlp_in        [batch, seq, d_model] MLP input (normed)      MLP input
mlp_hidden    [batch, seq, d_mlp] input of the down proj    down-projection input
mlp_out       [batch, seq, d_model] added to the residual  after any post-norm
============  ===========================================  ==========================

Global: ``final_norm`` (the final norm's output) and ``unembed`` (the output embedding's output,
i.e. the logits before any soft-capping).

Identities (checked in tests on every architecture): ``resid_post = resid_pre + attn_out +
mlp_out``; ``sum_h result_h + bias = o_proj output``; on pre-norm models that sum is ``attn_out``.
On post-norm models (Gemma 2/3) ``attn_out = post_norm(o_proj output)``; see
:func:`hooked`'s ``freeze_post_norm`` for what editing a head means there.
"""
from __future__ import annotations

import re
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from icltest.errors import AttentionNotCaptured, InterventionError

LAYER_POINTS: tuple[str, ...] = ("resid_pre", "resid_mid", "resid_post", "pattern", "z", "result",
                                 "attn_out", "mlp_in", "mlp_hidden", "mlp_out")
GLOBAL_POINTS: tuple[str, ...] = ("final_norm", "unembed")
HEAD_POINTS: tuple[str, ...] = ("pattern", "z", "result")  # indexed by head on dim -2 (pattern: dim 1)
READ_ONLY: tuple[str, ...] = ("pattern",)
_NAME_RE = re.compile(r"^blocks\.(\d+)\.(\w+)$")

Handler = Callable[[torch.Tensor], "torch.Tensor | None"]


@dataclass(frozen=True, order=True)
class HookPoint:
    """A named place in the forward pass: ``blocks.18.z``, ``final_norm``.

    Attributes:
        layer: the layer, or -1 for a global point.
        name: one of LAYER_POINTS or GLOBAL_POINTS.
    """

    layer: int
    name: str

    def __post_init__(self) -> None:
        if self.name in GLOBAL_POINTS:
            if self.layer != -1:
                raise InterventionError(f"hook point {self.name!r} is global; it takes no layer")
        elif self.name not in LAYER_POINTS:
            raise InterventionError(
                f"unknown hook point {self.name!r}; per layer: {', '.join(LAYER_POINTS)}; "
                f"global: {', '.join(GLOBAL_POINTS)}")

    @classmethod
    def parse(cls, text: str) -> "HookPoint":
        """``"blocks.3.z"`` or ``"final_norm"`` -> HookPoint."""
        match = _NAME_RE.match(text.strip())
        if match:
            return cls(int(match.group(1)), match.group(2))
        return cls(-1, text.strip())

    def __str__(self) -> str:
        return self.name if self.layer < 0 else f"blocks.{self.layer}.{self.name}"


def point(name: str, layer: int | None = None) -> HookPoint:
    """``point("z", 18)`` -> ``blocks.18.z``; ``point("final_norm")``."""
    return HookPoint(-1 if layer is None else int(layer), name)


def check_point(adapter: Any, hp: HookPoint) -> None:
    """Reject a layer the model does not have, naming the range."""
    if hp.layer >= adapter.n_layers or (hp.layer < 0 and hp.name in LAYER_POINTS):
        raise InterventionError(f"hook point {hp}: the model has layers 0..{adapter.n_layers - 1}")


def _first(args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> torch.Tensor:
    return args[0] if args else kwargs[name]


def _with_first(args: tuple[Any, ...], kwargs: dict[str, Any], name: str, new: torch.Tensor) -> tuple[Any, Any]:
    if args:
        return (new,) + tuple(args[1:]), kwargs
    return args, {**kwargs, name: new}


def _main(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _with_main(output: Any, new: torch.Tensor) -> Any:
    return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new


def _chain(handlers: Sequence[Handler], x: torch.Tensor) -> torch.Tensor | None:
    """Run handlers in order; each sees the previous one's replacement. None: nothing replaced."""
    changed = False
    for handler in handlers:
        new = handler(x)
        if new is not None:
            if tuple(new.shape) != tuple(x.shape):
                raise InterventionError(f"a hook replaced a {tuple(x.shape)} activation with {tuple(new.shape)}")
            x, changed = new, True
    return x if changed else None


def o_proj_weight(module: Any) -> torch.Tensor:
    """The output projection as a [d_model, n_heads * head_dim] matrix (Linear or GPT-2 Conv1D)."""
    weight = module.weight
    return weight.t() if type(module).__name__ == "Conv1D" else weight


def rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Root mean square over the last dimension, with the norm's epsilon inside the root (fp32)."""
    return torch.sqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)


def _norm_eps(module: Any) -> float:
    for name in ("eps", "variance_epsilon"):
        if hasattr(module, name):
            return float(getattr(module, name))
    raise InterventionError(f"{type(module).__name__} has no eps: cannot freeze its scale")


@dataclass
class _Forward:
    """State shared by the hooks of one forward pass (resid_pre for resid_mid, clean o_proj out)."""

    resid_pre: dict[int, torch.Tensor] = field(default_factory=dict)
    clean_z: dict[int, torch.Tensor] = field(default_factory=dict)
    edited_rows: dict[int, torch.Tensor] = field(default_factory=dict)
    result_delta: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


@contextmanager
def hooked(
    adapter: Any,
    handlers: Mapping[HookPoint, Sequence[Handler]],
    *,
    freeze_post_norm: Sequence[int] = (),
) -> Iterator[None]:
    """Register the hooks that serve ``handlers`` for the duration of a ``with``; always removed.

    A handler receives the activation at its point (shapes in the module docstring) and returns a
    replacement of the same shape, or None to leave it (a reader). Handlers at one point run in
    order, each seeing the previous replacement.

    Args:
        adapter: the model's :class:`~icltest.models.adapters.Adapter`.
        handlers: hook point -> handlers.
        freeze_post_norm: layers whose attention post-norm (Gemma 2/3) keeps, in rows where a
            ``z`` or ``result`` handler changed something, the scale it would apply to the
            *unedited* o_proj output of the same forward pass. With it, removing heads removes
            exactly their share of ``attn_out`` (all heads removed: ``attn_out`` = 0); without it
            the norm scales what is left back up (Gemma 3 270M, layer 5, 3 of 4 heads zeroed:
            ``attn_out`` keeps 0.30 of its clean per-position norm frozen, 0.54 live). Ignored on
            pre-norm models. One freeze per norm at a time: nesting two ``hooked`` blocks that
            both freeze a layer is an error (the inner one would take the outer's edit as clean).

    Raises:
        InterventionError: a point the model lacks, a write to a read-only point, a bad shape.
        AttentionNotCaptured: a pattern handler on a model not loaded with eager attention.
    """
    by_point: dict[HookPoint, list[Handler]] = {}
    for hp, hs in handlers.items():
        check_point(adapter, hp)
        by_point.setdefault(hp, []).extend(hs)
    frozen = {layer for layer in freeze_post_norm if getattr(adapter, "post_norm", False)}
    state = _Forward()
    with ExitStack() as stack:
        for layer in sorted(frozen):
            norm = adapter.attn_post_norm(layer)
            if getattr(norm, "_icltest_frozen", False):
                raise InterventionError(
                    f"layer {layer}: its post-norm scale is already frozen by an enclosing intervention; "
                    "apply the edits in one list instead of nesting")
            norm._icltest_frozen = True
            stack.callback(setattr, norm, "_icltest_frozen", False)
        def reg(module: Any, fn: Any, pre: bool) -> None:
            if pre:
                handle = module.register_forward_pre_hook(fn, with_kwargs=True)
            else:
                handle = module.register_forward_hook(fn)
            stack.callback(handle.remove)

        layers = sorted({hp.layer for hp in by_point if hp.layer >= 0} | frozen)
        for layer in layers:
            _register_layer(adapter, layer, by_point, state, reg, layer in frozen)
        for name in GLOBAL_POINTS:
            hs = by_point.get(HookPoint(-1, name))
            if hs:
                module = adapter.final_norm() if name == "final_norm" else adapter.unembed()
                reg(module, _output_hook(hs), pre=False)
        yield


def _output_hook(hs: Sequence[Handler]) -> Any:
    def hook(_m: Any, _args: Any, output: Any) -> Any:
        new = _chain(hs, _main(output))
        return None if new is None else _with_main(output, new)

    return hook


def _input_hook(hs: Sequence[Handler], kw: str) -> Any:
    def hook(_m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        new = _chain(hs, _first(args, kwargs, kw))
        return None if new is None else _with_first(args, kwargs, kw, new)

    return hook


def _register_layer(adapter: Any, layer: int, by_point: Mapping[HookPoint, Sequence[Handler]],
                    state: _Forward, reg: Callable[..., None], frozen: bool) -> None:
    """Register what one layer's points need (one hook per module side)."""
    hs = {name: list(by_point.get(HookPoint(layer, name), ())) for name in LAYER_POINTS}
    H, D = adapter.n_heads, adapter.head_dim
    post = adapter.attn_post_norm(layer) if frozen or hs["attn_out"] or hs["resid_mid"] else None
    if hs["resid_pre"] or hs["resid_mid"]:
        def pre_layer(_m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            x = _first(args, kwargs, "hidden_states")
            new = _chain(hs["resid_pre"], x)
            state.resid_pre[layer] = x if new is None else new
            return None if new is None else _with_first(args, kwargs, "hidden_states", new)

        reg(adapter.layers()[layer], pre_layer, pre=True)
    if hs["resid_post"]:
        reg(adapter.layers()[layer], _output_hook(hs["resid_post"]), pre=False)

    if hs["pattern"]:
        def pattern_hook(_m: Any, _args: Any, output: Any) -> None:
            probs = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if probs is None:
                raise AttentionNotCaptured(
                    f"layer {layer}: attention probabilities were not returned; icltest loads models with "
                    "attn_implementation='eager' - pass a model loaded that way")
            if _chain(hs["pattern"], probs) is not None:
                raise InterventionError(f"blocks.{layer}.pattern is read-only")

        reg(adapter.attention(layer), pattern_hook, pre=False)

    if hs["z"] or hs["result"] or frozen:
        o_proj = adapter.o_proj(layer)
        weight = o_proj_weight(o_proj)

        def z_hook(_m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            x = _first(args, kwargs, "input")
            if x.shape[-1] != H * D:
                raise InterventionError(
                    f"blocks.{layer}: o_proj input has width {x.shape[-1]}, expected n_heads * head_dim = {H} * {D}")
            z = x.reshape(*x.shape[:-1], H, D)
            new = _chain(hs["z"], z) if hs["z"] else None
            rows = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
            if new is not None:
                rows |= (new != z).flatten(1).any(1)
            if hs["result"]:
                current = z if new is None else new
                result = torch.einsum("...hd,mhd->...hm", current, weight.reshape(-1, H, D).to(current.dtype))
                replaced = _chain(hs["result"], result)
                if replaced is not None:  # the edited rows' o_proj output, rebuilt by result_out below
                    edited = (replaced != result).flatten(2).any(-1)  # [batch, seq]
                    bias = o_proj.bias.float() if o_proj.bias is not None else 0.0
                    state.result_delta[layer] = (edited, replaced[edited].float().sum(-2) + bias)
                    rows |= edited.any(1)
            if frozen and bool(rows.any()):
                state.clean_z[layer], state.edited_rows[layer] = x, rows
            return None if new is None else _with_first(args, kwargs, "input", new.reshape(x.shape))

        reg(o_proj, z_hook, pre=True)

        if hs["result"]:
            def result_out(_m: Any, _args: Any, output: Any) -> Any:
                edit = state.result_delta.pop(layer, None)
                if edit is None:
                    return None
                where, rebuilt = edit  # edited positions: sum of per-head results + bias in fp32 (zeros stay 0)
                out = _main(output).clone()
                out[where] = rebuilt.to(out.dtype)
                return _with_main(output, out)

            reg(o_proj, result_out, pre=False)

    if frozen:
        eps = _norm_eps(post)

        def freeze(_m: Any, args: tuple[Any, ...], output: Any) -> Any:
            clean_in = state.clean_z.pop(layer, None)
            if clean_in is None:
                return None
            rows = state.edited_rows.pop(layer)
            edited = args[0][rows]
            clean_out = torch.nn.functional.linear(clean_in[rows], weight.to(clean_in.dtype), o_proj.bias)
            y = _main(output).clone()
            y[rows] = (y[rows].float() * (rms(edited, eps) / rms(clean_out, eps))).to(y.dtype)
            return _with_main(output, y)

        reg(post, freeze, pre=False)

    if hs["attn_out"] or hs["resid_mid"]:
        attn_out_module = post if post is not None else adapter.attention(layer)
        def attn_out_hook(_m: Any, _args: Any, output: Any) -> Any:
            out = _main(output)
            new = _chain(hs["attn_out"], out)
            out = out if new is None else new
            if hs["resid_mid"]:
                pre = state.resid_pre.pop(layer)
                mid = pre + out
                replaced = _chain(hs["resid_mid"], mid)
                if replaced is not None and getattr(adapter, "parallel_residual", False):
                    raise InterventionError(
                        f"blocks.{layer}.resid_mid: this model's block is parallel (the MLP reads resid_pre), so a "
                        "write to resid_mid would not reach the MLP; edit attn_out or resid_pre instead")
                if replaced is not None:
                    out, new = replaced - pre, replaced - pre
            return None if new is None else _with_main(output, new)

        reg(attn_out_module, attn_out_hook, pre=False)

    if hs["mlp_in"]:
        reg(adapter.mlp(layer), _input_hook(hs["mlp_in"], "hidden_states"), pre=True)
    if hs["mlp_hidden"]:
        reg(adapter.mlp_down(layer), _input_hook(hs["mlp_hidden"], "input"), pre=True)
    if hs["mlp_out"]:
        mlp_post = adapter.mlp_post_norm(layer)
        reg(mlp_post if mlp_post is not None else adapter.mlp(layer), _output_hook(hs["mlp_out"]), pre=False)
