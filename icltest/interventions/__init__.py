"""Interventions: context managers over hooks that change a forward pass and restore it on exit."""
from __future__ import annotations

from icltest.interventions.ablate import (
    HEAD_METHODS,
    LAYER_METHODS,
    HeadAblation,
    ablate_heads,
    ablate_layers,
    rewrite_head_input,
)
from icltest.interventions.reference import (
    HeadReference,
    LayerReference,
    capture_head_outputs,
    capture_layer_outputs,
)

__all__ = [
    "HEAD_METHODS",
    "LAYER_METHODS",
    "HeadAblation",
    "HeadReference",
    "LayerReference",
    "ablate_heads",
    "ablate_layers",
    "capture_head_outputs",
    "capture_layer_outputs",
    "rewrite_head_input",
]
