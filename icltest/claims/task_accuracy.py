"""`kind: task_accuracy` — first-token accuracy (or answer probability) on a shipped few-shot task.

With ``baseline: {shots: 0, expect: {gain: ...}}`` the claim is about in-context learning itself:
the k-shot value must beat the 0-shot value by the gain, on the same queries (same seed).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from icltest.claims.base import ClaimContext, ClaimSpecError, Measurement, Target, Verdict
from icltest.errors import InputError
from icltest.schema.base import ClaimBase, Expectation, _check_task
from icltest.schema.blocks import BaselineSpec, ChatTemplate


class TaskAccuracyClaim(ClaimBase):
    """First-token accuracy (or answer probability) on a few-shot task, optionally vs a baseline shot count."""

    kind: Literal["task_accuracy"]
    task: str
    shots: int = Field(0, ge=0, le=64)
    n: int = Field(48, ge=1, le=4096)
    seed: int = Field(0, ge=0)
    chat_template: ChatTemplate = "no"
    metric: Literal["accuracy", "answer_prob"] = "accuracy"
    expect: Expectation
    baseline: BaselineSpec | None = None

    _check_task = field_validator("task")(classmethod(lambda cls, v: _check_task(v)))


Schema = TaskAccuracyClaim


def targets(claim: Any) -> list[Target]:
    return [Target(f"{claim.task}-{claim.shots}shot")]


def _metric(claim: Any, shots: int) -> Any:
    from icltest.schema.spec import MetricSpec

    return MetricSpec(name=claim.metric, task=claim.task, shots=shots, n=claim.n, seed=claim.seed,
                      chat_template=claim.chat_template)


def _run(claim: Any, shots: int, ctx: ClaimContext, key: tuple[str, ...]) -> Any:
    """The shared run for ``shots``; a task that cannot serve is an error at ``key`` in the spec."""
    from icltest.runs.run import session_run

    try:
        return session_run(ctx.session, ctx.loaded, _metric(claim, shots), None, None)
    except InputError as exc:  # the task file, its shot count or the chat template cannot serve
        raise ClaimSpecError(ctx.location(key), ".".join(key), str(exc)) from None


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    run = _run(claim, claim.shots, ctx, ("task",))
    value = run.value()
    details: dict[str, Any] = {"task": claim.task, "shots": claim.shots, "n": claim.n, "metric": claim.metric,
                               "inputs": run.inputs.label,
                               "answer_id_fallbacks": run.inputs.params.get("answer_id_fallbacks")}
    if claim.baseline is not None:
        base = _run(claim, claim.baseline.shots, ctx, ("baseline", "shots"))
        details["baseline"] = {"shots": claim.baseline.shots, "value": round(base.value(), 4),
                               "gain": round(value - base.value(), 4)}
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
