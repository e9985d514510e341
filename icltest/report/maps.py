"""Per-head maps in reports: the layer x head tables a claim's measurement produced.

A claim that computes a value for every head (a pattern score, attribution relevance, direct
logit attribution, a causal indirect effect) puts the whole table in ``details["maps"]``, a list
of::

    {"name": "induction", "kind": "score", "probe": "<probe label>", "unit": "induction score",
     "values": [[float | null] * n_heads] * n_layers, "targets": [[layer, head], ...]}

``kind`` is one of ``score`` (in [0, 1]), ``attribution``, ``ablation``, ``dla`` or ``cie``
(signed: drawn centred at 0); ``targets`` are the heads the claim is about (outlined on the
heatmap); a population bound over a layer range marks the head closest to failing and any
violating head rather than the whole range. The report merges the maps of every claim into one per (model, weights, name, probe)
(:func:`merge_maps`), so ten claims on one probe's induction scores give one heatmap with all
their heads outlined.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

KINDS = ("score", "attribution", "ablation", "dla", "cie")
SIGNED = frozenset({"attribution", "ablation", "dla", "cie"})
DECIMALS = 5


def _cell(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, DECIMALS) if math.isfinite(value) else None


def head_map(name: str, kind: str, probe: str | None, unit: str, table: Any,
             targets: Iterable[tuple[int, int]] = ()) -> dict[str, Any]:
    """One ``details["maps"]`` entry from a ``[n_layers, n_heads]`` table (tensor, array or lists).

    Values are rounded to 5 decimals; NaN / inf (a head the measurement left out) become None.
    """
    if kind not in KINDS:
        raise ValueError(f"map kind must be one of {KINDS}, got {kind!r}")
    rows = table.tolist() if hasattr(table, "tolist") else table
    return {"name": name, "kind": kind, "probe": probe, "unit": unit,
            "values": [[_cell(v) for v in row] for row in rows],
            "targets": [[l, h] for l, h in sorted({(int(l), int(h)) for l, h in targets})]}


def _model_of(record: dict[str, Any]) -> tuple[str, str | None]:
    model = record.get("model") or {}
    return str(model.get("name") or "?"), model.get("weights_sha256")


def merge_maps(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's ``maps``: one per (model name, weights_sha256, map name, probe).

    Sorted by model, weights, kind (in :data:`KINDS` order: pattern scores first), name and probe.

    Each has the first record's values (records sharing the key measured the same table), the
    union of every record's targets (sorted) and the ids of the claims that produced it (sorted).
    A malformed entry (no name or values) is skipped: a report never breaks on a claim's details.
    """
    merged: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for record in records:
        maps = (record.get("details") or {}).get("maps")
        if not isinstance(maps, list):
            continue
        model, sha = _model_of(record)
        for entry in maps:
            if not (isinstance(entry, dict) and entry.get("name") and isinstance(entry.get("values"), list)):
                continue
            key = (model, sha or "", str(entry["name"]), str(entry.get("probe") or ""))
            out = merged.get(key)
            if out is None:
                out = merged[key] = {
                    "model": model, "weights_sha256": sha, "name": entry["name"], "kind": entry.get("kind", "score"),
                    "probe": entry.get("probe"), "unit": entry.get("unit", ""), "values": entry["values"],
                    "targets": set(), "claims": set(),
                }
            out["targets"].update((int(l), int(h)) for l, h in entry.get("targets") or ())
            if record.get("id") is not None:
                out["claims"].add(str(record["id"]))
    def order(key: tuple[str, str, str, str]) -> tuple[Any, ...]:  # pattern scores first, then the rest by kind
        kind = merged[key]["kind"]
        return key[:2] + (KINDS.index(kind) if kind in KINDS else len(KINDS), str(kind)) + key[2:]

    result = []
    for key in sorted(merged, key=order):
        out = merged[key]
        result.append(dict(out, targets=[list(p) for p in sorted(out["targets"])], claims=sorted(out["claims"])))
    return result


def map_top_heads(values: list[list[float | None]], k: int = 3) -> list[tuple[int, int, float]]:
    """The k largest cells of a map's ``values`` as (layer, head, value), by
    :func:`icltest.scores.ranking.top_heads` (ties broken by (layer, head)); cells without a
    finite number (None, NaN, inf) are left out, so a map may give fewer than k."""
    import torch

    from icltest.scores.ranking import top_heads

    width = max((len(row) for row in values), default=0)
    if not width:
        return []
    table = torch.full((len(values), width), math.nan, dtype=torch.float64)
    for l, row in enumerate(values):
        for h, v in enumerate(row):
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                table[l, h] = float(v)
    return [(l, h, v) for l, h, v in top_heads(table, k) if math.isfinite(v)]
