"""`kind: circuit` — a node set is necessary and sufficient for a metric, and how faithful it is.

Nodes are heads and MLP blocks (library: :mod:`icltest.circuits`). For a circuit C inside a
stated universe (every head, or every head and MLP block):

- necessity: ablating C moves the metric in its harm direction (``expect.necessity``, as
  ``kind: ablation``'s ``increase`` / ``drop``);
- sufficiency: ablating everything in the universe outside C keeps the metric near the full
  model's (``expect.sufficiency``: a bound on |m(C) - m(full)|);
- faithfulness f = (m(C) - m(empty)) / (m(full) - m(empty)), Mueller et al. 2025 (MIB), with
  m(empty) = every universe node ablated (``expect.faithfulness``); NaN (fails, with the reason)
  when the whole universe does not move the metric;
- ``curve``: f of the top-k nodes of a ranking (attribution patching on a disjoint input set, or
  a list) at MIB's circuit sizes, and MIB's CPR / CMD areas (``curve.expect``);
- ``control``: f (or necessity) of random head sets of the same size, by permutation p and z.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator, model_validator

from icltest.claims.base import ClaimContext, ClaimSpecError, Measurement, Target, Verdict
from icltest.errors import InputError
from icltest.runs.metrics import METRICS
from icltest.schema.base import ClaimBase, Expectation, Head, HeadRange, TopHeads, _layer_list, _Strict
from icltest.schema.blocks import ControlSpec, EffectExpect, MetricSpec, ReferenceSpec

MIB_SIZES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # = icltest.circuits.MIB_SIZES
_MLP_TEXT = re.compile(r"^\s*mlp\s*\.?\s*(\d+)\s*$", re.I)


def _part_tag(value: Any) -> str:
    if isinstance(value, dict):
        return "top" if "top" in value else ("range" if "layers" in value else "head")
    if isinstance(value, TopHeads):
        return "top"
    return "range" if isinstance(value, HeadRange) else "head"


HeadPart = Annotated[
    Union[Annotated[Head, Tag("head")], Annotated[TopHeads, Tag("top")], Annotated[HeadRange, Tag("range")]],
    Discriminator(_part_tag),
]


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


def _node_input(value: Any) -> Any:
    """A ranked node: ``mlp.3`` / ``"MLP3"`` -> {"mlp": 3}; anything else is read as a head."""
    if isinstance(value, str) and _MLP_TEXT.match(value):
        return {"mlp": int(_MLP_TEXT.match(value).group(1))}  # type: ignore[union-attr]
    return value


def _one_of(model: Any, *names: str) -> Any:
    """A validator body: at least one of ``names`` is set."""
    if all(getattr(model, n) is None for n in names):
        raise ValueError(f"give at least one of {', '.join(names)}")
    return model


class MlpRef(_Strict):
    mlp: int = Field(ge=0, description="an MLP block's layer")


RankedNode = Annotated[Union[MlpRef, Head], BeforeValidator(_node_input)]


class CircuitExpect(_Strict):
    """What must hold; at least one of necessity, faithfulness, sufficiency."""

    necessity: EffectExpect | None = Field(
        None, description="ablating the circuit: {increase: '>= 1.0'} (ablated - clean) or {drop: ...} (clean - ablated)")
    faithfulness: Expectation | None = Field(
        None, description="f = (m(C) - m(empty)) / (m(full) - m(empty)) (MIB); 1 = the circuit alone recovers the full model")
    sufficiency: Expectation | None = Field(
        None, description="|m(C) - m(full)|: the metric with everything outside C ablated, within a tolerance of the full model")

    _something = model_validator(mode="after")(lambda self: _one_of(self, "necessity", "faithfulness", "sufficiency"))


class CurveExpect(_Strict):
    cpr: Expectation | None = Field(None, description="area under f over circuit size (MIB CPR; higher is better)")
    cmd: Expectation | None = Field(None, description="area under |1 - f| over circuit size (MIB CMD; 0 is best)")

    _something = model_validator(mode="after")(lambda self: _one_of(self, "cpr", "cmd"))


class CurveSpec(_Strict):
    """f at circuit sizes k (fractions of the universe) of the top nodes of a ranking; CPR / CMD."""

    ranking: Union[Literal["attribution"], Annotated[list[RankedNode], Field(min_length=1)]] = Field(
        description="attribution: every head's attribution-patching estimate of its mean-ablation effect, on "
                    "inputs disjoint from the judged ones (heads only); or a list of nodes, best first (unlisted "
                    "universe nodes follow in model order)")
    sizes: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=lambda: list(MIB_SIZES),
        description="fractions of the universe, ascending, ending at 1 (MIB: .001 .002 .005 .01 .02 .05 .1 .2 .5 1)")
    select_seed: int | None = Field(
        None, ge=0, description="attribution: probe seed (or task prompt seed, on the select split) the ranking is "
                                "computed on; default the judged seed + 2 (the mean reference uses + 1)")
    expect: CurveExpect | None = None

    @field_validator("sizes")
    @classmethod
    def _ascending(cls, value: list[float]) -> list[float]:
        if len(value) < 2:
            raise ValueError("give at least two sizes (an area needs two points)")
        if any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError(f"sizes must be strictly ascending, got {value}")
        return value


class CircuitControl(ControlSpec):
    """Random head sets as large as the circuit's heads (never a circuit head; its MLPs kept), as
    ``kind: ablation``'s control draws them (``random_heads``, ``match: layers``)."""

    statistic: Literal["faithfulness", "necessity"] = Field(
        "faithfulness", description="faithfulness: f of each random set; necessity: the metric's harm when it is ablated")


class CircuitClaim(ClaimBase):
    """A node set (heads, MLP blocks) is necessary / sufficient / faithful for a metric."""

    kind: Literal["circuit"]
    heads: Annotated[list[HeadPart], BeforeValidator(_as_list)] = Field(
        default_factory=list,
        description="circuit heads: 18.6 / 'L18H6' / [18, 6], {top: k, by: score} (scanned on the select seed) "
                    "or {layers: '0-3'}; a list may mix them")
    mlps: Annotated[list[Annotated[int, Field(ge=0)]], BeforeValidator(_layer_list)] = Field(
        default_factory=list, description="circuit MLP blocks by layer: [0, 3], '0-2' or 5 (needs universe: heads+mlps)")
    universe: Literal["heads", "heads+mlps"] = Field(
        "heads", description="the nodes ablated around the circuit: every head (MLPs untouched) or every head and MLP block")
    ablation: Literal["mean", "zero", "counterfactual"] = Field(
        "mean", description="mean: each node's mean output on reference inputs (probe seed + 1 / other split); zero; "
                            "counterfactual: each row takes the node's output on the same row of the probe drawn "
                            "with the reference seed (token probes only)")
    positions: Union[Literal["second_half"], Annotated[list[int], Field(min_length=1)], None] = Field(
        None, description="ablate only at these positions (negative counts from the end; second_half: the probe's "
                          "later copies); default every position")
    post_norm: Literal["frozen", "live"] = Field(
        "frozen", description="post-norm models: head edits keep the attention post-norm's clean scale (frozen) or not")
    select_seed: int | None = Field(
        None, ge=0, description="probe seed of the attention-pattern scan behind {top: k, by: score}; default judged seed + 2")
    reference: ReferenceSpec | None = None
    metric: MetricSpec
    expect: CircuitExpect
    curve: CurveSpec | None = None
    control: CircuitControl | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "CircuitClaim":
        if not self.heads and not self.mlps:
            raise ValueError("name the circuit: heads and/or mlps")
        if self.mlps and self.universe != "heads+mlps":
            raise ValueError("mlps are circuit nodes only inside universe: heads+mlps (the universe must contain the circuit)")
        task = METRICS[self.metric.name].inputs == "task"
        if self.ablation == "counterfactual" and task:
            raise ValueError("ablation: counterfactual needs a token-probe metric (task prompts differ in length); "
                             "use mean or zero with task metrics")
        if self.positions == "second_half" and task:
            raise ValueError("positions: second_half is the token probe's later copies; task metrics take a list "
                             "of positions such as [-1]")
        if task and isinstance(self.positions, list) and any(p >= 0 for p in self.positions):
            raise ValueError(f"positions {self.positions}: task prompts are left-padded, so a position counted from "
                             "the start is a different token in each row; count from the end ([-1] is the last)")
        if self.curve is not None:
            if self.curve.sizes[-1] != 1.0:
                raise ValueError("curve.sizes must end at 1 (the whole universe), as MIB's do")
            cpr = self.curve.expect.cpr if self.curve.expect is not None else None
            if cpr is not None:
                # f(1) = 1 by construction (nothing ablated): a ranking that recovers nothing below the whole
                # universe still gets the last trapezoid, (1 - k_prev) / 2. A lower bound at or under it
                # cannot fail.
                free = (1.0 - self.curve.sizes[-2]) / 2
                if cpr.op in (">=", ">", "between") and cpr.bound <= free:
                    raise ValueError(
                        f"curve.expect.cpr {cpr} cannot fail: f(1) = 1 by construction, so a ranking that recovers "
                        f"nothing below the whole universe already scores CPR {free:.4g} with these sizes (the "
                        f"last trapezoid, from {self.curve.sizes[-2]:g} to 1); bound CPR above {free:.4g} or bound CMD")
            if self.curve.ranking == "attribution" and self.universe != "heads":
                raise ValueError("curve ranking: attribution ranks heads only; use universe: heads or a ranked list")
            if self.curve.ranking == "attribution" and self.ablation != "mean":
                raise ValueError("curve ranking: attribution estimates mean-ablation effects; use ablation: mean "
                                 "or a ranked list")
            if isinstance(self.curve.ranking, list) and self.universe == "heads" and any(
                    isinstance(n, MlpRef) for n in self.curve.ranking):
                raise ValueError("the ranking lists MLP blocks but universe: heads has none")
        return self


Schema = CircuitClaim


def targets(claim: Any) -> list[Target]:
    return [Target("circuit")]


# ----------------------------------------------------------------------------- measuring


def _probe_seed(ctx: ClaimContext, claim: Any) -> int:
    if METRICS[claim.metric.name].inputs == "task":
        return int(claim.metric.seed or 0)
    return int(getattr(ctx.probe_spec, "seed", 0) or 0)


def _circuit_run(ctx: ClaimContext, claim: Any, metric: Any = None, key: tuple[Any, ...] = ("metric",)) -> Any:
    from icltest.circuits import CircuitRun

    metric = metric or claim.metric
    seed = claim.reference.seed if claim.reference is not None else None
    probe = None if METRICS[metric.name].inputs == "task" else ctx.probe_spec
    dump = probe.model_dump_json() if probe is not None else None
    cache = ("circuit", ctx.loaded.source, metric.model_dump_json(), dump, seed)

    def build() -> Any:
        try:
            return CircuitRun(ctx.session, ctx.loaded, metric, probe, seed)
        except InputError as exc:
            raise ClaimSpecError(ctx.location(key), ".".join(map(str, key)), str(exc)) from None

    return ctx.session.memo(cache, build)


def _resolve_heads(claim: Any, ctx: ClaimContext) -> list[tuple[int, int]]:
    from icltest.claims.heads import check_head, head_pair
    from icltest.scores.ranking import top_heads

    adapter = ctx.loaded.adapter
    out: set[tuple[int, int]] = set()
    for i, part in enumerate(claim.heads):
        where = ctx.location(("heads", i))
        if isinstance(part, TopHeads):
            total = adapter.n_layers * adapter.n_heads
            if part.top > total:
                raise ClaimSpecError(where, "heads.top", f"top {part.top} exceeds the model's {total} heads")
            from icltest.schema.base import ProbeSpec

            base = ctx.probe_spec if ctx.probe_spec is not None else ProbeSpec()
            seed = claim.select_seed if claim.select_seed is not None else int(getattr(base, "seed", 0)) + 2
            spec = base.model_copy(update={"seed": seed}) if getattr(base, "kind", "") == "repeated_random" else \
                ProbeSpec(seed=seed)
            try:
                run = ctx.session.pattern_run(ctx.loaded, spec)
            except InputError as exc:
                raise ClaimSpecError(ctx.location(("probe",)), "probe", str(exc)) from None
            out.update((l, h) for l, h, _ in top_heads(run.scores[part.by or "induction"], part.top))
        elif isinstance(part, HeadRange):
            for layer in part.layers:
                check_head(adapter, layer, 0, where, "heads.layers")
            for head in part.heads or range(adapter.n_heads):
                check_head(adapter, 0, head, where, "heads.heads")
                out.update((layer, head) for layer in part.layers)
        else:
            layer, head = head_pair(part)
            check_head(adapter, layer, head, where, "heads")
            out.add((layer, head))
    return sorted(out)


def _positions(claim: Any, run: Any, ctx: ClaimContext) -> tuple[int, ...] | None:
    if claim.positions is None:
        return None
    seq = int(run.inputs.tokens.shape[1])
    if claim.positions == "second_half":
        from icltest.scores.metrics import segment_positions

        probe = run.inputs.probe
        if run.inputs.params.get("kind") != "repeated_random":
            raise ClaimSpecError(ctx.location(("positions",)), "positions",
                                 "positions: second_half needs a repeated_random probe (its later copies); "
                                 "give a list of positions for other inputs")
        return tuple(segment_positions(prefix=probe.prefix, segment=probe.segment, repeats=probe.params["repeats"],
                                       part="second_half"))
    bad = [p for p in claim.positions if not -seq <= p < seq]
    if bad:
        raise ClaimSpecError(ctx.location(("positions",)), "positions",
                             f"positions {bad} are outside inputs of {seq} tokens (use -1 for the last)")
    return tuple(sorted({p % seq for p in claim.positions}))


def _check_seeds(claim: Any, ctx: ClaimContext, run: Any) -> None:
    """On the token probe a seed names the inputs: the judged probe, the head scan, the attribution
    ranking and the ablation reference must all be different probes (select on one set, judge on
    another, take means from a third). Task metrics keep them apart by split instead."""
    if run.is_task:
        return
    judged = _probe_seed(ctx, claim)
    others = {("reference", "seed"): run.reference_seed}
    if any(isinstance(p, TopHeads) for p in claim.heads):
        others[("select_seed",)] = claim.select_seed if claim.select_seed is not None else judged + 2
    if claim.curve is not None and claim.curve.ranking == "attribution":
        others[("curve", "select_seed")] = claim.curve.select_seed if claim.curve.select_seed is not None else judged + 2
    for key, seed in others.items():
        if seed == judged:
            raise ClaimSpecError(ctx.location(key), ".".join(key),
                                 f"seed {seed} is the judged probe's own seed: these inputs must differ from the "
                                 f"ones judged (the defaults are the judged seed + 1 for means, + 2 for selection)")


def _harm(direction: str, clean: float, ablated: float) -> float:
    return ablated - clean if direction == "increase" else clean - ablated


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    from icltest.circuits import Node, NodeAblation, faithfulness, universe_nodes

    adapter = ctx.loaded.adapter
    run = _circuit_run(ctx, claim)
    heads = _resolve_heads(claim, ctx)
    for i, layer in enumerate(claim.mlps):
        if not 0 <= layer < adapter.n_layers:
            raise ClaimSpecError(ctx.location(("mlps",)), "mlps",
                                 f"MLP layer {layer} out of range for this model (layers 0-{adapter.n_layers - 1})")
    _check_seeds(claim, ctx, run)
    circuit = [Node(l, h) for l, h in heads] + [Node(l) for l in sorted(set(claim.mlps))]
    universe = universe_nodes(adapter.n_layers, adapter.n_heads, claim.universe)
    inside = set(circuit)
    outside = [n for n in universe if n not in inside]
    opts = dict(method=claim.ablation, positions=_positions(claim, run, ctx), post_norm=claim.post_norm)
    ablate_c, keep_c = NodeAblation.of(circuit, **opts), NodeAblation.of(outside, **opts)
    empty = NodeAblation.of(universe, **opts)
    full, m_ablated, m_circuit, m_empty = run.values([None, ablate_c, keep_c, empty])
    f, why = faithfulness(m_circuit, full, m_empty)
    harm = run.info.harm
    direction = claim.expect.necessity.direction if claim.expect.necessity is not None else harm
    necessity = _harm(direction, full, m_ablated)
    details: dict[str, Any] = {
        "circuit": [str(n) for n in circuit], "circuit_size": len(circuit), "universe": claim.universe,
        "universe_size": len(universe), "ablation": claim.ablation,
        "positions": list(opts["positions"]) if opts["positions"] is not None else "all",
        "metric": claim.metric.model_dump(exclude_none=True), "harm_direction": harm,
        "inputs": run.inputs.label,
        "m_full": full, "m_circuit_ablated": m_ablated, "m_circuit_only": m_circuit, "m_empty": m_empty,
        "necessity": {"direction": direction, "effect": necessity},
        "sufficiency_gap": abs(m_circuit - full), "faithfulness": f,
    }
    if why:
        details["faithfulness_note"] = why
    if adapter.post_norm:
        details["post_norm"] = claim.post_norm
    if claim.ablation != "zero":
        details["reference_seed"] = run.reference_seed
        if run.is_task:
            details["reference_split"] = run.inputs.params["reference_split"]
        if claim.ablation == "counterfactual":
            details["counterfactual"] = f"row i takes each ablated node's output on row i of the probe at seed {run.reference_seed}"
    if any(isinstance(p, TopHeads) for p in claim.heads):
        details["select_seed"] = claim.select_seed if claim.select_seed is not None else _probe_seed(ctx, claim) + 2
    if claim.curve is not None:
        details.update(_curve(claim, ctx, run, universe, full, m_empty, opts))
    if claim.control is not None:
        details["control"] = _control(claim, ctx, run, heads, circuit, universe, full, m_empty, f, necessity,
                                      direction, opts)
    e = claim.expect
    if e.faithfulness is not None:
        value, unit = f, "faithfulness f"
    elif e.necessity is not None:
        value, unit = necessity, f"{claim.metric.name} {direction} when the circuit is ablated"
    else:
        value, unit = abs(m_circuit - full), f"|m(C) - m(full)| ({claim.metric.name})"
    return Measurement(value, unit, details, run.inputs.label, run.inputs.params.get("seed"))


def _ranking(claim: Any, ctx: ClaimContext, run: Any, universe: list) -> tuple[dict, dict[str, Any]]:
    """Scores per universe node (higher = more important) and a record of where they came from."""
    from icltest.circuits import Node, head_scores

    ranking = claim.curve.ranking
    if ranking != "attribution":
        listed = [Node(n.mlp) if isinstance(n, MlpRef) else Node(n.layer, n.head) for n in ranking]
        unknown = [str(n) for n in listed if n not in set(universe)]
        if unknown:
            raise ClaimSpecError(ctx.location(("curve", "ranking")), "curve.ranking",
                                 f"nodes {unknown} are not in this model's universe ({claim.universe}, "
                                 f"{ctx.loaded.adapter.n_layers} layers x {ctx.loaded.adapter.n_heads} heads)")
        order = list(dict.fromkeys(listed)) + [n for n in universe if n not in set(listed)]
        return {n: float(len(order) - i) for i, n in enumerate(order)}, {"ranking": "list"}
    seed = claim.curve.select_seed if claim.curve.select_seed is not None else _probe_seed(ctx, claim) + 2
    if run.is_task:
        select = _circuit_run(ctx, claim, claim.metric.model_copy(update={"split": "select", "seed": seed}),
                              ("curve", "ranking"))
    else:
        from icltest.schema.base import ProbeSpec

        probe = (ctx.probe_spec or ProbeSpec()).model_copy(update={"seed": seed})
        key = ("circuit-select", ctx.loaded.source, claim.metric.model_dump_json(), probe.model_dump_json())

        def build() -> Any:
            from icltest.circuits import CircuitRun

            return CircuitRun(ctx.session, ctx.loaded, claim.metric, probe)

        select = ctx.session.memo(key, build)
    scores = ctx.session.memo(("circuit-attribution", ctx.loaded.source, select.inputs.label, claim.metric.name),
                              lambda: head_scores(select))
    return scores, {"ranking": "attribution patching (heads)", "ranking_inputs": select.inputs.label}


def _curve(claim: Any, ctx: ClaimContext, run: Any, universe: list, full: float, empty: float,
           opts: dict) -> dict[str, Any]:
    from icltest.circuits import NodeAblation, curve_areas, faithfulness, order_nodes, size_counts

    scores, record = _ranking(claim, ctx, run, universe)
    sizes = claim.curve.sizes
    counts = size_counts(sizes, len(universe))
    curves: dict[str, list[float]] = {}
    kept: dict[str, list[list[str]]] = {}
    for name, absolute in (("cpr", False), ("cmd", True)):
        order = order_nodes(scores, absolute)
        variants = []
        for n in counts:
            top = set(order[:n])
            variants.append(NodeAblation.of([u for u in universe if u not in top], **opts))
        values = run.values(variants)
        curves[name] = [faithfulness(v, full, empty)[0] for v in values]
        kept[name] = [[str(u) for u in order[:n]] for n in counts]
    cpr = curve_areas(sizes, curves["cpr"])[0]
    cmd = curve_areas(sizes, curves["cmd"])[1]
    first = next((counts[i] for i, v in enumerate(curves["cpr"]) if v >= 0.8), None)
    top_scores = sorted(scores.items(), key=lambda kv: -kv[1])[:10]
    return {
        "cpr": cpr, "cmd": cmd, **record,
        "curve": {"sizes": sizes, "nodes": counts, "f_cpr_order": curves["cpr"], "f_cmd_order": curves["cmd"],
                  "x": "nominal fraction k of the universe (MIB; linear trapezoid, no clipping)",
                  "orders": "CPR: signed score, most helpful first; CMD: |score| (as MIB)",
                  "nodes_to_f_0.8": first, "top_nodes": [{"node": str(n), "score": round(s, 4)} for n, s in top_scores],
                  "circuit_at_each_size": kept["cpr"][:6]},
        "sweeps": [
            {"name": "faithfulness over circuit size (CPR order)", "x": "fraction of universe", "y": "faithfulness",
             "points": [[k, v] for k, v in zip(sizes, curves["cpr"])],
             "reference": {"full model": 1.0, "empty circuit": 0.0}},
            {"name": "faithfulness over circuit size (CMD order, |score|)", "x": "fraction of universe",
             "y": "faithfulness", "points": [[k, v] for k, v in zip(sizes, curves["cmd"])],
             "reference": {"full model": 1.0, "empty circuit": 0.0}},
        ],
    }


def _control(claim: Any, ctx: ClaimContext, run: Any, heads: list, circuit: list, universe: list, full: float,
             empty: float, f: float, necessity: float, direction: str, opts: dict) -> dict[str, Any]:
    from icltest.circuits import Node, NodeAblation, faithfulness
    from icltest.claims.ablation import control_draws
    from icltest.scores.control import control_summary

    control = claim.control
    if not heads:
        raise ClaimSpecError(ctx.location(("control",)), "control", "a control draws random heads: the circuit has none")
    count, draws = control_draws(control, ctx, heads)
    mlps = [n for n in circuit if not n.is_head]
    sets = [[Node(l, h) for l, h in d] + mlps for d in draws]
    if control.statistic == "faithfulness":
        variants = [NodeAblation.of([u for u in universe if u not in set(s)], **opts) for s in sets]
        stats = [faithfulness(v, full, empty)[0] for v in run.values(variants)]
        target = f
    else:
        variants = [NodeAblation.of(s, **opts) for s in sets]
        stats = [_harm(direction, full, v) for v in run.values(variants)]
        target = necessity
    s = control_summary(target, stats)
    return {"statistic": control.statistic, "count": count, "match": control.match or "any layer", "n": s["n"],
            "seed": control.seed, "draws": [{"heads": [f"L{l}H{h}" for l, h in d], "value": v} for d, v in zip(draws, stats)],
            "mean": s["mean"], "sd": s["sd"], "max": s["max"], "p": s["p"], "z": s["z"], "position": s["position"],
            "effect_ratio": s["ratio"], "ratio_note": s["ratio_note"]}


# ----------------------------------------------------------------------------- judging


def _num(x: float) -> str:
    return "nan" if x != x else f"{x:.4g}"


def judge(claim: Any, target: Target, m: Measurement) -> Verdict:
    d, e = m.details, claim.expect
    checks: list[bool] = []
    expects: list[str] = []
    parts = [f"{d['circuit_size']} nodes of {d['universe_size']} ({d['universe']}, {d['ablation']} ablation): "
             f"m(full) {_num(d['m_full'])}, m(C ablated) {_num(d['m_circuit_ablated'])}, "
             f"m(C only) {_num(d['m_circuit_only'])}, m(empty) {_num(d['m_empty'])}"]
    if e.necessity is not None:
        ok = e.necessity.comparison.check(d["necessity"]["effect"])
        checks.append(ok)
        expects.append(f"necessity {e.necessity.direction} {e.necessity.comparison}")
        parts.append(f"necessity: {e.necessity.direction} {_num(d['necessity']['effect'])}" + ("" if ok else " FAILED"))
    if e.faithfulness is not None:
        ok = e.faithfulness.check(d["faithfulness"])  # NaN never passes
        checks.append(ok)
        expects.append(f"faithfulness {e.faithfulness}")
        parts.append(f"faithfulness f = {_num(d['faithfulness'])}" + ("" if ok else " FAILED")
                     + (f" ({d['faithfulness_note']})" if d.get("faithfulness_note") else ""))
    if e.sufficiency is not None:
        ok = e.sufficiency.check(d["sufficiency_gap"])
        checks.append(ok)
        expects.append(f"sufficiency |m(C) - m(full)| {e.sufficiency}")
        parts.append(f"|m(C) - m(full)| = {_num(d['sufficiency_gap'])}" + ("" if ok else " FAILED"))
    if claim.curve is not None:
        parts.append(f"CPR {_num(d['cpr'])}, CMD {_num(d['cmd'])} over {len(claim.curve.sizes)} sizes"
                     + (f"; f >= 0.8 from {d['curve']['nodes_to_f_0.8']} nodes" if d["curve"]["nodes_to_f_0.8"] else
                        "; f never reaches 0.8 below the full universe"))
        if claim.curve.expect is not None:
            for key in ("cpr", "cmd"):
                bound = getattr(claim.curve.expect, key)
                if bound is not None:
                    ok = bound.check(d[key])
                    checks.append(ok)
                    expects.append(f"{key.upper()} {bound}")
                    if not ok:
                        parts.append(f"{key.upper()} {_num(d[key])} FAILED ({bound})")
    if claim.control is not None:
        c, ce = d["control"], claim.control.expect
        for key in ("p", "z", "effect_ratio", "mean"):
            bound = getattr(ce, key)
            if bound is not None:
                checks.append(bound.check(c[key]))
                expects.append(f"control {key} {bound}")
        parts.append(f"{c['n']} random sets of {c['count']} heads ({c['statistic']}): mean {_num(c['mean'])}, "
                     f"max {_num(c['max'])}; {c['position']}; p = {_num(c['p'])}, z = {_num(c['z'])}")
    return Verdict(all(checks), "; ".join(expects), "; ".join(parts), m)


def baseline_direction(claim: Any) -> str | None:
    """Which way is better for this claim's value against a saved baseline (see :func:`measure`).

    The value is faithfulness f when ``expect.faithfulness`` is set (higher: the circuit recovers
    more of the model), else the necessity effect when ``expect.necessity`` is set (higher: ablating
    the circuit harms the metric more), else the sufficiency gap |m(C) - m(full)| (lower). A
    ``sufficiency: "<= 0.1"`` next to a necessity bound says nothing about the value's direction.
    """
    from icltest.baseline import first_direction

    e = claim.expect
    if e.faithfulness is not None:
        return first_direction(e.faithfulness, default="higher")
    if e.necessity is not None:
        return first_direction(e.necessity.comparison, default="higher")
    return first_direction(e.sufficiency, default="lower")
