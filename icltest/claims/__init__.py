"""Claim kinds: one module per ``kind:`` (its schema, targets, measure, judge) and a registry.

See :mod:`icltest.claims.registry` for how a kind is declared (built-in table, the
``icltest.claim_kinds`` entry-point group, or :func:`register`).
"""
from __future__ import annotations

from icltest.claims.registry import ENTRY_POINT_GROUP, claim_module, known_kinds, register, unregister

__all__ = ["ENTRY_POINT_GROUP", "claim_module", "known_kinds", "register", "unregister"]
