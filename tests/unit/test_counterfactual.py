"""Counterfactual prompts: the competing (remembered) answer is scored like the context answer."""
from __future__ import annotations

import re

import pytest

from icltest.errors import InputError
from icltest.probes.books import build_book_prompts, load_book, remembered_answers


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = set()
    for kind in ("counterfactual", "closed_book"):
        for item in load_book(kind):
            words.update(re.findall(r"\w+|[^\w\s]", f"{item.context} Question: {item.question} Answer: {item.answer}"))
    vocab = {"<bos>": 0, "<unk>": 1}
    for w in sorted(words):
        vocab.setdefault(w, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", unk_token="<unk>"), vocab


def test_remembered_answer_is_the_closed_book_answer_to_the_same_question() -> None:
    tok, vocab = _tokenizer()
    batch = build_book_prompts("counterfactual", tok, n=10, seed=3, shots=1)
    other = remembered_answers(batch, tok)
    items = load_book("counterfactual")
    memory = {i.question: i.answer for i in load_book("closed_book")}
    for q, context_id, other_id in zip(batch.query_indices, batch.answer_ids, other):
        item = items[q]
        assert context_id == vocab[item.answer] and other_id == vocab[memory[item.question]]
        assert context_id != other_id  # "In this story, the capital of France is Rome" vs Paris


def test_remembered_answers_refuse_other_tasks() -> None:
    tok, _ = _tokenizer()
    with pytest.raises(InputError, match="counterfactual"):
        remembered_answers(build_book_prompts("closed_book", tok, n=2, seed=0), tok)
