"""`kind: property` — a behaviour holds for every sequence a Hypothesis strategy generates.

Per-sequence checks let Hypothesis shrink a failure to the smallest failing sequence, which
is reported decoded, with its value, the seed, a replay command and a pinned-example snippet.
Aggregate checks (`mean:` over a batch of `batch` sequences per example) skip shrinking:
a shrunk batch mean says nothing useful.

Forward results are cached by token ids, so shrinking and replays that revisit a sequence do
not recompute it. The Hypothesis seed comes from the session seed and the claim id, never from
the runner's source digest (every property item runs the same inner function).
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Callable

from icltest.claims.base import ClaimContext, ClaimSpecError, Measurement, Target, Verdict
from icltest.claims.heads import check_head, head_name, head_pair


class PropertyViolation(AssertionError):
    """One generated example broke the property (carries what the report needs)."""

    def __init__(self, sequence: Any, value: float, message: str) -> None:
        super().__init__(message)
        self.sequence, self.value = sequence, value


def claim_seed(session_seed: int, claim_id: str) -> int:
    digest = hashlib.sha256(f"{session_seed}:{claim_id}".encode()).hexdigest()
    return int(digest[:12], 16)


def targets(claim: Any) -> list[Target]:
    check = claim.check
    if getattr(check, "head", None) is not None:
        pair = head_pair(check.head)
        return [Target(head_name(*pair), (pair,))]
    return [Target(str(check.metric))]


def build_strategy(spec: Any, vocab: Any) -> Any:
    from icltest import strategies

    kind = spec.kind
    bos = {"auto": None, "yes": True, "no": False}.get(getattr(spec, "bos", "auto"), None)
    if kind == "random_tokens":
        return strategies.random_tokens(vocab, length=spec.length, bos=bos)
    if kind == "repeated_random":
        return strategies.repeated_segments(vocab, length=spec.length, repeats=spec.repeats, bos=bos)
    if kind == "repeated_with_noise":
        return strategies.repeated_with_noise(
            vocab, length=spec.length, repeats=spec.repeats, noise_tokens=spec.noise_tokens, bos=bos
        )
    raise ValueError(f"unknown strategy kind '{kind}'")


class SequenceEvaluator:
    """Computes a check's per-sequence value, caching forward results by token ids."""

    def __init__(self, claim: Any, ctx: ClaimContext) -> None:
        self.claim, self.ctx = claim, ctx
        self.loaded = ctx.loaded
        self.cache: dict[tuple[int, ...], float] = {}
        self.forward_calls = 0
        check = claim.check
        if getattr(check, "head", None) is not None:
            layer, head = head_pair(check.head)
            check_head(self.loaded.adapter, layer, head, ctx.location(("check", "head")), "check.head")
            self._fn: Callable[[Any], float] = self._score_fn(check.score, layer, head)
        else:
            self._fn = self._metric_fn(str(check.metric))

    def __call__(self, sequence: Any) -> float:
        key = tuple(sequence.ids)
        if key not in self.cache:
            self.forward_calls += 1
            self.cache[key] = self._fn(sequence)
        return self.cache[key]

    def _score_fn(self, score: str, layer: int, head: int) -> Callable[[Any], float]:
        import torch

        from icltest.scores import patterns

        adapter = self.loaded.adapter
        builder = getattr(patterns, f"{score}_targets")

        def run(sequence: Any) -> float:
            tokens = torch.tensor([sequence.ids])
            valid = torch.ones_like(tokens, dtype=torch.bool)
            valid[:, : sequence.prefix] = False
            target, query_mask = builder(tokens, valid)
            captured: dict[str, float] = {}

            def hook(_m: Any, _i: Any, output: Any) -> None:
                probs = output[1][:, head : head + 1]
                captured["v"] = float(patterns.pattern_score(probs, target, query_mask, per_sequence=True)[0, 0])
                raise _StopForward

            handle = adapter.attention(layer).register_forward_hook(hook)
            try:
                with torch.inference_mode():
                    self.loaded.model(input_ids=tokens.to(_device(self.loaded)))
            except _StopForward:
                pass
            finally:
                handle.remove()
            return captured["v"]

        return run

    def _metric_fn(self, metric: str) -> Callable[[Any], float]:
        import torch

        if metric != "second_copy_top1":
            raise ClaimSpecError(self.ctx.location(("check", "metric")), "check.metric",
                                 f"unknown metric '{metric}'; known: second_copy_top1")

        def run(sequence: Any) -> float:
            tokens = torch.tensor([sequence.ids])
            with torch.inference_mode():
                logits = self.loaded.model(input_ids=tokens.to(_device(self.loaded))).logits[0]
            predicted = logits.argmax(-1).cpu()
            hits = [
                int(predicted[p - 1]) == sequence.ids[p]
                for start in sequence.copies[1:]
                for p in range(start + 1, start + sequence.segment)
            ]
            return float(sum(hits) / len(hits)) if hits else math.nan

        return run


class _StopForward(Exception):
    """Raised from a hook to skip the layers after the one a score needs."""


def _device(loaded: Any) -> Any:
    return next(loaded.model.parameters()).device
