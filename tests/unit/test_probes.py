"""Random-token probes: seeding, structure, special-token exclusion, BOS handling."""
from __future__ import annotations

import pytest
import torch

from icltest.probes import Vocab, repeated_random


def _vocab(bos: int | None = 0) -> Vocab:
    return Vocab(allowed=torch.arange(3, 200), bos_id=bos, special_ids=(0, 1, 2))


def test_repeated_structure_and_bos() -> None:
    probe = repeated_random(_vocab(), length=20, repeats=3, batch=4, seed=7)
    assert probe.tokens.shape == (4, 1 + 60)
    assert torch.all(probe.tokens[:, 0] == 0)
    assert probe.valid[:, 0].sum() == 0 and probe.valid[:, 1:].all()
    body = probe.tokens[:, 1:]
    for row in body:
        seg = row[:20]
        assert len(set(seg.tolist())) == 20  # distinct within a segment
        assert torch.equal(row[20:40], seg) and torch.equal(row[40:60], seg)
        assert all(3 <= t < 200 for t in row.tolist())  # never a special id
    assert probe.prefix == 1 and probe.segment == 20
    assert "seed=7" in probe.label and probe.params["bos"] == 0


def test_seed_determines_tokens() -> None:
    a = repeated_random(_vocab(), length=10, repeats=2, batch=2, seed=1)
    b = repeated_random(_vocab(), length=10, repeats=2, batch=2, seed=1)
    c = repeated_random(_vocab(), length=10, repeats=2, batch=2, seed=2)
    assert torch.equal(a.tokens, b.tokens)
    assert not torch.equal(a.tokens, c.tokens)


def test_bos_modes() -> None:
    no = repeated_random(_vocab(), length=5, repeats=2, batch=1, seed=0, bos="no")
    assert no.tokens.shape == (1, 10) and no.prefix == 0 and no.valid.all()
    auto_none = repeated_random(_vocab(bos=None), length=5, repeats=2, batch=1, seed=0)
    assert auto_none.tokens.shape == (1, 10)
    with pytest.raises(ValueError, match="no BOS"):
        repeated_random(_vocab(bos=None), length=5, repeats=2, batch=1, seed=0, bos="yes")


def test_length_larger_than_vocab_is_an_error() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        repeated_random(Vocab(allowed=torch.arange(3, 8), bos_id=None), length=10, repeats=2, batch=1, seed=0)
