"""Compare two icltest JSON reports claim by claim: same items, outcomes and values within a tolerance.

    python scripts/compare_reports.py BEFORE.json AFTER.json [--tol 1e-6] [--details]
        [--changed 'ITEM-GLOB' ...]

Exit 0 when every item of BEFORE is in AFTER with the same outcome and a value within --tol
(absolute, or relative for |values| > 1); ``--changed`` names items whose value is *meant* to
differ (they are listed, not counted). ``--details`` also compares every number inside the
records' details (those are rounded to 4 decimals in reports, so use --tol 1e-4 with it).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import math
import sys
from typing import Any, Iterator


def _numbers(obj: Any, path: str = "") -> Iterator[tuple[str, float]]:
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        yield path, float(obj)
    elif isinstance(obj, dict):
        for key in sorted(obj):
            if key not in ("seconds", "forward_seconds", "seconds_per_forward", "load_seconds"):
                yield from _numbers(obj[key], f"{path}.{key}" if path else str(key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _numbers(value, f"{path}[{i}]")


def _close(a: float | None, b: float | None, tol: float) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def compare(before: dict[str, Any], after: dict[str, Any], tol: float, details: bool,
            changed: list[str]) -> tuple[list[str], list[str], int]:
    old = {c["item"]: c for c in before["claims"]}
    new = {c["item"]: c for c in after["claims"]}
    problems, expected = [], []
    for item, a in old.items():
        b = new.get(item)
        if b is None:
            problems.append(f"{item}: missing from the second report")
            continue
        meant = any(fnmatch.fnmatchcase(item, pattern) for pattern in changed)
        if a.get("outcome") != b.get("outcome"):
            problems.append(f"{item}: outcome {a.get('outcome')} -> {b.get('outcome')}")
        if not _close(a.get("value"), b.get("value"), tol):
            line = f"{item}: value {a.get('value')} -> {b.get('value')}"
            (expected if meant else problems).append(line)
        elif details and not meant:
            da, db = dict(_numbers(a.get("details", {}))), dict(_numbers(b.get("details", {})))
            for key in sorted(set(da) | set(db)):
                if not _close(da.get(key), db.get(key), tol):
                    problems.append(f"{item}: details.{key} {da.get(key)} -> {db.get(key)}")
    extra = sorted(set(new) - set(old))
    problems += [f"{item}: only in the second report" for item in extra]
    return problems, expected, len(old)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--details", action="store_true")
    parser.add_argument("--changed", action="append", default=[])
    args = parser.parse_args(argv)
    with open(args.before) as fa, open(args.after) as fb:
        problems, expected, n = compare(json.load(fa), json.load(fb), args.tol, args.details, args.changed)
    for line in expected:
        print(f"changed (expected): {line}")
    for line in problems:
        print(f"DIFFERENT: {line}")
    print(f"{n} items compared, {len(problems)} different, {len(expected)} changed as expected (tol {args.tol})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
