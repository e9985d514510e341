"""`kind: implicit_update` — the context's effect at a block is a rank-1 weight update (an identity, checked to float precision).

Dherin et al. (2025, "Learning without training: the implicit dynamics of in-context learning"):
with ``A`` the vector the MLP reads at the last token, a context ``C`` moves ``A(x)`` to
``A(C, x)``; patching every matrix ``W`` that reads ``A`` by ``dW = (W dA) A(x)^T / ||A(x)||^2``
(rank 1) and running the *context-free* prompt ``x`` reproduces the with-context MLP output.
Goldwaser et al. (2025) extend this to the whole block (skip path, gating, pre- and post-norms)
with a rank-1 patch on the down projection and, behind a post-norm, a patch of the norm's scale.
The construction and what is compared are in :mod:`icltest.interventions.implicit_update`.

- ``through: mlp`` (default): compared at ``blocks.L.mlp_out`` (on Gemma 2/3 after the
  post-feedforward norm); ``through: block``: at ``blocks.L.resid_post``.
- inputs: ``task`` prompts (C = ``shots`` demonstrations, x = the query line, ``test`` items unless
  ``split: select``) or ``text`` (C = a document's first ``context`` tokens, x = the next ``query``).
- value: the largest relative error ``||patched(x) - with_context(C, x)|| / ||with_context(C, x)||``
  over the layers and items; per layer the max and median, the unpatched error (how much the
  context moved that output, i.e. what the patch had to reproduce) and ||dW||_F are recorded.
  The applied patches must be rank 1: sigma_2 / sigma_1 of the change really made to each float
  parameter (first item) is recorded and must stay below ``rank_tolerance``.
- ``details["sweeps"]``: ||dW||_F as the context grows token by token (mean over items) at the
  first, middle and last judged layer, and per layer the Spearman rho of the step norm
  ``||W_i - W_{i-1}||_F`` against the number of context tokens (the seed's gradient-descent view).
  Judged only with ``growth: {expect: {rho: ...}}`` (every judged layer must satisfy it): steps do
  not shrink in every layer of the shipped models (see benchmarks/implicit_update.py).
"""
from __future__ import annotations

import statistics
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from icltest.claims.base import ClaimContext, ClaimSpecError, Measurement, Target, Verdict
from icltest.errors import InputError
from icltest.schema.base import ClaimBase, Expectation, _check_task, _layer_list, _Strict


def _layers_input(value: Any) -> Any:
    if isinstance(value, str) and value.strip() == "all":
        return None
    value = _layer_list(value)
    if isinstance(value, list) and not value:
        raise ValueError("layers is empty; give 'all', a range like '0-9', or a list of layers")
    return value


Layers = Annotated[
    list[Annotated[int, Field(ge=0)]] | None,
    BeforeValidator(_layers_input),
    WithJsonSchema({"anyOf": [{"const": "all"},
                              {"type": "string", "pattern": r"^\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*$"},
                              {"type": "integer", "minimum": 0},
                              {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}]}),
]


class TextInput(_Strict):
    """Prose as context: C = a document's first ``context`` tokens, x = the ``query`` tokens after them."""

    corpus: str = Field("essays", description="a shipped prose corpus (icltest/data/text)")
    context: int = Field(48, ge=1, le=2048, description="tokens of context C")
    query: int = Field(8, ge=1, le=512, description="tokens of the query x that follow C")


class ImplicitExpect(_Strict):
    rel_error: Expectation = Field(
        description="largest ||patched(x) - with_context(C, x)|| / ||with_context(C, x)|| over layers and items")


class GrowthExpect(_Strict):
    rho: Expectation = Field(
        description="Spearman's rho of the step norm ||W_i - W_(i-1)||_F against the number of context tokens i "
                    "(median over items); every judged layer must satisfy it (the largest is compared)")


class GrowthSpec(_Strict):
    """Judge how the patch moves as the context grows token by token (the seed's gradient-descent view)."""

    expect: GrowthExpect


class ImplicitUpdateClaim(ClaimBase):
    """The with-context output of a block's MLP (or whole block) equals the context-free output under a rank-1 weight update."""

    kind: Literal["implicit_update"]
    layers: Layers = Field(None, description="blocks checked: 'all' (default), '0-9', '0-4,7', 5 or [0, 1]")
    through: Literal["mlp", "block"] = Field(
        "mlp", description="mlp: reproduce the MLP output (mlp_out); block: the block output (resid_post), with the "
                           "down-projection and post-norm scale patches")
    task: str | None = Field(None, description="task prompts: C = the demonstrations, x = the query line")
    shots: int | None = Field(None, ge=0, le=64, description="with task: demonstrations in C (default 5; 0 is no context)")
    split: Literal["select", "test"] | None = Field(None, description="with task: items (default test)")
    text: TextInput | None = Field(None, description="prose instead of a task: C and x cut from one document")
    n: int = Field(4, ge=1, le=256, description="prompts (items) checked")
    seed: int = Field(0, ge=0, description="prompt / document sampling seed")
    rank_tolerance: float = Field(1e-4, gt=0, lt=1, description="sigma_2 / sigma_1 of an applied patch above this fails")
    expect: ImplicitExpect
    growth: GrowthSpec | None = Field(
        None, description="also judge the step trend of ||dW|| as the context grows (steps shrinking: rho < 0)")

    @model_validator(mode="after")
    def _one_input(self) -> "ImplicitUpdateClaim":
        if (self.task is None) == (self.text is None):
            raise ValueError("give exactly one input: task (C = demonstrations, x = the query) or text "
                             "(C and x cut from one document)")
        if self.task is None and (self.shots is not None or self.split is not None):
            raise ValueError("shots and split only apply to task prompts (text sets context and query)")
        return self

    _check_task = field_validator("task")(classmethod(lambda cls, v: _check_task(v)))

    @field_validator("shots")
    @classmethod
    def _some_context(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError("shots: 0 gives no context C, so there is no update to reproduce; give shots >= 1")
        return value


Schema = ImplicitUpdateClaim


def targets(claim: Any) -> list[Target]:
    layers = "all" if claim.layers is None else ",".join(map(str, claim.layers))
    source = f"{claim.task}-{claim.shots or 5}shot" if claim.task else f"text{claim.text.context}+{claim.text.query}"
    return [Target(f"{claim.through}-layers{layers}-{source}")]


def _layers(claim: Any, ctx: ClaimContext) -> list[int]:
    n_layers = ctx.loaded.adapter.n_layers
    if claim.layers is None:
        return list(range(n_layers))
    bad = [layer for layer in claim.layers if layer >= n_layers]
    if bad:
        raise ClaimSpecError(ctx.location(("layers",)), "layers",
                             f"layers {bad} out of range: the model has layers 0..{n_layers - 1}")
    return list(claim.layers)


def _items(claim: Any, ctx: ClaimContext) -> tuple[list[Any], str]:
    from icltest.interventions import implicit_update as iu

    tok = ctx.loaded.tokenizer
    try:
        if claim.task is not None:
            shots, split = claim.shots or 5, claim.split or "test"
            items = iu.task_items(tok, claim.task, shots=shots, n=claim.n, seed=claim.seed, split=split)
            label = (f"task {claim.task}: C = {shots} demonstrations, x = the query line ({split} split, n={claim.n}, "
                     f"seed={claim.seed})")
        else:
            t = claim.text
            items = iu.text_items(tok, corpus=t.corpus, context=t.context, query=t.query, n=claim.n, seed=claim.seed)
            label = (f"corpus {t.corpus}: C = a document's first {t.context} tokens, x = the next {t.query} "
                     f"(n={claim.n}, seed={claim.seed})")
    except InputError as exc:
        key = ("task",) if claim.task is not None else ("text",)
        raise ClaimSpecError(ctx.location(key), key[0], str(exc)) from None
    return items, label


def _r(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}") if x == x else x


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    import time

    from icltest.errors import InterventionError
    from icltest.interventions import implicit_update as iu

    layers = _layers(claim, ctx)
    items, label = _items(claim, ctx)
    adapter = ctx.loaded.adapter
    start = time.perf_counter()
    try:
        res = iu.measure_identity(adapter, items, layers, through=claim.through, rank_items=1)
    except InterventionError as exc:  # e.g. a norm whose scale cannot be patched
        raise ClaimSpecError(ctx.location(("through",)), "through", str(exc)) from None
    seconds = time.perf_counter() - start
    ctx.session.forward_passes += len(items) * (2 + len(layers))
    per_layer, worst = [], (-1.0, 0, 0)
    for j, layer in enumerate(layers):
        errs = [row[j] for row in res["errors"]]
        base = [row[j] for row in res["unpatched"]]
        fro = [sum(v ** 2 for v in row[j].values()) ** 0.5 for row in res["fro"]]
        per_layer.append({"layer": layer, "max": _r(max(errs)), "median": _r(statistics.median(errs)),
                          "unpatched_median": _r(statistics.median(base)), "dW_fro_median": _r(statistics.median(fro)),
                          "rank_ratio": _r(res["rank_ratio"][j] or 0.0)})
        k = max(range(len(errs)), key=lambda i: errs[i] if errs[i] == errs[i] else float("inf"))
        e = errs[k] if errs[k] == errs[k] else float("inf")
        if e > worst[0]:
            worst = (e, layer, k)
    value = worst[0] if worst[0] != float("inf") else float("nan")
    unpatched = [row[j] for row in res["unpatched"] for j in range(len(layers))]
    details: dict[str, Any] = {
        "through": claim.through,
        "compared": "blocks.L.mlp_out (after any post-feedforward norm)" if claim.through == "mlp"
        else "blocks.L.resid_post",
        "inputs": label, "layers": layers, "items": len(items),
        "context_tokens": [len(i.context) for i in items], "query_tokens": [len(i.query) for i in items],
        "worst": {"layer": worst[1], "item": worst[2], "query": items[worst[2]].label, "rel_error": _r(value)},
        "rel_error_median": _r(statistics.median(e for row in res["errors"] for e in row)),
        "unpatched_min": _r(min(unpatched)), "unpatched_median": _r(statistics.median(unpatched)),
        "unpatched_max": _r(max(unpatched)),
        "rank_ratio_max": _r(max(r or 0.0 for r in res["rank_ratio"])), "rank_tolerance": claim.rank_tolerance,
        "per_layer": per_layer, "edits": res["edits"][0] if res["edits"] else [],
        "dtype": str(next(adapter.model.parameters()).dtype).replace("torch.", ""),
        "seconds": round(seconds, 2),
    }
    longest = max(len(i.context) for i in items)
    if claim.growth is not None or longest <= GROWTH_FREE_TOKENS:
        details["sweeps"] = _growth_sweeps(adapter, items, layers, details)
    else:  # one forward per context prefix: shown for free only on short contexts
        details["growth"] = {"note": f"not measured: contexts of up to {longest} tokens cost one forward per prefix; "
                                     "add growth: to the claim to measure and judge it"}
    return Measurement(value, "relative error", details, label, claim.seed)


GROWTH_FREE_TOKENS = 128
"""Contexts up to this long get the ||dW|| growth sweep without asking (one forward per prefix)."""


def _growth_sweeps(adapter: Any, items: list[Any], layers: list[int], details: dict[str, Any]) -> list[dict[str, Any]]:
    """||dW|| as the context grows (mean over items) at three layers, and the step trend per layer."""
    import time

    from icltest.interventions import implicit_update as iu

    start = time.perf_counter()
    stats = iu.growth_stats(adapter, items, layers)
    details["growth_seconds"] = round(time.perf_counter() - start, 2)
    sweeps = []
    shown = sorted({layers[0], layers[len(layers) // 2], layers[-1]})
    for layer in shown:
        totals = stats[layer]["total"]
        m = min(len(t) for t in totals)
        sweeps.append({"name": f"||dW||_F as the context grows, layer {layer}", "x": "context tokens",
                       "y": "||dW||_F (mean over items)",
                       "points": [[i, _r(statistics.fmean(t[i] for t in totals))] for i in range(m)],
                       "reference": {"||W||_F of the input matrices": _r(_input_norm(adapter, layer))}})
    rho = []
    for layer in layers:
        values = [r for r in stats[layer]["rho"] if r == r]
        rho.append([layer, _r(statistics.median(values)) if values else float("nan")])
    late = [_r(statistics.median(stats[layer]["late_early"])) for layer in layers]
    sweeps.append({"name": "step trend: Spearman rho of ||W_i - W_(i-1)||_F against i (median over items)",
                   "x": "layer", "y": "rho (< 0: steps shrink as context accumulates)", "points": rho,
                   "reference": {"no trend": 0.0}})
    details["growth"] = {"rho_median_per_layer": [p[1] for p in rho], "late_over_early_step_per_layer": late,
                         "note": "see icltest.interventions.implicit_update.growth_stats"}
    return sweeps


def _input_norm(adapter: Any, layer: int) -> float:
    import torch

    from icltest.interventions.implicit_update import input_matrices, weight_matrix

    return float(torch.cat([weight_matrix(m).double() for _, m in input_matrices(adapter, layer)]).norm())


def judge(claim: Any, target: Target, m: Measurement) -> Verdict:
    d = m.details
    ok_error = claim.expect.rel_error.check(m.value)
    ok_rank = d["rank_ratio_max"] <= claim.rank_tolerance
    w = d["worst"]
    summary = (f"{claim.through}: relative error max {m.value:.3g} (layer {w['layer']}, item {w['item']}), median "
               f"{d['rel_error_median']:.3g} over {len(d['layers'])} layers x {d['items']} items (expected "
               f"{claim.expect.rel_error}); without the patch the context moves the output by {d['unpatched_min']:.3g}"
               f" at least, {d['unpatched_median']:.3g} median; applied patches sigma2/sigma1 <= "
               f"{d['rank_ratio_max']:.2g} (rank 1 if <= {claim.rank_tolerance:g})" + ("" if ok_rank else " FAILED"))
    expect = f"rel_error {claim.expect.rel_error}; rank-1 patches (sigma2/sigma1 <= {claim.rank_tolerance:g})"
    ok_growth = True
    if claim.growth is not None:
        rhos = d["growth"]["rho_median_per_layer"]
        bound = claim.growth.expect.rho
        failing = [i for i, r in enumerate(rhos) if not bound.check(r)]  # NaN never passes
        ok_growth = bool(rhos) and not failing
        shown = ", ".join(f"layer {d['layers'][i]} {rhos[i]:.3f}" for i in failing[:5])
        expect += f"; growth rho {bound} in every layer"
        summary += (f"; step trend rho (median over items) per layer {min(rhos):.3f}..{max(rhos):.3f}, expected "
                    f"{bound} in every layer" + ("" if ok_growth else f" FAILED at {shown}"))
    moved = d.get("unpatched_max", 1.0) > 0  # else the context changes nothing there: nothing was reproduced
    if not moved:
        summary += "; FAILED: the context does not change the compared output at any judged layer (nothing to reproduce)"
    return Verdict(bool(ok_error and ok_rank and moved and ok_growth), expect, summary, m)


def baseline_direction(claim: Any) -> str | None:
    """The value is the largest relative error: lower is better unless the bound says otherwise."""
    from icltest.baseline import first_direction

    return first_direction(claim.expect.rel_error, default="lower")
