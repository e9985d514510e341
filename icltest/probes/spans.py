"""Named token spans in prompts ("question", "answer", ...), and their masks in a padded batch.

A span is a set of token indices into one prompt's ``input_ids`` (BOS included in the indexing).
It is computed from character ranges in the prompt text: a token belongs to a span when its
character range (the fast tokenizer's ``return_offsets_mapping``) overlaps one of the span's
ranges. Ranges are written without surrounding whitespace, so a lone-space token next to a word
does not join its span, while a BPE token that folds the space into the word (" Tallinn") does.

Book prompts (:mod:`icltest.probes.books`) have these spans, for the query item only unless said:

- ``question``: the question sentence after "Question: ";
- ``answer``: every occurrence of the answer inside the query's context (empty for closed book);
- ``context``: the query's context sentences (empty for closed book);
- ``demonstrations``: the solved items before the query, blank lines between them included;
- ``prompt_format``: the query's "Question:" and "Answer:" markers.

Padding: :func:`~icltest.probes.prompts.pad_left` shifts a row's tokens right by its pad count,
and a teacher-forced row is longer than its prompt; :func:`span_masks` reads the shift off the
attention mask, so both are handled.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from icltest.errors import InputError

SPAN_NAMES = ("question", "answer", "context", "demonstrations", "prompt_format")

CharRanges = dict[str, list[tuple[int, int]]]


def token_spans(tokenizer: Any, text: str, input_ids: Sequence[int], ranges: CharRanges,
                bos_id: int | None = None) -> dict[str, list[int]]:
    """Map character ranges in ``text`` to indices into ``input_ids``.

    Args:
        tokenizer: a fast (Rust-backed) Hugging Face tokenizer.
        text: the prompt text ``input_ids`` were made from (``add_special_tokens=False``).
        input_ids: the prompt's ids, possibly with ``bos_id`` prepended.
        ranges: span name -> [start, end) character ranges.
        bos_id: the id prepended to the prompt's own tokens, if any.

    Raises:
        InputError: the tokenizer has no offsets (a slow tokenizer), or its ids for ``text`` are
            not ``input_ids`` (minus the prepended BOS): the spans would point at other tokens.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise InputError("token spans need a fast tokenizer (character offsets); this one is slow")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = [int(i) for i in enc["input_ids"]]
    offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
    given = [int(i) for i in input_ids]
    shift = len(given) - len(ids)
    if not (given == ids or (shift == 1 and bos_id is not None and given[0] == bos_id and given[1:] == ids)):
        raise InputError(f"token spans: the tokenizer's ids for the prompt ({len(ids)} tokens) are not the prompt's "
                         f"input_ids ({len(given)} tokens, bos {bos_id}); spans would point at the wrong tokens")
    out: dict[str, list[int]] = {}
    for name, spans in ranges.items():
        out[name] = [shift + t for t, (a, b) in enumerate(offsets)
                     if b > a and any(a < end and start < b for start, end in spans)]
    return out


def _mentions(text: str, word: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(rf"(?<!\w){re.escape(word)}(?!\w)", text)]


def book_char_ranges(prompt: str, question: str, answer: str, context: str) -> CharRanges:
    """Character ranges of the book-prompt spans (module docstring) in one plain prompt.

    The query's text (``BookItem.text()``) must end the prompt; what comes before it, less the
    blank line that separates it, is the demonstrations.

    Raises:
        InputError: the prompt does not end with that query text (not a plain book prompt).
    """
    body = f"Question: {question}\nAnswer:"
    query = f"{context}\n{body}" if context else body
    if not prompt.endswith(query):
        raise InputError("token spans: the prompt does not end with its query's text; spans exist for plain "
                         "(chat_template: no) book prompts only")
    q0 = len(prompt) - len(query)
    demos = [(0, q0 - 2)] if q0 >= 2 else []
    c0 = q0
    b0 = q0 + (len(context) + 1 if context else 0)  # "Question: ..." starts here
    question_start = b0 + len("Question: ")
    answer_marker = b0 + len(body) - len("Answer:")
    return {
        "question": [(question_start, question_start + len(question))],
        "answer": [(c0 + a, c0 + b) for a, b in _mentions(context, answer)] if context else [],
        "context": [(c0, c0 + len(context))] if context else [],
        "demonstrations": demos,
        "prompt_format": [(b0, b0 + len("Question:")), (answer_marker, answer_marker + len("Answer:"))],
    }


def span_masks(spans: Sequence[dict[str, list[int]]], mask: Any, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Per span name, a [batch, seq] bool mask of the span's tokens in a left-padded batch.

    Args:
        spans: per row, span name -> token indices into that row's own ids (BOS included).
        mask: [batch, seq] attention mask from :func:`~icltest.probes.prompts.pad_left` (1 on
            tokens). A row's indices shift right by its pad count; a teacher-forced row (prompt +
            answer tokens) keeps its prompt indices, as they count from the row's start.
        names: the span names to build (default: every name in the first row).

    Raises:
        ValueError: no spans (e.g. a chat-template batch), a row count that does not match, a
            row without a requested span name, or an index outside its row.
    """
    import torch

    if not spans:
        raise ValueError("span_masks got no spans (chat-template batches have none)")
    mask = torch.as_tensor(mask)
    if mask.shape[0] != len(spans):
        raise ValueError(f"span_masks: {len(spans)} rows of spans for a batch of {mask.shape[0]}")
    names = list(names) if names is not None else list(spans[0])
    width = mask.shape[1]
    lengths = mask.long().sum(-1).tolist()
    out = {name: torch.zeros(mask.shape, dtype=torch.bool) for name in names}
    for row, (row_spans, length) in enumerate(zip(spans, lengths)):
        pad = width - int(length)
        for name in names:
            if name not in row_spans:
                raise ValueError(f"span_masks: row {row} has no span {name!r} (has {', '.join(row_spans)})")
            index = list(row_spans[name])
            if any(not 0 <= i < length for i in index):
                raise ValueError(f"span_masks: row {row} span {name!r} has indices outside its {length} tokens")
            if index:
                out[name][row, torch.tensor(index, dtype=torch.long) + pad] = True
    return out
