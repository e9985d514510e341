"""`kind: property` — a behaviour holds for every input a Hypothesis strategy generates.

Per-sequence checks let Hypothesis shrink a failure to the smallest failing input, reported
decoded, with its value, the seed, a replay command and an ``examples_pinned`` snippet. Mean
checks judge a batch average per example and skip shrinking: a shrunk batch mean says nothing.

Inputs with nothing to score are rejected, and a pass needs ``min_examples`` valid ones: a
strategy that rejects nearly everything would otherwise "hold" on a handful of inputs, or none.
Generated examples and shrink steps are counted apart, so ``examples_run`` means what it says.

Forward results are cached by token ids, so shrinking and replays that revisit an input do not
recompute it. The Hypothesis seed comes from the session seed (``--icl-seed``) and the claim id,
never from the runner's source digest (every property item runs the same inner function), and
the example database is keyed per claim for the same reason.
"""
from __future__ import annotations

import hashlib
import math
import re
import time
from typing import Any, Callable, Literal

from pydantic import Field, model_validator

from icltest.claims.base import ClaimContext, ClaimSpecError, Measurement, Target, Verdict
from icltest.claims.heads import check_head, head_name, head_pair
from icltest.errors import InputError
from icltest.schema.base import ClaimBase
from icltest.schema.blocks import CheckSpec, PinnedExample, StrategySpec


class PropertyClaim(ClaimBase):
    """A behaviour holds for every input a Hypothesis strategy generates."""

    kind: Literal["property"]
    strategy: StrategySpec
    check: CheckSpec
    examples: int = Field(30, ge=1, le=10000, description="per-claim example budget; the Hypothesis profile scales it")
    min_examples: int | None = Field(
        None, ge=1, le=10000, description="valid (non-rejected) examples needed to pass; default a quarter of the "
        "scaled budget, at least 5 and at most the budget")
    examples_pinned: list[PinnedExample] = Field(default_factory=list, description="inputs always tried first")

    @model_validator(mode="after")
    def _fits(self) -> "PropertyClaim":
        if self.check.metric == "second_copy_top1" and self.strategy.kind not in ("repeated_random", "repeated_with_noise"):
            raise ValueError("second_copy_top1 needs a repeated_random or repeated_with_noise strategy")
        if self.check.metric == "answer_top1" and self.strategy.kind != "few_shot":
            raise ValueError("answer_top1 needs a few_shot strategy")
        if self.check.metric == "answer_top1" and any(p.answer is None for p in self.examples_pinned):
            raise ValueError("answer_top1 checks the answer token: every examples_pinned entry needs answer: <token id>")
        if self.min_examples is not None and self.min_examples > self.examples:
            raise ValueError(f"min_examples ({self.min_examples}) is more than the budget (examples: {self.examples}): "
                             "the claim could never pass")
        return self


Schema = PropertyClaim

DEFAULT_RANGES = {"length": (4, 64), "repeats": (2, 4), "noise_tokens": (0, 8), "shots": (1, 5)}


class PropertyViolation(AssertionError):
    """One generated example broke the property (carries what the report needs)."""

    def __init__(self, example: Any, value: float, message: str) -> None:
        super().__init__(message)
        self.example, self.value = example, value


def claim_seed(session_seed: int, claim_id: str) -> int:
    digest = hashlib.sha256(f"{session_seed}:{claim_id}".encode()).hexdigest()
    return int(digest[:12], 16)


def targets(claim: Any) -> list[Target]:
    check = claim.check
    if check.head is not None:
        pair = head_pair(check.head)
        return [Target(head_name(*pair), (pair,))]
    return [Target(str(check.metric))]


def _rng(spec: Any, name: str) -> Any:
    value = getattr(spec, name, None)
    if value is None:
        return DEFAULT_RANGES[name]
    return value if isinstance(value, int) else tuple(value)


def build_strategy(spec: Any, vocab: Any, tokenizer: Any) -> Any:
    """The Hypothesis strategy a spec's ``strategy:`` mapping describes."""
    from icltest import strategies

    bos = {"yes": True, "no": False}.get(getattr(spec, "bos", None) or "auto")
    if getattr(spec, "vocab", None) == "words":
        vocab = word_vocab(vocab, tokenizer)
    if spec.kind == "random_tokens":
        return strategies.random_tokens(vocab, length=_rng(spec, "length"), bos=bos)
    if spec.kind == "repeated_random":
        return strategies.repeated_segments(vocab, length=_rng(spec, "length"), repeats=_rng(spec, "repeats"), bos=bos)
    if spec.kind == "repeated_with_noise":
        return strategies.repeated_with_noise(vocab, length=_rng(spec, "length"), repeats=_rng(spec, "repeats"),
                                              noise_tokens=_rng(spec, "noise_tokens"), bos=bos)
    if spec.kind == "few_shot":
        return strategies.few_shot_prompts(tokenizer, spec.task, shots=_rng(spec, "shots"))
    return strategies.natural_text_spans(tokenizer, length=spec.length or (16, 128), corpus=spec.corpus or "essays", bos=bos)


_WORD = re.compile(r"^ ?[A-Za-z]{2,}$")
_WORD_VOCABS: dict[tuple[int, int], Any] = {}


def word_vocab(vocab: Any, tokenizer: Any) -> Any:
    """The drawable tokens that decode to a word: letters only, optionally after one space.

    Low token ids in byte-level BPE vocabularies are single punctuation bytes, and Hypothesis
    shrinks towards low ids; restricting to word tokens asks about the text a model usually copies.
    """
    from dataclasses import replace

    import torch

    key = (id(tokenizer), vocab.size)  # decoding every id takes a while: once per tokenizer
    if key not in _WORD_VOCABS:
        keep = [int(i) for i in vocab.allowed.tolist() if _WORD.match(tokenizer.decode([int(i)]))]
        if not keep:
            raise InputError("no token of this tokenizer decodes to a word; use vocab: non_special")
        _WORD_VOCABS[key] = replace(vocab, allowed=torch.tensor(keep))
    return _WORD_VOCABS[key]


class SequenceEvaluator:
    """Computes a check's per-sequence value, caching forward results by token ids."""

    def __init__(self, claim: Any, ctx: ClaimContext) -> None:
        self.loaded = ctx.loaded
        self.cache: dict[tuple[int, ...], float] = {}
        self.forward_calls = 0
        self.seconds = 0.0
        check = claim.check
        if check.head is not None:
            layer, head = head_pair(check.head)
            check_head(self.loaded.adapter, layer, head, ctx.location(("check", "head")), "check.head")
            self._fn: Callable[[Any], float] = self._score_fn(check.score, layer, head)
        else:
            self._fn = {"second_copy_top1": self._second_copy_top1, "answer_top1": self._answer_top1}[check.metric]

    def __call__(self, sequence: Any) -> float:
        key = tuple(sequence.ids)
        if key not in self.cache:
            start = time.perf_counter()
            self.forward_calls += 1
            self.cache[key] = self._fn(sequence)
            self.seconds += time.perf_counter() - start
        return self.cache[key]

    def _score_fn(self, score: str, layer: int, head: int) -> Callable[[Any], float]:
        import torch

        from icltest.models.hooks import attention_callbacks
        from icltest.scores import patterns

        adapter = self.loaded.adapter
        builder = getattr(patterns, f"{score}_targets")

        def run(sequence: Any) -> float:
            tokens = torch.tensor([sequence.ids])
            valid = torch.ones_like(tokens, dtype=torch.bool)
            valid[:, : sequence.prefix] = False
            target, query_mask = builder(tokens, valid)
            captured: dict[str, float] = {}

            def on_layer(_layer: int, probs: Any) -> None:
                probs = probs[:, head: head + 1]
                captured["v"] = float(patterns.pattern_score(probs, target.to(probs.device), query_mask.to(probs.device),
                                                             per_sequence=True)[0, 0])
                raise _StopForward  # the layers after this one cannot change its pattern

            try:
                with torch.inference_mode(), attention_callbacks(adapter, on_layer, layers=[layer]):
                    self.loaded.model(input_ids=tokens.to(_device(self.loaded)))
            except _StopForward:
                pass
            return captured["v"]

        return run

    def _logits(self, sequence: Any) -> Any:
        import torch

        with torch.inference_mode():
            return self.loaded.model(input_ids=torch.tensor([sequence.ids]).to(_device(self.loaded))).logits[0].cpu()

    def _second_copy_top1(self, sequence: Any) -> float:
        predicted = self._logits(sequence).argmax(-1)
        hits = [int(predicted[p - 1]) == sequence.ids[p]
                for start in sequence.copies[1:] for p in range(start + 1, start + sequence.segment)]
        return float(sum(hits) / len(hits)) if hits else math.nan

    def _answer_top1(self, sequence: Any) -> float:
        if sequence.answer is None:
            raise ValueError("answer_top1 needs inputs with an answer (a few_shot strategy)")
        return float(int(self._logits(sequence)[-1].argmax()) == int(sequence.answer))


class _StopForward(Exception):
    """Raised from a hook to skip the layers after the one a score needs."""


def _device(loaded: Any) -> Any:
    return next(loaded.model.parameters()).device


def _pinned(spec: Any) -> Any:
    from icltest.strategies import TokenSequence

    return TokenSequence(tuple(spec.ids), spec.prefix, spec.segment, spec.repeats, tuple(spec.copies), answer=spec.answer)


def _budget(examples: int) -> int:
    """The claim's budget scaled by the active Hypothesis profile (100 examples = scale 1)."""
    from hypothesis import settings

    return max(1, round(examples * settings.default.max_examples / 100))


def min_valid(claim: Any, budget: int) -> int:
    """Valid examples a property needs before "held on every input" means anything.

    A strategy whose inputs are mostly rejected (nothing to score) can end with a handful of
    checked inputs, or none; passing on that would be a verdict without evidence. Default: a
    quarter of the scaled budget, at least 5, never more than the budget itself.
    """
    if claim.min_examples is not None:
        return int(claim.min_examples)
    return min(budget, max(5, budget // 4))


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    from hypothesis import HealthCheck, Phase, example, given, reject, seed, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable

    evaluator = SequenceEvaluator(claim, ctx)
    vocab = ctx.session.vocab(ctx.loaded)
    try:
        strategy = build_strategy(claim.strategy, vocab, ctx.loaded.tokenizer)
    except InputError as exc:
        raise ClaimSpecError(ctx.location(("strategy",)), "strategy", str(exc)) from None
    _check_pinned(claim, ctx)
    check = claim.check
    comparison = check.per_sequence if check.per_sequence is not None else check.mean
    aggregate = check.mean is not None
    if aggregate:
        # Distinct sequences: Hypothesis' first (simplest) example would otherwise repeat one input.
        strategy = st.lists(strategy, min_size=check.batch, max_size=check.batch, unique_by=lambda q: q.ids)
    values: list[float] = []  # the valid generated examples' values (not shrink steps)
    # Generated examples end at the first failure: with report_multiple_bugs off, every call after
    # it is a shrink step (and the final replay of the minimal example).
    count = {"examples": 0, "rejected": 0, "shrink_steps": 0}
    failed: list[bool] = []

    def value_of(x: Any) -> float:
        if not aggregate:
            return evaluator(x)
        vals = [v for v in (evaluator(s) for s in x) if not math.isnan(v)]
        return sum(vals) / len(vals) if vals else math.nan

    def prop(x: Any) -> None:
        generated = not failed
        count["examples" if generated else "shrink_steps"] += 1
        v = value_of(x)
        if math.isnan(v):
            count["rejected"] += generated
            reject()  # no query the check can score (e.g. nothing repeats yet): not evidence either way
        if generated:
            values.append(v)
        if not comparison.check(v):
            failed.append(True)
            raise PropertyViolation(x, v, f"value {v:.4f} does not satisfy {comparison}")

    session_seed = int(getattr(ctx.session, "seed", 0) or 0)
    hyp_seed = claim_seed(session_seed, claim.id)
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([] if aggregate else [Phase.shrink])
    budget = _budget(claim.examples)
    test = given(strategy)(prop)
    for pinned in reversed(claim.examples_pinned):
        test = example([_pinned(pinned)] * check.batch if aggregate else _pinned(pinned))(test)
    test = settings(settings.default, max_examples=budget, deadline=None, phases=phases, print_blob=False,
                    report_multiple_bugs=False, suppress_health_check=list(HealthCheck))(test)
    test = seed(hyp_seed)(test)
    # Every property item runs this same inner function; key the example database by claim instead.
    test._hypothesis_internal_database_key = hashlib.sha256(  # type: ignore[attr-defined]
        f"icltest:{ctx.location(())}:{claim.id}:{ctx.loaded.source}".encode()).digest()
    start = time.perf_counter()
    failure: PropertyViolation | None = None
    try:
        test()
    except PropertyViolation as exc:
        failure = exc
    except Unsatisfiable:
        pass  # every generated input was rejected: judged below as too few valid examples
    seconds = time.perf_counter() - start
    finite = [v for v in values if not math.isnan(v)]
    details: dict[str, Any] = {
        "strategy": claim.strategy.model_dump(exclude_none=True), "check": _check_text(claim),
        "examples_budget": budget, "examples_run": count["examples"], "examples_valid": len(values),
        "examples_rejected": count["rejected"], "min_examples": min_valid(claim, budget),
        "shrink_steps": count["shrink_steps"], "forward_calls": evaluator.forward_calls,
        "seconds": round(seconds, 2),
        "seconds_per_forward": round(evaluator.seconds / evaluator.forward_calls, 4) if evaluator.forward_calls else None,
        "hypothesis_seed": hyp_seed, "session_seed": session_seed, "shrinking": not aggregate,
        "min": round(min(finite), 4) if finite else None,
        "mean": round(sum(finite) / len(finite), 4) if finite else None,
    }
    if failure is not None:
        details["counterexample"] = _describe(failure, ctx, aggregate)
        value = failure.value
    else:
        value = (min(finite, key=comparison.margin) if finite else math.nan)
    probe = f"hypothesis {claim.strategy.kind} ({budget} examples)"
    return Measurement(value, _check_text(claim), details, probe, hyp_seed)


def _check_pinned(claim: Any, ctx: ClaimContext) -> None:
    """Pinned ids come from a spec (often from another model's failure): they must fit this tokenizer."""
    size = len(ctx.loaded.tokenizer)
    for i, pinned in enumerate(claim.examples_pinned):
        bad = [t for t in list(pinned.ids) + ([pinned.answer] if pinned.answer is not None else []) if t >= size]
        if bad:
            raise ClaimSpecError(ctx.location(("examples_pinned", i)), f"examples_pinned[{i}]",
                                 f"token ids {bad} are not in this model's vocabulary ({size} tokens); "
                                 "pinned examples are specific to the tokenizer they were found with")


def _check_text(claim: Any) -> str:
    check = claim.check
    what = f"{check.score} score of {head_name(*head_pair(check.head))}" if check.head is not None else check.metric
    return f"{what} per sequence" if check.per_sequence is not None else f"mean {what} over {check.batch} sequences"


def _describe(failure: PropertyViolation, ctx: ClaimContext, aggregate: bool) -> dict[str, Any]:
    tok = ctx.loaded.tokenizer
    seqs = failure.example if aggregate else [failure.example]
    first = seqs[0]
    out: dict[str, Any] = {
        "value": None if math.isnan(failure.value) else round(failure.value, 4),
        "ids": list(first.ids), "length": len(first.ids), "text": tok.decode(list(first.ids)),
        "segment": first.segment, "repeats": first.repeats, "copies": list(first.copies), "noise": list(first.noise),
    }
    if aggregate:
        out["batch"] = len(seqs)
    pinned = {"ids": list(first.ids)}
    for key in ("prefix", "segment", "repeats", "answer"):
        value = getattr(first, key)
        if value:
            pinned[key] = value
    if first.copies:
        pinned["copies"] = list(first.copies)
    out["pinned"] = pinned
    return out


def judge(claim: Any, target: Target, m: Measurement) -> Verdict:
    d = m.details
    comparison = claim.check.per_sequence if claim.check.per_sequence is not None else claim.check.mean
    expect = f"{'every sequence' if claim.check.per_sequence is not None else 'mean'} {comparison}"
    if "counterexample" not in d and d["examples_valid"] < d["min_examples"]:
        summary = (f"only {d['examples_valid']} valid examples (minimum {d['min_examples']}): {d['examples_rejected']} "
                   f"of {d['examples_run']} generated inputs had nothing to score and were rejected; widen the "
                   "strategy (e.g. longer inputs) or set min_examples")
        return Verdict(False, expect + f" on >= {d['min_examples']} valid examples", summary, m)
    if "counterexample" not in d:
        summary = (f"{d['check']} {comparison} held on {d['examples_valid']} valid examples "
                   f"({d['examples_rejected']} rejected; worst {m.value:.4f}, mean {d['mean']}); "
                   f"{d['forward_calls']} forward passes, {d['seconds_per_forward']} s each")
        return Verdict(True, expect, summary, m)
    c = d["counterexample"]
    shape = (f"segment {c['segment']} x {c['repeats']} repeats" + (f", noise {c['noise']}" if any(c["noise"]) else "")
             if c["segment"] else f"{c['length']} tokens")
    summary = (f"{d['check']} = {m.value:.4f} violates {comparison} on a {'minimal ' if d['shrinking'] else ''}input "
               f"of {c['length']} tokens ({shape}) after {d['examples_run']} examples"
               + (f" and {d['shrink_steps']} shrink steps" if d["shrinking"] else ""))
    lines = [
        f"  minimal:  ids {c['ids']}" if d["shrinking"] else f"  failing:  first sequence of the batch, ids {c['ids']}",
        f"  decoded:  {c['text']!r}",
        f"  pin it:   examples_pinned: [{_flow(c['pinned'])}]",
        f"  seed:     hypothesis seed {d['hypothesis_seed']} (from --icl-seed {d['session_seed']} and the claim id)",
    ]
    m.details["failure_lines"] = lines
    return Verdict(False, expect, summary, m)


def _flow(mapping: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in mapping.items()) + "}"


def baseline_direction(claim: Any) -> str | None:
    """The claim has no ``expect``: the value is the example closest to failing ``check.per_sequence``
    or ``check.mean``, so that bound decides; else higher for the metrics (top-1 shares), none for scores."""
    from icltest.baseline import first_direction

    check = claim.check
    return first_direction(check.per_sequence, check.mean, default="higher" if check.metric is not None else None)
