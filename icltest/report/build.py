"""Assemble claim records and environment facts into one report dict."""
from __future__ import annotations

import platform
import sys
import time
from importlib import metadata
from typing import Any


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
    return {
        "summary": {
            "claims": len(records), "passed": passed, "failed": len(records) - passed - xfailed,
            "xfailed": xfailed,
            "spec_errors": len(spec_errors or []), "forward_passes": forward_passes,
        },
        "claims": records,
        "spec_errors": list(spec_errors or []),
        "env": env,
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:  # a float-precision value (e.g. a relative error) is not 0.0000
            return f"{value:.2e}"
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 1 else f"{value:.4f}"
    return "-" if value is None else str(value)


def terminal_lines(records: list[dict[str, Any]]) -> list[str]:
    """A fixed-width table: status, item, measured, expected, spec line."""
    rows = [("", "claim", "measured", "expected", "spec")]
    for r in records:
        status = "PASS" if r.get("passed") else ("XFAIL" if r.get("xfail") else ("ERROR" if "error" in r else (
            "XPASS(strict)" if r.get("xpass_strict") else "FAIL")))  # a known failure that passed fails the run
        rows.append((status, f"{r['id']}[{r['target']}]", _fmt(r.get("value")), r.get("expect", "-"), r.get("spec", "")))
    widths = [max(len(str(row[i])) for row in rows) for i in range(5)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    passed = sum(1 for r in records if r.get("passed"))
    lines.append(f"{passed}/{len(records)} claims passed")
    return lines
