"""JSON report writer (atomic: a half-written report is worse than none).

Reports are strict JSON (RFC 8259), which has no NaN or Infinity: Python's default writes bare
``NaN`` / ``Infinity`` tokens that other parsers reject. A non-finite number is written as
``null`` where it stood, and the report's top-level ``nonfinite`` maps each such place (a JSON
Pointer, e.g. ``/claims/3/details/control/z``) to ``"nan"``, ``"inf"`` or ``"-inf"``: every number
field stays a number or null, and nothing is lost.

The report carries a top-level ``schema_version`` (:data:`icltest.report.build.REPORT_SCHEMA_VERSION`);
a reader should check it. Its history:

- **1** (no ``schema_version`` key: reports written before it existed): ``summary``, ``claims``
  (one record per claim x target), ``spec_errors``, ``env``, ``nonfinite``.
- **2**: adds ``schema_version`` and ``maps``: the per-head tables the claims measured, merged
  from the records' ``details["maps"]`` into one per (model name, ``weights_sha256``, map name,
  probe) with ``model``, ``weights_sha256``, ``name``, ``kind`` (score / attribution / ablation /
  dla / cie), ``probe``, ``unit``, ``values`` ([layer][head], null where not measured),
  ``targets`` (the claims' heads, [layer, head], sorted) and ``claims`` (ids, sorted); sorted by
  that key (see :mod:`icltest.report.maps`). Records gain ``order`` ([spec file, claim index,
  target index]: records are sorted by it) and ``model.weights_sha256``; with a baseline, records
  gain ``baseline`` (verdict, baseline value, delta, max_drop, direction, reason) and the report
  a top-level ``baseline`` (name, path, created, model, env_changes, counts, missing,
  same_weights). Version-1 keys are unchanged.
"""
from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any

from icltest.report.files import write_atomic


def _finite(obj: Any, pointer: str, nonfinite: dict[str, str]) -> Any:
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, numbers.Integral):  # numpy integers, which json would not know
        return int(obj)
    if isinstance(obj, numbers.Real):  # float, and numpy floats
        value = float(obj)
        if math.isfinite(value):
            return value
        nonfinite[pointer] = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return None
    if isinstance(obj, dict):
        return {k: _finite(v, f"{pointer}/{_escape(str(k))}", nonfinite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v, f"{pointer}/{i}", nonfinite) for i, v in enumerate(obj)]
    return obj


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def dumps_report(report: dict[str, Any]) -> str:
    """The report as strict JSON: non-finite numbers -> null, listed under ``nonfinite``."""
    nonfinite: dict[str, str] = {}
    clean = _finite({k: v for k, v in report.items() if k != "nonfinite"}, "", nonfinite)
    clean["nonfinite"] = nonfinite
    return json.dumps(clean, indent=2, default=str, allow_nan=False) + "\n"


def write_json(report: dict[str, Any], path: Path) -> None:
    write_atomic(path, dumps_report(report))
