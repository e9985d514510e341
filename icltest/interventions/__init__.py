"""Interventions: one :class:`Intervention` type at named hook points, applied and undone as a unit.

``core`` holds the type, weight edits, :func:`apply` and :func:`capture`; ``ablate`` builds head
and block ablations from it; ``reference`` captures the activations mean / resample ablation read.
"""
from __future__ import annotations

from icltest.interventions.ablate import (
    HEAD_METHODS,
    LAYER_METHODS,
    HeadAblation,
    ablate_heads,
    ablate_layers,
    block_ablation,
    head_ablation,
    rewrite_head_input,
)
from icltest.interventions.core import OPS, Intervention, WeightEdit, apply, capture
from icltest.interventions.reference import (
    HeadReference,
    LayerReference,
    capture_head_outputs,
    capture_layer_outputs,
)

__all__ = [
    "HEAD_METHODS",
    "LAYER_METHODS",
    "OPS",
    "HeadAblation",
    "HeadReference",
    "Intervention",
    "LayerReference",
    "WeightEdit",
    "ablate_heads",
    "ablate_layers",
    "apply",
    "block_ablation",
    "capture",
    "capture_head_outputs",
    "capture_layer_outputs",
    "head_ablation",
    "rewrite_head_input",
]
