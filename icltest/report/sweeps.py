"""Sweeps in reports: a dose-response or layer sweep that a claim measured, shown as a small table.

A claim puts its curves in ``details["sweeps"]``, a list of::

    {"name": "layer sweep", "x": "layer", "y": "accuracy",
     "points": [[x, y], ...], "reference": {"no injection": 0.10, "random vector (mean)": 0.12}}

The Markdown report shows each curve as one table (x values across, y values below, the best
point in bold) with a one-line sparkline and the references, so a reader sees at a glance where
an effect peaks and how far it rises above its controls. A malformed entry is reported as such,
never dropped silently and never allowed to break the report.
"""
from __future__ import annotations

import math
from typing import Any

BARS = "▁▂▃▄▅▆▇█"
MAX_POINTS = 40  # wider tables stop being readable; the JSON keeps every point


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 1 else f"{value:.3g}"
    return str(value)


def sparkline(values: list[float]) -> str:
    """One bar per value, scaled between the smallest and largest finite value (NaN: a space)."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return " " * len(values)
    low, high = min(finite), max(finite)
    out = []
    for v in values:
        if not (isinstance(v, (int, float)) and math.isfinite(v)):
            out.append(" ")
        elif high == low:
            out.append(BARS[len(BARS) // 2])
        else:
            out.append(BARS[round((v - low) / (high - low) * (len(BARS) - 1))])
    return "".join(out)


def _points(sweep: Any) -> list[tuple[Any, float]] | None:
    points = sweep.get("points") if isinstance(sweep, dict) else None
    if not isinstance(points, list) or not points:
        return None
    out = []
    for p in points:
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[1], (int, float))
                and not isinstance(p[1], bool)):
            return None
        out.append((p[0], float(p[1])))
    return out


def render_sweep(sweep: Any) -> list[str]:
    """Markdown lines for one sweep: a title line, a two-row table, references."""
    points = _points(sweep)
    if points is None:
        return [f"- malformed sweep (needs points [[x, y], ...]): `{str(sweep)[:120]}`"]
    name, x, y = sweep.get("name", "sweep"), sweep.get("x", "x"), sweep.get("y", "y")
    shown = points[:MAX_POINTS]
    finite = [v for _, v in shown if math.isfinite(v)]
    best = max(finite) if finite else None
    cells = [f"**{_num(v)}**" if best is not None and v == best else _num(v) for _, v in shown]
    lines = [f"**{name}**: {y} by {x} `{sparkline([v for _, v in shown])}`", "",
             f"| {x} | " + " | ".join(_num(p[0]) for p in shown) + " |",
             "|---" * (len(shown) + 1) + "|",
             f"| {y} | " + " | ".join(cells) + " |"]
    if len(points) > len(shown):
        lines.append(f"\n({len(points) - len(shown)} more points in the JSON report)")
    refs = sweep.get("reference")
    if isinstance(refs, dict) and refs:
        lines += ["", "reference: " + ", ".join(f"{k} {_num(v)}" for k, v in refs.items())]
    return lines + [""]


def sweep_section(records: list[dict[str, Any]]) -> list[str]:
    """The report's "Sweeps" section (empty when no claim measured one)."""
    out: list[str] = []
    for r in records:
        sweeps = (r.get("details") or {}).get("sweeps")
        if not sweeps:
            continue
        out += [f"### `{r['id']}[{r['target']}]`", ""]
        for sweep in sweeps if isinstance(sweeps, list) else [sweeps]:
            out += render_sweep(sweep)
    return (["", "## Sweeps", ""] + out) if out else []
