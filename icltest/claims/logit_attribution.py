"""`kind: logit_attribution` — direct logit attribution of heads or blocks, and the logit lens.

Inputs: the claim's token probe (repeated random tokens: every position of the later copies whose
next token is known from an earlier copy, attributed on that next token; the last token before
a copy starts is left out, its next token is not predictable), or, with ``task:``, task prompts
read at the last position on the answer's first token (held-out ``test`` items unless ``split:
select``; ``shots``, ``n``, ``seed``, ``split`` and ``chat_template`` only go with ``task``).

The attributed quantity is the target's logit minus the mean logit over the vocabulary
(``centred: true``, default; softmax ignores a common shift) or the raw logit (``centred:
false``); results record which.

- ``heads:`` (one item per listed head, or ``{top: k, by: score}``): each head's mean direct
  effect on the target logit, in logits. ``{top: k}`` reports the head closest to failing.
- ``layers: {layers: "18-20", part: mlp}``: the summed direct effect of those blocks.
- ``lens: {layer: L, top: k}``: the share of read positions whose target is within the top k
  when the residual stream after layer L is read through the final norm and unembedding
  (negative L counts from the end: -1 is the model's output).

The final norm's scale is frozen at its value on the full residual stream (see
:mod:`icltest.attribution.dla`); every result records that treatment and the decomposition check
(the largest gap between the sum of all parts and the model's logit). A head's effect is also
placed among all heads' (its rank, and the mean and spread over every head), so a value can be
read against what heads do in general.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from icltest.claims.base import ClaimContext, ClaimSpecError, Measurement, Target, Verdict
from icltest.claims.heads import check_head, head_name, head_pair, resolve_selection, selection_id
from icltest.errors import InputError
from icltest.schema.base import ClaimBase, Expectation, HeadSelection, _check_task, _Strict
from icltest.schema.blocks import ChatTemplate, LayerSelection


class LensSpec(_Strict):
    """Read the residual stream after a layer through the final norm and unembedding."""

    layer: int = Field(description="after this layer (negative: from the end; -1 = the model's output)")
    top: int = Field(10, ge=1, description="count a read position when its target is within the top k tokens")


class LogitAttributionClaim(ClaimBase):
    """Direct effect of heads or blocks on a target token's logit, or the logit lens at a layer."""

    kind: Literal["logit_attribution"]
    heads: HeadSelection | None = None
    layers: LayerSelection | None = None
    lens: LensSpec | None = None
    task: str | None = Field(None, description="task prompts, read on the answer (default: the token probe)")
    shots: int | None = Field(None, ge=0, le=64, description="with task: demonstrations (default 0)")
    n: int | None = Field(None, ge=1, le=4096, description="with task: prompts (default 32)")
    seed: int | None = Field(None, ge=0, description="with task: prompt seed (default 0); the probe has its own")
    split: Literal["select", "test"] | None = Field(None, description="with task: items (default test)")
    chat_template: ChatTemplate | None = None
    centred: bool = Field(True, description="attribute the logit minus the mean logit (default) or the raw logit")
    expect: Expectation

    _check_task = field_validator("task")(classmethod(lambda cls, v: _check_task(v)))

    @model_validator(mode="after")
    def _one_subject(self) -> "LogitAttributionClaim":
        given = [k for k in ("heads", "layers", "lens") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of heads (direct effect of heads), layers (of attn / mlp blocks) "
                             f"or lens (logit lens at a layer); got {', '.join(given) or 'none'}")
        task_only = [k for k in ("shots", "n", "seed", "split", "chat_template") if getattr(self, k) is not None]
        if self.task is None and task_only:
            raise ValueError(f"{', '.join(task_only)} only apply to task prompts (give task:); the token probe is set "
                             "with probe: (e.g. probe: {kind: repeated_random, seed: 1})")
        return self


Schema = LogitAttributionClaim


def targets(claim: Any) -> list[Target]:
    if claim.heads is not None and isinstance(claim.heads, list):
        return [Target(head_name(*head_pair(r)), (head_pair(r),)) for r in claim.heads]
    if claim.heads is not None:
        return [Target(selection_id(claim.heads))]
    if claim.layers is not None:
        return [Target(f"{claim.layers.part}{','.join(map(str, claim.layers.layers))}")]
    return [Target(f"lens-layer{claim.lens.layer}-top{claim.lens.top}")]


def _read_inputs(claim: Any, ctx: ClaimContext) -> tuple[Any, Any, Any, Any, str, dict[str, Any]]:
    """(ids, mask, read [b, s] bool, targets [N], label, params) for the claim's inputs."""
    import torch

    from icltest.runs.run import Run
    from icltest.schema.spec import MetricSpec

    try:
        if claim.task is not None:
            metric = MetricSpec(name="accuracy", task=claim.task, shots=claim.shots or 0, n=claim.n or 32,
                                seed=claim.seed or 0, split=claim.split or "test",
                                chat_template=claim.chat_template or "no")
            run = Run(ctx.session, ctx.loaded, metric)
            inputs = run.inputs
            # rows scored on every answer token were built teacher-forced; here the prompt alone is read
            first = [(len(t) - 1) if full else 0 for t, full in zip(inputs.answer_tokens, inputs.full)]
            read = torch.zeros_like(inputs.tokens, dtype=torch.bool)
            seq = inputs.tokens.shape[1]
            for row, back in enumerate(first):
                read[row, seq - 1 - back] = True
            tgt = torch.tensor([t[0] for t in inputs.answer_tokens], dtype=torch.long)
            return inputs.tokens, inputs.mask, read, tgt, inputs.label, dict(inputs.params)
        metric = MetricSpec(name="repeated_token_loss", part="later")
        run = Run(ctx.session, ctx.loaded, metric, ctx.probe_spec)
    except InputError as exc:
        key = ("task",) if claim.task is not None else ("probe",)
        raise ClaimSpecError(ctx.location(key), key[0], str(exc)) from None
    probe = run.inputs.probe
    index = run._loss_indices()  # positions whose next token is in a later copy ...
    index = index[(index + 1 - probe.prefix) % probe.segment != 0]  # ... but not a copy's first token
    tokens = run.inputs.tokens
    read = torch.zeros_like(tokens, dtype=torch.bool)
    read[:, index] = True
    tgt = tokens[:, 1:][read[:, :-1]]
    return tokens, None, read, tgt, run.inputs.label, dict(run.inputs.params)


def _effects(claim: Any, ctx: ClaimContext) -> tuple[Any, str, dict[str, Any]]:
    from icltest.attribution.dla import direct_effects, logit_lens

    key = ("logit_attribution", ctx.loaded.source, "lens" if claim.lens is not None else f"dla-centred={claim.centred}",
           claim.task, claim.shots, claim.n, claim.seed, claim.split, claim.chat_template,
           None if claim.task else repr(ctx.probe_spec))

    def compute() -> tuple[Any, str, dict[str, Any]]:
        ids, mask, read, tgt, label, params = _read_inputs(claim, ctx)
        ctx.session.forward_passes += 1
        if claim.lens is not None:
            return logit_lens(ctx.loaded, ids, read, tgt, mask=mask), label, params
        return direct_effects(ctx.loaded, ids, read, tgt, mask=mask, centred=claim.centred), label, params

    return ctx.session.memo(key, compute)


def _rank_among(table: Any, layer: int, head: int) -> int:
    return int((table > table[layer, head]).sum()) + 1


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    adapter = ctx.loaded.adapter
    result, label, params = _effects(claim, ctx)
    seed = params.get("seed")
    if claim.lens is not None:
        layer = claim.lens.layer
        L = adapter.n_layers
        if not -(L + 1) <= layer < L:
            raise ClaimSpecError(ctx.location(("lens", "layer")), "lens.layer",
                                 f"layer {layer} is out of range: the model has layers 0..{L - 1} (or -1..-{L + 1} from the end)")
        column = layer + 1 if layer >= 0 else L + 1 + layer
        top = result.top_fraction(claim.lens.top)
        half = [i for i, v in enumerate(top.tolist()) if v >= 0.5]
        def where(col: int) -> str:  # sweep column -> what a person calls it
            return "embedding" if col == 0 else (f"{col - 1} (output)" if col == L else str(col - 1))

        details = {"lens_layer": where(column), "top": claim.lens.top, "positions": int(result.rank.shape[0]),
                   "sweep_top_fraction": [round(float(v), 4) for v in top],
                   "sweep_mean_prob": [round(float(v), 4) for v in result.prob.mean(0)],
                   "sweep_columns": "column 0 = embedding, column L+1 = after layer L (last = model output)",
                   "first_layer_half_in_top": where(half[0]) if half else None,
                   "median_rank_here": float(result.rank[:, column].float().median())}
        return Measurement(float(top[column]), f"share in top {claim.lens.top} after layer {where(column)}",
                           details, label, seed)
    table = result.heads.mean(0)  # [L, H]
    check = float((result.total() - result.logit).abs().max())
    common = {"attributed": result.quantity, "final_norm": result.treatment, "sum_check_max_abs": round(check, 6),
              "positions": int(result.heads.shape[0]), "mean_target_logit": round(float(result.logit.mean()), 4),
              "all_heads_mean": round(float(table.mean()), 4), "all_heads_sd": round(float(table.std()), 4),
              "top_heads": [{"head": head_name(l, h), "value": round(float(table[l, h]), 4)}
                            for l, h in _top(table, 5)]}
    from icltest.report.maps import head_map

    dla_name = "direct logit attribution" + ("" if claim.centred else " (raw logit)")
    dla_unit = "direct effect on the target logit" + (" minus the mean logit" if claim.centred else "") + " (logits)"
    if claim.layers is not None:
        layers = list(claim.layers.layers)
        for layer in layers:
            if layer >= adapter.n_layers:
                raise ClaimSpecError(ctx.location(("layers", "layers")), "layers.layers",
                                     f"layer {layer} is out of range: the model has layers 0..{adapter.n_layers - 1}")
        per_layer = (result.attn() if claim.layers.part == "attn" else result.mlp).mean(0)
        value = float(per_layer[layers].sum())
        common["per_layer"] = {str(l): round(float(per_layer[l]), 4) for l in layers}
        common["maps"] = [head_map(dla_name, "dla", label, dla_unit, table)]
        return Measurement(value, f"direct effect of {claim.layers.part} blocks (logits)", common, label, seed)
    if isinstance(claim.heads, list):
        index = [head_pair(r) for r in claim.heads].index(target.heads[0])
        layer, head = target.heads[0]
        check_head(adapter, layer, head, ctx.location(("heads", index)), "heads")
        heads = [(layer, head)]
    else:
        heads = resolve_selection(claim.heads, ctx, ("heads",))
    values = {head_name(l, h): float(table[l, h]) for l, h in heads}
    worst = min(values, key=lambda name: claim.expect.margin(values[name]))
    l, h = next(p for p in heads if head_name(*p) == worst)
    details = dict(common, head=worst, heads={k: round(v, 4) for k, v in values.items()},
                   rank_among_heads=_rank_among(table, l, h), n_heads=int(table.numel()),
                   maps=[head_map(dla_name, "dla", label, dla_unit, table, heads)])
    return Measurement(values[worst], "direct effect (logits)", details, label, seed)


def _top(table: Any, k: int) -> list[tuple[int, int]]:
    flat = table.flatten().argsort(descending=True)[:k]
    H = table.shape[1]
    return [(int(i) // H, int(i) % H) for i in flat]


def judge(claim: Any, target: Target, m: Measurement) -> Verdict:
    passed = claim.expect.check(m.value)
    d = m.details
    if claim.lens is not None:
        summary = (f"{m.value:.3f} of {d['positions']} read positions have the target in the top {d['top']} after "
                   f"layer {d['lens_layer']} (expected {claim.expect}); half are in by layer {d['first_layer_half_in_top']}")
    elif claim.layers is not None:
        summary = f"{m.unit} = {m.value:.4f} (expected {claim.expect}); per layer {d['per_layer']}"
    else:
        summary = (f"direct effect of {d['head']} = {m.value:.4f} logits (expected {claim.expect}); rank "
                   f"{d['rank_among_heads']}/{d['n_heads']} among heads, all heads {d['all_heads_mean']:+.4f} "
                   f"+- {d['all_heads_sd']:.4f}")
    return Verdict(passed, str(claim.expect), summary, m)


def baseline_direction(claim: Any) -> str | None:
    """The value is a direct effect in logits (its sign depends on the claim: no default) or, with
    ``lens``, the share of positions whose target is in the top k (higher)."""
    from icltest.baseline import first_direction

    return first_direction(claim.expect, default="higher" if claim.lens is not None else None)
