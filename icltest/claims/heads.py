"""Shared helpers for claims about named attention heads."""
from __future__ import annotations

from typing import Any

from icltest.claims.base import ClaimSpecError


def head_pair(ref: Any) -> tuple[int, int]:
    """(layer, head) from a spec HeadRef."""
    return int(ref.layer), int(ref.head)


def head_name(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def check_head(adapter: Any, layer: int, head: int, where: str, key: str) -> None:
    """Reject heads the model does not have, pointing at the spec line."""
    if not 0 <= layer < adapter.n_layers or not 0 <= head < adapter.n_heads:
        raise ClaimSpecError(
            where, key,
            f"head {head_name(layer, head)} is out of range for this model "
            f"({adapter.n_layers} layers x {adapter.n_heads} query heads: layers 0-{adapter.n_layers - 1}, "
            f"heads 0-{adapter.n_heads - 1})",
        )


def top_table(table: Any, k: int = 5) -> list[dict[str, Any]]:
    from icltest.scores.ranking import top_heads

    return [{"head": head_name(l, h), "value": round(float(v), 4)} for l, h, v in top_heads(table, k)]
