"""Prompts whose answer comes from the context or from memory, in one format: source tracking's inputs.

Half the prompts are open-book items (the answer is only in the context: label 1, "context");
half are closed-book questions behind a *distractor* context, an open-book item's facts about
invented people that do not mention the answer (label 0, "memory"). Both kinds have a context of
the same style and length, and every prompt gets the same mix of demonstrations (for 2 shots: one
of each kind, in random order), so a probe cannot tell the classes apart by whether a context is
present or by the demonstrations: only by how the model produces the answer.

    Sabine Okoro was born in Manchester. ... Question: Where was Sabine Okoro born? Answer: Manchester
    <blank line>
    Kofi Lindgren lives in Toronto. ... Question: What is the capital of Japan? Answer: Tokyo
    <blank line>
    Mira Okafor was born in Tallinn. ... Question: What is the capital of France? Answer:
"""
from __future__ import annotations

import random
from typing import Any

from icltest.errors import InputError
from icltest.probes.books import BookItem, _demo_pool, _mentions, load_book
from icltest.probes.prompts import TaskBatch, encode_prompts
from icltest.probes.splits import check_split, split_indices

CONTEXT, MEMORY = 1, 0


def _distracted(closed: BookItem, open_items: tuple[BookItem, ...], pool: list[int], rng: random.Random,
                avoid: str | None = None) -> BookItem:
    """The closed-book item behind the context of an open-book item that mentions neither its
    answer nor ``avoid`` (the query's answer, when this is a demonstration)."""
    usable = [i for i in pool if not _mentions(open_items[i].context, closed.answer)
              and not (avoid and _mentions(open_items[i].context, avoid))]
    if not usable:
        raise InputError(f"no open-book context avoids the answer {closed.answer!r}")
    return BookItem(closed.question, closed.answer, open_items[rng.choice(usable)].context)


def build_source_prompts(tokenizer: Any, *, n: int, seed: int, split: str = "test", shots: int = 2,
                         bos: Any = "auto") -> tuple[TaskBatch, list[int]]:
    """n prompts (half per source, alternating before a seeded shuffle) and their labels (1 context, 0 memory).

    Queries and demonstrations come from ``split`` of both item sets; a demonstration never states
    the query's answer.
    """
    check_split(split)
    if shots % 2:
        raise InputError(f"source-tracking prompts take an even number of shots (half of each kind), got {shots}")
    open_items, closed_items = load_book("open_book"), load_book("closed_book")
    open_pool = split_indices([it.question for it in open_items], split)
    closed_pool = split_indices([it.question for it in closed_items], split)
    rng = random.Random(seed)
    labels = [CONTEXT if i % 2 == 0 else MEMORY for i in range(n)]
    rng.shuffle(labels)
    texts, answers = [], []
    for label in labels:
        if label == CONTEXT:
            q = rng.choice(open_pool)
            query = open_items[q]
            open_demos = [i for i in _demo_pool(open_items, q, open_pool)]
            closed_demos = [i for i in closed_pool if not _mentions(closed_items[i].text(True), query.answer)]
        else:
            q = rng.choice(closed_pool)
            query = _distracted(closed_items[q], open_items, open_pool, rng)
            open_demos = [i for i in open_pool if not _mentions(open_items[i].text(True), query.answer)
                          and open_items[i].context != query.context]
            closed_demos = _demo_pool(closed_items, q, closed_pool)
        half = shots // 2
        if half > min(len(open_demos), len(closed_demos)):
            raise InputError(f"shots={shots} but split {split} has too few items to serve as demonstrations")
        shown = [open_items[i] for i in rng.sample(open_demos, half)]
        shown += [_distracted(closed_items[i], open_items, open_pool, rng, avoid=query.answer)
                  for i in rng.sample(closed_demos, half)]
        rng.shuffle(shown)
        texts.append("\n\n".join([it.text(with_answer=True) for it in shown] + [query.text()]))
        answers.append(query.answer)
    params = {"task": "source", "shots": shots, "n": n, "seed": seed, "split": split, "template": "plain",
              "context_prompts": labels.count(CONTEXT), "memory_prompts": labels.count(MEMORY)}
    batch = encode_prompts(tokenizer, texts, answers, chat=False, params=params, bos=bos)
    return batch, labels
