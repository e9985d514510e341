"""The contract every claim kind implements, and the records it produces.

A claim kind is a module (or object) with ``Schema`` (its pydantic model, a subclass of
``icltest.schema.ClaimBase`` with ``kind: Literal[...]``), ``targets(claim)``,
``measure(claim, target, ctx)`` and ``judge(claim, target, measurement)``; the registry
(:mod:`icltest.claims.registry`) finds it. ``targets`` runs at collection time without a model,
so it only expands what the spec itself names (one target per listed head; one per population).
``measure`` raises :class:`ClaimSpecError` for what the spec asked and this model cannot do.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from icltest.errors import ClaimSpecError  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Target:
    """One pytest item's share of a claim.

    Attributes:
        id: the item id suffix, e.g. `L18H6`, `layers0-9`, `top3`.
        heads: (layer, head) pairs named by the spec for this target (empty when resolved at
            run time, e.g. `top: 3`).
    """

    id: str
    heads: tuple[tuple[int, int], ...] = ()


@dataclass
class Measurement:
    """What a claim measured for one target.

    Attributes:
        value: the headline number compared with the expectation.
        unit: what `value` is ("induction score", "rank").
        details: everything else worth reporting (per-head values, top heads...).
        probe: the probe label (kind, parameters, seed, BOS handling).
        seed: the probe seed.
    """

    value: float
    unit: str
    details: dict[str, Any] = field(default_factory=dict)
    probe: str = ""
    seed: int | None = None


@dataclass
class Verdict:
    """Pass/fail plus the one-line reason shown in reports and failures."""

    passed: bool
    expect: str
    summary: str
    measurement: Measurement


@dataclass
class ClaimContext:
    """What a claim may use at measure time: the session caches, the loaded model, the probe spec.

    Claims never reach into model modules; they go through `session` and `loaded.adapter`.
    """

    session: Any
    loaded: Any
    probe_spec: Any
    location: Any  # callable path_tuple -> "file:line:col", for errors that point at the spec
