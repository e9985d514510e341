"""`kind: head_rank` — a head's rank among all heads by a score (1 = highest)."""
from __future__ import annotations

from typing import Any, Literal

from icltest.claims.base import ClaimContext, Measurement, Target, Verdict
from icltest.claims.heads import check_head, head_name, head_pair, pattern_run, top_table
from icltest.report.maps import head_map
from icltest.schema.base import ClaimBase, Head, ScoreName
from icltest.schema.blocks import RankExpect


class HeadRankClaim(ClaimBase):
    """A head's rank among all heads by a score (1 = highest)."""

    kind: Literal["head_rank"]
    score: ScoreName
    head: Head
    expect: RankExpect



def targets(claim: Any) -> list[Target]:
    pair = head_pair(claim.head)
    return [Target(head_name(*pair), (pair,))]


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    from icltest.scores.ranking import rank_of

    layer, head = target.heads[0]
    check_head(ctx.loaded.adapter, layer, head, ctx.location(("head",)), "head")
    run = pattern_run(ctx)
    table = run.scores[claim.score]
    rank = rank_of(table, layer, head)
    details = {
        "score": claim.score,
        "head": head_name(layer, head),
        "score_value": round(float(table[layer, head]), 4),
        "n_heads_total": int(table.numel()),
        "top_heads": top_table(table),
        "maps": [head_map(claim.score, "score", run.probe.label, f"{claim.score} score", table, [(layer, head)])],
    }
    return Measurement(float(rank), "rank", details, run.probe.label, run.probe.params.get("seed"))


def judge(claim: Any, target: Target, m: Measurement) -> Verdict:
    expect = claim.expect.rank
    passed = expect.check(m.value)
    top = ", ".join(f"{t['head']}={t['value']:.3f}" for t in m.details["top_heads"][:3])
    summary = (
        f"{m.details['head']} ranks {int(m.value)} of {m.details['n_heads_total']} by {claim.score} "
        f"(score {m.details['score_value']:.4f}; expected rank {expect}); top: {top}"
    )
    return Verdict(passed, f"rank {expect}", summary, m)


Schema = HeadRankClaim  # the claim-kind contract: Schema + targets / measure / judge


def baseline_direction(claim: Any) -> str | None:
    """The value is the rank (1 = highest score): the bound decides, else lower."""
    from icltest.baseline import first_direction

    return first_direction(claim.expect.rank, default="lower")
