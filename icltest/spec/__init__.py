"""Spec files: safe YAML with source locations -> validated claims (see schema.py)."""
from __future__ import annotations

from icltest.spec.errors import SpecError, SpecProblem
from icltest.spec.expect import Comparison, parse_comparison
from icltest.spec.loader import LoadedSpec, load_spec, validate

__all__ = ["Comparison", "LoadedSpec", "SpecError", "SpecProblem", "load_spec", "parse_comparison", "validate"]
