"""Expectations: parsed comparisons (``">= 0.7"``, ``{between: [a, b]}``), never evaluated as Python.

A comparison knows how to check a value and how far the value is from failing (its margin), so
population claims can report the head closest to the line and reports can sort by margin.
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "!=": operator.ne,
}
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_TEXT = re.compile(rf"^\s*(>=|<=|==|!=|>|<)\s*({_NUMBER})\s*$")
EXAMPLES = "'>= 0.6', '< 0.3', '== 1', or {between: [0.2, 0.6]}"


@dataclass(frozen=True)
class Comparison:
    """``value op bound``, or ``low <= value <= high`` when ``op == 'between'``."""

    op: str
    bound: float
    high: float | None = None

    def check(self, value: Any) -> bool:
        """NaN, None or anything not a number (no evidence) never passes, whatever the operator.

        Every claim kind and every control statistic goes through here, so "no measurement" can
        never satisfy a bound by accident (``NaN != 0.5`` is True in IEEE arithmetic).
        """
        value = _number(value)
        if math.isnan(value):
            return False
        if self.op == "between":
            return self.bound <= value <= float(self.high)  # type: ignore[arg-type]
        return _OPS[self.op](value, self.bound)

    def margin(self, value: Any) -> float:
        """Signed distance to the boundary: > 0 passes with room, < 0 fails by that much (NaN: -inf)."""
        value = _number(value)
        if math.isnan(value):
            return -math.inf
        if self.op in (">=", ">"):
            return value - self.bound
        if self.op in ("<=", "<"):
            return self.bound - value
        if self.op == "between":
            return min(value - self.bound, float(self.high) - value)  # type: ignore[arg-type]
        if self.op == "==":
            return -abs(value - self.bound)
        return abs(value - self.bound)

    def __str__(self) -> str:
        if self.op == "between":
            return f"between {_num(self.bound)} and {_num(self.high)}"
        return f"{self.op} {_num(self.bound)}"


def _number(value: Any) -> float:
    """``value`` as a float, NaN when it is not a number (None, text, a missing field)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _num(x: Any) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


def parse_comparison(value: Any) -> Comparison:
    """Parse a spec's comparison.

    Raises:
        ValueError: with a message that shows the accepted forms.
    """
    if isinstance(value, Comparison):
        return value
    if isinstance(value, str):
        match = _TEXT.match(value)
        if not match:
            raise ValueError(f"could not read comparison {value!r}; write {EXAMPLES}")
        return Comparison(match.group(1), float(match.group(2)))
    if isinstance(value, dict):
        if set(value) != {"between"}:
            raise ValueError(f"a comparison mapping must be {{between: [low, high]}}, got keys {sorted(map(str, value))}")
        pair = value["between"]
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)):
            raise ValueError(f"between needs two numbers [low, high], got {pair!r}")
        low, high = float(pair[0]), float(pair[1])
        if math.isnan(low) or math.isnan(high):
            raise ValueError("between bounds must be numbers, not NaN (a NaN bound could never be met)")
        if low > high:
            raise ValueError(f"between [{_num(low)}, {_num(high)}]: low is greater than high")
        return Comparison("between", low, high)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(f"a bare number ({value}) is not a comparison; quote it with an operator, e.g. '>= {value}'")
    raise ValueError(f"expected a comparison ({EXAMPLES}), got {type(value).__name__} {value!r}")


JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": rf"^\s*(>=|<=|==|!=|>|<)\s*{_NUMBER}\s*$",
         "description": "a comparison such as '>= 0.6'"},
        {"type": "object", "properties": {"between": {"type": "array", "items": {"type": "number"},
                                                     "minItems": 2, "maxItems": 2}},
         "required": ["between"], "additionalProperties": False},
    ]
}
