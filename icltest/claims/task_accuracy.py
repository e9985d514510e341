"""`kind: task_accuracy` — first-token accuracy (or answer probability) on a shipped few-shot task.

With ``baseline: {shots: 0, expect: {gain: ...}}`` the claim is about in-context learning itself:
the k-shot value must beat the 0-shot value by the gain, on the same queries (same seed).
"""
from __future__ import annotations

from typing import Any

from icltest.claims.base import ClaimContext, ClaimSpecError, Measurement, Target, Verdict


def targets(claim: Any) -> list[Target]:
    return [Target(f"{claim.task}-{claim.shots}shot")]


def _metric(claim: Any, shots: int) -> Any:
    from icltest.schema.spec import MetricSpec

    return MetricSpec(name=claim.metric, task=claim.task, shots=shots, n=claim.n, seed=claim.seed,
                      chat_template=claim.chat_template)


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    from icltest.behaviour import session_metric_run

    try:
        run = session_metric_run(ctx.session, ctx.loaded, _metric(claim, claim.shots), None, None)
        value = run.value()
        details: dict[str, Any] = {"task": claim.task, "shots": claim.shots, "n": claim.n, "metric": claim.metric,
                                   "inputs": run.inputs.label,
                                   "answer_id_fallbacks": run.inputs.params.get("answer_id_fallbacks")}
        if claim.baseline is not None:
            base = session_metric_run(ctx.session, ctx.loaded, _metric(claim, claim.baseline.shots), None, None)
            details["baseline"] = {"shots": claim.baseline.shots, "value": round(base.value(), 4),
                                   "gain": round(value - base.value(), 4)}
    except ValueError as exc:
        raise ClaimSpecError(ctx.location(("task",)), "task", str(exc)) from None
    return Measurement(value, claim.metric, details, run.inputs.label, claim.seed)


def judge(claim: Any, target: Target, m: Measurement) -> Verdict:
    passed = claim.expect.check(m.value)
    expect = str(claim.expect)
    summary = f"{claim.metric} on {claim.task} at {claim.shots} shots = {m.value:.4f} (expected {claim.expect})"
    if claim.baseline is not None:
        b = m.details["baseline"]
        gain_ok = claim.baseline.expect.gain.check(b["gain"])
        passed = passed and gain_ok
        expect += f"; gain over {b['shots']} shots {claim.baseline.expect.gain}"
        summary += (f"; {b['shots']} shots = {b['value']:.4f}, gain {b['gain']:.4f} "
                    f"(expected {claim.baseline.expect.gain})" + ("" if gain_ok else " FAILED"))
    return Verdict(passed, expect, summary, m)
