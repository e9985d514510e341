"""Claims side by side: values, deltas and verdicts of the same claim item on A and B.

Items are paired by their full key (``<spec relpath>::<claim id>[<target>]``); items left over
on both sides are then paired by ``<claim id>[<target>]`` alone when that name is unique on each
side (the same suite run from another folder, or a baseline saved from another checkout).
Rows come flipped first (pass -> fail, then fail -> pass), then the rest in A's order.
"""
from __future__ import annotations

from typing import Any

from icltest.diff.inputs import ClaimRow, Side


def _delta(a: Any, b: Any) -> float | None:
    if isinstance(a, float) and isinstance(b, float) and a == a and b == b:
        return b - a
    return None


def _cell(row: ClaimRow) -> dict[str, Any]:
    out = {"value": row.value, "status": row.status, "expect": row.expect}
    if row.head:
        out["head"] = row.head
    return out


def pair_claims(a: Side, b: Side) -> tuple[list[tuple[ClaimRow, ClaimRow]], list[ClaimRow], list[ClaimRow]]:
    """(pairs in A's order, only in A, only in B)."""
    matched = {k: k for k in a.claims if k in b.claims}
    rest_a = [k for k in a.claims if k not in matched]
    rest_b = [k for k in b.claims if k not in matched.values()]
    names_a: dict[str, list[str]] = {}
    names_b: dict[str, list[str]] = {}
    for k in rest_a:
        names_a.setdefault(a.claims[k].name, []).append(k)
    for k in rest_b:
        names_b.setdefault(b.claims[k].name, []).append(k)
    for name, keys in names_a.items():
        if len(keys) == 1 and len(names_b.get(name, ())) == 1:
            matched[keys[0]] = names_b[name][0]
    pairs = [(a.claims[k], b.claims[matched[k]]) for k in a.claims if k in matched]
    used_b = set(matched.values())
    return (pairs, [a.claims[k] for k in a.claims if k not in matched],
            [b.claims[k] for k in b.claims if k not in used_b])


def compare_claims(a: Side, b: Side) -> dict[str, Any]:
    """The claims section of the diff (JSON-ready)."""
    pairs, only_a, only_b = pair_claims(a, b)
    rows = []
    for ra, rb in pairs:
        flip = "pass->fail" if ra.passed and not rb.passed else ("fail->pass" if rb.passed and not ra.passed else None)
        row = {"claim": ra.name, "key": ra.key, "a": _cell(ra), "b": _cell(rb), "delta": _delta(ra.value, rb.value),
               "verdict": f"{ra.status} -> {rb.status}", "flip": flip, "unit": ra.unit or rb.unit}
        if ra.expect != rb.expect:
            row["expect_changed"] = True
        rows.append(row)
    rank = {"pass->fail": 0, "fail->pass": 1, None: 2}
    rows.sort(key=lambda r: rank[r["flip"]])  # stable: A's order inside each group
    counts = {
        "compared": len(rows),
        "pass->fail": sum(r["flip"] == "pass->fail" for r in rows),
        "fail->pass": sum(r["flip"] == "fail->pass" for r in rows),
        "still pass": sum(r["flip"] is None and r["a"]["status"] == "pass" for r in rows),
        "still not pass": sum(r["flip"] is None and r["a"]["status"] != "pass" for r in rows),
        "only A": len(only_a), "only B": len(only_b),
    }
    return {
        "counts": counts, "rows": rows,
        "only_a": [{"claim": r.name, "key": r.key, **_cell(r)} for r in only_a],
        "only_b": [{"claim": r.name, "key": r.key, **_cell(r)} for r in only_b],
    }


def _file_hash_revision(a: Any, b: Any) -> bool:
    """A local folder's revision is its files' hash: already in the weights line."""
    return all(isinstance(x, str) and x.startswith("local-sha256:") for x in (a, b))


def compare_header(a: Side, b: Side) -> dict[str, Any]:
    """Models, whether the weights are the same files (by weights_sha256) and environment changes."""
    wa, wb = a.weights, b.weights
    if not wa or not wb:
        missing = " and ".join(s for s, w in (("A", wa), ("B", wb)) if not w)
        weights = {"same": None, "text": f"unknown ({missing} records no weights_sha256)"}
    elif wa == wb:
        weights = {"same": True, "text": f"identical files (sha256 {', '.join(sorted(w[:12] for w in wa))})"}
    else:
        weights = {"same": False, "text": f"different files (sha256 {', '.join(sorted(w[:12] for w in wa))} "
                                          f"vs {', '.join(sorted(w[:12] for w in wb))})"}
    changes = [{"key": k, "a": a.env[k], "b": b.env[k]} for k in sorted(set(a.env) & set(b.env))
               if a.env[k] != b.env[k] and not _file_hash_revision(a.env[k], b.env[k])]
    side = lambda s: {"label": s.label, "path": s.path, "source": s.source, "models": s.models,  # noqa: E731
                      "spec_errors": s.spec_errors}
    return {"a": side(a), "b": side(b), "weights": weights, "env_changes": changes}
