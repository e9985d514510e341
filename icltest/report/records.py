"""One claim item's result: its JSON record and the failure text shown in the terminal.

Kept out of the plugin so the plugin holds hooks only; ``item`` is a ``ClaimItem`` (its claim,
target, node id, spec location and replay command).
"""
from __future__ import annotations

from typing import Any

MODEL_KEYS = ("name", "revision", "dtype", "device", "device_map", "architecture", "gguf_sha256", "weights_sha256",
              "n_layers", "n_heads", "n_kv_heads")
"""The model facts a record keeps (``record["model"]``); baselines and diffs read the same ones."""


def claim_record(item: Any, verdict: Any, model_info: dict, seconds: float) -> dict[str, Any]:
    """The JSON record of one judged item: what was measured, against what, on which model and probe."""
    m = verdict.measurement
    return {
        "id": item.claim.id, "kind": item.claim.kind, "target": item.target.id, "item": item.claim_nodeid,
        "value": m.value, "unit": m.unit, "expect": verdict.expect, "passed": verdict.passed,
        "summary": verdict.summary, "spec": item.location_of(), "probe": m.probe, "seed": m.seed,
        "model": {k: model_info[k] for k in MODEL_KEYS if k in model_info}, "details": m.details,
        "seconds": round(seconds, 3), "order": item.order(),
    }


def failure_text(item: Any, verdict: Any, baseline: dict[str, Any] | None = None) -> str:
    """The failure a user reads: measured vs expected, probe and seed, spec line, a one-line replay.

    ``baseline``: the item's comparison with ``--icl-baseline`` when it regressed (the baseline's
    value, the change, the tolerance and where it came from, the baseline's name and path).
    """
    m = verdict.measurement
    what = "failed" if not verdict.passed else "regressed"
    if baseline is not None and not verdict.passed:
        what = "failed and regressed"
    lines = [
        f"claim {item.claim.id!r} ({item.claim.kind}) {what} for {item.target.id}",
        f"  measured: {verdict.summary}",
        f"  expected: {verdict.expect}",
        f"  probe:    {m.probe}" + (f" (seed {m.seed})" if m.seed is not None else ""),
        f"  spec:     {item.location_of()}",
        f"  replay:   {item.replay()}",
    ]
    if baseline is not None:
        delta = baseline.get("delta")
        change = f"delta {delta:+.4g}" if isinstance(delta, (int, float)) else f"measured {m.value}"
        source = f" ({baseline['max_drop_from']})" if baseline.get("max_drop_from") else ""
        better = f"; {baseline['direction']} is better" if baseline.get("direction") else ""
        value = baseline.get("value")
        shown = f"{value:.4g}" if isinstance(value, float) else value
        lines.insert(3, f"  baseline: {shown} in {baseline.get('name')!r} ({baseline.get('path')}); "
                        f"{change}, beyond tolerance max_drop {baseline.get('max_drop')}{source}{better}")
    lines += list(m.details.get("failure_lines", []))
    return "\n".join(lines)


def serial_key(record: dict[str, Any]) -> tuple:
    """Where a record stands in a serial run: its ``order`` (spec file, claim index, target index),
    then its item id. pytest-xdist workers report in any order; reports and baselines sort by this."""
    order = record.get("order") or ["", 0, 0]
    return (str(order[0]), int(order[1]), int(order[2]), str(record.get("item", "")))


def in_serial_order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=serial_key)
