"""One claim item's result: its JSON record and the failure text shown in the terminal.

Kept out of the plugin so the plugin holds hooks only; ``item`` is a ``ClaimItem`` (its claim,
target, node id, spec location and replay command).
"""
from __future__ import annotations

from typing import Any


def claim_record(item: Any, verdict: Any, model_info: dict, seconds: float) -> dict[str, Any]:
    """The JSON record of one judged item: what was measured, against what, on which model and probe."""
    m = verdict.measurement
    keys = ("name", "revision", "dtype", "device", "architecture", "gguf_sha256", "n_layers", "n_heads", "n_kv_heads")
    return {
        "id": item.claim.id, "kind": item.claim.kind, "target": item.target.id, "item": item.nodeid,
        "value": m.value, "unit": m.unit, "expect": verdict.expect, "passed": verdict.passed,
        "summary": verdict.summary, "spec": item.location_of(), "probe": m.probe, "seed": m.seed,
        "model": {k: model_info[k] for k in keys if k in model_info}, "details": m.details,
        "seconds": round(seconds, 3),
    }


def failure_text(item: Any, verdict: Any) -> str:
    """The failure a user reads: measured vs expected, probe and seed, spec line, a one-line replay."""
    m = verdict.measurement
    lines = [
        f"claim {item.claim.id!r} ({item.claim.kind}) failed for {item.target.id}",
        f"  measured: {verdict.summary}",
        f"  expected: {verdict.expect}",
        f"  probe:    {m.probe}" + (f" (seed {m.seed})" if m.seed is not None else ""),
        f"  spec:     {item.location_of()}",
        f"  replay:   {item.replay()}",
    ]
    lines += list(m.details.get("failure_lines", []))
    return "\n".join(lines)
