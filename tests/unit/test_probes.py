"""Random-token probes: seeding, structure, special-token exclusion, BOS handling."""
from __future__ import annotations

import pytest
import torch

from icltest.errors import InputError
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
    with pytest.raises(InputError, match="no BOS"):
        repeated_random(_vocab(bos=None), length=5, repeats=2, batch=1, seed=0, bos="yes")


def test_length_larger_than_vocab_is_an_error() -> None:
    with pytest.raises(InputError, match="exceeds"):
        repeated_random(Vocab(allowed=torch.arange(3, 8), bos_id=None), length=10, repeats=2, batch=1, seed=0)


def test_natural_text_probe_cuts_documents_to_length() -> None:
    import re

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from icltest.probes.natural_text import load_corpus, natural_text

    docs = load_corpus("essays")
    assert len(docs) >= 16
    vocab = {"<bos>": 0, "<unk>": 1}
    for w in sorted({w for d in docs for w in re.findall(r"\w+|[^\w\s]", d)}):
        vocab.setdefault(w, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", unk_token="<unk>")
    probe = natural_text(tok, length=300, batch=8, seed=2, bos="auto", bos_id=0)
    assert probe.tokens.shape == (8, 301) and probe.prefix == 1 and not probe.valid[:, 0].any()
    chosen = probe.params["documents"]
    assert len(set(chosen)) == 8
    for row, index in zip(probe.tokens.tolist(), chosen):
        words = re.findall(r"\w+|[^\w\s]", docs[index])[:300]
        assert row[1:] == [vocab[w] for w in words]
    assert natural_text(tok, length=300, batch=8, seed=2, bos_id=0).params["documents"] == chosen
    with pytest.raises(InputError, match="documents in corpus 'essays' have 5000 tokens"):
        natural_text(tok, length=5000, batch=2, seed=0, bos_id=0)
