"""`kind: head_attribution` — in-context and parametric heads found by attribution patching.

Every head's estimated mean-ablation effect on the answer's log-probability comes from one forward
and one backward pass per chunk of prompts (:mod:`icltest.attribution.patching`). A head's
*relevance* on a task is minus that effect (positive: it supports the answer), averaged over the
prompts. The ``role`` picks the score heads are ranked by:

- ``open_book`` / ``closed_book``: relevance on that task alone;
- ``in_context``: open-book relevance minus closed-book relevance, each divided by the sum of
  |relevance| over all heads on its task so the two are on one scale (the contrast of
  Kahardipraja et al. 2025, with attribution patching in place of their LRP relevance);
- ``parametric``: the reverse contrast;
- ``counterfactual``: relevance to the logit of the context's answer minus the remembered one on
  counterfactual prompts ("In this story the capital of France is Rome").

Claims:

- ``heads: [...]`` with ``expect: {rank: "<= 10"}``: each named head ranks within the top k of
  all heads by the role's score (1 = most; one item per head). Heads named here should have been
  chosen on ``split: select`` items; the claim judges ``split: test`` items by default.
- ``expect: {spearman: ">= 0.5"}``: the attribution ranking agrees with *exact* mean ablation of
  each head alone (same prompts, same reference means) over all heads, or over ``agreement:
  {layers: ...}`` to bound the cost (the exact scan is one forward pass per head). The result
  lists where the two disagree most.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from icltest.claims.base import ClaimContext, ClaimSpecError, Measurement, Target, Verdict
from icltest.claims.heads import check_head, head_name, head_pair
from icltest.errors import InputError
from icltest.schema.base import ClaimBase, Expectation, Head, _layer_list, _Strict

ROLES = ("in_context", "parametric", "open_book", "closed_book", "counterfactual")


class AttributionExpect(_Strict):
    """One of: the named heads' rank by the role's score, or agreement with exact ablation."""

    rank: Expectation | None = Field(None, description="each named head's rank among all heads (1 = most)")
    spearman: Expectation | None = Field(None, description="Spearman's rho between attribution and exact mean ablation")

    @model_validator(mode="after")
    def _one(self) -> "AttributionExpect":
        if (self.rank is None) == (self.spearman is None):
            raise ValueError("expect needs exactly one of rank (with heads) or spearman (agreement with exact ablation)")
        return self


class AgreementSpec(_Strict):
    """Heads the exact mean-ablation scan covers (default: every head)."""

    layers: list[Annotated[int, Field(ge=0)]] | None = Field(None, description="layers whose heads are compared, e.g. '12-23'")

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, dict) and "layers" in value:
            return dict(value, layers=_layer_list(value["layers"]))
        return value


class HeadAttributionClaim(ClaimBase):
    """Heads ranked by attribution patching on open / closed-book prompts, or its agreement with ablation."""

    kind: Literal["head_attribution"]
    role: Literal["in_context", "parametric", "open_book", "closed_book", "counterfactual"]
    heads: list[Head] | None = Field(None, min_length=1)
    agreement: AgreementSpec | None = None
    shots: int = Field(2, ge=0, le=64)
    n: int = Field(32, ge=1, le=4096)
    seed: int = Field(0, ge=0)
    split: Literal["select", "test"] = "test"
    expect: AttributionExpect

    @model_validator(mode="after")
    def _shape(self) -> "HeadAttributionClaim":
        if self.expect.rank is not None and self.heads is None:
            raise ValueError("expect: {rank: ...} needs heads: the heads whose rank is claimed")
        if self.expect.spearman is not None:
            if self.heads is not None:
                raise ValueError("expect: {spearman: ...} compares all heads (or agreement.layers); remove heads")
            if self.role in ("in_context", "parametric"):
                raise ValueError(f"agreement with exact ablation is per task: use role open_book, closed_book or "
                                 f"counterfactual, not {self.role}")
        elif self.agreement is not None:
            raise ValueError("agreement only goes with expect: {spearman: ...}")
        return self


Schema = HeadAttributionClaim


def targets(claim: Any) -> list[Target]:
    if claim.heads is not None:
        return [Target(head_name(*head_pair(r)), (head_pair(r),)) for r in claim.heads]
    return [Target(f"agreement-{claim.role}")]


def _metric(claim: Any, task: str) -> Any:
    from icltest.schema.spec import MetricSpec

    name = "logit_diff" if task == "counterfactual" else "answer_logprob"
    return MetricSpec(name=name, task=task, shots=claim.shots, n=claim.n, seed=claim.seed, split=claim.split)


def _run(claim: Any, task: str, ctx: ClaimContext) -> Any:
    from icltest.runs.run import session_run

    try:
        return session_run(ctx.session, ctx.loaded, _metric(claim, task), None, None)
    except InputError as exc:
        raise ClaimSpecError(ctx.location(("shots",)), "shots", str(exc)) from None


def relevance(claim: Any, task: str, ctx: ClaimContext) -> tuple[Any, Any]:
    """([n_layers, n_heads] relevance on ``task``, the Run), cached per (model, task inputs)."""
    from icltest.attribution.patching import attribute_heads
    from icltest.runs.run import run_key

    run = _run(claim, task, ctx)
    attr = ctx.session.memo(("head_attribution", run_key(ctx.loaded, run.metric, None, None)),
                            lambda: attribute_heads(run))
    return -attr.mean_effect(), run, attr


def role_score(claim: Any, ctx: ClaimContext) -> tuple[Any, dict[str, Any]]:
    """[n_layers, n_heads] the role's score (higher = more the role) and what it was built from."""
    if claim.role in ("in_context", "parametric"):
        open_rel, open_run, open_attr = relevance(claim, "open_book", ctx)
        closed_rel, closed_run, closed_attr = relevance(claim, "closed_book", ctx)
        from icltest.attribution.roles import in_context_score

        contrast = in_context_score(open_rel, closed_rel)
        score = contrast if claim.role == "in_context" else -contrast
        info = {"inputs": [open_run.inputs.label, closed_run.inputs.label],
                "seconds": round(open_attr.seconds + closed_attr.seconds, 2),
                "clean_metric": {"open_book": round(float(open_attr.metric.mean()), 4),
                                 "closed_book": round(float(closed_attr.metric.mean()), 4)}}
        return score, info
    rel, run, attr = relevance(claim, claim.role, ctx)
    info = {"inputs": [run.inputs.label], "seconds": round(attr.seconds, 2),
            "clean_metric": {claim.role: round(float(attr.metric.mean()), 4)}}
    return rel, info


def _ranks(score: Any) -> Any:
    """[L, H] rank of each head by score, 1 = highest (ties share the better rank).

    Raises:
        InputError: a non-finite score (it would rank first and pass any rank bound).
    """
    import torch

    flat = score.flatten()
    if not bool(torch.isfinite(flat).all()):
        raise InputError("attribution gave non-finite scores (NaN / inf): the model's outputs on these prompts "
                         "are not finite; no head can be ranked")
    return ((flat[None, :] > flat[:, None]).sum(1) + 1).reshape(score.shape).to(torch.long)


def _top(score: Any, k: int = 10) -> list[dict[str, Any]]:
    H = score.shape[1]
    order = score.flatten().argsort(descending=True)[:k]
    return [{"head": head_name(int(i) // H, int(i) % H), "score": round(float(score.flatten()[i]), 5)} for i in order]


def _unit(claim: Any) -> str:
    if claim.role in ("in_context", "parametric"):
        sign = "open-book minus closed-book" if claim.role == "in_context" else "closed-book minus open-book"
        return f"relevance contrast ({sign}, each over its sum of |relevance|)"
    metric = "logit difference" if claim.role == "counterfactual" else "answer log-prob"
    return f"relevance on {claim.role} (minus the estimated {metric} change when mean-ablated)"


def _role_map(claim: Any, score: Any, inputs: str, heads: list[tuple[int, int]]) -> dict[str, Any]:
    """The role's score for every head, as a report map (targets: the claim's heads)."""
    from icltest.report.maps import head_map

    return head_map(f"{claim.role} attribution", "attribution", inputs, _unit(claim), score, heads)


def _agreement(claim: Any, ctx: ClaimContext) -> Measurement:
    import torch
    from scipy.stats import spearmanr

    from icltest.runs.run import Ablation

    adapter = ctx.loaded.adapter
    rel, run, attr = relevance(claim, claim.role, ctx)
    layers = claim.agreement.layers if claim.agreement and claim.agreement.layers else list(range(adapter.n_layers))
    bad = [l for l in layers if l >= adapter.n_layers]
    if bad:
        raise ClaimSpecError(ctx.location(("agreement", "layers")), "agreement.layers",
                             f"layers {bad} are out of range: the model has layers 0..{adapter.n_layers - 1}")
    heads = [(l, h) for l in layers for h in range(adapter.n_heads)]
    import time

    start = time.perf_counter()
    clean = run.value()
    exact = torch.tensor(run.values([Ablation(heads=(p,), method="mean") for p in heads])) - clean
    exact_seconds = time.perf_counter() - start
    estimate = torch.tensor([float(-rel[p]) for p in heads])
    rho = float(spearmanr(estimate.numpy(), exact.numpy()).statistic)
    r_est = estimate.argsort().argsort()
    r_exa = exact.argsort().argsort()
    worst = (r_est - r_exa).abs().argsort(descending=True)[:8]
    top_exact = set(exact.argsort()[:10].tolist())
    top_est = set(estimate.argsort()[:10].tolist())
    details = {"role": claim.role, "inputs": run.inputs.label, "heads_compared": len(heads),
               "layers": f"{layers[0]}-{layers[-1]}" if layers == list(range(layers[0], layers[-1] + 1)) else layers,
               "ablation": "mean, each head alone, reference means from the other split (post_norm frozen)",
               "attribution_seconds": round(attr.seconds, 2), "exact_seconds": round(exact_seconds, 1),
               "top10_overlap": len(top_exact & top_est),
               "disagree": [{"head": head_name(*heads[i]), "attribution_rank": int(r_est[i]) + 1,
                             "exact_rank": int(r_exa[i]) + 1, "estimate": round(float(estimate[i]), 4),
                             "exact": round(float(exact[i]), 4)} for i in worst.tolist()]}
    from icltest.report.maps import head_map

    exact_table = torch.full(tuple(rel.shape), float("nan"))
    for (l, h), v in zip(heads, exact.tolist()):
        exact_table[l, h] = v
    details["maps"] = [
        _role_map(claim, rel, run.inputs.label, []),
        head_map(f"{claim.role} exact mean ablation", "ablation", run.inputs.label,
                 f"{run.metric.name} change when mean-ablated alone (ablated - clean)", exact_table),
    ]
    return Measurement(rho, "Spearman rho, attribution vs exact mean ablation", details, run.inputs.label, claim.seed)


def _exact_effects(claim: Any, ctx: ClaimContext, head: tuple[int, int]) -> dict[str, float]:
    """The head's exact mean-ablation effect on each task behind the role (one forward pass each),
    next to the first-order estimate the rank comes from: estimated and exact change of the metric."""
    from icltest.runs.run import Ablation

    tasks = ("open_book", "closed_book") if claim.role in ("in_context", "parametric") else (claim.role,)
    out = {}
    for task in tasks:
        rel, run, _ = relevance(claim, task, ctx)
        exact = run.value(Ablation(heads=(head,), method="mean")) - run.value()
        out[task] = {"metric": run.metric.name, "estimated_change": round(float(-rel[head]), 4),
                     "exact_change": round(float(exact), 4)}
    return out


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    if claim.expect.spearman is not None:
        return _agreement(claim, ctx)
    adapter = ctx.loaded.adapter
    index = [head_pair(r) for r in claim.heads].index(target.heads[0])
    layer, head = target.heads[0]
    check_head(adapter, layer, head, ctx.location(("heads", index)), "heads")
    score, info = role_score(claim, ctx)
    try:
        ranks = _ranks(score)
    except InputError as exc:
        raise ClaimSpecError(ctx.location(("role",)), "role", str(exc)) from None
    details = {"role": claim.role, "head": head_name(layer, head), "score": round(float(score[layer, head]), 5),
               "n_heads": int(score.numel()), "top_heads": _top(score), **info,
               "method": "attribution patching (a first-order estimate of mean ablation), reference from the other split",
               "exact_mean_ablation": _exact_effects(claim, ctx, (layer, head)),
               "maps": [_role_map(claim, score, "; ".join(info["inputs"]), [(layer, head)])]}
    return Measurement(float(ranks[layer, head]), f"{claim.role} rank", details, "; ".join(info["inputs"]), claim.seed)


def judge(claim: Any, target: Target, m: Measurement) -> Verdict:
    d = m.details
    if claim.expect.spearman is not None:
        passed = claim.expect.spearman.check(m.value)
        summary = (f"Spearman rho = {m.value:.3f} over {d['heads_compared']} heads (expected {claim.expect.spearman}); "
                   f"top-10 overlap {d['top10_overlap']}; attribution {d['attribution_seconds']} s vs exact "
                   f"{d['exact_seconds']} s")
        return Verdict(passed, f"spearman {claim.expect.spearman}", summary, m)
    passed = claim.expect.rank.check(m.value)
    top = ", ".join(f"{t['head']}" for t in d["top_heads"][:5])
    exact = "; ".join(f"{task} {e['metric']} estimated {e['estimated_change']:+.3f}, exact {e['exact_change']:+.3f}"
                      for task, e in d["exact_mean_ablation"].items())
    summary = (f"{d['head']} ranks {int(m.value)}/{d['n_heads']} as {claim.role} by attribution (score "
               f"{d['score']:+.5f}; expected rank {claim.expect.rank}); top: {top}; mean-ablating it: {exact}")
    return Verdict(passed, f"rank {claim.expect.rank}", summary, m)


def baseline_direction(claim: Any) -> str | None:
    """The value is a head's rank (1 = most relevant: lower is better) or, with ``spearman``, the
    agreement rho (higher); the bound's own direction comes first."""
    from icltest.baseline import first_direction

    if claim.expect.spearman is not None:
        return first_direction(claim.expect.spearman, default="higher")
    return first_direction(claim.expect.rank, default="lower")
