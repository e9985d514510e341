"""One intervention type: an operation at a named hook point, and weight edits that are undone.

Every mechanism icltest tests is a list of these applied in one forward pass:

- head ablation: ``zero`` / ``mean`` / ``resample`` at ``blocks.L.z`` for some heads;
- block ablation: the same at ``attn_out`` / ``mlp_out``;
- activation patching: ``patch`` from another run's cache;
- function vectors and concept injection: ``add`` a vector (times ``scale``) to ``resid_*``;
- anything else: ``replace`` with a given tensor, or a :class:`WeightEdit`.

``rows`` restricts an intervention to a block of batch rows: K variants of an input batch are
stacked as K copies and each variant's interventions touch only its rows (see
:mod:`icltest.runs`). ``positions`` restricts it to sequence positions.

What the operations write, for an activation ``x`` of shape [batch, seq, *rest] restricted to the
selected rows, positions and (for ``z`` / ``result``) heads:

=========  ====================================================================================
zero       0
mean       ``value``: [*rest] (pooled over positions) or [seq, *rest] (per position)
resample   ``value``: [rows, seq, *rest], another input's activation (see :mod:`.ablate`)
patch      ``value``: [rows, seq, *rest], from another run's cache
add        ``x + scale * value`` with ``value`` [*rest] or [seq, *rest]
replace    ``value`` broadcast ([*rest], [seq, *rest] or [rows, seq, *rest])
=========  ====================================================================================

On post-norm models (Gemma 2/3) an *ablation* (zero / mean / resample) at ``z`` / ``result`` is by
default ``post_norm="frozen"``: the attention post-norm keeps the scale it would apply to the
unedited output, so the edit removes exactly the heads' share of what reaches the residual stream.
``patch`` / ``add`` / ``replace`` default to ``"live"``: patching another run's activations must
reproduce that run's ``attn_out``, which needs the norm computed on the patched output.
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from icltest.errors import InterventionError
from icltest.models.hookpoints import HEAD_POINTS, READ_ONLY, Handler, HookPoint, hooked

OPS: tuple[str, ...] = ("zero", "mean", "resample", "patch", "add", "replace")
POST_NORM_MODES: tuple[str, ...] = ("frozen", "live")
ABLATION_OPS: tuple[str, ...] = ("zero", "mean", "resample")


@dataclass(eq=False)
class Intervention:
    """One operation at one hook point (see the module docstring for what each op writes).

    Attributes:
        point: where (``HookPoint.parse("blocks.3.z")``).
        op: one of OPS.
        heads: for ``z`` / ``result``: the heads edited (empty: all of the tensor).
        value: the tensor the op reads (mean, source activations, vector...); None for zero.
        scale: multiplies ``value`` for ``add``.
        positions: sequence positions edited (None: all).
        rows: ``(start, stop)`` batch rows edited (None: all) - one variant of a stacked batch.
        post_norm: "frozen" or "live" (only matters for ``z`` / ``result`` on post-norm models);
            None picks "frozen" for ablations (zero / mean / resample) and "live" otherwise.
        note: how ``value`` was made, for records (e.g. "mean over 1600 positions, seed 1").
    """

    point: HookPoint
    op: str
    heads: tuple[int, ...] = ()
    value: torch.Tensor | None = None
    scale: float = 1.0
    positions: tuple[int, ...] | None = None
    rows: tuple[int, int] | None = None
    post_norm: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise InterventionError(f"intervention op must be one of {list(OPS)}, got {self.op!r}")
        if self.point.name in READ_ONLY:
            raise InterventionError(f"{self.point} is read-only")
        if self.heads and self.point.name not in HEAD_POINTS:
            raise InterventionError(f"heads only apply to per-head points ({', '.join(HEAD_POINTS)}), not {self.point}")
        if (self.value is None) != (self.op == "zero"):
            raise InterventionError(f"op {self.op!r} {'takes no' if self.op == 'zero' else 'needs a'} value")
        if self.post_norm is None:
            self.post_norm = "frozen" if self.op in ABLATION_OPS else "live"
        if self.post_norm not in POST_NORM_MODES:
            raise InterventionError(f"post_norm must be one of {list(POST_NORM_MODES)}, got {self.post_norm!r}")
        if self.heads and (len(set(self.heads)) != len(self.heads) or min(self.heads) < 0):
            raise InterventionError(f"{self.point}: heads {list(self.heads)} must be distinct and >= 0")
        if self.positions is not None and not self.positions:
            raise InterventionError(f"{self.point}: positions is empty; give None for every position")

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of what was done (tensors by shape only)."""
        out: dict[str, Any] = {"point": str(self.point), "op": self.op}
        if self.heads:
            out["heads"] = list(self.heads)
        if self.value is not None:
            out["value_shape"] = list(self.value.shape)
        if self.op == "add":
            out["scale"] = self.scale
        if self.positions is not None:
            out["positions"] = list(self.positions)
        if self.rows is not None:
            out["rows"] = list(self.rows)
        if self.point.name in ("z", "result"):
            out["post_norm"] = self.post_norm
        if self.note:
            out["note"] = self.note
        return out

    def handler(self) -> Handler:
        """The function the hook engine calls with the activation; returns the edited copy."""
        def edit(x: torch.Tensor) -> torch.Tensor:
            return _edit(self, x)

        return edit


def _index(iv: Intervention, x: torch.Tensor) -> tuple[Any, ...]:
    """Index of the edited region of x: rows, positions and heads, as an outer product."""
    rows = slice(*iv.rows) if iv.rows is not None else slice(None)
    if iv.rows is not None and not 0 <= iv.rows[0] < iv.rows[1] <= x.shape[0]:
        raise InterventionError(f"{iv.point}: rows {iv.rows} outside a batch of {x.shape[0]}")
    pos: Any = slice(None)
    heads: Any = slice(None)
    if iv.positions is not None:
        bad = [p for p in iv.positions if not -x.shape[1] <= p < x.shape[1]]
        if bad:
            raise InterventionError(f"{iv.point}: positions {bad} outside a sequence of {x.shape[1]}")
        pos = torch.tensor(iv.positions, dtype=torch.long, device=x.device)
    if iv.heads:
        n_heads = x.shape[-2]
        if max(iv.heads) >= n_heads:
            raise InterventionError(f"{iv.point}: heads {list(iv.heads)} out of range: the model has heads 0..{n_heads - 1}")
        heads = torch.tensor(iv.heads, dtype=torch.long, device=x.device)
        if isinstance(pos, torch.Tensor):
            pos = pos[:, None]
            heads = heads[None, :]
        return (rows, pos, heads)
    return (rows, pos)


def _select_value(iv: Intervention, value: torch.Tensor, x: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Index ``value`` like the region (token-level, per-position or per-row), then check it fits."""
    value = value.to(device=x.device, dtype=x.dtype)
    rest = x.dim() - 2
    level = value.dim() - rest  # 0: [*rest]; 1: [seq, *rest]; 2: [rows, seq, *rest]
    if level not in (0, 1, 2) or tuple(value.shape[value.dim() - rest:]) != tuple(x.shape[2:]):
        raise InterventionError(
            f"{iv.point} {iv.op}: value of shape {tuple(value.shape)} does not fit an activation "
            f"[batch, seq, {', '.join(map(str, x.shape[2:]))}]; give [{', '.join(map(str, x.shape[2:]))}], "
            f"[seq, ...] or [rows, seq, ...]")
    if level >= 1:
        seq_dim = level - 1
        if value.shape[seq_dim] != x.shape[1]:
            raise InterventionError(
                f"{iv.point} {iv.op}: the value covers {value.shape[seq_dim]} positions but the input has "
                f"{x.shape[1]}; use a reference of the same length, or a pooled value")
    if level == 2:
        want = (iv.rows[1] - iv.rows[0]) if iv.rows is not None else x.shape[0]
        if value.shape[0] != want:
            raise InterventionError(
                f"{iv.point} {iv.op}: the value has {value.shape[0]} rows but the edit covers {want}; "
                "capture the reference with the same batch size and length")
    index = _index(iv, x)
    if level == 0:
        sub = value[index[2]] if iv.heads else value
        return sub.expand_as(region) if sub.dim() == region.dim() else sub
    if level == 1:
        return value[(index[1],) + tuple(index[2:])].expand_as(region)
    return value[(slice(None),) + tuple(index[1:])].expand_as(region)


def _edit(iv: Intervention, x: torch.Tensor) -> torch.Tensor:
    index = _index(iv, x)
    region = x[index]
    if iv.op == "zero":
        new = torch.zeros_like(region)
    else:
        value = _select_value(iv, iv.value, x, region)  # type: ignore[arg-type]
        new = region + iv.scale * value if iv.op == "add" else value.expand_as(region)
    y = x.clone()  # never in place: autograd and other hooks may hold x
    y[index] = new
    return y


@dataclass(eq=False)
class WeightEdit:
    """Change a parameter for the duration of :func:`apply`; the exact old values come back on exit.

    Attributes:
        param: dotted path from the model, e.g. ``model.layers.3.mlp.up_proj.weight``.
        delta: added to the parameter, or
        value: written over it (exactly one of the two).
        note: what the edit is, for records.
    """

    param: str
    delta: torch.Tensor | None = None
    value: torch.Tensor | None = None
    note: str = ""

    def describe(self) -> dict[str, Any]:
        what = "delta" if self.delta is not None else "value"
        return {"param": self.param, "op": f"weight {what}", "note": self.note}

    @contextmanager
    def applied(self, model: Any) -> Iterator[None]:
        if (self.delta is None) == (self.value is None):
            raise InterventionError(f"weight edit {self.param}: give exactly one of delta or value")
        try:
            param = model.get_parameter(self.param)
        except AttributeError as exc:
            raise InterventionError(f"weight edit: the model has no parameter {self.param!r} ({exc})") from None
        change = self.delta if self.delta is not None else self.value
        if tuple(change.shape) != tuple(param.shape):  # type: ignore[union-attr]
            raise InterventionError(f"weight edit {self.param}: shape {tuple(change.shape)} != {tuple(param.shape)}")  # type: ignore[union-attr]
        saved = param.detach().clone()
        try:
            with torch.no_grad():
                change = change.to(device=param.device, dtype=param.dtype)  # type: ignore[union-attr]
                if self.delta is not None:
                    param.add_(change)
                else:
                    param.copy_(change)
            yield
        finally:
            with torch.no_grad():
                param.copy_(saved)


Edit = Intervention | WeightEdit


@contextmanager
def apply(adapter: Any, edits: Sequence[Edit]) -> Iterator[None]:
    """Apply every edit for one ``with`` block (one forward or many); all undone on exit.

    Hooks are removed and weights restored in ``finally``, also after an exception.

    Raises:
        InterventionError: a bad point, value shape, or ``frozen`` and ``live`` mixed at one layer.
    """
    handlers: dict[HookPoint, list[Handler]] = {}
    modes: dict[int, set[str]] = {}
    weights = [e for e in edits if isinstance(e, WeightEdit)]
    for edit in edits:
        if isinstance(edit, WeightEdit):
            continue
        handlers.setdefault(edit.point, []).append(edit.handler())
        if edit.point.name in ("z", "result"):
            modes.setdefault(edit.point.layer, set()).add(edit.post_norm)
    mixed = sorted(layer for layer, m in modes.items() if len(m) > 1)
    if mixed:
        raise InterventionError(f"layers {mixed}: post_norm 'frozen' and 'live' edits cannot share a forward pass")
    frozen = sorted(layer for layer, m in modes.items() if m == {"frozen"})
    with ExitStack() as stack:
        for edit in weights:
            stack.enter_context(edit.applied(adapter.model))
        stack.enter_context(hooked(adapter, handlers, freeze_post_norm=frozen))
        yield


def capture(adapter: Any, points: Sequence[HookPoint], forward: Any) -> dict[HookPoint, torch.Tensor]:
    """Run ``forward()`` once under ``torch.no_grad`` and return the activation at each point.

    ``no_grad`` rather than ``inference_mode``: the stored tensors may be read by a later forward
    pass with autograd on (attribution).
    """
    store: dict[HookPoint, torch.Tensor] = {}

    def reader(hp: HookPoint) -> Handler:
        def read(x: torch.Tensor) -> None:
            store[hp] = x.detach().clone()
        return read

    with torch.no_grad(), hooked(adapter, {hp: [reader(hp)] for hp in points}):
        forward()
    return store
