"""Schema blocks the built-in claim kinds are made of: metrics, effects, controls, strategies.

Each claim kind's top-level model lives in its own module under ``icltest.claims`` (next to the
code that measures and judges it); the mappings nested inside those models live here so that
kinds can share them (``ablation`` and ``task_accuracy`` read the same metric names) and so that
the plugin can validate a spec without importing any claim implementation's heavy dependencies.
"""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field, field_validator, model_validator

from icltest.runs.metrics import METRIC_NAMES, TASK_METRICS  # noqa: F401  (TASK_METRICS re-exported)
from icltest.runs.metrics import problems as metric_problems
from icltest.schema.base import (
    Comparison,
    Expectation,
    Head,
    ScoreName,
    _check_task,
    _layer_list,
    _Strict,
)

# ----------------------------------------------------------------------------- head claims


class RankExpect(_Strict):
    """head_rank: a comparison on the rank (1 = highest)."""

    rank: Expectation


# ----------------------------------------------------------------------------- behaviour

Part = Union[Literal["first", "second_half", "later", "all"], Annotated[int, Field(ge=0)]]
ChatTemplate = Literal["auto", "yes", "no"]


class _MetricFields(_Strict):
    part: Part | None = Field(None, description="repeated_token_loss: which repeats (default second_half)")
    task: str | None = Field(None, description="accuracy / recall / answer_prob: an ICL task or open_book / closed_book / counterfactual")
    shots: int | None = Field(None, ge=0, le=64, description="demonstrations before each query (default 0)")
    n: int | None = Field(None, ge=1, le=4096, description="number of prompts (default 48)")
    seed: int | None = Field(None, ge=0, description="prompt sampling seed (default 0)")
    chat_template: ChatTemplate | None = Field(None, description="wrap prompts in the model's chat template (default no)")
    split: Literal["select", "test"] | None = Field(
        None, description="task items: test (judging, default) or select (choosing heads); references use the other")
    shuffled_labels: bool | None = Field(
        None, description="demonstrations' outputs permuted among themselves, none kept (needs shots >= 2)")
    late: int | None = Field(None, ge=1, description="icl_score: token position with more context")
    early: int | None = Field(None, ge=1, description="icl_score: token position with less context")
    window: int | None = Field(None, ge=1, description="icl_score: average the loss over this many positions ending at late/early")

    _check_task = field_validator("task")(classmethod(lambda cls, v: _check_task(v)))


class MetricSpec(_MetricFields):
    """What a behavioural claim measures, and on which inputs."""

    name: Literal[METRIC_NAMES] = Field(description="a metric from the run layer's table (icltest/runs/metrics.py)")

    @model_validator(mode="after")
    def _fields_fit_metric(self) -> "MetricSpec":
        wrong = metric_problems(self.name, self.model_dump(exclude={"name"}))
        if wrong:
            raise ValueError("; ".join(wrong))
        if self.late is not None and self.early is not None and self.early >= self.late:
            raise ValueError(f"early ({self.early}) must be before late ({self.late})")
        if self.shuffled_labels and (self.shots or 0) < 2:
            raise ValueError(f"shuffled_labels needs shots >= 2 (demonstrations to permute), got shots: {self.shots or 0}")
        return self

    def merged(self, other: "_MetricFields", name: str | None = None) -> "MetricSpec":
        """This metric with the fields ``other`` sets (used by ``also:``)."""
        data = self.model_dump(exclude_none=True)
        data.update(other.model_dump(exclude_none=True, exclude={"expect", "name"}))
        if name:
            data["name"] = name
        return MetricSpec.model_validate(data)


class EffectExpect(_Strict):
    """How the metric must move under the ablation: ``increase`` = ablated - clean, ``drop`` = clean - ablated."""

    increase: Expectation | None = None
    drop: Expectation | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "EffectExpect":
        if (self.increase is None) == (self.drop is None):
            raise ValueError("give exactly one of increase (ablated - clean) or drop (clean - ablated)")
        return self

    @property
    def direction(self) -> str:
        return "increase" if self.increase is not None else "drop"

    @property
    def comparison(self) -> Comparison:
        return self.increase if self.increase is not None else self.drop  # type: ignore[return-value]


class ControlExpect(_Strict):
    """Bounds on where the target effect falls among the random draws (see icltest/scores/control.py).

    ``p`` and ``z`` are the statistics a verdict should rest on; ``effect_ratio`` and ``mean`` are
    kept for existing specs, and the ratio is NaN (fails) unless the control mean is clearly non-zero.
    """

    p: Expectation | None = Field(
        None, description="permutation p-value: (1 + draws with effect >= target) / (draws + 1); smallest 1/(draws+1)")
    z: Expectation | None = Field(
        None, description="(target - mean of draws) / sd of draws; sd 0: +inf / -inf by side, NaN when equal (fails)")
    effect_ratio: Expectation | None = Field(
        None, description="target effect / |mean control effect|; NaN (fails) unless |mean| > 3 standard errors")
    mean: Expectation | None = Field(None, description="mean effect of the random draws")

    @model_validator(mode="after")
    def _something(self) -> "ControlExpect":
        if self.p is None and self.z is None and self.effect_ratio is None and self.mean is None:
            raise ValueError("give p, z, effect_ratio and/or mean")
        return self


class ControlSpec(_Strict):
    """Ablate as many random heads (never the targets) in ``draws`` seeded draws, and compare."""

    random_heads: Literal["same_count"] | Annotated[int, Field(ge=1)] = "same_count"
    match: Literal["layers"] | None = Field(
        None, description="layers: draw as many heads from each target layer as the targets have there")
    draws: int = Field(19, ge=1, le=1000, description="number of random draws; p <= 0.05 needs >= 19")
    seed: int = Field(0, ge=0)
    expect: ControlExpect

    @model_validator(mode="after")
    def _reachable(self) -> "ControlSpec":
        if self.match == "layers" and self.random_heads != "same_count":
            raise ValueError("match: layers needs random_heads: same_count (the targets' own layers set the counts)")
        for key in ("z", "effect_ratio"):
            if getattr(self.expect, key) is not None and self.draws < 2:
                raise ValueError(f"{key} needs draws >= 2 (the spread of the draws), got draws: {self.draws}")
        p = self.expect.p
        if p is not None:
            needed = _draws_for_p(p)
            if needed is None:
                raise ValueError(f"p {p} can never pass: p is always > 0 (its smallest value is 1 / (draws + 1))")
            if self.draws < needed:
                n = self.draws + 1
                raise ValueError(f"with draws: {self.draws} the smallest possible p is 1/{n} = {1 / n:.3g}, so "
                                 f"p {p} can never pass; use draws >= {needed}")
        return self


def _draws_for_p(p: Comparison) -> int | None:
    """The fewest draws N whose smallest p, 1 / (N + 1), meets ``p``'s upper bound (None: none does).

    Only an upper bound can be out of reach (p ranges over k / (N + 1), k = 1..N+1); ``==`` and
    ``between`` need at least their (upper) value to be reachable.
    """
    if p.op in (">=", ">", "!="):
        return 1
    bound = float(p.high if p.op == "between" else p.bound)  # type: ignore[arg-type]
    if not bound > 0:
        return None
    upper = Comparison("<" if p.op == "<" else "<=", bound)
    n = max(1, math.ceil(1 / bound) - 2)
    while not upper.check(1 / (n + 1)):
        n += 1
    return n


class AlsoSpec(_MetricFields):
    """The same ablation judged on a second metric (e.g. closed-book recall must NOT drop)."""

    name: Literal[METRIC_NAMES] | None = None
    expect: EffectExpect


class LayerSelection(_Strict):
    layers: Annotated[list[Annotated[int, Field(ge=0)]], BeforeValidator(_layer_list), Field(min_length=1)]
    part: Literal["attn", "mlp"] = "attn"


class ReferenceSpec(_Strict):
    """Inputs whose activations mean / resample ablation write (default: the probe with seed + 1)."""

    seed: int = Field(ge=0)


def as_list(value: Any) -> Any:
    """Accept one mapping where a list of mappings is expected (``also: {...}``)."""
    return [value] if isinstance(value, dict) else value


AlsoList = Annotated[list[AlsoSpec], BeforeValidator(as_list)]


class GainExpect(_Strict):
    gain: Expectation = Field(description="value at `shots` minus value at the reference's shots")


# ----------------------------------------------------------------------------- properties

IntRange = Annotated[
    Union[Annotated[int, Field(ge=0)], Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=2, max_length=2)]],
    Field(description="a number, or an inclusive range [low, high]"),
]
STRATEGY_FIELDS: dict[str, tuple[str, ...]] = {
    "random_tokens": ("length", "bos", "vocab"),
    "repeated_random": ("length", "repeats", "bos", "vocab"),
    "repeated_with_noise": ("length", "repeats", "noise_tokens", "bos", "vocab"),
    "few_shot": ("task", "shots"),
    "natural_text": ("length", "corpus", "bos"),
}


class StrategySpec(_Strict):
    """Which inputs a property ranges over (each field is a value or an inclusive [low, high] range)."""

    kind: Literal["random_tokens", "repeated_random", "repeated_with_noise", "few_shot", "natural_text"]
    length: IntRange | None = None
    repeats: IntRange | None = None
    noise_tokens: IntRange | None = None
    vocab: Literal["non_special", "words"] | None = Field(
        None, description="token pool: every non-special token, or only tokens that decode to a word (letters, optional leading space)")
    bos: Literal["auto", "yes", "no"] | None = None
    task: str | None = None
    shots: IntRange | None = None
    corpus: str | None = None

    _check_task = field_validator("task")(classmethod(lambda cls, v: _check_task(v)))

    @field_validator("length", "repeats", "noise_tokens", "shots")
    @classmethod
    def _ordered(cls, value: Any) -> Any:
        if isinstance(value, list) and value[0] > value[1]:
            raise ValueError(f"range [{value[0]}, {value[1]}] is empty: write [low, high]")
        return value

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> "StrategySpec":
        allowed = STRATEGY_FIELDS[self.kind]
        given = [f for f in ("length", "repeats", "noise_tokens", "vocab", "bos", "task", "shots", "corpus")
                 if getattr(self, f) is not None]
        wrong = [f for f in given if f not in allowed]
        if wrong:
            raise ValueError(f"strategy {self.kind} does not use {', '.join(wrong)} (it takes {', '.join(allowed)})")
        if self.kind == "few_shot" and self.task is None:
            raise ValueError("strategy few_shot needs a task (e.g. task: antonym)")
        return self


class CheckSpec(_Strict):
    """What must hold for each generated input (``per_sequence``) or on average over a batch (``mean``)."""

    score: ScoreName | None = None
    head: Head | None = None
    metric: Literal["second_copy_top1", "answer_top1"] | None = Field(
        None, description="second_copy_top1: fraction of later-copy tokens predicted top-1; answer_top1: few-shot answer is the top token")
    per_sequence: Expectation | None = None
    mean: Expectation | None = None
    batch: int = Field(8, ge=2, le=256, description="sequences per example for a mean check")

    @model_validator(mode="after")
    def _consistent(self) -> "CheckSpec":
        if (self.metric is None) == (self.score is None):
            raise ValueError("give either score + head (an attention-pattern check) or metric")
        if self.score is not None and self.head is None:
            raise ValueError(f"score {self.score} needs a head (e.g. head: 18.6)")
        if self.metric is not None and self.head is not None:
            raise ValueError("head only applies to score checks")
        if (self.per_sequence is None) == (self.mean is None):
            raise ValueError("give exactly one of per_sequence (every input; shrinks failures) or mean (batch average)")
        return self


class PinnedExample(_Strict):
    ids: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)
    prefix: int = Field(0, ge=0)
    segment: int = Field(0, ge=0)
    repeats: int = Field(0, ge=0)
    copies: list[int] = Field(default_factory=list)
    answer: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        return {"ids": value} if isinstance(value, list) else value
