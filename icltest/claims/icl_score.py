"""`kind: icl_score` — Olsson et al.'s in-context-learning score on a probe.

Loss at a late token minus loss at an early token (negative: more context helps). On natural
text it measures general in-context learning; on repeated random tokens the late token sits in a
later copy, so it measures copying from context (induction).
"""
from __future__ import annotations

from typing import Any

from icltest.claims.base import ClaimContext, ClaimSpecError, Measurement, Target, Verdict


def targets(claim: Any) -> list[Target]:
    kind = getattr(claim.probe, "kind", None) if claim.probe is not None else None
    return [Target(kind or "probe")]


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    from icltest.behaviour import icl_positions, session_metric_run
    from icltest.schema.spec import MetricSpec

    metric = MetricSpec(name="icl_score", late=claim.late, early=claim.early, window=claim.window)
    try:
        run = session_metric_run(ctx.session, ctx.loaded, metric, ctx.probe_spec, None)
        late, early = icl_positions(run.inputs.probe, claim.late, claim.early)
        value = run.value()
    except ValueError as exc:
        raise ClaimSpecError(ctx.location(("late",) if claim.late else ("probe",)), "icl_score", str(exc)) from None
    details = {"late": late, "early": early, "window": claim.window, "inputs": run.inputs.label,
               "seq_len": int(run.inputs.tokens.shape[1])}
    return Measurement(value, "icl score (nats)", details, run.inputs.label, run.inputs.params.get("seed"))


def judge(claim: Any, target: Target, m: Measurement) -> Verdict:
    d = m.details
    summary = (f"loss at token {d['late']} minus loss at token {d['early']}"
               + (f" (mean over {d['window']} positions each)" if d["window"] > 1 else "")
               + f" = {m.value:.4f} nats (expected {claim.expect})")
    return Verdict(claim.expect.check(m.value), str(claim.expect), summary, m)
