"""The spec schema: the file-level ``Spec`` and the claim-kind union, validated with locations.

This package is the single source of truth for what a spec may contain: the loader validates with
it, the claim modules read its objects, and the published JSON Schema is generated from it.
Building blocks live in ``base``, claim kinds in ``kinds``; both are re-exported here.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, BeforeValidator, Field

from icltest.schema.base import *  # noqa: F401,F403  (re-exported for `from icltest.schema.spec import ...`)
from icltest.schema.base import _did_you_mean, _layer_list  # noqa: F401  (private helpers the loader and CLI use)
from icltest.schema.base import MODEL_SCHEMA_INPUT, Defaults, MarkName, ModelRef, _model_input, _Strict
from icltest.schema.kinds import *  # noqa: F401,F403
from icltest.schema.kinds import (
    AblationClaim,
    HeadRankClaim,
    HeadScoreClaim,
    IclScoreClaim,
    PropertyClaim,
    TaskAccuracyClaim,
)

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
