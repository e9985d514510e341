"""`kind: head_attention` — heads put a share of their attention on a span of book prompts.

In-context heads split into *task heads*, which attend to the question, and *retrieval heads*,
which attend to (and copy) the answer inside the context. This kind measures that directly: on
seeded open-book (or counterfactual / closed-book) prompts, the attention probability that a head
puts, from the last prompt token (the one that predicts the answer), on the tokens of a span,
averaged over prompts (:mod:`icltest.scores.span_attention`; spans in :mod:`icltest.probes.spans`):

- ``question``: the query's question; ``answer``: the answer's occurrence(s) in the query's
  context (none in closed-book prompts); ``context``: the query's context; ``demonstrations``: the
  solved items before the query (``shots >= 1``); ``prompt_format``: "Question:" and "Answer:".

Chance level: the span's share of the positions the last token sees (what attention spread evenly
would give) is reported as ``uniform``; ``over_uniform`` bounds mass / uniform (">= 3": at least
three times chance).

Heads: a list is one item per head; ``{top: k, by: attention}`` is one model-agnostic item whose
k heads with the most mass on the span must all meet the bound; ``{layers: ...}`` is one item that
every head in those layers must meet. Prompts come from the ``test`` split unless ``split: select``.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator

from icltest.claims.base import ClaimContext, ClaimSpecError, Measurement, Target, Verdict
from icltest.claims.heads import check_head, head_name, head_pair, resolve_selection
from icltest.errors import InputError
from icltest.schema.base import ClaimBase, Expectation, Head, HeadRange, TopHeads, _heads_tag
from icltest.schema.blocks import ChatTemplate

SPANS = ("question", "answer", "context", "demonstrations", "prompt_format")
Span = Literal["question", "answer", "context", "demonstrations", "prompt_format"]
BookTask = Literal["open_book", "counterfactual", "closed_book"]


class TopByAttention(TopHeads):
    """The ``top`` heads with the most attention on the claim's span."""

    by: Literal["attention"] | None = Field(None, description="attention mass on the claim's span (the default)")


AttentionHeads = Annotated[
    Union[
        Annotated[list[Head], Tag("list"), Field(min_length=1)],
        Annotated[TopByAttention, Tag("top")],
        Annotated[HeadRange, Tag("range")],
    ],
    Discriminator(_heads_tag),
]


class HeadAttentionClaim(ClaimBase):
    """Heads put a share of their attention, from the last prompt token, on a span of book prompts."""

    kind: Literal["head_attention"]
    heads: AttentionHeads
    task: BookTask = Field("open_book", description="which book prompts (open_book, counterfactual, closed_book)")
    shots: int = Field(0, ge=0, le=16, description="solved items before the query")
    n: int = Field(48, ge=1, le=4096)
    seed: int = Field(0, ge=0)
    split: Literal["select", "test"] = Field(
        "test", description="items to measure on (select: the ones heads are chosen on)")
    chat_template: ChatTemplate = Field("no", description="spans exist in plain prompts only: keep no")
    span: Span = Field(description="where the attention goes: question, answer, context, demonstrations, "
                                   "prompt_format")
    expect: Expectation = Field(description="bound on the attention mass (0 to 1) on the span")
    over_uniform: Expectation | None = Field(
        None, description="bound on mass / uniform share of the span (chance level), e.g. '>= 3'")

    @field_validator("span")
    @classmethod
    def _span_exists(cls, value: str, info: ValidationInfo) -> str:
        task, shots = info.data.get("task"), info.data.get("shots")
        if task == "closed_book" and value in ("answer", "context"):
            raise ValueError(f"closed_book prompts have no context, so no {value} span; use task: open_book or "
                             "counterfactual, or span: question / demonstrations / prompt_format")
        if value == "demonstrations" and shots == 0:
            raise ValueError("span demonstrations needs shots >= 1 (the claim has shots: 0)")
        return value


Schema = HeadAttentionClaim

POPULATION_RULE = ("every head meets the bound (a bound on a deterministic measurement on the seeded prompts, "
                   "not a test: no multiple-comparison correction)")


def targets(claim: Any) -> list[Target]:
    heads = claim.heads
    if isinstance(heads, list):
        return [Target(head_name(*p), (p,)) for p in (head_pair(ref) for ref in heads)]
    if hasattr(heads, "top"):
        return [Target(f"top{heads.top}")]
    return [Target(f"layers{heads.text}")]


def _key(claim: Any, loaded: Any) -> tuple[Any, ...]:
    return ("head_attention", loaded.source, claim.task, claim.shots, claim.n, claim.seed, claim.split,
            claim.chat_template)


def attention_run(claim: Any, ctx: ClaimContext) -> tuple[Any, Any]:
    """(SpanAttention, TaskBatch) for the claim's prompts: measured once per session and shared."""
    from icltest.scores.span_attention import measure_span_attention, padded_with_spans

    def compute() -> tuple[Any, Any]:
        batch = _prompts(claim, ctx)
        ids, mask, masks = padded_with_spans(batch, ctx.loaded.tokenizer)
        result = measure_span_attention(ctx.loaded, ids, mask, masks)
        ctx.session.forward_passes += result.forward_passes
        return result, batch

    return ctx.session.memo(_key(claim, ctx.loaded), compute)


def _prompts(claim: Any, ctx: ClaimContext) -> Any:
    """The claim's prompts with spans; what this model cannot serve is an error at the spec key
    that asked for it: a chat template (no spans), too many shots, prompts past its positions."""
    from icltest.probes.books import build_book_prompts
    from icltest.probes.prompts import use_chat_template

    tok = ctx.loaded.tokenizer
    try:
        chat = use_chat_template(tok, claim.chat_template)
    except InputError as exc:
        raise ClaimSpecError(ctx.location(("chat_template",)), "chat_template", str(exc)) from None
    if chat:
        raise ClaimSpecError(ctx.location(("chat_template",)), "chat_template",
                             "head_attention measures spans of plain prompts; with a chat template the prompt's "
                             "parts have no spans - use chat_template: no")
    try:
        batch = build_book_prompts(claim.task, tok, n=claim.n, seed=claim.seed, shots=claim.shots, split=claim.split,
                                   spans=True)
    except InputError as exc:
        raise ClaimSpecError(ctx.location(("shots",)), "shots", str(exc)) from None
    positions = ctx.loaded.geometry.positions
    longest = max(len(ids) for ids in batch.input_ids)
    if positions is not None and longest > positions:
        raise ClaimSpecError(ctx.location(("shots",)), "shots",
                             f"the prompts are up to {longest} tokens long (shots={claim.shots}) but the model has "
                             f"{positions} positions; lower shots")
    return batch


def selected_heads(claim: Any, target: Target, table: Any, ctx: ClaimContext) -> list[tuple[int, int]]:
    heads, adapter = claim.heads, ctx.loaded.adapter
    if isinstance(heads, list):
        index = [head_pair(r) for r in heads].index(target.heads[0])
        check_head(adapter, *target.heads[0], ctx.location(("heads", index)), "heads")
        return list(target.heads)
    if hasattr(heads, "top"):
        from icltest.scores.ranking import top_heads

        total = adapter.n_layers * adapter.n_heads
        if heads.top > total:
            raise ClaimSpecError(ctx.location(("heads", "top")), "heads.top",
                                 f"top {heads.top} exceeds the model's {total} heads")
        return sorted((l, h) for l, h, _ in top_heads(table, heads.top))
    return resolve_selection(heads, ctx, ("heads",))


def _top(table: Any, k: int = 8) -> list[dict[str, Any]]:
    from icltest.scores.ranking import top_heads

    return [{"head": head_name(l, h), "value": round(float(v), 4)} for l, h, v in top_heads(table, k)]


def _ratio(mass: float, uniform: float) -> float:
    return mass / uniform if uniform > 0 else float("nan")


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    result, batch = attention_run(claim, ctx)
    table = result.mass[claim.span]
    uniform = result.uniform[claim.span]
    heads = selected_heads(claim, target, table, ctx)
    values = {head_name(l, h): float(table[l, h]) for l, h in heads}

    def margin(name: str) -> float:
        m = claim.expect.margin(values[name])
        if claim.over_uniform is not None:
            m = min(m, claim.over_uniform.margin(_ratio(values[name], uniform)))
        return m

    worst = min(values, key=margin)  # the head closest to failing
    details: dict[str, Any] = {
        "span": claim.span, "task": claim.task, "shots": claim.shots, "n": claim.n, "seed": claim.seed,
        "split": claim.split, "position": "last prompt token",
        "head": worst,
        "heads": {k: round(v, 4) for k, v in values.items()},
        "over_uniform": {k: round(_ratio(v, uniform), 3) for k, v in values.items()},
        "mass_by_span": {head_name(l, h): {s: round(float(result.mass[s][l, h]), 4) for s in result.mass}
                         for l, h in heads},
        "uniform": {s: round(u, 4) for s, u in result.uniform.items()},
        "top_heads": _top(table),
        "bos": batch.params.get("bos"),
        "items": batch.params.get("items"), "items_total": batch.params.get("items_total"),
    }
    if len(values) > 1:
        details["violations"] = {k: round(v, 4) for k, v in values.items() if margin(k) < 0}
        details["multiple_comparisons"] = POPULATION_RULE
    probe = (f"{claim.task} prompts (shots={claim.shots}, n={claim.n}, seed={claim.seed}, split={claim.split}, "
             f"plain), attention from the last prompt token on span {claim.span}")
    return Measurement(values[worst], f"attention on {claim.span}", details, probe, claim.seed)


def judge(claim: Any, target: Target, m: Measurement) -> Verdict:
    uniform = m.details["uniform"][claim.span]
    ratio = m.details["over_uniform"][m.details["head"]]
    passed = claim.expect.check(m.value)
    expect = str(claim.expect)
    if claim.over_uniform is not None:
        passed = passed and claim.over_uniform.check(ratio)
        expect += f"; over uniform {claim.over_uniform}"
    heads = m.details["heads"]
    if len(heads) == 1:
        summary = (f"attention of {m.details['head']} on {claim.span} = {m.value:.4f}, {ratio:.2f}x uniform "
                   f"{uniform:.4f} (expected {expect})")
    else:
        bad = m.details.get("violations", {})
        summary = (f"{len(heads) - len(bad)}/{len(heads)} heads meet attention on {claim.span} {expect}; "
                   f"closest to failing: {m.details['head']} = {m.value:.4f} ({ratio:.2f}x uniform {uniform:.4f})")
        if bad:
            shown = ", ".join(f"{k}={v:.3f}" for k, v in sorted(bad.items(), key=lambda kv: kv[1])[:8])
            summary += f"; violating: {shown}" + (" ..." if len(bad) > 8 else "")
    return Verdict(passed, expect, summary, m)


def baseline_direction(claim: Any) -> str | None:
    """The value is attention mass on the span (of the head closest to failing): its bound decides,
    else ``over_uniform``'s (mass / uniform moves with it); a head may be claimed to look away, so
    there is no default."""
    from icltest.baseline import first_direction

    return first_direction(claim.expect, claim.over_uniform)
