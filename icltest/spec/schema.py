"""The spec schema: one pydantic model per claim kind, validated with source locations.

This module is the single source of truth for what a spec may contain: the loader validates with
it, the claim modules read its objects, and the published JSON Schema is generated from it.
It imports no torch, so collecting spec files stays fast.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from icltest.spec.expect import JSON_SCHEMA as COMPARISON_SCHEMA
from icltest.spec.expect import Comparison, parse_comparison

SCHEMA_VERSION = 1
ScoreName = Literal["induction", "previous_token", "duplicate_token", "prefix_matching"]
SCORE_NAMES: tuple[str, ...] = ("induction", "previous_token", "duplicate_token", "prefix_matching")
Dtype = Literal["float32", "bfloat16", "float16"]

Expectation = Annotated[
    Comparison,
    PlainValidator(parse_comparison),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(COMPARISON_SCHEMA),
]
"""A parsed comparison: ``">= 0.6"``, ``"< 0.3"``, ``{between: [a, b]}``."""


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must never silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------- heads

_HEAD_TEXT = re.compile(r"^\s*(?:L\s*(\d+)\s*H\s*(\d+)|(\d+)\s*\.\s*(\d+))\s*$", re.I)


def _head_input(value: Any) -> Any:
    """``18.6`` / ``"18.6"`` / ``"L18H6"`` / ``[18, 6]`` / ``{layer: 18, head: 6}`` -> dict."""
    if isinstance(value, (HeadRef, dict)):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a head as layer.head (e.g. 18.6), got {value!r}")
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"a head as a list must be [layer, head] (two integers), got {value!r}")
        return {"layer": value[0], "head": value[1]}
    if isinstance(value, int):
        raise ValueError(f"{value} names no head: write layer.head, e.g. {value}.0 for head 0 of layer {value}")
    if isinstance(value, float):
        text = getattr(value, "raw", None) or repr(value)  # YAML keeps the source text: 18.10 -> head 10
    elif isinstance(value, str):
        text = value
    else:
        raise ValueError(f"expected a head as layer.head (e.g. 18.6), got {type(value).__name__} {value!r}")
    match = _HEAD_TEXT.match(text)
    if not match:
        raise ValueError(f"could not read head {text!r}; write layer.head (18.6), 'L18H6', or [18, 6]")
    layer, head = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    return {"layer": int(layer), "head": int(head)}


class HeadRef(_Strict):
    """One attention head, by layer and query-head index (0-based)."""

    layer: int = Field(ge=0)
    head: int = Field(ge=0)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return _head_input(value)

    def __str__(self) -> str:
        return f"L{self.layer}H{self.head}"


HEAD_SCHEMA = {
    "anyOf": [
        {"type": "number", "description": "layer.head, e.g. 18.6 (read from the YAML text: 18.10 is head 10)"},
        {"type": "string", "pattern": r"^\s*(?:[Ll]\s*\d+\s*[Hh]\s*\d+|\d+\s*\.\s*\d+)\s*$"},
        {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2},
        {"type": "object", "properties": {"layer": {"type": "integer", "minimum": 0},
                                          "head": {"type": "integer", "minimum": 0}},
         "required": ["layer", "head"], "additionalProperties": False},
    ]
}
Head = Annotated[HeadRef, WithJsonSchema(HEAD_SCHEMA)]


def _layer_list(value: Any) -> Any:
    """``"0-9"``, ``"0-4,7"``, ``5`` or ``[0, 1]`` -> sorted list of ints."""
    if isinstance(value, bool):
        raise ValueError(f"expected layers like '0-9', '0-4,7', 5 or [0, 1], got {value!r}")
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        out: set[int] = set()
        for part in value.split(","):
            part = part.strip()
            m = re.fullmatch(r"(\d+)\s*-\s*(\d+)|(\d+)", part)
            if not m:
                raise ValueError(f"could not read layer range {value!r}; write '0-9', '0-4,7' or a list [0, 1]")
            if m.group(3) is not None:
                out.add(int(m.group(3)))
            else:
                lo, hi = int(m.group(1)), int(m.group(2))
                if lo > hi:
                    raise ValueError(f"layer range {part!r} runs backwards; write '{hi}-{lo}'")
                out.update(range(lo, hi + 1))
        return sorted(out)
    return value


class HeadRange(_Strict):
    """Every head in some layers (optionally only some head indices): a population claim."""

    layers: Annotated[list[Annotated[int, Field(ge=0)]], BeforeValidator(_layer_list),
                      WithJsonSchema({"anyOf": [{"type": "string", "pattern": r"^\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*$"},
                                                {"type": "integer", "minimum": 0},
                                                {"type": "array", "items": {"type": "integer", "minimum": 0}}]})]
    heads: list[Annotated[int, Field(ge=0)]] | None = None

    @property
    def text(self) -> str:
        values = list(self.layers)
        if values and values == list(range(values[0], values[-1] + 1)):
            return f"{values[0]}-{values[-1]}" if len(values) > 1 else str(values[0])
        return ",".join(map(str, values))


class TopHeads(_Strict):
    """The ``top`` best heads by a score: a model-agnostic claim."""

    top: int = Field(ge=1)
    by: ScoreName | None = None


def _heads_tag(value: Any) -> str:
    if isinstance(value, dict):
        return "top" if "top" in value else "range"
    if isinstance(value, (TopHeads, HeadRange)):
        return "top" if isinstance(value, TopHeads) else "range"
    return "list"


HeadSelection = Annotated[
    Union[
        Annotated[list[Head], Tag("list"), Field(min_length=1)],
        Annotated[TopHeads, Tag("top")],
        Annotated[HeadRange, Tag("range")],
    ],
    Discriminator(_heads_tag),
]


# ----------------------------------------------------------------------------- model and probes


def _model_input(value: Any) -> Any:
    if isinstance(value, str):
        from icltest.models.aliases import ALIASES

        if value in ALIASES:
            return {"alias": value}
        if value.startswith((".", "/", "~")):
            return {"path": value}
        if "/" not in value and _did_you_mean(value, ALIASES):
            raise ValueError(f"unknown model alias {value!r}{_did_you_mean(value, ALIASES)}; known aliases: "
                             f"{', '.join(ALIASES)} (write {{id: {value}}} for a hub id)")
        return {"id": value}
    return value


class ModelRef(_Strict):
    """Which model a spec is about. A string is an alias, a hub id, or a path (``./``, ``/``, ``~``)."""

    alias: str | None = None
    id: str | None = Field(None, description="hub id, e.g. HuggingFaceTB/SmolLM2-135M")
    revision: str | None = Field(None, description="hub revision (commit, tag or branch)")
    path: str | None = Field(None, description="local model folder (relative paths are relative to the spec)")
    gguf_file: str | None = Field(None, description="GGUF file name inside `path` (or the hub repo)")
    dtype: Dtype = "float32"
    device: str = "cpu"

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return _model_input(value)

    @field_validator("alias")
    @classmethod
    def _known_alias(cls, value: str | None) -> str | None:
        from icltest.models.aliases import ALIASES

        if value is not None and value not in ALIASES:
            raise ValueError(f"unknown alias {value!r}{_did_you_mean(value, ALIASES)}; known: {', '.join(ALIASES)}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "ModelRef":
        given = [k for k in ("alias", "id", "path") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of alias, id or path (got {', '.join(given) or 'none'})")
        if self.revision and not self.id:
            raise ValueError("revision only applies to a hub id")
        return self


MODEL_SCHEMA_INPUT = Union[str, ModelRef]


class ProbeSpec(_Strict):
    """A seeded random-token probe: [BOS] + ``length`` distinct tokens, repeated ``repeats`` times."""

    kind: Literal["repeated_random"] = "repeated_random"
    length: int = Field(50, ge=2, le=4096)
    repeats: int = Field(2, ge=2, le=64)
    batch: int = Field(16, ge=1, le=4096)
    seed: int = Field(0, ge=0)
    bos: Literal["auto", "yes", "no"] = Field("auto", description="prepend the tokenizer's BOS (auto: when it has one)")


class NaturalTextProbe(_Strict):
    """``batch`` seeded documents of the shipped prose corpus, each cut to ``length`` tokens."""

    kind: Literal["natural_text"]
    corpus: str = "essays"
    length: int = Field(400, ge=2, le=8192)
    batch: int = Field(16, ge=1, le=4096)
    seed: int = Field(0, ge=0)
    bos: Literal["auto", "yes", "no"] = "auto"


PROBE_MODELS: dict[str, type[BaseModel]] = {"repeated_random": ProbeSpec, "natural_text": NaturalTextProbe}


def _probe_tag(value: Any) -> str | None:
    kind = value.get("kind", "repeated_random") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if kind in PROBE_MODELS else None


AnyProbe = Annotated[
    Union[Annotated[ProbeSpec, Tag("repeated_random")], Annotated[NaturalTextProbe, Tag("natural_text")]],
    Discriminator(_probe_tag, custom_error_type="probe_kind",
                  custom_error_message="unknown probe kind; expected repeated_random or natural_text"),
]


class Defaults(_Strict):
    """Values every claim in the file inherits unless it sets its own."""

    probe: AnyProbe | None = None


# ----------------------------------------------------------------------------- claims

ClaimId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=120,
                               description="unique in the file; becomes the pytest item name")]
MarkName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class _ClaimBase(_Strict):
    id: ClaimId
    description: str | None = None
    marks: list[MarkName] = Field(default_factory=list, description="pytest marks (select with -m)")
    probe: AnyProbe | None = None


class HeadScoreClaim(_ClaimBase):
    """Heads meet a bound on an attention-pattern score (one item per listed head)."""

    kind: Literal["head_score"]
    score: ScoreName
    heads: HeadSelection
    expect: Expectation


class RankExpect(_Strict):
    rank: Expectation


class HeadRankClaim(_ClaimBase):
    """A head's rank among all heads by a score (1 = highest)."""

    kind: Literal["head_rank"]
    score: ScoreName
    head: Head
    expect: RankExpect


# ----------------------------------------------------------------------------- behaviour

METRIC_NAMES: tuple[str, ...] = ("repeated_token_loss", "icl_score", "accuracy", "recall", "answer_prob", "logit_diff")
TASK_METRICS: tuple[str, ...] = ("accuracy", "recall", "answer_prob", "logit_diff")
BOOK_TASKS: tuple[str, ...] = ("open_book", "closed_book", "counterfactual")
Part = Union[Literal["first", "second_half", "later", "all"], Annotated[int, Field(ge=0)]]
ChatTemplate = Literal["auto", "yes", "no"]


def shipped_tasks() -> list[str]:
    """Task names shipped under icltest/data/tasks (read without importing torch)."""
    from importlib import resources

    folder = resources.files("icltest").joinpath("data", "tasks")
    return sorted(e.name[:-5] for e in folder.iterdir() if e.name.endswith(".yaml"))


def _check_task(value: str | None) -> str | None:
    if value is None or value.endswith((".yaml", ".yml")):
        return value
    names = shipped_tasks()
    if value not in names:
        raise ValueError(f"unknown task {value!r}{_did_you_mean(value, names)}; shipped tasks: {', '.join(names)} "
                         "(or a path to a task .yaml file)")
    return value


class _MetricFields(_Strict):
    part: Part | None = Field(None, description="repeated_token_loss: which repeats (default second_half)")
    task: str | None = Field(None, description="accuracy / recall / answer_prob: an ICL task or open_book / closed_book / counterfactual")
    shots: int | None = Field(None, ge=0, le=64, description="demonstrations before each query (default 0)")
    n: int | None = Field(None, ge=1, le=4096, description="number of prompts (default 48)")
    seed: int | None = Field(None, ge=0, description="prompt sampling seed (default 0)")
    chat_template: ChatTemplate | None = Field(None, description="wrap prompts in the model's chat template (default no)")
    late: int | None = Field(None, ge=1, description="icl_score: token position with more context")
    early: int | None = Field(None, ge=1, description="icl_score: token position with less context")
    window: int | None = Field(None, ge=1, description="icl_score: average the loss over this many positions ending at late/early")

    _check_task = field_validator("task")(classmethod(lambda cls, v: _check_task(v)))


class MetricSpec(_MetricFields):
    """What a behavioural claim measures, and on which inputs."""

    name: Literal["repeated_token_loss", "icl_score", "accuracy", "recall", "answer_prob", "logit_diff"]

    @model_validator(mode="after")
    def _fields_fit_metric(self) -> "MetricSpec":
        task_fields = ("task", "shots", "n", "chat_template")
        if self.name in TASK_METRICS:
            if self.task is None:
                raise ValueError(f"metric {self.name} needs a task (e.g. task: open_book or task: antonym)")
            if self.name == "logit_diff" and self.task != "counterfactual":
                raise ValueError("logit_diff compares the answer in the context with the remembered one: "
                                 "it needs task: counterfactual")
            wrong = [f for f in ("part", "late", "early", "window") if getattr(self, f) is not None]
        else:
            wrong = [f for f in task_fields if getattr(self, f) is not None]
            if self.name == "repeated_token_loss":
                wrong += [f for f in ("late", "early", "window") if getattr(self, f) is not None]
            else:
                wrong += [f for f in ("part",) if getattr(self, f) is not None]
        if wrong:
            raise ValueError(f"metric {self.name} does not use {', '.join(wrong)}")
        if self.late is not None and self.early is not None and self.early >= self.late:
            raise ValueError(f"early ({self.early}) must be before late ({self.late})")
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
    effect_ratio: Expectation | None = Field(None, description="target effect / |mean control effect|")
    mean: Expectation | None = Field(None, description="mean effect of the random draws")

    @model_validator(mode="after")
    def _something(self) -> "ControlExpect":
        if self.effect_ratio is None and self.mean is None:
            raise ValueError("give effect_ratio and/or mean")
        return self


class ControlSpec(_Strict):
    """Ablate the same number of random heads (never the targets), several seeded draws."""

    random_heads: Literal["same_count"] | Annotated[int, Field(ge=1)] = "same_count"
    draws: int = Field(5, ge=1, le=100)
    seed: int = Field(0, ge=0)
    expect: ControlExpect


class AlsoSpec(_MetricFields):
    """The same ablation judged on a second metric (e.g. closed-book recall must NOT drop)."""

    name: Literal["repeated_token_loss", "icl_score", "accuracy", "recall", "answer_prob", "logit_diff"] | None = None
    expect: EffectExpect


class LayerSelection(_Strict):
    layers: Annotated[list[Annotated[int, Field(ge=0)]], BeforeValidator(_layer_list), Field(min_length=1)]
    part: Literal["attn", "mlp"] = "attn"


class ReferenceSpec(_Strict):
    """Inputs whose activations mean / resample ablation write (default: the probe with seed + 1)."""

    seed: int = Field(ge=0)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


class AblationClaim(_ClaimBase):
    """Removing heads (or whole attention / MLP blocks) moves a metric, more than random heads do."""

    kind: Literal["ablation"]
    heads: HeadSelection | None = None
    block: LayerSelection | None = Field(None, description="ablate whole blocks instead: {layers: '3-4', part: mlp}")
    method: Literal["zero", "mean", "resample"] = "zero"
    reference: ReferenceSpec | None = None
    metric: MetricSpec
    expect: EffectExpect
    control: ControlSpec | None = None
    also: Annotated[list[AlsoSpec], BeforeValidator(_as_list)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _what_to_ablate(self) -> "AblationClaim":
        if (self.heads is None) == (self.block is None):
            raise ValueError("give exactly one of heads (attention heads) or block ({layers:, part:})")
        if self.control is not None and self.heads is None:
            raise ValueError("control (random heads) applies to head ablations only")
        if self.block is not None and self.method == "resample":
            raise ValueError("block ablation supports zero and mean")
        return self


class IclScoreClaim(_ClaimBase):
    """Olsson et al.'s in-context-learning score: loss at a late token minus loss at an early one."""

    kind: Literal["icl_score"]
    late: int | None = Field(None, ge=1)
    early: int | None = Field(None, ge=1)
    window: int = Field(1, ge=1)
    expect: Expectation


class BaselineSpec(_Strict):
    shots: int = Field(0, ge=0, le=64)
    expect: "GainExpect"


class GainExpect(_Strict):
    gain: Expectation = Field(description="value at `shots` minus value at the baseline's shots")


class TaskAccuracyClaim(_ClaimBase):
    """First-token accuracy (or answer probability) on a few-shot task, optionally vs a baseline shot count."""

    kind: Literal["task_accuracy"]
    task: str
    shots: int = Field(0, ge=0, le=64)
    n: int = Field(48, ge=1, le=4096)
    seed: int = Field(0, ge=0)
    chat_template: ChatTemplate = "no"
    metric: Literal["accuracy", "answer_prob"] = "accuracy"
    expect: Expectation
    baseline: BaselineSpec | None = None

    _check_task = field_validator("task")(classmethod(lambda cls, v: _check_task(v)))


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


PROPERTY_METRICS = ("second_copy_top1", "answer_top1")


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


class PropertyClaim(_ClaimBase):
    """A behaviour holds for every input a Hypothesis strategy generates."""

    kind: Literal["property"]
    strategy: StrategySpec
    check: CheckSpec
    examples: int = Field(30, ge=1, le=10000, description="per-claim example budget; the Hypothesis profile scales it")
    examples_pinned: list[PinnedExample] = Field(default_factory=list, description="inputs always tried first")

    @model_validator(mode="after")
    def _fits(self) -> "PropertyClaim":
        if self.check.metric == "second_copy_top1" and self.strategy.kind not in ("repeated_random", "repeated_with_noise"):
            raise ValueError("second_copy_top1 needs a repeated_random or repeated_with_noise strategy")
        if self.check.metric == "answer_top1" and self.strategy.kind != "few_shot":
            raise ValueError("answer_top1 needs a few_shot strategy")
        return self


Claim = Annotated[
    Union[HeadScoreClaim, HeadRankClaim, AblationClaim, IclScoreClaim, TaskAccuracyClaim, PropertyClaim],
    Field(discriminator="kind"),
]
CLAIM_MODELS: dict[str, type[BaseModel]] = {
    "head_score": HeadScoreClaim, "head_rank": HeadRankClaim, "ablation": AblationClaim,
    "icl_score": IclScoreClaim, "task_accuracy": TaskAccuracyClaim, "property": PropertyClaim,
}


class Spec(_Strict):
    """A spec file: one model, shared defaults, and the claims about it."""

    schema_version: Literal[1]
    model: Annotated[ModelRef, BeforeValidator(_model_input, json_schema_input_type=MODEL_SCHEMA_INPUT)]
    description: str | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    marks: list[MarkName] = Field(default_factory=list, description="pytest marks for every claim in the file")
    claims: list[Claim] = Field(min_length=1)


def _did_you_mean(word: str, options: Any) -> str:
    import difflib

    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
