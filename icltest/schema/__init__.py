"""Spec files: safe YAML with source locations -> validated claims (see spec.py)."""
from __future__ import annotations

from icltest.schema.errors import SpecError, SpecProblem
from icltest.schema.expect import Comparison, parse_comparison
from icltest.schema.loader import LoadedSpec, load_spec, validate

__all__ = ["Comparison", "LoadedSpec", "SpecError", "SpecProblem", "load_spec", "parse_comparison", "validate"]
