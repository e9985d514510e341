"""Open-book vs closed-book recall probes: the inputs that tell in-context heads from parametric ones.

Open book: facts about invented people in a short context, with distractor facts of the same type,
then a question only the context answers. Closed book: well-known facts asked with no context, so
only what the weights remember can answer. Counterfactual: a context that contradicts world
knowledge, asked with the closed-book question. Ablating in-context heads should hurt the first
(and the third) while leaving the second; ablating parametric heads the reverse.

Prompt format, shared by all kinds so the only difference is the context:

    Mira Okafor was born in Tallinn. Jonas Whitfield was born in Lisbon. ...
    Question: Where was Mira Okafor born?
    Answer:

and the answer is scored as " Tallinn" (same leading-space convention as `icltest.probes.prompts`).
Queries and demonstrations come from one split of the items, keyed by the question (see
`icltest.probes.splits`), so a counterfactual item sits in the split of the closed-book item that
asks the same question.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from icltest.errors import InputError
from icltest.probes.splits import ALL, check_split, derangement, split_indices
from icltest.probes.tasks import (
    TaskBatch,
    _data_dir,
    _read_yaml,
    _string,
    colliding_answers,
    encode_prompts,
    sample_queries,
    shuffled_rng,
    split_params,
    use_chat_template,
)

BOOK_KINDS = ("open_book", "closed_book", "counterfactual")
_ITEM_KEYS = {"context", "question", "answer"}


@dataclass(frozen=True)
class BookItem:
    """One question; `context` is empty for closed-book items."""

    question: str
    answer: str
    context: str = ""

    def text(self, with_answer: bool = False) -> str:
        """The item as prompt text; with the answer appended when used as a demonstration."""
        body = f"Question: {self.question}\nAnswer:"
        if self.context:
            body = f"{self.context}\n{body}"
        return f"{body} {self.answer}" if with_answer else body


def load_book(kind: str) -> tuple[BookItem, ...]:
    """Load and validate the shipped items of one kind.

    Raises:
        ValueError: unknown kind, or a malformed shipped data file (a bug in icltest, not in a spec).
    """
    if kind not in BOOK_KINDS:
        raise ValueError(f"unknown book kind {kind!r}; expected one of {', '.join(BOOK_KINDS)}")
    where = f"{kind}.yaml"
    data = _read_yaml(_data_dir().joinpath(where).read_text(encoding="utf-8"), where)
    raw_items = data.get("items")
    if not isinstance(raw_items, list) or len(raw_items) < 2:
        raise ValueError(f"{where}: items must be a list of at least 2 question/answer mappings")
    needs_context = kind != "closed_book"
    items = []
    for i, raw in enumerate(raw_items):
        if not isinstance(raw, dict) or not {"question", "answer"} <= set(raw) or set(raw) - _ITEM_KEYS:
            raise ValueError(f"{where}: items[{i}] must have question and answer (and context), got {raw!r}")
        if needs_context and "context" not in raw:
            raise ValueError(f"{where}: items[{i}] needs a context for kind {kind!r}")
        if not needs_context and "context" in raw:
            raise ValueError(f"{where}: items[{i}] is closed-book and must not have a context")
        item = BookItem(
            question=_string(raw["question"], where, f"items[{i}].question"),
            answer=_string(raw["answer"], where, f"items[{i}].answer"),
            context=_string(raw["context"], where, f"items[{i}].context") if needs_context else "",
        )
        if needs_context and not _mentions(item.context, item.answer):
            raise ValueError(f"{where}: items[{i}] answer {item.answer!r} does not appear in its context")
        items.append(item)
    return tuple(items)


def _mentions(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None


def _demo_pool(items: tuple[BookItem, ...], q: int, pool: list[int]) -> list[int]:
    # A demonstration must not hand over the query's answer: skip items with the same answer or
    # whose text (context or question) mentions it (closed-book "capital of England" vs "city of
    # Big Ben" are both London; "capital of France?" would hand over "Eiffel Tower -> France").
    answer = items[q].answer
    return [i for i in pool
            if i != q and items[i].answer != answer and not _mentions(items[i].text(with_answer=True), answer)]


def build_book_prompts(
    kind: str,
    tokenizer: Any,
    *,
    n: int,
    seed: int,
    chat_template: str = "no",
    shots: int = 0,
    split: str = "test",
    shuffled_labels: bool = False,
    bos: Any = "auto",
    full_answers: bool = True,
    spans: bool = False,
) -> TaskBatch:
    """Build n seeded open-book, closed-book or counterfactual prompts from one split.

    Args:
        kind: "open_book", "closed_book" or "counterfactual".
        tokenizer: a Hugging Face tokenizer.
        n: number of prompts; items repeat (reshuffled) when n exceeds the split.
        seed: seeds the item order and any demonstrations.
        chat_template: "no", "yes" or "auto", as in `build_icl_prompts`.
        shots: solved items of the same kind and split put before the query, separated by a blank
            line. Small base models often need one or two to learn the "Answer: X" format.
        split: "test" (judging), "select" (choosing heads) or "all".
        shuffled_labels: demonstrations' answers permuted among themselves, none kept (shots >= 2).
        bos, full_answers: as in `build_icl_prompts`.
        spans: also fill ``batch.spans`` (:func:`book_spans`; plain prompts only, left empty with
            a chat template).
    """
    items = load_book(kind)
    if not isinstance(shots, int) or shots < 0:
        raise ValueError(f"shots must be a non-negative int, got {shots!r}")
    if shuffled_labels and shots < 2:
        raise InputError(f"shuffled labels need at least 2 demonstrations to permute, got shots={shots}")
    check_split(split)
    chat = use_chat_template(tokenizer, chat_template)
    split_pool = split_indices([item.question for item in items], split)
    rng, relabel = random.Random(seed), shuffled_rng(seed)
    queries = [split_pool[i] for i in sample_queries(len(split_pool), n, rng)]
    texts, demos = [], []
    for q in queries:
        pool = _demo_pool(items, q, split_pool)
        if shots > len(pool):
            where = f"in split {split} " if split != ALL else ""
            raise InputError(f"shots={shots} but only {len(pool)} {kind} items {where}can serve as demonstrations")
        chosen = rng.sample(pool, shots)
        shown = [items[i] for i in chosen]
        if shuffled_labels:
            perm = derangement(shots, relabel)
            shown = [BookItem(it.question, shown[perm[j]].answer, it.context) for j, it in enumerate(shown)]
        texts.append("\n\n".join([it.text(with_answer=True) for it in shown] + [items[q].text()]))
        demos.append(chosen)
    params = {"task": kind, "shots": shots, "n": n, "seed": seed, "template": "chat" if chat else "plain",
              **split_params(split, split_pool, len(items)), "shuffled_labels": bool(shuffled_labels)}
    prefix = "" if chat else " "
    collide = colliding_answers(tokenizer, [it.answer for it in items], prefix) if full_answers else frozenset()
    batch = encode_prompts(tokenizer, texts, [items[q].answer for q in queries], chat=chat, params=params,
                           bos=bos, full_answers=collide)
    batch.query_indices = queries
    batch.demo_indices = demos
    if spans:
        batch.spans = book_spans(batch, tokenizer, items)
    return batch


def book_spans(batch: TaskBatch, tokenizer: Any, items: tuple[BookItem, ...] | None = None) -> list[dict[str, list[int]]]:
    """Token spans (question, answer, context, demonstrations, prompt_format) of each prompt.

    See :mod:`icltest.probes.spans` for what each span holds. A chat-template batch has no spans
    (the template's own text sits between the parts): the result is an empty list.

    Raises:
        InputError: the tokenizer is not a fast one, or its ids for a prompt differ from the batch's.
    """
    from icltest.probes.spans import book_char_ranges, token_spans

    if batch.params.get("template") != "plain":
        return []
    items = items if items is not None else load_book(batch.params["task"])
    bos = batch.params.get("bos")
    out = []
    for prompt, ids, q in zip(batch.prompts, batch.input_ids, batch.query_indices):
        item = items[q]
        ranges = book_char_ranges(prompt, item.question, item.answer, item.context)
        out.append(token_spans(tokenizer, prompt, ids, ranges, bos))
    return out


def remembered_answers(batch: TaskBatch, tokenizer: Any) -> list[int]:
    """For counterfactual prompts: the first token of the answer world knowledge gives.

    Each counterfactual question is also a closed-book question; its closed-book answer ("Paris")
    competes with the context's answer ("Rome"). Scored in the same position and with the same
    leading-space convention as the context answer, so ``logit_diff`` = logit(context answer) -
    logit(remembered answer) > 0 means the context wins.

    Raises:
        InputError: the batch is not counterfactual or uses a chat template (a spec asked for it).
    """
    if batch.params.get("task") != "counterfactual" or batch.params.get("template") != "plain":
        raise InputError("remembered answers exist for plain-text counterfactual prompts only (chat_template: no)")
    items = load_book("counterfactual")
    memory = {item.question: item.answer for item in load_book("closed_book")}
    answers = [memory[items[q].question] for q in batch.query_indices]
    return encode_prompts(tokenizer, batch.prompts, answers, chat=False).answer_ids
