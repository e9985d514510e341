"""`kind: task_accuracy` — answer accuracy (or probability) on a few-shot task, on held-out items.

Accuracy is exact match of the answer's first token, except where that token is shared with
another answer of the task on this tokenizer: those prompts are scored on every answer token
(see ``icltest.probes.prompts``); the count is recorded. Prompts come from the ``test`` split of
the task's items unless the claim says ``split: select``.

A reference condition makes the claim about learning from the demonstrations rather than about the
prompt format: ``reference: {shots: 0, ...}`` compares with the bare query (small models often
score 0.000 there just because nothing shows them the format), and ``reference: {shots: 5,
shuffled_labels: true, ...}`` with the same queries and the same demonstrations whose outputs are
permuted among themselves, so that none keeps its own: the format and the inputs stay, only the
input -> output mapping is gone. The gain is the claim's value minus the reference's. (The key
``baseline:`` is the tolerance against a saved release baseline, common to every claim kind.)
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from icltest.claims.base import ClaimContext, ClaimSpecError, Measurement, Target, Verdict
from icltest.errors import InputError
from icltest.schema.base import ClaimBase, Expectation, _check_task, _Strict
from icltest.schema.blocks import ChatTemplate, GainExpect


class TaskReference(_Strict):
    """The same queries at another shot count, or with shuffled labels, and the gain expected over it."""

    shots: int | None = Field(None, ge=0, le=64, description="default 0; with shuffled_labels, the claim's shots")
    shuffled_labels: bool = Field(
        False, description="the claim's own demonstrations with their outputs permuted among themselves (none kept)")
    expect: GainExpect


class TaskAccuracyClaim(ClaimBase):
    """Answer accuracy (or answer probability) on a few-shot task, optionally against a reference condition."""

    kind: Literal["task_accuracy"]
    task: str
    shots: int = Field(0, ge=0, le=64)
    n: int = Field(48, ge=1, le=4096)
    seed: int = Field(0, ge=0)
    split: Literal["select", "test"] = Field(
        "test", description="items to judge on (select: the ones heads are chosen on)")
    chat_template: ChatTemplate = "no"
    metric: Literal["accuracy", "answer_prob"] = "accuracy"
    expect: Expectation
    reference: TaskReference | None = Field(
        None, description="a reference condition (another shot count, or shuffled labels) and the gain expected over it")

    _check_task = field_validator("task")(classmethod(lambda cls, v: _check_task(v)))

    @field_validator("baseline", mode="before")
    @classmethod
    def _old_baseline(cls, value: Any) -> Any:
        """``baseline: {shots: 0, expect: ...}`` was this kind's reference condition; say where it went."""
        if isinstance(value, dict) and set(value) & {"shots", "shuffled_labels", "expect"}:
            raise ValueError("`baseline:` is the release-baseline tolerance ({max_drop, direction}); the zero-shot or "
                             "shuffled-label reference condition is now `reference: {shots: 0, expect: {gain: ...}}` "
                             "(same fields)")
        return value

    @field_validator("reference")
    @classmethod
    def _reference_shots(cls, value: TaskReference | None, info: ValidationInfo) -> TaskReference | None:
        if value is None:
            return value
        shots = info.data.get("shots", 0)
        if not value.shuffled_labels:
            return value if value.shots is not None else value.model_copy(update={"shots": 0})
        if value.shots is not None and value.shots != shots:
            raise ValueError(f"a shuffled-label reference uses the claim's own demonstrations: shots must be {shots} "
                             f"(the claim's) or left out, got {value.shots}")
        if shots < 2:
            raise ValueError(f"shuffled_labels needs at least 2 shots to permute; the claim has shots: {shots}")
        return value.model_copy(update={"shots": shots})


Schema = TaskAccuracyClaim


def targets(claim: Any) -> list[Target]:
    return [Target(f"{claim.task}-{claim.shots}shot")]


def _metric(claim: Any, shots: int, shuffled: bool = False) -> Any:
    from icltest.schema.spec import MetricSpec

    return MetricSpec(name=claim.metric, task=claim.task, shots=shots, n=claim.n, seed=claim.seed,
                      chat_template=claim.chat_template, split=claim.split, shuffled_labels=shuffled or None)


def _run(claim: Any, shots: int, ctx: ClaimContext, key: tuple[str, ...], shuffled: bool = False) -> Any:
    """The shared run for ``shots``; a task that cannot serve is an error at ``key`` in the spec."""
    from icltest.runs.run import session_run

    try:
        return session_run(ctx.session, ctx.loaded, _metric(claim, shots, shuffled), None, None)
    except InputError as exc:  # the task file, its shot count or the chat template cannot serve
        raise ClaimSpecError(ctx.location(key), ".".join(key), str(exc)) from None


RECORDED = ("split", "items", "items_total", "bos", "answer_id_fallbacks", "colliding_answers", "full_answer_items")


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    run = _run(claim, claim.shots, ctx, ("task",))
    value = run.value()
    params = run.inputs.params
    details: dict[str, Any] = {"task": claim.task, "shots": claim.shots, "n": claim.n, "metric": claim.metric,
                               "inputs": run.inputs.label, **{k: params.get(k) for k in RECORDED}}
    if claim.reference is not None:
        b = claim.reference
        base = _run(claim, b.shots, ctx, ("reference", "shots"), shuffled=b.shuffled_labels)
        details["reference"] = {"shots": b.shots, "shuffled_labels": b.shuffled_labels, "value": round(base.value(), 4),
                               "gain": round(value - base.value(), 4), "inputs": base.inputs.label}
    return Measurement(value, claim.metric, details, run.inputs.label, claim.seed)


def judge(claim: Any, target: Target, m: Measurement) -> Verdict:
    passed = claim.expect.check(m.value)
    expect = str(claim.expect)
    summary = f"{claim.metric} on {claim.task} at {claim.shots} shots = {m.value:.4f} (expected {claim.expect})"
    if claim.reference is not None:
        b = m.details["reference"]
        name = f"{b['shots']} shots with shuffled labels" if b["shuffled_labels"] else f"{b['shots']} shots"
        gain_ok = claim.reference.expect.gain.check(b["gain"])
        passed = passed and gain_ok
        expect += f"; gain over {name} {claim.reference.expect.gain}"
        summary += (f"; {name} = {b['value']:.4f}, gain {b['gain']:.4f} "
                    f"(expected {claim.reference.expect.gain})" + ("" if gain_ok else " FAILED"))
    return Verdict(passed, expect, summary, m)


def baseline_direction(claim: Any) -> str | None:
    """The value is accuracy (or answer probability) at the claim's shots: its bound decides, else
    the reference gain's (gain = value - reference), else higher."""
    from icltest.baseline import first_direction

    gain = claim.reference.expect.gain if claim.reference is not None else None
    return first_direction(claim.expect, gain, default="higher")
