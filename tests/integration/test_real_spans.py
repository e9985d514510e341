"""Book-prompt spans on the real SmolLM2 and Gemma 3 tokenizers (BPE with folded spaces, BOS).

The expected texts are the item's own strings; the tokens of a span, decoded, must give them back
(a BPE token may carry the space before a word, hence the strip).
"""
from __future__ import annotations

import re

import pytest

from icltest.probes.books import build_book_prompts, load_book


@pytest.mark.slow
@pytest.mark.parametrize("alias, bos", [("smollm2-135m", 1), ("gemma3-270m", 2)])
@pytest.mark.parametrize("kind", ["open_book", "counterfactual", "closed_book"])
def test_decoded_spans_give_back_the_query_parts(real_model, alias: str, bos: int, kind: str) -> None:
    tok = real_model(alias).tokenizer
    items = load_book(kind)
    batch = build_book_prompts(kind, tok, n=24, seed=1, shots=2, spans=True)
    for ids, spans, q, prompt in zip(batch.input_ids, batch.spans, batch.query_indices, batch.prompts):
        item = items[q]
        assert ids[0] == bos and 0 not in [i for s in spans.values() for i in s]  # BOS in no span

        def text(name: str) -> str:
            index = spans[name]
            assert index == sorted(index) and len(set(index)) == len(index)
            return tok.decode([ids[i] for i in index])

        assert text("question").strip() == item.question
        assert text("context").strip() == item.context
        if item.context:
            mentions = len(re.findall(rf"(?<!\w){re.escape(item.answer)}(?!\w)", item.context))
            assert text("answer").replace(" ", "") == item.answer.replace(" ", "") * mentions
            assert set(spans["answer"]) <= set(spans["context"])
        else:
            assert spans["answer"] == []
        assert text("demonstrations").strip() == prompt[: prompt.rindex("\n\n")]
        assert text("prompt_format").replace(" ", "").replace("\n", "") == "Question:Answer:"
        assert spans["prompt_format"][-1] == len(ids) - 1  # the prompt ends with "Answer:"
