"""Spec files: safe YAML with source locations -> validated claims (see spec.py).

An outside claim kind builds its ``Schema`` from the public blocks re-exported here:
:class:`ClaimBase` (id, description, marks, probe), :data:`Expectation` (a parsed comparison),
:data:`Head` / :data:`HeadSelection` (heads as specs write them) and :class:`Strict` (a nested
mapping whose unknown keys are errors).
"""
from __future__ import annotations

from icltest.schema.base import ClaimBase, Expectation, Head, HeadSelection, Strict
from icltest.schema.errors import SpecError, SpecProblem
from icltest.schema.expect import Comparison, parse_comparison
from icltest.schema.loader import LoadedSpec, load_spec, validate

__all__ = ["ClaimBase", "Comparison", "Expectation", "Head", "HeadSelection", "LoadedSpec", "SpecError",
           "SpecProblem", "Strict", "load_spec", "parse_comparison", "validate"]
