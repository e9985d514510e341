"""The file-level spec model, built from the claim-kind registry.

Claim kinds are not listed here: each kind's ``Schema`` lives with its implementation (built-ins
in ``icltest.claims``, others in installed packages), and :func:`spec_model` joins them into one
discriminated union on ``kind``. The loader validates with it and the published JSON Schema is
generated from it, so a new kind is validated, located and documented without editing this file.
The result is cached and rebuilt only when the set of registered kinds changes.

The shared building blocks are re-exported here, so ``from icltest.schema.spec import
MetricSpec`` keeps working.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, Field, create_model

from icltest.schema.base import *  # noqa: F401,F403  (re-exported for `from icltest.schema.spec import ...`)
from icltest.schema.base import _did_you_mean, _layer_list  # noqa: F401  (private helpers the loader and CLI use)
from icltest.schema.base import MODEL_SCHEMA_INPUT, Defaults, MarkName, ModelRef, _model_input, _Strict
from icltest.schema.blocks import *  # noqa: F401,F403


class SpecBase(_Strict):
    """The fields of a spec file other than ``claims`` (whose type depends on the registry)."""

    schema_version: Literal[1]
    model: Annotated[ModelRef | None, BeforeValidator(_model_input, json_schema_input_type=MODEL_SCHEMA_INPUT)] = Field(
        None, description="the model the claims are about; omit it in a model-agnostic spec, which then runs on "
        "--icl-model (pytest specs/ --icl-model gemma3-270m)")
    description: str | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    marks: list[MarkName] = Field(default_factory=list, description="pytest marks for every claim in the file")


_CACHE: dict[tuple[tuple[str, int], ...], type[SpecBase]] = {}


def claim_models() -> dict[str, type[BaseModel]]:
    """kind -> the claim model for that kind, for every registered kind (built-ins first)."""
    from icltest.claims.registry import schema_models

    return schema_models()


def spec_model() -> type[SpecBase]:
    """The ``Spec`` model for the kinds registered now (cached per set of kinds).

    The claim union is discriminated on ``kind``, so an error in one claim is reported against
    that claim's kind only, and an unknown kind is one error naming the known ones.
    """
    models = claim_models()
    key = tuple((kind, id(model)) for kind, model in models.items())
    if key not in _CACHE:
        members = tuple(models.values())
        claim: Any = Annotated[Union[members], Field(discriminator="kind")] if len(members) > 1 else members[0]
        _CACHE.clear()  # one live registry state at a time; old models are unreachable anyway
        _CACHE[key] = create_model(
            "Spec", __base__=SpecBase, __module__=__name__,
            __doc__="A spec file: one model, shared defaults, and the claims about it.",
            claims=(list[claim], Field(min_length=1)),
        )
    return _CACHE[key]


def __getattr__(name: str) -> Any:
    """``Spec`` and ``CLAIM_MODELS`` as module attributes, built from the registry when read."""
    if name == "Spec":
        return spec_model()
    if name == "CLAIM_MODELS":
        return claim_models()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
