"""`kind: function_vector` — does the sum of a few heads' mean outputs make a zero-shot prompt do the task?

Todd et al. (2024), "Function Vectors in Large Language Models", on this package's tasks:

- **mean head outputs**: over ``n`` k-shot prompts (``shots`` demonstrations) of the task's
  ``select`` items, each head's output at the last token, averaged (post-norm models: its share of
  ``attn_out`` with the post-norm's scale frozen; see :mod:`icltest.interventions.function_vectors`);
- **heads**: named in the spec, or the ``top`` heads by causal indirect effect (CIE): on the same
  prompts with the demonstrations' outputs shuffled, patching the head's mean z in at the last
  token raises the correct answer's probability by that much (``method: attribution``, the
  default, estimates every head from one forward + backward pass per 16 prompts;
  ``method: exact`` runs the patch per head, ``layers`` bounds which heads are tried);
- **function vector (FV)**: the sum of the chosen heads' mean outputs, added (times ``scale``) to
  ``blocks.<layer>.resid_post`` at the last prompt token of ``n_test`` zero-shot prompts of the
  ``test`` items (never seen when choosing heads or averaging);
- **value**: accuracy with the FV (first-token exact match; every answer token where first tokens
  collide, as ``task_accuracy`` scores). Also reported: zero-shot accuracy, k-shot accuracy (the
  in-context ceiling), ``gain`` (FV - zero-shot), ``recall`` (FV / k-shot, as Kahardipraja et
  al. report FV recall), the FV's norm, the chosen heads with their CIE, a layer sweep;
- **control**: ``draws`` random vectors of the FV's norm (Gaussian directions, seeded) at the same
  layer on the same prompts; where the FV's gain falls among theirs (permutation p, z).
"""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from icltest.claims.base import ClaimContext, ClaimSpecError, Measurement, Target, Verdict
from icltest.claims.heads import check_head, head_name, head_pair
from icltest.errors import InputError
from icltest.schema.base import ClaimBase, Expectation, Head, _check_task, _layer_list, _Strict
from icltest.schema.blocks import ControlExpect, _draws_for_p

LayerList = Annotated[list[Annotated[int, Field(ge=0)]], BeforeValidator(_layer_list), Field(min_length=1)]


class FVTopHeads(_Strict):
    """The ``top`` heads by causal indirect effect on shuffled-label prompts."""

    top: int = Field(ge=1, description="how many heads the function vector sums")
    method: Literal["attribution", "exact"] = Field(
        "attribution", description="attribution: first-order estimate of every head (one forward + backward per 16 "
                                   "prompts); exact: patch each head in turn (one forward per head)")
    layers: LayerList | None = Field(None, description="only heads of these layers are candidates, e.g. '0-9' (bounds exact's cost)")


class FVExpect(_Strict):
    """At least one of accuracy, gain, recall."""

    accuracy: Expectation | None = Field(None, description="zero-shot accuracy with the function vector")
    gain: Expectation | None = Field(None, description="accuracy with the FV minus zero-shot accuracy without it")
    recall: Expectation | None = Field(None, description="accuracy with the FV / k-shot accuracy (the ICL ceiling)")

    @model_validator(mode="after")
    def _something(self) -> "FVExpect":
        if self.accuracy is None and self.gain is None and self.recall is None:
            raise ValueError("give accuracy, gain and/or recall")
        return self


class FVControl(_Strict):
    """Random vectors of the FV's norm at the same layer: is it this direction, or any push of that size?"""

    draws: int = Field(19, ge=1, le=1000, description="random vectors; p <= 0.05 needs >= 19")
    seed: int = Field(0, ge=0, description="seeds the Gaussian directions")
    expect: ControlExpect | None = Field(None, description="bounds on p / z of the FV's gain among the draws' gains")

    @model_validator(mode="after")
    def _reachable(self) -> "FVControl":
        e = self.expect
        if e is None:
            return self
        if e.effect_ratio is not None:
            raise ValueError("effect_ratio is not offered here: bound p or z (or the draws' mean gain)")
        if e.z is not None and self.draws < 2:
            raise ValueError(f"z needs draws >= 2 (the spread of the draws), got draws: {self.draws}")
        if e.p is not None:
            needed = _draws_for_p(e.p)
            if needed is None:
                raise ValueError(f"p {e.p} can never pass: p is always > 0 (its smallest value is 1 / (draws + 1))")
            if self.draws < needed:
                raise ValueError(f"with draws: {self.draws} the smallest possible p is 1/{self.draws + 1} = "
                                 f"{1 / (self.draws + 1):.3g}, so p {e.p} can never pass; use draws >= {needed}")
        return self


class FVSweep(_Strict):
    """Accuracy with the FV injected at each of these layers (default: every layer)."""

    layers: LayerList | None = Field(None, description="layers to inject at, e.g. '0-9' or [2, 4, 6] (default all)")


class FunctionVectorClaim(ClaimBase):
    """A function vector from a task's heads restores the task on zero-shot prompts."""

    kind: Literal["function_vector"]
    task: str = Field(description="an ICL task (icltest/data/tasks) or a path to a task .yaml")
    heads: Annotated[list[Head], Field(min_length=1)] | FVTopHeads = Field(
        description="heads whose mean outputs are summed: a list (e.g. [9.1, 11.3]) or {top: 10, method: attribution}")
    layer: int | None = Field(None, description="inject after this layer (negative counts from the end); default n_layers // 3")
    shots: int = Field(5, ge=1, le=64, description="demonstrations in the prompts the means (and CIE) come from")
    n: int = Field(32, ge=1, le=4096, description="select-split prompts for the means and CIE")
    n_test: int = Field(48, ge=1, le=4096, description="test-split prompts judged (zero-shot with / without the FV)")
    seed: int = Field(0, ge=0, description="prompt sampling seed (both splits)")
    scale: float = Field(1.0, description="the FV is added times this")
    sweep: FVSweep | None = Field(default_factory=FVSweep, description="layer sweep for the report (null: none)")
    control: FVControl | None = None
    expect: FVExpect

    _check_task = field_validator("task")(classmethod(lambda cls, v: _check_task(v)))

    @model_validator(mode="after")
    def _cie_needs_shots(self) -> "FunctionVectorClaim":
        if isinstance(self.heads, FVTopHeads) and self.shots < 2:
            raise ValueError(f"heads chosen by causal indirect effect need shuffled-label prompts: shots >= 2 "
                             f"(demonstrations to permute), got shots: {self.shots}")
        if not math.isfinite(self.scale):
            raise ValueError(f"scale must be a finite number, got {self.scale}")
        return self


Schema = FunctionVectorClaim


def targets(claim: Any) -> list[Target]:
    where = "auto" if claim.layer is None else str(claim.layer)
    if isinstance(claim.heads, list):
        return [Target(f"{claim.task}-L{where}", tuple(head_pair(h) for h in claim.heads))]
    return [Target(f"{claim.task}-top{claim.heads.top}-{claim.heads.method}-L{where}")]


# ----------------------------------------------------------------------------- measuring


def _prompt_set(claim: Any, ctx: ClaimContext, shuffled: bool) -> Any:
    from icltest.interventions.function_vectors import PromptSet
    from icltest.probes.prompts import pad_left
    from icltest.probes.tasks import build_icl_prompts

    tok = ctx.loaded.tokenizer
    try:
        batch = build_icl_prompts(claim.task, tok, shots=claim.shots, n=claim.n, seed=claim.seed, split="select",
                                  shuffled_labels=shuffled, full_answers=False)
    except InputError as exc:
        raise ClaimSpecError(ctx.location(("shots",)), "shots", str(exc)) from None
    from icltest.probes.prompts import pad_id

    pad = pad_id(tok)
    ids, mask = pad_left(batch.input_ids, pad)
    import torch

    return PromptSet(ids, mask, torch.tensor([int(a) for a in batch.answer_ids])), batch.params


def _key(claim: Any, ctx: ClaimContext, *extra: Any) -> tuple[Any, ...]:
    return ("function_vector", ctx.loaded.source, claim.task, claim.shots, claim.n, claim.seed, *extra)


def _means(claim: Any, ctx: ClaimContext) -> Any:
    from icltest.interventions.function_vectors import mean_heads

    def compute() -> Any:
        prompts, params = _prompt_set(claim, ctx, shuffled=False)
        ctx.session.forward_passes += math.ceil(len(prompts) / 16)
        return mean_heads(ctx.loaded, prompts), params
    return ctx.session.memo(_key(claim, ctx, "means"), compute)


def _cie(claim: Any, ctx: ClaimContext, means: Any, method: str, layers: tuple[int, ...] | None) -> Any:
    import time

    from icltest.interventions.function_vectors import cie_attribution, cie_exact

    def compute() -> Any:
        prompts, _ = _prompt_set(claim, ctx, shuffled=True)
        start = time.perf_counter()
        if method == "exact":
            cie = cie_exact(ctx.loaded, prompts, means, layers)
        else:
            cie = cie_attribution(ctx.loaded, prompts, means, ctx.session)
            if layers is not None:
                keep = [l in layers for l in range(cie.shape[0])]
                cie[[not k for k in keep]] = float("nan")
        return cie, time.perf_counter() - start
    return ctx.session.memo(_key(claim, ctx, "cie", method, layers), compute)


def _layer(claim: Any, ctx: ClaimContext) -> int:
    L = ctx.loaded.adapter.n_layers
    if claim.layer is None:
        return L // 3
    layer = claim.layer + L if claim.layer < 0 else claim.layer
    if not 0 <= layer < L:
        raise ClaimSpecError(ctx.location(("layer",)), "layer",
                             f"layer {claim.layer} is out of range for this model ({L} layers: 0..{L - 1}, or -1..-{L})")
    return layer


def _check(claim: Any, ctx: ClaimContext) -> tuple[int, list[int]]:
    """Everything the spec asks of this model's shape, before any forward pass: (layer, sweep layers)."""
    adapter = ctx.loaded.adapter
    layer = _layer(claim, ctx)
    sel = claim.heads
    if isinstance(sel, list):
        for i, ref in enumerate(sel):
            check_head(adapter, *head_pair(ref), ctx.location(("heads", i)), f"heads[{i}]")
    else:
        for layer_ in sel.layers or ():
            if layer_ >= adapter.n_layers:
                raise ClaimSpecError(ctx.location(("heads", "layers")), "heads.layers",
                                     f"layer {layer_} is out of range for this model ({adapter.n_layers} layers: 0..{adapter.n_layers - 1})")
        pool = (len(sel.layers) if sel.layers is not None else adapter.n_layers) * adapter.n_heads
        if sel.top > pool:
            raise ClaimSpecError(ctx.location(("heads", "top")), "heads.top",
                                 f"top {sel.top} exceeds the {pool} candidate heads ({adapter.n_layers} layers x "
                                 f"{adapter.n_heads} heads{'' if sel.layers is None else ', restricted to layers ' + str(list(sel.layers))})")
    sweep: list[int] = []
    if claim.sweep is not None:
        sweep = list(claim.sweep.layers) if claim.sweep.layers is not None else list(range(adapter.n_layers))
        bad = [l for l in sweep if l >= adapter.n_layers]
        if bad:
            raise ClaimSpecError(ctx.location(("sweep", "layers")), "sweep.layers",
                                 f"layers {bad} are out of range for this model ({adapter.n_layers} layers: 0..{adapter.n_layers - 1})")
    return layer, sweep


def _heads(claim: Any, ctx: ClaimContext, means: Any) -> tuple[list[tuple[int, int]], Any, dict[str, Any]]:
    from icltest.interventions.function_vectors import rank_heads

    sel = claim.heads
    if isinstance(sel, list):
        return sorted({head_pair(h) for h in sel}), None, {"heads from": "the spec"}
    layers = tuple(sel.layers) if sel.layers is not None else None
    cie, seconds = _cie(claim, ctx, means, sel.method, layers)
    info = {"heads from": f"top {sel.top} by causal indirect effect ({sel.method}) on shuffled-label {claim.shots}-shot "
                          f"select prompts", "cie_seconds": round(seconds, 2)}
    return sorted(rank_heads(cie, sel.top)), cie, info


def _cie_map(claim: Any, cie: Any, heads: list[tuple[int, int]]) -> dict[str, Any]:
    """Every candidate head's causal indirect effect, as a report map (targets: the heads chosen)."""
    from icltest.report.maps import head_map

    prompts = (f"{claim.task}: {claim.shots}-shot shuffled-label prompts of the select split "
               f"(n={claim.n}, seed={claim.seed})")
    return head_map(f"{claim.task} CIE ({claim.heads.method})", "cie", prompts,
                    "causal indirect effect (answer probability gained by patching the head's mean in)", cie, heads)


def _runs(claim: Any, ctx: ClaimContext) -> tuple[Any, Any]:
    from icltest.runs.run import session_run
    from icltest.schema.spec import MetricSpec

    def run(shots: int) -> Any:
        metric = MetricSpec(name="accuracy", task=claim.task, shots=shots, n=claim.n_test, seed=claim.seed, split="test")
        try:
            return session_run(ctx.session, ctx.loaded, metric, None, None)
        except InputError as exc:
            raise ClaimSpecError(ctx.location(("task",)), "task", str(exc)) from None
    return run(0), run(claim.shots)


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    import time

    from icltest.interventions.function_vectors import accuracy_with, function_vector, random_vectors
    from icltest.scores.control import control_summary

    start = time.perf_counter()
    adapter = ctx.loaded.adapter
    layer, sweep = _check(claim, ctx)
    means, params = _means(claim, ctx)
    heads, cie, head_info = _heads(claim, ctx, means)
    fv = function_vector(means, heads)
    zero_run, kshot_run = _runs(claim, ctx)
    zero, kshot = zero_run.value(), kshot_run.value()
    inputs = zero_run.inputs
    (with_fv,) = accuracy_with(ctx.loaded, inputs, [(layer, fv)], claim.scale, ctx.session)
    gain = with_fv - zero
    details: dict[str, Any] = {
        "task": claim.task, "layer": layer, "scale": claim.scale, "accuracy": round(with_fv, 4),
        "zero_shot": round(zero, 4), "k_shot": round(kshot, 4), "gain": round(gain, 4),
        "recall": round(with_fv / kshot, 4) if kshot > 0 else float("nan"),
        "fv_norm": round(float(fv.norm()), 4), "n_heads": len(heads),
        "heads": [{"head": head_name(l, h), **({} if cie is None else {"cie": round(float(cie[l, h]), 5)})}
                  for l, h in heads],
        **head_info,
        **({} if cie is None else {"maps": [_cie_map(claim, cie, heads)]}),
        "means from": (f"{means.n} clean {claim.shots}-shot prompts of the select split (seed {claim.seed}), last token; "
                       + ("post-norm scale frozen" if adapter.attn_post_norm(0) is not None else "z_h W_O,h")),
        "test inputs": inputs.label, "k-shot inputs": kshot_run.inputs.label,
        "select items": {k: params.get(k) for k in ("split", "items", "items_total")},
        "injection": f"add at blocks.{layer}.resid_post, last prompt token, scale {claim.scale}",
    }
    random_mean = None
    if claim.control is not None:
        vectors = random_vectors(fv, claim.control.draws, claim.control.seed)
        accs = accuracy_with(ctx.loaded, inputs, [(layer, v) for v in vectors], claim.scale, ctx.session)
        summary = control_summary(gain, [a - zero for a in accs])
        random_mean = zero + summary["mean"]
        details["control"] = {**{k: summary[k] for k in ("n", "mean", "sd", "min", "max", "above", "p", "z", "position")},
                              "draws": [round(d, 4) for d in summary["draws"]],
                              "random_accuracy_mean": round(random_mean, 4), "seed": claim.control.seed,
                              "what": f"accuracy gain of {claim.control.draws} random vectors of norm {float(fv.norm()):.3g} "
                                      f"(Gaussian directions, seed {claim.control.seed}) at the same layer and prompts"}
    if claim.sweep is not None:
        layers = sweep
        accs = accuracy_with(ctx.loaded, inputs, [(l, fv) for l in layers], claim.scale, ctx.session)
        reference = {"no injection": round(zero, 4), f"{claim.shots}-shot": round(kshot, 4)}
        if random_mean is not None:
            reference[f"random vector (mean, layer {layer})"] = round(random_mean, 4)
        best = max(range(len(layers)), key=lambda i: accs[i])
        details["best_layer"] = {"layer": layers[best], "accuracy": round(accs[best], 4)}
        details["sweeps"] = [{"name": "layer sweep", "x": "layer", "y": "accuracy",
                              "points": [[l, round(a, 4)] for l, a in zip(layers, accs)], "reference": reference}]
    details["seconds"] = round(time.perf_counter() - start, 2)
    return Measurement(with_fv, "accuracy with the function vector", details, inputs.label, claim.seed)


def judge(claim: Any, target: Target, m: Measurement) -> Verdict:
    d = m.details
    checks = []
    for name, value in (("accuracy", m.value), ("gain", d["gain"]), ("recall", d["recall"])):
        comparison = getattr(claim.expect, name)
        if comparison is not None:
            checks.append((f"{name} {comparison}", comparison.check(value), f"{name} {value:.4f}"))
    c = d.get("control")
    if claim.control is not None and claim.control.expect is not None:
        for name in ("p", "z", "mean"):
            comparison = getattr(claim.control.expect, name)
            if comparison is not None:
                checks.append((f"control {name} {comparison}", comparison.check(c[name]), f"control {name} {c[name]:.4g}"))
    passed = all(ok for _, ok, _ in checks)
    expect = "; ".join(text for text, _, _ in checks)
    summary = (f"{claim.task}: accuracy {m.value:.3f} with the FV of {d['n_heads']} heads at layer {d['layer']} "
               f"(zero-shot {d['zero_shot']:.3f}, {claim.shots}-shot {d['k_shot']:.3f}; gain {d['gain']:.3f}, recall "
               f"{d['recall']:.3f}; |FV| {d['fv_norm']:.3g})")
    if c is not None:
        summary += f"; random vectors gain {c['mean']:.3f} +- {c['sd']:.3f}, p {c['p']:.3g}, z {c['z']:.3g}"
    if "best_layer" in d:
        summary += f"; best layer {d['best_layer']['layer']} ({d['best_layer']['accuracy']:.3f})"
    failed = [shown for _, ok, shown in checks if not ok]
    if failed:
        summary += "; FAILED: " + ", ".join(failed)
    return Verdict(passed, expect, summary, m)


def baseline_direction(claim: Any) -> str | None:
    """The value is accuracy with the FV, whichever of accuracy / gain / recall ``expect`` bounds:
    gain (minus zero-shot accuracy) and recall (over k-shot accuracy) move with it, so the first
    bound that has a direction decides, else higher (more accuracy)."""
    from icltest.baseline import first_direction

    e = claim.expect
    return first_direction(e.accuracy, e.gain, e.recall, default="higher")
