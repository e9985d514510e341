"""`kind: head_score` — named heads, a population of heads, or the top-k heads meet a score bound.

- a list of heads expands to one pytest item per head (`induction-heads[L18H6]`);
- a layer range is one item that every head in it must satisfy; the reported value is the
  head closest to failing (smallest margin), and every violating head is listed;
- `top: k` is one model-agnostic item: the k best heads by `by` must meet the bound.
"""
from __future__ import annotations

from typing import Any, Literal

from icltest.claims.base import ClaimContext, Measurement, Target, Verdict
from icltest.claims.heads import check_head, head_name, head_pair, pattern_run, resolve_selection, top_table
from icltest.report.maps import head_map
from icltest.schema.base import ClaimBase, Expectation, HeadSelection, ScoreName


class HeadScoreClaim(ClaimBase):
    """Heads meet a bound on an attention-pattern score (one item per listed head)."""

    kind: Literal["head_score"]
    score: ScoreName
    heads: HeadSelection
    expect: Expectation


Schema = HeadScoreClaim

POPULATION_RULE = ("every head meets the bound (no multiple-comparison correction needed: a bound, not a test; "
                   "each head's score is a deterministic measurement on the seeded probe, no p-value)")
"""How a one-verdict-over-many-heads claim treats its many heads, stated in every such result."""


def targets(claim: Any) -> list[Target]:
    heads = claim.heads
    if isinstance(heads, list):
        pairs = [head_pair(ref) for ref in heads]
        return [Target(head_name(*p), (p,)) for p in pairs]
    if hasattr(heads, "top"):
        return [Target(f"top{heads.top}")]
    return [Target(f"layers{heads.text}")]


def selected_heads(claim: Any, target: Target, ctx: ClaimContext) -> list[tuple[int, int]]:
    """Resolve the target's heads against the model (range-checked, pointing at the spec)."""
    heads = claim.heads
    if isinstance(heads, list):  # one item per listed head: only this target's head
        index = [head_pair(r) for r in heads].index(target.heads[0])
        check_head(ctx.loaded.adapter, *target.heads[0], ctx.location(("heads", index)), "heads")
        return list(target.heads)
    return resolve_selection(heads, ctx, ("heads",), default_score=claim.score)


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    run = pattern_run(ctx)
    table = run.scores[claim.score]
    heads = selected_heads(claim, target, ctx)
    values = {head_name(l, h): float(table[l, h]) for l, h in heads}
    # The headline value is the head closest to failing, so one number tells the story.
    worst = min(values, key=lambda name: claim.expect.margin(values[name]))
    details: dict[str, Any] = {
        "score": claim.score,
        "head": worst,
        "heads": {k: round(v, 4) for k, v in values.items()},
        "top_heads": top_table(table),
        "forward_seconds": run.seconds,
        "maps": [head_map(claim.score, "score", run.probe.label, f"{claim.score} score", table,
                          _marked(claim, heads, values, worst))],
    }
    if len(values) > 1:
        details["violations"] = {k: round(v, 4) for k, v in values.items() if not claim.expect.check(v)}
        details["multiple_comparisons"] = POPULATION_RULE
    return Measurement(values[worst], f"{claim.score} score", details, run.probe.label, run.probe.params.get("seed"))


def _marked(claim: Any, heads: list[tuple[int, int]], values: dict[str, float], worst: str) -> list[tuple[int, int]]:
    """The heads a report outlines on the score's heatmap: listed or top-k heads all; for a layer
    range (a population bound) the head closest to failing and every violating head, not the
    whole range, so the outline shows where the bound is tight."""
    if isinstance(claim.heads, list) or hasattr(claim.heads, "top"):
        return heads
    return [p for p in heads if head_name(*p) == worst or not claim.expect.check(values[head_name(*p)])]


def judge(claim: Any, target: Target, m: Measurement) -> Verdict:
    passed = claim.expect.check(m.value)
    heads = m.details["heads"]
    if len(heads) == 1:
        summary = f"{m.unit} of {m.details['head']} = {m.value:.4f} (expected {claim.expect})"
    else:
        bad = m.details.get("violations", {})
        summary = (
            f"{len(heads) - len(bad)}/{len(heads)} heads meet {claim.score} {claim.expect}; "
            f"closest to failing: {m.details['head']} = {m.value:.4f}"
        )
        if bad:
            shown = ", ".join(f"{k}={v:.3f}" for k, v in sorted(bad.items(), key=lambda kv: -abs(kv[1]))[:8])
            summary += f"; violating: {shown}" + (" ..." if len(bad) > 8 else "")
    return Verdict(passed, str(claim.expect), summary, m)
