"""Claim kinds: each module measures and judges one `kind:`; the registry maps kind to module."""
from __future__ import annotations

import importlib
from types import ModuleType

_REGISTRY: dict[str, str] = {
    "head_score": "icltest.claims.head_score",
    "head_rank": "icltest.claims.head_rank",
    "ablation": "icltest.claims.ablation",
    "icl_score": "icltest.claims.icl_score",
    "task_accuracy": "icltest.claims.task_accuracy",
    "property": "icltest.claims.property",
}


def register(kind: str, module: str) -> None:
    """Add a claim kind implemented by `module` (it must define targets/measure/judge)."""
    _REGISTRY[kind] = module


def claim_module(kind: str) -> ModuleType:
    """The implementation of a claim kind (imported lazily: it pulls in torch)."""
    try:
        return importlib.import_module(_REGISTRY[kind])
    except KeyError:
        raise KeyError(f"no implementation registered for claim kind '{kind}'; known: {sorted(_REGISTRY)}") from None


def known_kinds() -> list[str]:
    return sorted(_REGISTRY)
