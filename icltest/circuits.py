"""Circuits: is a node set necessary, sufficient, and how faithful is it (MIB's f, CPR, CMD)?

A *node* is an attention head (``(layer, head)``, its slice of ``blocks.L.z``) or an MLP block
(``blocks.L.mlp_out``). The *universe* is the node set a claim ablates over: every head
(``heads``; MLPs are never touched) or every head and every MLP block (``heads+mlps``).

- Necessity: the metric with the circuit C ablated, against the clean model.
- Sufficiency: the metric with every universe node *outside* C ablated, m(C).
- Faithfulness (Mueller et al. 2025, MIB): ``f = (m(C) - m(empty)) / (m(full) - m(empty))`` with
  m(empty) the metric with every universe node ablated. f is NaN when the denominator is within
  float resolution of 0 (the whole universe does not move the metric: nothing to recover).
- CPR / CMD (MIB's circuit-localization metrics): given a ranking of the universe and circuit
  sizes k (fractions of the universe; MIB's default .001, .002, .005, .01, .02, .05, .1, .2, .5, 1),
  C_k is the top ``floor(k * |universe|)`` nodes; CPR is the trapezoid area under f(C_k) over k and
  CMD the trapezoid area under |1 - f(C_k)|, both on a linear k axis with the nominal k as x and
  no clipping, as MIB's ``evaluate_area_under_curve`` computes them. MIB ranks by the signed score
  for CPR and by its absolute value for CMD; :func:`order_nodes` does the same.

Ablation types: ``mean`` (each node's mean output over the reference inputs: another probe seed,
or the other split of task items), ``zero``, and ``counterfactual`` (each row takes the node's
output on the same row of a counterfactual input of the same shape: the token probe drawn with
the reference seed). Positions can restrict every ablation to some sequence positions.

:class:`CircuitRun` is a :class:`~icltest.runs.run.Run` whose variants are :class:`NodeAblation`
(heads and MLP blocks in one variant), so clean values, stacking and references are shared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from icltest.runs.run import Run

Head = tuple[int, int]
MIB_SIZES: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
METHODS: tuple[str, ...] = ("mean", "zero", "counterfactual")
RESOLUTION = 1e-6
"""|m(full) - m(empty)| at or below this (relative to max(1, |m|)) is float noise: f is NaN."""


@dataclass(frozen=True)
class Node:
    """One node: a head (``layer``, ``head``) or an MLP block (``layer``, ``head`` None)."""

    layer: int
    head: int | None = None

    @property
    def is_head(self) -> bool:
        return self.head is not None

    def __str__(self) -> str:
        return f"L{self.layer}H{self.head}" if self.is_head else f"mlp.{self.layer}"


def universe_nodes(n_layers: int, n_heads: int, universe: str) -> list[Node]:
    """Every node of a universe (``heads`` or ``heads+mlps``), in (layer, heads then MLP) order."""
    if universe not in ("heads", "heads+mlps"):
        raise ValueError(f"universe must be heads or heads+mlps, got {universe!r}")
    out = []
    for layer in range(n_layers):
        out += [Node(layer, h) for h in range(n_heads)]
        if universe == "heads+mlps":
            out.append(Node(layer))
    return out


@dataclass(frozen=True)
class NodeAblation:
    """One variant: heads and MLP blocks ablated together, how, and (optionally) where.

    Attributes:
        heads: (layer, head) pairs, sorted.
        mlps: MLP layers, sorted.
        method: "mean", "zero" or "counterfactual".
        positions: sequence positions edited (None: every position).
        post_norm: "frozen" / "live" for head edits on post-norm models (see interventions.ablate).
    """

    heads: tuple[Head, ...] = ()
    mlps: tuple[int, ...] = ()
    method: str = "mean"
    positions: tuple[int, ...] | None = None
    post_norm: str = "frozen"

    @classmethod
    def of(cls, nodes: Iterable[Node], **kw: Any) -> "NodeAblation":
        nodes = list(nodes)
        return cls(heads=tuple(sorted({(n.layer, n.head) for n in nodes if n.is_head})),  # type: ignore[misc]
                   mlps=tuple(sorted({n.layer for n in nodes if not n.is_head})), **kw)

    @property
    def size(self) -> int:
        return len(self.heads) + len(self.mlps)

    def label(self) -> str:
        return f"{self.method}-ablate {len(self.heads)} heads and {len(self.mlps)} MLP blocks"


def node_edits(run: Run, ablation: NodeAblation, rows: tuple[int, int] | None) -> list[Any]:
    """The interventions of one :class:`NodeAblation` (one per ablated layer and part)."""
    from icltest.interventions import Intervention
    from icltest.models.hookpoints import point

    method = ablation.method
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    op = {"mean": "mean", "zero": "zero", "counterfactual": "patch"}[method]
    by_layer: dict[int, list[int]] = {}
    for layer, head in ablation.heads:
        by_layer.setdefault(layer, []).append(head)
    edits = []
    if by_layer:
        ref = run._reference("heads") if method != "zero" else None
        for layer, heads in sorted(by_layer.items()):
            value = None if ref is None else (ref.mean(layer) if method == "mean" else ref.layer(layer))
            edits.append(Intervention(point("z", layer), op, tuple(heads), value, positions=ablation.positions,
                                      rows=rows, post_norm=ablation.post_norm, note=f"circuit {method} ablation"))
    if ablation.mlps:
        ref = run._reference("mlp") if method != "zero" else None
        for layer in ablation.mlps:
            value = None if ref is None else (ref.mean(layer) if method == "mean" else ref.out[layer])
            edits.append(Intervention(point("mlp_out", layer), op, (), value, positions=ablation.positions,
                                      rows=rows, note=f"circuit {method} ablation"))
    return edits


class CircuitRun(Run):
    """A :class:`Run` that also evaluates :class:`NodeAblation` variants (heads + MLPs, positions)."""

    def _edits(self, ablation: Any, rows: tuple[int, int] | None) -> list[Any]:
        if isinstance(ablation, NodeAblation):
            return node_edits(self, ablation, rows)
        return super()._edits(ablation, rows)


# ----------------------------------------------------------------------------- arithmetic


def faithfulness(m_circuit: float, m_full: float, m_empty: float) -> tuple[float, str | None]:
    """MIB's ``(m(C) - m(empty)) / (m(full) - m(empty))``; NaN and the reason when undefined.

    Undefined when any value is NaN, or when |m(full) - m(empty)| is within :data:`RESOLUTION`
    of 0 relative to max(1, |m(full)|, |m(empty)|): ablating the whole universe does not move the
    metric, so there is nothing a circuit could recover and any ratio would be noise.
    """
    values = (float(m_circuit), float(m_full), float(m_empty))
    if any(math.isnan(v) for v in values):
        return math.nan, "NaN in m(C), m(full) or m(empty)"
    c, full, empty = values
    gap = full - empty
    if abs(gap) <= RESOLUTION * max(1.0, abs(full), abs(empty)):
        return math.nan, (f"m(full) {full:.6g} and m(empty) {empty:.6g} are equal within float resolution: "
                          "ablating every universe node does not move the metric, so f is undefined")
    return (c - empty) / gap, None


def size_counts(sizes: Sequence[float], universe: int) -> list[int]:
    """Nodes in C_k for each fraction k: ``floor(k * universe)`` as MIB's ``int(pct * n)``."""
    return [int(math.floor(k * universe + 1e-9)) for k in sizes]


def curve_areas(sizes: Sequence[float], f: Sequence[float]) -> tuple[float, float]:
    """(CPR, CMD): trapezoid areas under f and under |1 - f| over the sizes, in the order given.

    As MIB: x is the nominal fraction k (linear axis), each trapezoid averages the two end
    values (|1 - f| too: no crossing point is inserted), nothing is clipped. NaN in f gives NaN.
    """
    if len(sizes) != len(f) or len(sizes) < 2:
        raise ValueError(f"need as many f values as sizes (>= 2), got {len(sizes)} sizes and {len(f)} values")
    cpr = cmd = 0.0
    for i in range(len(sizes) - 1):
        dx = float(sizes[i + 1]) - float(sizes[i])
        cpr += dx * (f[i] + f[i + 1]) / 2
        cmd += dx * (abs(1.0 - f[i]) + abs(1.0 - f[i + 1])) / 2
    return cpr, cmd


def order_nodes(scores: dict[Node, float], absolute: bool) -> list[Node]:
    """Nodes by descending score (CPR) or |score| (CMD); ties by (layer, head) order, stable."""
    key = (lambda n: -abs(scores[n])) if absolute else (lambda n: -scores[n])
    return sorted(scores, key=key)


# ----------------------------------------------------------------------------- probe attribution


def probe_row_metric(run: Run) -> tuple[Any, Any]:
    """(keep, row_metric) for :func:`icltest.attribution.patching.attribute_heads` on a token probe.

    ``row_metric(logits, rows)`` is each row's ``repeated_token_loss`` (mean next-token loss on
    the metric's repeats) or ``icl_score`` (late minus early window), from the kept logits.
    """
    import torch

    from icltest.runs.run import icl_positions

    index = run._loss_indices()
    tokens, m, probe = run.inputs.tokens, run.metric, run.inputs.probe

    def row_metric(logits: Any, rows: slice) -> Any:
        target = tokens[rows][:, index + 1].to(logits.device)
        loss = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), target, reduction="none")
        if m.name == "repeated_token_loss":
            return loss.mean(1)
        late, early = icl_positions(probe, m.late, m.early)
        window = m.window or 1
        pos = index.tolist()
        late_cols = [pos.index(i) for i in range(max(0, late - window), late)]
        early_cols = [pos.index(i) for i in range(max(0, early - window), early)]
        return loss[:, late_cols].mean(1) - loss[:, early_cols].mean(1)

    return index, row_metric


def head_scores(run: Run) -> dict[Node, float]:
    """Each head's estimated mean-ablation effect on ``run``'s metric, in the harm direction.

    Attribution patching (one forward + backward per 16 inputs); positive = ablating the head
    moves the metric the way that breaks the behaviour (the head supports it).
    """
    from icltest.attribution.patching import attribute_heads

    if run.is_task:
        att = attribute_heads(run)
        sign = -1.0  # answer log-probability: a supporting head's ablation lowers it
    else:
        keep, row_metric = probe_row_metric(run)
        att = attribute_heads(run, row_metric=row_metric, keep=keep)
        sign = 1.0 if run.info.harm == "increase" else -1.0
    effect = att.mean_effect()
    return {Node(l, h): sign * float(effect[l, h]) for l in range(effect.shape[0]) for h in range(effect.shape[1])}
