"""`kind: icl_score` — Olsson et al.'s in-context-learning score on a probe.

Loss at a late token minus loss at an early token (negative: more context helps). On natural
text it measures general in-context learning; on repeated random tokens the late token sits in a
later copy, so it measures copying from context (induction).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from icltest.claims.base import ClaimContext, ClaimSpecError, Measurement, Target, Verdict
from icltest.errors import InputError
from icltest.schema.base import ClaimBase, Expectation


class IclScoreClaim(ClaimBase):
    """Olsson et al.'s in-context-learning score: loss at a late token minus loss at an early one."""

    kind: Literal["icl_score"]
    late: int | None = Field(None, ge=1)
    early: int | None = Field(None, ge=1)
    window: int = Field(1, ge=1)
    expect: Expectation


Schema = IclScoreClaim


def targets(claim: Any) -> list[Target]:
    kind = getattr(claim.probe, "kind", None) if claim.probe is not None else None
    return [Target(kind or "probe")]


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    from icltest.runs.run import icl_positions, session_run
    from icltest.schema.spec import MetricSpec

    metric = MetricSpec(name="icl_score", late=claim.late, early=claim.early, window=claim.window)
    try:
        run = session_run(ctx.session, ctx.loaded, metric, ctx.probe_spec, None)
    except InputError as exc:
        raise ClaimSpecError(ctx.location(("probe",)), "probe", str(exc)) from None
    late, early = icl_positions(run.inputs.probe, claim.late, claim.early)
    _check_positions(claim, late, early, int(run.inputs.tokens.shape[1]), ctx)
    value = run.value()
    details = {"late": late, "early": early, "window": claim.window, "inputs": run.inputs.label,
               "seq_len": int(run.inputs.tokens.shape[1])}
    return Measurement(value, "icl score (nats)", details, run.inputs.label, run.inputs.params.get("seed"))


def _check_positions(claim: Any, late: int, early: int, seq_len: int, ctx: ClaimContext) -> None:
    """Reject positions the probe does not have, at the key that set them (or the probe)."""
    last = seq_len - 1  # position 0 is never predicted; the last prediction is of token seq_len - 1
    if 1 <= early < late <= last and early - claim.window + 1 >= 1:
        return
    if not 1 <= early < late <= last:
        key = "late" if late > last else "early"
        message = (f"icl_score needs token positions 1 <= early < late <= {last} (the probe has {seq_len} "
                   f"tokens; position 0 is never predicted), got early={early}, late={late}; "
                   "lower late / early or lengthen the probe")
    else:
        key = "window"
        message = f"window {claim.window} does not fit before early={early}: need early - window + 1 >= 1"
    where = ctx.location((key,) if key in claim.model_fields_set else ("probe",))
    raise ClaimSpecError(where, key, message)


def judge(claim: Any, target: Target, m: Measurement) -> Verdict:
    d = m.details
    summary = (f"loss at token {d['late']} minus loss at token {d['early']}"
               + (f" (mean over {d['window']} positions each)" if d["window"] > 1 else "")
               + f" = {m.value:.4f} nats (expected {claim.expect})")
    return Verdict(claim.expect.check(m.value), str(claim.expect), summary, m)
