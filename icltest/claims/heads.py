"""Shared helpers for claims about named attention heads."""
from __future__ import annotations

from typing import Any

from icltest.claims.base import ClaimSpecError
from icltest.errors import InputError


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


def pattern_run(ctx: Any) -> Any:
    """The session's shared pattern run for the claim's probe.

    A probe this model cannot serve (longer than its vocabulary, BOS it lacks) is the spec's
    mistake, so it is reported at the claim's ``probe`` (or the claim, when the probe is the file's
    default), not as a traceback.
    """
    try:
        return ctx.session.pattern_run(ctx.loaded, ctx.probe_spec)
    except InputError as exc:
        raise ClaimSpecError(ctx.location(("probe",)), "probe", str(exc)) from None


def top_table(table: Any, k: int = 5) -> list[dict[str, Any]]:
    from icltest.scores.ranking import top_heads

    return [{"head": head_name(l, h), "value": round(float(v), 4)} for l, h, v in top_heads(table, k)]


def resolve_selection(selection: Any, ctx: Any, key: tuple[Any, ...], default_score: str = "induction") -> list[tuple[int, int]]:
    """Heads named by a spec head selection (list, {layers:}, {top:, by:}), range-checked against the model.

    ``key`` is the selection's path in the claim, so errors point at the right spec line.
    """
    adapter = ctx.loaded.adapter
    if isinstance(selection, list):
        pairs = [head_pair(ref) for ref in selection]
        for i, (layer, head) in enumerate(pairs):
            check_head(adapter, layer, head, ctx.location(key + (i,)), ".".join(map(str, key)))
        return sorted(set(pairs))
    if hasattr(selection, "top"):
        from icltest.scores.ranking import top_heads

        total = adapter.n_layers * adapter.n_heads
        if selection.top > total:
            raise ClaimSpecError(ctx.location(key + ("top",)), "heads.top", f"top {selection.top} exceeds the model's {total} heads")
        by = getattr(selection, "by", None) or default_score
        run = pattern_run(ctx)
        return sorted((l, h) for l, h, _ in top_heads(run.scores[by], selection.top))
    layers = list(selection.layers)
    head_ids = list(getattr(selection, "heads", None) or range(adapter.n_heads))
    for layer in layers:
        check_head(adapter, layer, 0, ctx.location(key + ("layers",)), "heads.layers")
    for head in head_ids:
        check_head(adapter, 0, head, ctx.location(key + ("heads",)), "heads.heads")
    return [(l, h) for l in layers for h in head_ids]


def selection_id(selection: Any) -> str:
    """A short item id for a head selection: ``L18H6,L17H3``, ``5heads``, ``top5-induction``, ``layers0-9``."""
    if isinstance(selection, list):
        names = [head_name(*head_pair(r)) for r in selection]
        return ",".join(names) if len(names) <= 3 else f"{len(names)}heads"
    if hasattr(selection, "top"):
        return f"top{selection.top}" + (f"-{selection.by}" if getattr(selection, "by", None) else "")
    return f"layers{selection.text}"
