"""Public Hypothesis strategies: the structure each promises, checked on every generated example."""
from __future__ import annotations

import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings

from icltest import strategies as icl
from icltest.errors import InputError
from icltest.probes.random_tokens import Vocab
from icltest.probes.tasks import load_task

VOCAB = Vocab(allowed=torch.arange(3, 40), bos_id=0)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@FAST
@given(icl.repeated_with_noise(VOCAB, length=(2, 8), repeats=(2, 4), noise_tokens=(0, 3)))
def test_repeated_with_noise_structure(seq: icl.TokenSequence) -> None:
    ids = list(seq.ids)
    assert ids[0] == 0 and seq.prefix == 1
    assert 2 <= seq.segment <= 8 and 2 <= seq.repeats <= 4 and len(seq.copies) == seq.repeats
    segment = ids[seq.copies[0]: seq.copies[0] + seq.segment]
    assert len(set(segment)) == seq.segment  # distinct tokens: one earlier copy per repeat
    for start in seq.copies:
        assert ids[start: start + seq.segment] == segment
    noise = [t for i, t in enumerate(ids[1:], 1) if not any(s <= i < s + seq.segment for s in seq.copies)]
    assert len(noise) == sum(seq.noise) and all(0 <= k <= 3 for k in seq.noise)
    assert not set(noise) & set(segment)  # noise never creates extra copies
    assert all(3 <= t < 40 for t in ids[1:])  # only drawable (non-special) tokens


@FAST
@given(icl.random_tokens(VOCAB, length=(1, 5), bos=False))
def test_random_tokens_without_bos(seq: icl.TokenSequence) -> None:
    assert seq.prefix == 0 and 1 <= len(seq) <= 5 and all(3 <= t < 40 for t in seq.ids)


def test_bad_ranges_are_errors() -> None:
    with pytest.raises(InputError, match="empty"):
        icl.repeated_segments(VOCAB, length=(5, 2))
    with pytest.raises(InputError, match="exceeds the 37 drawable tokens"):
        icl.repeated_with_noise(VOCAB, length=(2, 36), noise_tokens=(0, 5))


def _word_tokenizer(words: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<bos>": 0, "<unk>": 1}
    for w in words:
        vocab.setdefault(w, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", unk_token="<unk>"), vocab


def test_few_shot_prompts_end_with_a_query_and_know_the_answer() -> None:
    task = load_task("antonym")
    words = sorted({w for p in task.pairs for w in re.findall(r"\w+|->", f"{p.input} -> {p.output}")})
    tok, vocab = _word_tokenizer(words)
    strategy = icl.few_shot_prompts(tok, "antonym", shots=(0, 3))
    outputs = {p.input: p.output for p in task.pairs}
    seen = []

    @FAST
    @given(strategy)
    def check(seq: icl.TokenSequence) -> None:
        text = tok.decode(list(seq.ids))
        lines = text.split("->")
        query = tok.decode(list(seq.ids)).split()[-2]  # "... <query> ->"
        assert text.endswith("->") and seq.answer == vocab[outputs[query]]
        seen.append(len(lines) - 1)

    check()
    assert min(seen) >= 1 and max(seen) <= 4  # 0..3 demonstrations + the query


def test_natural_text_spans_are_contiguous_corpus_slices() -> None:
    from icltest.probes.natural_text import load_corpus

    docs = load_corpus("essays")
    words = sorted({w for d in docs for w in re.findall(r"\w+|[^\w\s]", d)})
    tok, _ = _word_tokenizer(words)
    encoded = [tok(d, add_special_tokens=False)["input_ids"] for d in docs]

    @FAST
    @given(icl.natural_text_spans(tok, length=(8, 20), bos=True))
    def check(seq: icl.TokenSequence) -> None:
        body = list(seq.ids[1:])
        assert seq.ids[0] == 0 and 8 <= len(body) <= 20
        assert any(body == e[i: i + len(body)] for e in encoded for i in range(len(e) - len(body) + 1))

    check()
