"""Helpers for testing icltest itself and for users' own tests: models with known answers."""
from __future__ import annotations

from icltest.testing.known_circuit import HEADS, KnownCircuit, build_known_circuit, build_tokenizer

__all__ = ["HEADS", "KnownCircuit", "build_known_circuit", "build_tokenizer"]
