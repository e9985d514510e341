"""Token-batch generators. Every probe is seeded and records how it was built."""
from __future__ import annotations

from icltest.probes.random_tokens import Probe, Vocab, make_probe, repeated_random, vocab_from_tokenizer

__all__ = ["Probe", "Vocab", "make_probe", "repeated_random", "vocab_from_tokenizer"]
