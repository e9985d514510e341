"""Assemble claim records and environment facts into one report dict."""
from __future__ import annotations

import platform
import sys
import time
from importlib import metadata
from typing import Any


REPORT_SCHEMA_VERSION = 2
"""The report JSON's ``schema_version`` (its change log: :mod:`icltest.report.json`)."""


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Library versions and platform: every result must say what produced it."""
    return {
        "icltest": _version("icltest"),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def build_report(
    records: list[dict[str, Any]], spec_errors: list[dict[str, str]] | None = None, forward_passes: int | None = None,
    session_seed: int | None = None,
) -> dict[str, Any]:
    models: dict[str, dict[str, Any]] = {}
    for record in records:
        model = record.get("model")
        if model and model.get("name"):
            models[model["name"]] = model
    passed = sum(1 for r in records if r.get("passed"))
    xfailed = sum(1 for r in records if r.get("xfail") and not r.get("passed"))
    env = environment()
    env["models"] = models
    env["session_seed"] = session_seed
    from icltest.report.maps import merge_maps

    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "summary": {
            "claims": len(records), "passed": passed, "failed": len(records) - passed - xfailed,
            "xfailed": xfailed,
            "spec_errors": len(spec_errors or []), "forward_passes": forward_passes,
        },
        "claims": records,
        "spec_errors": list(spec_errors or []),
        "maps": merge_maps(records),
        "env": env,
    }


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:  # a float-precision value (e.g. a relative error) is not 0.0000
            return f"{value:.2e}"
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 1 else f"{value:.4f}"
    return "-" if value is None else str(value)


def status_of(record: dict[str, Any]) -> str:
    """PASS, FAIL, XFAIL (a documented known failure), ERROR or XPASS(strict) (a stale xfail: fails the run)."""
    if record.get("passed"):
        return "PASS"
    if record.get("xfail"):
        return "XFAIL"
    if "error" in record:
        return "ERROR"
    return "XPASS(strict)" if record.get("xpass_strict") else "FAIL"


def baseline_of(record: dict[str, Any]) -> dict[str, Any] | None:
    """The record's comparison with the baseline (``record["baseline"]``), or None."""
    base = record.get("baseline")
    return base if isinstance(base, dict) else None


def regressed(record: dict[str, Any]) -> bool:
    return (baseline_of(record) or {}).get("verdict") == "regressed"


def fmt_delta(value: Any) -> str:
    """A signed change: +0.0123, -1.5e-05, or - when there is none."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    value = float(value)
    if value != value:
        return "nan"
    if value != 0 and abs(value) < 1e-3:
        return f"{value:+.2e}"
    return f"{value:+.0f}" if value.is_integer() and abs(value) >= 1 else f"{value:+.4f}"


def verdict_counts(counts: dict[str, int]) -> dict[str, int]:
    """Baseline verdict counts to show: regressed, improved, pass, new, incomparable order, zeros left out."""
    order = {v: i for i, v in enumerate(VERDICT_ORDER)}
    return {k: n for k, n in sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])) if n}


def baseline_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """Baseline verdict -> number of records (only records compared with a baseline; zeros left out)."""
    counts: dict[str, int] = {}
    for r in records:
        verdict = (baseline_of(r) or {}).get("verdict")
        if verdict:
            counts[verdict] = counts.get(verdict, 0) + 1
    return verdict_counts(counts)


VERDICT_ORDER = ("regressed", "improved", "pass", "new", "incomparable")


def terminal_lines(records: list[dict[str, Any]]) -> list[str]:
    """A fixed-width table: status, item, measured, expected, (baseline, delta, verdict,) spec line.

    With a baseline, regressed claims come first (the rest keep their order) and three columns
    show the baseline's value, the change and the verdict.
    """
    with_baseline = any(baseline_of(r) for r in records)
    header = ("", "claim", "measured", "expected") + (("baseline", "delta", "vs baseline") if with_baseline else ()) + ("spec",)
    rows = [header]
    ordered = [r for r in records if regressed(r)] + [r for r in records if not regressed(r)]
    for r in ordered:
        row = (status_of(r), f"{r['id']}[{r['target']}]", fmt_value(r.get("value")), str(r.get("expect", "-")))
        if with_baseline:
            base = baseline_of(r) or {}
            row += (fmt_value(base.get("value")), fmt_delta(base.get("delta")), str(base.get("verdict", "-")))
        rows.append(row + (str(r.get("spec", "")),))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    passed = sum(1 for r in records if r.get("passed"))
    tail = f"{passed}/{len(records)} claims passed"
    counts = baseline_counts(records)
    if counts:
        tail += "; against the baseline: " + ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    lines.append(tail)
    return lines
