"""Spec building blocks shared by every claim kind: expectations, heads, models, probes.

Kept free of torch so that collecting spec files stays fast. Each claim kind's model lives in
its claim module (``icltest.claims.<kind>``, or an outside package) and subclasses
:class:`ClaimBase`; the nested blocks of the built-in kinds are in ``icltest.schema.blocks``
and the file-level ``Spec`` is built from the claim-kind registry in ``icltest.schema.spec``.
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

from icltest.schema.expect import JSON_SCHEMA as COMPARISON_SCHEMA
from icltest.schema.expect import Comparison, parse_comparison

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
    device: str = Field("cpu", description="cpu, cuda, cuda:N, mps, or auto: spread the layers over every visible "
                                           "GPU (and CPU) with accelerate's device_map=\"auto\", for models "
                                           "larger than one device")

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


class BaselineSpec(_Strict):
    """How a claim's value is compared with a saved baseline (``--icl-baseline``; see icltest.baseline).

    The key is ``baseline`` (on a claim and in ``defaults``). A task_accuracy claim's zero-shot or
    shuffled-label condition is its ``reference``, a steering claim's subtracted words its
    ``reference_words``; the old ``baseline:`` forms of those fail with a message that says so.

    ``max_drop``: the largest move in the bad direction that still passes (omitted: the spec's
    ``defaults.baseline``, else ``--icl-max-drop``; with none of them the claim is compared and
    reported but cannot regress). ``direction``: which way is better; omitted, it comes from the
    expectation (``>=``/``>`` higher, ``<=``/``<`` lower).
    """

    max_drop: float | None = Field(None, ge=0, allow_inf_nan=False, strict=True,
                                   description="largest move in the bad direction that still passes")
    direction: Literal["higher", "lower"] | None = Field(
        None, description="which way is better (default: from the expectation, >= higher, <= lower)")

    @model_validator(mode="after")
    def _something(self) -> "BaselineSpec":
        if self.max_drop is None and self.direction is None:
            raise ValueError("give max_drop and/or direction, e.g. baseline: {max_drop: 0.05}")
        return self


class Defaults(_Strict):
    """Values every claim in the file inherits unless it sets its own."""

    probe: AnyProbe | None = None
    baseline: BaselineSpec | None = Field(
        None, description="tolerance and direction vs a saved baseline (--icl-baseline) for every claim without its own")


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


# ----------------------------------------------------------------------------- claims

ClaimId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=120,
                               description="unique in the file; becomes the pytest item name")]
MarkName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class ClaimBase(_Strict):
    """Fields every claim has, whatever its kind; a claim kind's ``Schema`` subclasses this.

    The plugin names items by ``id``, turns ``marks`` into pytest marks and hands ``probe`` (or
    the file's default probe) to ``measure``, so every kind, built-in or not, must carry them.
    A subclass adds ``kind: Literal["<its kind>"]`` and its own fields; unknown keys stay errors.
    """

    id: ClaimId
    description: str | None = None
    marks: list[MarkName] = Field(default_factory=list, description="pytest marks (select with -m)")
    probe: AnyProbe | None = None
    baseline: BaselineSpec | None = Field(
        None, description="tolerance and direction when compared with a saved baseline (--icl-baseline)")


Strict = _Strict  # public name for outside claim kinds' nested mappings (unknown keys are errors)


def _did_you_mean(word: str, options: Any) -> str:
    import difflib

    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
