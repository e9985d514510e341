"""`kind: ablation` — removing heads (or blocks) moves a metric, and random heads do not.

The target effect is compared with its expectation (``increase`` = ablated - clean, ``drop`` =
clean - ablated), then, when a ``control`` is given, with the effects of ablating the same number
of random heads (seeded draws that never include a target): the claim is about *these* heads only
if they matter more than arbitrary ones. ``also`` judges the same ablation on other metrics, e.g.
"open-book recall drops, closed-book recall does not".
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from icltest.claims.base import ClaimContext, ClaimSpecError, Measurement, Target, Verdict
from icltest.errors import InputError
from icltest.claims.heads import resolve_selection, selection_id
from icltest.schema.base import ClaimBase, HeadSelection
from icltest.schema.blocks import AlsoList, ControlSpec, EffectExpect, LayerSelection, MetricSpec, ReferenceSpec


class AblationClaim(ClaimBase):
    """Removing heads (or whole attention / MLP blocks) moves a metric, more than random heads do."""

    kind: Literal["ablation"]
    heads: HeadSelection | None = None
    block: LayerSelection | None = Field(None, description="ablate whole blocks instead: {layers: '3-4', part: mlp}")
    method: Literal["zero", "mean", "resample"] = "zero"
    post_norm: Literal["frozen", "live"] = Field(
        "frozen", description="post-norm models (Gemma 2/3): keep the attention post-norm's scale at its clean value "
        "so a head ablation removes exactly that head's share of attn_out (frozen), or let the norm rescale (live)")
    reference: ReferenceSpec | None = None
    metric: MetricSpec
    expect: EffectExpect
    control: ControlSpec | None = None
    also: AlsoList = Field(default_factory=list)

    @model_validator(mode="after")
    def _what_to_ablate(self) -> "AblationClaim":
        if (self.heads is None) == (self.block is None):
            raise ValueError("give exactly one of heads (attention heads) or block ({layers:, part:})")
        if self.control is not None and self.heads is None:
            raise ValueError("control (random heads) applies to head ablations only")
        if self.block is not None and self.method == "resample":
            raise ValueError("block ablation supports zero and mean")
        return self


Schema = AblationClaim


def targets(claim: Any) -> list[Target]:
    if claim.heads is not None:
        return [Target(selection_id(claim.heads))]
    return [Target(f"{claim.block.part}-layers" + _layers_text(claim.block.layers))]


def _layers_text(layers: list[int]) -> str:
    values = sorted(layers)
    if len(values) > 1 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ",".join(map(str, values))


def _effect(direction: str, clean: float, ablated: float) -> float:
    return ablated - clean if direction == "increase" else clean - ablated


def _run(ctx: ClaimContext, metric: Any, claim: Any, key: tuple[Any, ...] = ("metric",)) -> Any:
    from icltest.runs.run import session_run

    seed = claim.reference.seed if claim.reference is not None else None
    try:
        run = session_run(ctx.session, ctx.loaded, metric, ctx.probe_spec, seed)
        if claim.method == "resample":
            run.check_resample()
        return run
    except InputError as exc:
        raise ClaimSpecError(ctx.location(key), ".".join(map(str, key)), str(exc)) from None


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    from icltest.runs.run import Ablation

    adapter = ctx.loaded.adapter
    if claim.heads is not None:
        heads = resolve_selection(claim.heads, ctx, ("heads",))
        ablation = Ablation(heads=tuple(heads), method=claim.method, post_norm=claim.post_norm)
    else:
        bad = [l for l in claim.block.layers if not 0 <= l < adapter.n_layers]
        if bad:
            raise ClaimSpecError(ctx.location(("block", "layers")), "block.layers",
                                 f"layers {bad} out of range for this model (layers 0-{adapter.n_layers - 1})")
        heads = []
        ablation = Ablation(layers=tuple(claim.block.layers), part=claim.block.part, method=claim.method)
    run = _run(ctx, claim.metric, claim)
    clean, ablated = run.value(), run.value(ablation)
    direction = claim.expect.direction
    effect = _effect(direction, clean, ablated)
    details: dict[str, Any] = {
        "ablation": ablation.label(), "method": claim.method, "metric": claim.metric.model_dump(exclude_none=True),
        "inputs": run.inputs.label, "clean": round(clean, 4), "ablated": round(ablated, 4),
        "direction": direction, "effect": round(effect, 4),
    }
    if claim.heads is not None:  # what "ablating a head" meant, recorded with every result
        details["post_norm"] = claim.post_norm if adapter.post_norm else "none (pre-norm model)"
    if claim.method != "zero":
        details["reference_seed"] = run.reference_seed
    if claim.control is not None:
        details["control"] = _control(claim, ctx, run, heads, effect, clean)
    also = []
    for i, extra in enumerate(claim.also):
        metric = claim.metric.merged(extra, extra.name)
        other = _run(ctx, metric, claim, ("also", i))
        c, a = other.value(), other.value(ablation)
        e = _effect(extra.expect.direction, c, a)
        also.append({"metric": metric.model_dump(exclude_none=True), "inputs": other.inputs.label, "clean": round(c, 4),
                     "ablated": round(a, 4), "direction": extra.expect.direction, "effect": round(e, 4),
                     "expect": f"{extra.expect.direction} {extra.expect.comparison}",
                     "passed": extra.expect.comparison.check(e)})
    if also:
        details["also"] = also
    unit = f"{claim.metric.name} {direction}"
    probe = run.inputs.label
    return Measurement(effect, unit, details, probe, run.inputs.params.get("seed"))


def control_draws(control: Any, ctx: ClaimContext, heads: list) -> tuple[int, list[list[tuple[int, int]]]]:
    """(heads per draw, the draws) a :class:`ControlSpec` asks for: ``random_heads`` heads from any
    layer, or ``match: layers``; never a target. Errors point at the claim's ``control``."""
    from icltest.scores.control import draw_layer_matched_heads, draw_random_heads

    adapter = ctx.loaded.adapter
    count = len(heads) if control.random_heads == "same_count" else int(control.random_heads)
    try:
        if control.match == "layers":
            return count, draw_layer_matched_heads(adapter.n_heads, heads, draws=control.draws, seed=control.seed)
        return count, draw_random_heads(adapter.n_layers, adapter.n_heads, count, exclude=heads,
                                        draws=control.draws, seed=control.seed)
    except InputError as exc:
        raise ClaimSpecError(ctx.location(("control",)), "control", str(exc)) from None


def _control(claim: Any, ctx: ClaimContext, run: Any, heads: list, effect: float, clean: float) -> dict[str, Any]:
    """Ablate ``draws`` seeded random head sets (never a target) and place the target among them."""
    from icltest.runs.run import Ablation
    from icltest.scores.control import control_summary

    control, direction = claim.control, claim.expect.direction
    count, draws = control_draws(control, ctx, heads)
    variants = [Ablation(heads=tuple(d), method=claim.method, post_norm=claim.post_norm) for d in draws]
    effects = [_effect(direction, clean, v) for v in run.values(variants)]  # stacked in the batch
    s = control_summary(effect, effects)
    # Statistics are kept unrounded: verdicts compare them, and rounding could move one across a bound.
    return {
        "count": count, "match": control.match or "any layer", "n": s["n"], "seed": control.seed,
        "draws": [{"heads": [f"L{l}H{h}" for l, h in d], "effect": round(e, 4)} for d, e in zip(draws, effects)],
        "mean": s["mean"], "sd": s["sd"], "se": s["se"], "min": s["min"], "max": s["max"],
        "above": s["above"], "p": s["p"], "z": s["z"], "position": s["position"],
        "effect_ratio": s["ratio"], "ratio_note": s["ratio_note"],
        "multiple_comparisons": "one test per item (the target heads ablated together): no correction needed",
    }


def _stat(x: float) -> str:
    return "nan" if x != x else ("+inf" if x == float("inf") else ("-inf" if x == float("-inf") else f"{x:.3g}"))


def judge(claim: Any, target: Target, m: Measurement) -> Verdict:
    d = m.details
    comparison = claim.expect.comparison
    checks = [comparison.check(m.value)]
    expect = f"{d['direction']} {comparison}"
    summary = (f"{d['ablation']}: {claim.metric.name} {d['clean']:.4f} -> {d['ablated']:.4f} "
               f"({d['direction']} {m.value:.4f}; expected {comparison})")
    if claim.control is not None:
        c, ce = d["control"], claim.control.expect
        for key, label in (("p", "p"), ("z", "z"), ("effect_ratio", "ratio"), ("mean", "mean")):
            bound = getattr(ce, key)
            if bound is not None:  # NaN (no evidence) never passes
                checks.append(bound.check(c[key]))
                expect += f"; control {label} {bound}"
        ratio = _stat(c["effect_ratio"]) if c["ratio_note"] is None else f"n/a ({c['ratio_note']})"
        matched = ", layer-matched" if c["match"] == "layers" else ""
        summary += (f"; {c['n']} random draws of {c['count']} heads{matched}: mean {c['mean']:.4f} "
                    f"(sd {c['sd']:.4f}, max {c['max']:.4f}); {c['position']}; p = {_stat(c['p'])}, "
                    f"z = {_stat(c['z'])}, N = {c['n']}; ratio {ratio}")
    for extra in d.get("also", []):
        checks.append(extra["passed"])
        expect += f"; also {extra['metric'].get('task') or extra['metric']['name']} {extra['expect']}"
        summary += (f"; also {extra['metric'].get('task') or extra['metric']['name']}: {extra['clean']:.4f} -> "
                    f"{extra['ablated']:.4f} ({extra['direction']} {extra['effect']:.4f}, expected {extra['expect']})"
                    + ("" if extra["passed"] else " FAILED"))
    return Verdict(all(checks), expect, summary, m)
